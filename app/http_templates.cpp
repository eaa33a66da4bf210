// /v1/templates: a tenant's stored templates (docs/api.md, "Stored templates"). A template is a
// name, a subject and a text and/or HTML body, all Mustache; an update makes a new version, and a
// message names a template (and optionally a version) with template_id / template_version.
#include <boost/json.hpp>
#include <caf/all.hpp>

#include "actors/actor_support.hpp"
#include "app/actor_bridge.hpp"
#include "app/http_api.hpp"
#include "app/http_common.hpp"
#include "app/problem.hpp"
#include "net/mail/email_address.hpp"  // is_clean_utf8
#include "net/mail/template_message.hpp"
#include "storage/ids.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

constexpr std::size_t max_template_name = 128;

json::object template_json(const template_record& t) {
  json::object o{{"id", t.id.str()},
                 {"version", t.version},
                 {"name", t.name},
                 {"subject", t.subject},
                 {"text", t.has_text ? json::value(t.text) : json::value(nullptr)},
                 {"html", t.has_html ? json::value(t.html) : json::value(nullptr)},
                 {"created_at", timestamp(t.created_at_ms)}};
  json::array variables;
  if (auto compiled = message_templates::compile(t.subject, t.has_text ? std::optional(t.text) : std::nullopt,
                                                 t.has_html ? std::optional(t.html) : std::nullopt))
    for (auto& v : compiled.value().variables()) variables.emplace_back(v);
  o["variables"] = std::move(variables);
  return o;
}

// A create or update body: {name, subject, text?, html?}; every part is checked as a template.
std::optional<http_response> read_template(const http_request& request, std::uint64_t max_bytes,
                                           template_record& out) {
  if (!is_json(request.header("content-type")))
    return problem(415, "unsupported-media-type", "Unsupported Media Type", "the body must be application/json");
  json::value doc;
  if (auto bad = parse_json_body(request.body, doc)) return bad;
  std::vector<field_error> errors;
  const auto& o = doc.get_object();
  for (const auto& kv : o)
    if (kv.key() != "name" && kv.key() != "subject" && kv.key() != "text" && kv.key() != "html")
      errors.push_back({std::string(kv.key()), "unknown field (name, subject, text, html)"});
  auto string_of = [&](const char* key, bool required) -> std::optional<std::string> {
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) {
      if (required) errors.push_back({key, "required, a string"});
      return std::nullopt;
    }
    if (!v->is_string()) {
      errors.push_back({key, "must be a string"});
      return std::nullopt;
    }
    std::string s(v->get_string());
    if (s.size() > max_bytes) {
      errors.push_back({key, "longer than " + std::to_string(max_bytes) + " bytes (submission.max_message_bytes)"});
      return std::nullopt;
    }
    return s;
  };
  auto name = string_of("name", true);
  if (name && (name->empty() || name->size() > max_template_name || !is_clean_utf8(*name)))
    errors.push_back({"name", "1 to 128 octets of UTF-8 without control characters"});
  auto subject = string_of("subject", false);
  if (subject && (subject->size() > 998 || !is_clean_utf8(*subject)))
    errors.push_back({"subject", "at most 998 octets of UTF-8 without line breaks or control characters"});
  auto text = string_of("text", false);
  auto html = string_of("html", false);
  if (!text && !html && errors.empty()) errors.push_back({"text", "a body is required: text, html or both"});
  if (errors.empty()) {
    auto compiled = message_templates::compile(subject.value_or(""), text, html);
    if (!compiled) {
      auto colon = compiled.error().find(':');
      errors.push_back({compiled.error().substr(0, colon), compiled.error().substr(colon + 2)});
    }
  }
  if (!errors.empty()) return invalid_request(errors);
  out.name = *name;
  out.subject = subject.value_or("");
  out.has_text = text.has_value();
  out.text = text.value_or("");
  out.has_html = html.has_value();
  out.html = html.value_or("");
  return std::nullopt;
}

// A preview body: {substitutions?, version?, strict?}.
struct render_request {
  std::string substitutions = "{}";
  std::uint32_t version = 0;
  bool strict = false;
};

std::optional<http_response> read_render(const http_request& request, render_request& out) {
  if (request.body.empty()) return std::nullopt;
  if (!is_json(request.header("content-type")))
    return problem(415, "unsupported-media-type", "Unsupported Media Type", "the body must be application/json");
  json::value doc;
  if (auto bad = parse_json_body(request.body, doc)) return bad;
  std::vector<field_error> errors;
  for (const auto& kv : doc.get_object()) {
    const auto& v = kv.value();
    if (kv.key() == "substitutions" && v.is_object())
      out.substitutions = json::serialize(v);
    else if (kv.key() == "version" && v.is_int64() && v.get_int64() >= 1 && v.get_int64() <= 1'000'000)
      out.version = static_cast<std::uint32_t>(v.get_int64());
    else if (kv.key() == "strict" && v.is_bool())
      out.strict = v.get_bool();
    else
      errors.push_back({std::string(kv.key()), "unknown field, or not of its type (substitutions: object, "
                                               "version: number, strict: boolean)"});
  }
  if (!errors.empty()) return invalid_request(errors);
  return std::nullopt;
}

}  // namespace

void http_api::templates(http_request&& request, const std::vector<std::string>& parts, http_responder respond) {
  const auto& method = request.method;
  enum { list, create, get_one, update, remove, render } op;
  if (parts.size() == 2) {
    if (method == "GET") op = list;
    else if (method == "POST") op = create;
    else return respond(method_not_allowed("GET, POST"));
  } else if (parts.size() == 3) {
    if (method == "GET") op = get_one;
    else if (method == "PUT") op = update;
    else if (method == "DELETE") op = remove;
    else return respond(method_not_allowed("GET, PUT, DELETE"));
  } else if (parts.size() == 4 && parts[3] == "render") {
    if (method != "POST") return respond(method_not_allowed("POST"));
    op = render;
  } else {
    return respond(not_found());
  }
  id128 id;
  if (parts.size() >= 3)
    if (auto parsed = id128::parse(parts[2])) id = *parsed;
  std::uint32_t version = 0;
  if (op == get_one)
    if (auto v = query_parameter(request.query, "version"); !v.empty()) {
      auto n = parse_decimal(v);
      if (!n || *n < 1 || *n > 1'000'000)
        return respond(invalid_request({{"version", "must be a version number (1, 2, ...)"}}));
      version = static_cast<std::uint32_t>(*n);
    }
  template_record body;
  render_request preview;
  std::optional<http_response> invalid;
  if (op == create || op == update) invalid = read_template(request, cfg_.submission.max_message_bytes, body);
  if (op == render) invalid = read_render(request, preview);
  auto s = directory_->get();
  auto& sys = sys_;
  auto timeout = cfg_.http.handler_timeout;
  auto store = s->store;
  auto fail = [respond, &sys](caf::error& e) { respond(problem_from_error(sys, e)); };
  bool unknown_id = parts.size() >= 3 && id.empty();
  auto not_found_answer = [] { return problem(404, "not-found", "Not Found", "no such template"); };
  as_tenant(request, respond, [=, &sys](tenant_identity& who) mutable {
    if (unknown_id) return respond(not_found_answer());
    if (invalid) return respond(*invalid);
    auto tenant = who.tenant_id;
    auto write = [=, &sys](write_op op, std::function<void()> then) {
      ask<caf::ok_atom>(sys, store, timeout, [then](caf::ok_atom) { then(); }, fail, persist_atom::value,
                        write_request{std::move(op)});
    };
    switch (op) {
      case create: {
        body.id = new_id();
        body.version = 1;
        body.tenant_id = tenant;
        body.created_at_ms = unix_now_ms();
        return write(insert_template_op{body}, [respond, body] { respond(json_response(201, template_json(body))); });
      }
      case list:
        return ask<std::vector<template_record>>(
            sys, store, timeout,
            [respond](std::vector<template_record>& all) {
              json::array out;
              for (const auto& t : all) out.push_back(template_json(t));
              respond(json_response(200, json::object{{"templates", std::move(out)}}));
            },
            fail, load_atom::value, template_query{tenant, {}, 0});
      case get_one:
        return ask<std::vector<template_record>>(
            sys, store, timeout,
            [respond, not_found_answer](std::vector<template_record>& found) {
              if (found.empty()) return respond(not_found_answer());
              respond(json_response(200, template_json(found.front())));
            },
            fail, load_atom::value, template_query{tenant, id, version});
      case update:
        // The next version after the newest; two updates at once: one of them is a 409.
        return ask<std::vector<template_record>>(
            sys, store, timeout,
            [=](std::vector<template_record>& found) mutable {
              if (found.empty()) return respond(not_found_answer());
              body.id = id;
              body.version = found.front().version + 1;
              body.tenant_id = tenant;
              body.created_at_ms = unix_now_ms();
              write(insert_template_op{body}, [respond, body] { respond(json_response(200, template_json(body))); });
            },
            fail, load_atom::value, template_query{tenant, id, 0});
      case remove:
        return ask<std::vector<template_record>>(
            sys, store, timeout,
            [=](std::vector<template_record>& found) {
              if (found.empty()) return respond(not_found_answer());
              write(delete_template_op{tenant, id, unix_now_ms()}, [respond] { respond(no_content()); });
            },
            fail, load_atom::value, template_query{tenant, id, 0});
      case render:
        return ask<std::vector<template_record>>(
            sys, store, timeout,
            [respond, preview, not_found_answer](std::vector<template_record>& found) {
              if (found.empty()) return respond(not_found_answer());
              const auto& t = found.front();
              auto compiled = message_templates::compile(t.subject, t.has_text ? std::optional(t.text) : std::nullopt,
                                                         t.has_html ? std::optional(t.html) : std::nullopt);
              if (!compiled) return respond(problem(500, "internal", "Internal Server Error", compiled.error()));
              message_spec out;
              if (auto failure = compiled.value().render(preview.substitutions, preview.strict, out))
                return respond(invalid_request({{"substitutions", *failure}}));
              respond(json_response(200, json::object{{"id", t.id.str()},
                                                      {"version", t.version},
                                                      {"subject", out.subject},
                                                      {"text", out.text ? json::value(*out.text) : json::value(nullptr)},
                                                      {"html", out.html ? json::value(*out.html) : json::value(nullptr)}}));
            },
            fail, load_atom::value, template_query{tenant, id, preview.version});
    }
  });
}

}  // namespace petrel
