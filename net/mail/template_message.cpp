// Messages rendered per recipient (see template_message.hpp).
#include "net/mail/template_message.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "net/mail/base64.hpp"
#include "net/mail/tracking.hpp"
#include "net/template/mustache.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

const json::value* member(const json::object& o, std::string_view key) { return o.if_contains(key); }

std::string string_member(const json::object& o, std::string_view key) {
  const auto* v = member(o, key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

json::value mailbox_json(const mailbox& box) {
  json::object o{{"email", box.address()}};
  if (!box.display_name.empty()) o["name"] = box.display_name;
  return o;
}

std::optional<mailbox> mailbox_from(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  auto box = parse_address(string_member(o, "email"));
  if (!box) return std::nullopt;
  auto out = box.value();
  out.display_name = string_member(o, "name");
  return out;
}

// A rendered subject goes into a header: the data must not break it.
bool clean_header_text(std::string_view s) {
  for (unsigned char c : s)
    if (c < 32 || c == 127) return false;
  return true;
}

}  // namespace

parsed<message_templates> message_templates::compile(std::string_view subject,
                                                     const std::optional<std::string>& text,
                                                     const std::optional<std::string>& html) {
  message_templates out;
  auto one = [](std::string_view field, std::string_view source,
                std::shared_ptr<const mustache::compiled_template>& into) -> std::optional<std::string> {
    mustache::error failure;
    auto compiled = mustache::compiled_template::compile(source, failure);
    if (!compiled) return std::string(field) + ": " + failure.message;
    into = std::make_shared<const mustache::compiled_template>(std::move(*compiled));
    return std::nullopt;
  };
  if (auto e = one("subject", subject, out.subject_)) return parsed<message_templates>::failure(*e);
  if (text)
    if (auto e = one("text", *text, out.text_)) return parsed<message_templates>::failure(*e);
  if (html)
    if (auto e = one("html", *html, out.html_)) return parsed<message_templates>::failure(*e);
  return out;
}

std::optional<std::string> message_templates::render(std::string_view data_json, bool strict,
                                                     message_spec& spec) const {
  boost::system::error_code ec;
  auto data = json::parse(data_json, ec);
  if (ec || !data.is_object()) return std::string("the substitutions are not a JSON object");
  mustache::render_options plain;
  plain.strict = strict;
  auto html_options = plain;
  html_options.escape_html = true;
  mustache::error failure;
  auto run = [&](const char* field, const mustache::compiled_template& t, const mustache::render_options& o,
                 std::string& out) -> std::optional<std::string> {
    auto r = t.render(data, o, failure);
    if (!r) return std::string(field) + ": " + failure.message;
    out = std::move(*r);
    return std::nullopt;
  };
  if (auto e = run("subject", *subject_, plain, spec.subject)) return e;
  if (!clean_header_text(spec.subject))
    return std::string("subject: the rendered subject contains line breaks or control characters");
  if (text_) {
    spec.text.emplace();
    if (auto e = run("text", *text_, plain, *spec.text)) return e;
  }
  if (html_) {
    spec.html.emplace();
    if (auto e = run("html", *html_, html_options, *spec.html)) return e;
  }
  return std::nullopt;
}

std::vector<std::string> message_templates::variables() const {
  std::vector<std::string> out;
  for (const auto* t : {subject_.get(), text_.get(), html_.get()}) {
    if (!t) continue;
    for (auto& v : t->variables())
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
  }
  return out;
}

std::string template_source(const message_spec& spec, std::string_view substitutions_json) {
  json::object o;
  o["v"] = 1;
  o["from"] = mailbox_json(spec.from);
  json::array reply_to;
  for (const auto& box : spec.reply_to) reply_to.push_back(mailbox_json(box));
  o["reply_to"] = std::move(reply_to);
  o["subject"] = spec.subject;
  o["text"] = spec.text ? json::value(*spec.text) : json::value(nullptr);
  o["html"] = spec.html ? json::value(*spec.html) : json::value(nullptr);
  json::array headers;
  for (const auto& [name, value] : spec.headers) headers.push_back(json::array{json::value(name), json::value(value)});
  o["headers"] = std::move(headers);
  json::array attachments;
  for (const auto& a : spec.attachments)
    attachments.push_back(json::object{{"filename", a.filename},
                                       {"content_type", a.content_type},
                                       {"inline", a.inline_part},
                                       {"content_id", a.content_id},
                                       {"data", base64_encode(a.data)}});
  o["attachments"] = std::move(attachments);
  o["message_id"] = spec.message_id;
  o["date_ms"] = spec.date_ms;
  boost::system::error_code ec;
  auto subs = json::parse(substitutions_json.empty() ? std::string_view("{}") : substitutions_json, ec);
  o["substitutions"] = ec || !subs.is_object() ? json::value(json::object()) : std::move(subs);
  return json::serialize(o);
}

namespace {

json::object tracking_json(const tracking_plan& plan, const std::vector<std::string>& links) {
  json::array list;
  for (const auto& l : links) list.emplace_back(l);
  return json::object{{"opens", plan.opens},
                      {"clicks", plan.clicks},
                      {"base_url", plan.base_url},
                      {"expires_ms", plan.expires_ms},
                      {"links", std::move(list)}};
}

json::array mailboxes_json(const std::vector<mailbox>& boxes) {
  json::array out;
  for (const auto& box : boxes) out.push_back(mailbox_json(box));
  return out;
}

}  // namespace

tracked_source tracked_literal_source(const message_spec& spec, const tracking_plan& plan) {
  tracked_source out;
  auto marked = spec;
  if (marked.html) *marked.html = mark_tracking(*marked.html, plan.opens, plan.clicks, out.links);
  auto o = json::parse(template_source(marked, "{}")).as_object();
  o["literal"] = true;
  o["to"] = mailboxes_json(spec.to);
  o["cc"] = mailboxes_json(spec.cc);
  o["tracking"] = tracking_json(plan, out.links);
  out.source = json::serialize(o);
  return out;
}

parsed<tracked_source> tracked_template_source(std::string_view source, const tracking_plan& plan) {
  boost::system::error_code ec;
  auto doc = json::parse(source, ec);
  if (ec || !doc.is_object()) return parsed<tracked_source>::failure("the template source is not valid");
  auto& o = doc.as_object();
  tracked_source out;
  if (auto* html = o.if_contains("html"); html && html->is_string())
    *html = mark_tracking(std::string_view(html->get_string()), plan.opens, plan.clicks, out.links);
  o["tracking"] = tracking_json(plan, out.links);
  out.source = json::serialize(o);
  return out;
}

std::string template_personal(const mailbox& to, std::string_view substitutions_json) {
  auto o = mailbox_json(to).as_object();
  if (!substitutions_json.empty()) {
    boost::system::error_code ec;
    auto subs = json::parse(substitutions_json, ec);
    if (!ec && subs.is_object()) o["substitutions"] = std::move(subs);
  }
  return json::serialize(o);
}

std::string template_data(std::string_view substitutions_json, std::string_view personal_substitutions_json) {
  boost::system::error_code ec;
  json::object data;
  if (!substitutions_json.empty()) {
    auto v = json::parse(substitutions_json, ec);
    if (!ec && v.is_object()) data = std::move(v.as_object());
  }
  if (!personal_substitutions_json.empty()) {
    auto v = json::parse(personal_substitutions_json, ec);
    if (!ec && v.is_object())
      for (auto& kv : v.as_object()) data[kv.key()] = std::move(kv.value());
  }
  return json::serialize(data);
}

parsed<template_copies> template_copies::read(std::string_view source) {
  using result = parsed<template_copies>;
  boost::system::error_code ec;
  auto doc = json::parse(source, ec);
  if (ec || !doc.is_object()) return result::failure("the stored template source is not valid");
  const auto& o = doc.get_object();
  auto from = member(o, "from") ? mailbox_from(*member(o, "from")) : std::nullopt;
  if (!from) return result::failure("the stored template source has no valid sender");
  template_copies out;
  auto& spec = out.base_;
  spec.from = *from;
  if (const auto* r = member(o, "reply_to"); r && r->is_array())
    for (const auto& v : r->get_array())
      if (auto box = mailbox_from(v)) spec.reply_to.push_back(*box);
  std::optional<std::string> text, html;
  if (const auto* t = member(o, "text"); t && t->is_string()) text = std::string(t->get_string());
  if (const auto* h = member(o, "html"); h && h->is_string()) html = std::string(h->get_string());
  if (const auto* literal = member(o, "literal"); literal && literal->is_bool() && literal->get_bool()) {
    // Copies of the message as given: nothing to render, its To and Cc kept.
    for (auto [key, into] : {std::pair{"to", &spec.to}, std::pair{"cc", &spec.cc}})
      if (const auto* list = member(o, key); list && list->is_array())
        for (const auto& v : list->get_array())
          if (auto box = mailbox_from(v)) into->push_back(*box);
    spec.subject = string_member(o, "subject");
    spec.text = std::move(text);
    spec.html = std::move(html);
  } else {
    auto templates = message_templates::compile(string_member(o, "subject"), text, html);
    if (!templates) return result::failure(templates.error());
    out.templates_ = std::move(templates.value());
  }
  if (const auto* t = member(o, "tracking"); t && t->is_object()) {
    const auto& x = t->get_object();
    auto flag = [&](const char* key) {
      const auto* v = member(x, key);
      return v && v->is_bool() && v->get_bool();
    };
    out.tracking_.opens = flag("opens");
    out.tracking_.clicks = flag("clicks");
    out.tracking_.base_url = string_member(x, "base_url");
    if (const auto* e = member(x, "expires_ms"); e && e->is_int64()) out.tracking_.expires_ms = e->get_int64();
    if (const auto* l = member(x, "links"); l && l->is_array())
      for (const auto& v : l->get_array()) out.links_.push_back(v.is_string() ? std::string(v.get_string()) : "");
  }
  if (const auto* h = member(o, "headers"); h && h->is_array())
    for (const auto& pair : h->get_array())
      if (pair.is_array() && pair.get_array().size() == 2 && pair.get_array()[0].is_string() &&
          pair.get_array()[1].is_string())
        spec.headers.emplace_back(std::string(pair.get_array()[0].get_string()),
                                  std::string(pair.get_array()[1].get_string()));
  if (const auto* a = member(o, "attachments"); a && a->is_array())
    for (const auto& v : a->get_array()) {
      if (!v.is_object()) return result::failure("the stored template source has a bad attachment");
      const auto& x = v.get_object();
      attachment_spec at;
      at.filename = string_member(x, "filename");
      at.content_type = string_member(x, "content_type");
      at.content_id = string_member(x, "content_id");
      const auto* in = member(x, "inline");
      at.inline_part = in && in->is_bool() && in->get_bool();
      if (!decode_base64(string_member(x, "data"), at.data))
        return result::failure("the stored template source has a bad attachment");
      spec.attachments.push_back(std::move(at));
    }
  spec.message_id = string_member(o, "message_id");
  if (const auto* d = member(o, "date_ms"); d && d->is_int64()) spec.date_ms = d->get_int64();
  if (const auto* subs = member(o, "substitutions")) out.substitutions_ = json::serialize(*subs);
  return out;
}

parsed<built_message> template_copies::render(std::string_view personal, const copy_tracking* tracking) const {
  using result = parsed<built_message>;
  auto spec = base_;
  if (templates_) {
    boost::system::error_code ec;
    auto who = json::parse(personal, ec);
    if (ec || !who.is_object()) return result::failure("the recipient's template data is not valid");
    auto to = mailbox_from(who);
    if (!to) return result::failure("the recipient's template data has no valid address");
    spec.to.push_back(*to);
    const auto* own = member(who.get_object(), "substitutions");
    auto data = template_data(substitutions_, own ? json::serialize(*own) : std::string());
    if (auto failure = templates_->render(data, false, spec)) return result::failure(*failure);
  }
  if (tracked() && spec.html) {
    auto expires_s = static_cast<std::uint32_t>(std::clamp<std::int64_t>(tracking_.expires_ms / 1000, 0, UINT32_MAX));
    spec.html = resolve_tracking_marks(*spec.html, [&](std::size_t n) -> std::string {
      if (!tracking) return n == 0 || n > links_.size() ? std::string() : links_[n - 1];
      auto token = make_tracking_token(tracking->secret, {tracking->message, tracking->recipient,
                                                          static_cast<std::uint16_t>(n), expires_s});
      return n == 0 ? tracking_.base_url + "/o/" + token + ".gif" : tracking_.base_url + "/c/" + token;
    });
  }
  return build_message(spec);
}

parsed<built_message> render_template_copy(std::string_view source, std::string_view personal) {
  auto copies = template_copies::read(source);
  if (!copies) return parsed<built_message>::failure(copies.error());
  return copies.value().render(personal);
}

}  // namespace petrel
