// Submission validation and message construction (see submission_request.hpp).
#include "app/submission_request.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <set>
#include <unordered_map>

#include "net/mail/email_address.hpp"
#include "net/json_input.hpp"
#include "net/mail/mime_message.hpp"
#include "net/mail/template_message.hpp"
#include "storage/ids.hpp"

namespace petrel {

namespace json = boost::json;

namespace {

// JSON nesting beyond this is refused before it costs anything.
constexpr std::size_t max_json_depth = 32;
constexpr std::size_t max_campaign_length = 128;
constexpr std::size_t max_header_value_octets = 900;  // leaves room for the name on one line
// Field errors listed in a 400 at most; the rest are counted ("and N more errors").
constexpr std::size_t max_reported_errors = 20;

class validator {
 public:
  explicit validator(const submission_settings& s) : settings(s) {}

  // The answer lists the first max_reported_errors; the rest are only counted, so that a
  // body of a million bad items cannot make an answer of a million errors.
  void fail(std::string field, std::string detail) {
    if (errors.size() < max_reported_errors)
      errors.push_back({std::move(field), std::move(detail)});
    else
      ++unreported;
  }
  bool ok() const { return errors.empty(); }
  submission_rejection rejection() {
    if (unreported > 0)
      errors.push_back({"", "and " + std::to_string(unreported) + " more error" +
                                (unreported == 1 ? "" : "s") + " not listed"});
    return submission_rejection{400, std::move(errors)};
  }

  // A single address: "a@b", "Name <a@b>" or {"email": "a@b", "name": "Name"}.
  std::optional<mailbox> address(const json::value& v, const std::string& field) {
    if (v.is_string()) {
      auto p = parse_mailbox(std::string_view(v.get_string()));
      if (!p) {
        fail(field, p.error());
        return std::nullopt;
      }
      return p.value();
    }
    if (v.is_object()) {
      const auto& o = v.get_object();
      for (const auto& kv : o)
        if (kv.key() != "email" && kv.key() != "name")
          fail(field + "." + std::string(kv.key()),
               field.rfind("to", 0) == 0
                   ? "unknown field (use \"email\", \"name\", \"substitutions\" and \"metadata\")"
                   : "unknown field (use \"email\" and \"name\")");
      auto* email = o.if_contains("email");
      if (!email || !email->is_string()) {
        fail(field + ".email", "required, a string");
        return std::nullopt;
      }
      auto p = parse_address(std::string_view(email->get_string()));
      if (!p) {
        fail(field + ".email", p.error());
        return std::nullopt;
      }
      auto box = p.value();
      if (auto* name = o.if_contains("name")) {
        if (!name->is_string()) {
          fail(field + ".name", "must be a string");
          return std::nullopt;
        }
        auto checked = check_display_name(std::string_view(name->get_string()));
        if (!checked) {
          fail(field + ".name", checked.error());
          return std::nullopt;
        }
        box.display_name = checked.value();
      }
      return box;
    }
    fail(field, "must be an address string or an object {\"email\", \"name\"}");
    return std::nullopt;
  }

  // A list of addresses; a single address is taken as a list of one.
  std::vector<mailbox> address_list(const json::value* v, const std::string& field) {
    std::vector<mailbox> out;
    if (!v || v->is_null()) return out;
    if (v->is_array()) {
      const auto& a = v->get_array();
      // Too many is one error, found before any element costs validation work.
      if (a.size() > settings.max_recipients) {
        fail(field, "at most " + std::to_string(settings.max_recipients) +
                        " recipients are allowed, got " + std::to_string(a.size()));
        return out;
      }
      for (std::size_t i = 0; i < a.size(); ++i)
        if (auto box = address(a[i], field + "[" + std::to_string(i) + "]")) out.push_back(*box);
      return out;
    }
    if (auto box = address(*v, field)) out.push_back(*box);
    return out;
  }

  std::optional<std::string> text(const json::value* v, const std::string& field,
                                  std::size_t max_length, bool allow_newlines) {
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) {
      fail(field, "must be a string");
      return std::nullopt;
    }
    std::string_view s(v->get_string());
    if (s.size() > max_length) {
      fail(field, "longer than " + std::to_string(max_length) + " octets");
      return std::nullopt;
    }
    if (allow_newlines) {
      // Bodies: any UTF-8 with tabs and line breaks; other control characters are refused.
      if (!is_clean_utf8(s, true, true)) {
        fail(field, "contains control characters or invalid UTF-8");
        return std::nullopt;
      }
    } else if (!is_clean_utf8(s)) {
      fail(field, "contains control characters (CR, LF, ...) or invalid UTF-8");
      return std::nullopt;
    }
    return std::string(s);
  }

  std::string tags_json(const json::value* v) {
    json::array out;
    if (v && !v->is_null()) {
      if (!v->is_array()) {
        fail("tags", "must be an array of strings");
      } else {
        const auto& a = v->get_array();
        if (a.size() > settings.max_tags)
          fail("tags", "at most " + std::to_string(settings.max_tags) + " tags are allowed");
        std::set<std::string> seen;
        for (std::size_t i = 0; i < a.size() && i < settings.max_tags; ++i) {
          auto field = "tags[" + std::to_string(i) + "]";
          auto t = text(&a[i], field, settings.max_tag_length, false);
          if (!t) continue;  // reported by text()
          if (t->empty()) {
            fail(field, "must not be empty");
            continue;
          }
          if (seen.insert(*t).second) out.emplace_back(*t);
        }
      }
    }
    return json::serialize(out);
  }

  std::string metadata_json(const json::value* v, const std::string& field = "metadata",
                            const char* none = "{}") {
    if (!v || v->is_null()) return none;
    if (!v->is_object()) {
      fail(field, "must be a JSON object");
      return none;
    }
    auto s = json::serialize(*v);
    if (s.size() > settings.max_metadata_bytes)
      fail(field, "larger than " + std::to_string(settings.max_metadata_bytes) +
                      " bytes when serialized");
    return s;
  }

  // Template data: a JSON object ("" when absent).
  std::string substitutions_json(const json::value* v, const std::string& field) {
    if (!v || v->is_null()) return {};
    if (!v->is_object()) {
      fail(field, "must be a JSON object of names to values");
      return {};
    }
    return json::serialize(*v);
  }

  // "to" of a structured submission: addresses, each optionally an object with its own
  // "substitutions" (template data) and "metadata" (reported with its events).
  struct to_entry {
    mailbox box;
    std::string substitutions;  // "" none
    std::string metadata;       // "" none
  };
  std::vector<to_entry> to_list(const json::value* v, bool& any_substitutions) {
    std::vector<to_entry> out;
    if (!v || v->is_null()) return out;
    auto one = [&](const json::value& item, const std::string& field) {
      if (!item.is_object()) {
        if (auto box = address(item, field)) out.push_back({*box, {}, {}});
        return;
      }
      const auto& o = item.get_object();
      json::object plain;
      for (const auto& kv : o)
        if (kv.key() != "substitutions" && kv.key() != "metadata") plain.emplace(kv.key(), kv.value());
      auto box = address(plain, field);
      auto subs = substitutions_json(o.if_contains("substitutions"), field + ".substitutions");
      auto meta = metadata_json(o.if_contains("metadata"), field + ".metadata", "");
      if (o.if_contains("substitutions")) any_substitutions = true;
      if (box) out.push_back({*box, std::move(subs), std::move(meta)});
    };
    if (v->is_array()) {
      const auto& a = v->get_array();
      if (a.size() > settings.max_recipients) {
        fail("to", "at most " + std::to_string(settings.max_recipients) + " recipients are allowed, got " +
                       std::to_string(a.size()));
        return out;
      }
      for (std::size_t i = 0; i < a.size(); ++i) one(a[i], "to[" + std::to_string(i) + "]");
      return out;
    }
    one(*v, "to");
    return out;
  }

  std::vector<std::pair<std::string, std::string>> headers(const json::value* v) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!v || v->is_null()) return out;
    if (!v->is_object()) {
      fail("headers", "must be an object of header names to string values");
      return out;
    }
    const auto& o = v->get_object();
    if (o.size() > settings.max_headers) {
      fail("headers", "at most " + std::to_string(settings.max_headers) + " headers are allowed");
      return out;
    }
    for (const auto& kv : o) {
      std::string name(kv.key());
      auto field = "headers." + name;
      if (!is_valid_header_name(name)) {
        fail(field, "not a valid header name (printable ASCII without ':' or spaces)");
        continue;
      }
      if (is_reserved_header(name)) {
        fail(field, "this header is set by Petrel or by the transport and cannot be given");
        continue;
      }
      if (!kv.value().is_string()) {
        fail(field, "the value must be a string");
        continue;
      }
      std::string value(kv.value().get_string());
      if (value.find_first_of("\r\n") != std::string::npos) {
        fail(field, "the value contains CR or LF (header injection)");
        continue;
      }
      if (!is_clean_utf8(value)) {
        fail(field, "the value contains control characters or invalid UTF-8");
        continue;
      }
      if (value.size() > max_header_value_octets) {
        fail(field, "the value is longer than " + std::to_string(max_header_value_octets) +
                        " octets");
        continue;
      }
      out.emplace_back(std::move(name), std::move(value));
    }
    return out;
  }

  const submission_settings& settings;
  std::vector<field_error> errors;
  std::size_t unreported = 0;
};

void reject_unknown(validator& v, const json::object& o, std::initializer_list<const char*> known) {
  for (const auto& kv : o) {
    bool found = false;
    for (const char* k : known)
      if (kv.key() == k) found = true;
    if (!found) v.fail(std::string(kv.key()), "unknown field");
  }
}

constexpr std::size_t max_attachments = 100;
constexpr std::size_t max_filename_octets = 255;

// RFC 2045 token characters (a media type's type and subtype).
bool is_token(std::string_view s) {
  return !s.empty() && s.size() <= 127 && std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
  });
}

// A Content-ID's inside (RFC 2392: an addr-spec-like id): printable ASCII without spaces,
// angle brackets, quotes or parentheses.
bool is_content_id(std::string_view s) {
  return !s.empty() && s.size() <= 250 && std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && std::string_view("<>\"()[],;:\\").find(c) == std::string_view::npos;
  });
}

// "attachments": [{filename, content_type?, content (base64), disposition?, content_id?}].
// Adds the decoded sizes to bytes.
std::vector<attachment_spec> read_attachments(validator& v, const json::value* value, std::size_t& bytes) {
  std::vector<attachment_spec> out;
  if (!value || value->is_null()) return out;
  if (!value->is_array()) {
    v.fail("attachments", "must be a list of {filename, content_type, content, disposition, content_id}");
    return out;
  }
  const auto& list = value->get_array();
  if (list.size() > max_attachments) {
    v.fail("attachments", "at most " + std::to_string(max_attachments) + " attachments are allowed, got " +
                              std::to_string(list.size()));
    return out;
  }
  std::set<std::string> content_ids;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto field = "attachments[" + std::to_string(i) + "]";
    if (!list[i].is_object()) {
      v.fail(field, "must be an object with filename, content_type and content");
      continue;
    }
    const auto& o = list[i].get_object();
    for (const auto& kv : o)
      if (kv.key() != "filename" && kv.key() != "content_type" && kv.key() != "content" &&
          kv.key() != "disposition" && kv.key() != "content_id")
        v.fail(field + "." + std::string(kv.key()), "unknown field");
    auto string_of = [&](const char* key) -> std::optional<std::string> {
      const auto* x = o.if_contains(key);
      if (!x || x->is_null()) return std::nullopt;
      if (!x->is_string()) {
        v.fail(field + "." + key, "must be a string");
        return std::nullopt;
      }
      return std::string(x->get_string());
    };
    attachment_spec a;
    auto filename = string_of("filename");
    if (!filename || filename->empty()) {
      v.fail(field + ".filename", "required: the file's name as the recipient will see it");
    } else if (filename->size() > max_filename_octets) {
      v.fail(field + ".filename", "longer than " + std::to_string(max_filename_octets) + " octets");
    } else if (std::any_of(filename->begin(), filename->end(),
                           [](char c) { return static_cast<unsigned char>(c) < 32 || c == 127; })) {
      v.fail(field + ".filename", "contains control characters");
    } else {
      a.filename = *filename;
    }
    auto type = string_of("content_type").value_or("application/octet-stream");
    for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto slash = type.find('/');
    if (slash == std::string::npos || !is_token(type.substr(0, slash)) || !is_token(type.substr(slash + 1))) {
      v.fail(field + ".content_type", "must be a media type \"type/subtype\" without parameters, got \"" + type + "\"");
    } else if (type.rfind("multipart/", 0) == 0 || type.rfind("message/", 0) == 0) {
      v.fail(field + ".content_type", "multipart and message types cannot be attached as files");
    } else {
      a.content_type = type;
    }
    const auto* content = o.if_contains("content");
    if (!content || !content->is_string())
      v.fail(field + ".content", "required: the file's bytes in base64");
    else if (!decode_base64(std::string_view(content->get_string()), a.data))
      v.fail(field + ".content", "is not valid base64");
    auto disposition = string_of("disposition").value_or("attachment");
    if (disposition != "attachment" && disposition != "inline")
      v.fail(field + ".disposition", "must be \"attachment\" or \"inline\", got \"" + disposition + "\"");
    a.inline_part = disposition == "inline";
    if (auto id = string_of("content_id")) {
      std::string_view inner = *id;
      if (inner.size() >= 2 && inner.front() == '<' && inner.back() == '>') inner = inner.substr(1, inner.size() - 2);
      if (!a.inline_part)
        v.fail(field + ".content_id", "only an inline part (disposition \"inline\") has a content_id");
      else if (!is_content_id(inner))
        v.fail(field + ".content_id", "must be printable ASCII without spaces, quotes or brackets (as \"logo@example.com\")");
      else if (!content_ids.insert(std::string(inner)).second)
        v.fail(field + ".content_id", "\"" + std::string(inner) + "\" is used by another attachment");
      else
        a.content_id = std::string(inner);
    }
    bytes += a.data.size();
    out.push_back(std::move(a));
  }
  return out;
}

// "send_at": an RFC 3339 time up to submission.max_schedule_ahead from now; 0 for "now" (absent,
// or a time already past).
std::int64_t read_send_at(validator& v, const json::object& o, const submission_settings& settings,
                          std::int64_t now_ms) {
  const auto* value = o.if_contains("send_at");
  if (!value || value->is_null()) return 0;
  std::optional<std::int64_t> at;
  if (value->is_string()) at = parse_rfc3339_ms(std::string_view(value->get_string()));
  if (!at) {
    v.fail("send_at", "must be an RFC 3339 date-time such as \"2026-12-07T10:00:00Z\"");
    return 0;
  }
  if (*at <= now_ms) return 0;
  if (*at - now_ms > settings.max_schedule_ahead.count()) {
    v.fail("send_at", "is more than " + format_duration(settings.max_schedule_ahead) +
                          " ahead (submission.max_schedule_ahead)");
    return 0;
  }
  return *at;
}

// A scheduled message's recipients wait until send_at, and their ids carry that time: max_age
// counts from it.
void schedule(message_record& m, std::int64_t send_at_ms) {
  if (send_at_ms == 0) return;
  for (auto& r : m.recipients) {
    r.id = new_id_at(send_at_ms);
    r.next_attempt_at_ms = send_at_ms;
  }
}

recipient_record make_recipient(const mailbox& box, recipient_kind kind, std::int64_t now_ms) {
  recipient_record r;
  r.id = new_id();
  r.address = box.envelope_address();  // routed and sent as the A-label, canonical local part
  r.domain = box.ascii_domain;
  r.kind = kind;
  r.state = recipient_state::queued;
  r.next_attempt_at_ms = now_ms;
  r.updated_at_ms = now_ms;
  return r;
}

// Adds recipients once each: the same mailbox twice (in any spelling: domain case, U-label or
// A-label, quoted or not) is one delivery, listed under the kind that named it first.
void add_recipients(message_record& m, std::set<std::string>& seen,
                    const std::vector<mailbox>& boxes, recipient_kind kind, std::int64_t now_ms) {
  for (const auto& box : boxes) {
    if (!seen.insert(box.envelope_address()).second) continue;
    m.recipients.push_back(make_recipient(box, kind, now_ms));
  }
}

std::string message_id_for(const id128& id, const std::string& configured_domain,
                           const std::string& from_domain) {
  const auto& domain = configured_domain.empty() ? from_domain : configured_domain;
  return id.str() + "@" + domain;
}

// The domain of a raw message's From header (its first mailbox), for DKIM; empty if unclear.
std::string header_from_domain(const std::string& from_header) {
  if (auto box = parse_mailbox(from_header)) return box->ascii_domain;
  auto close = from_header.find('>');
  if (close != std::string::npos)
    if (auto box = parse_mailbox(from_header.substr(0, close + 1))) return box->ascii_domain;
  return {};
}

// "batch_id": the client's name for a group of messages, to cancel them together.
std::string read_batch_id(validator& v, const json::object& o) {
  const auto* b = o.if_contains("batch_id");
  if (!b || b->is_null()) return {};
  bool ok = b->is_string() && !b->get_string().empty() && b->get_string().size() <= 128;
  if (ok)
    for (char c : b->get_string())
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' && c != '-') ok = false;
  if (!ok) {
    v.fail("batch_id", "must be 1 to 128 characters: letters, digits, '.', '_', ':' and '-'");
    return {};
  }
  return std::string(b->get_string());
}

// A boolean option; false when absent.
bool flag(validator& v, const json::object& o, const char* name) {
  const auto* b = o.if_contains(name);
  if (!b || b->is_null()) return false;
  if (!b->is_bool()) {
    v.fail(name, "must be true or false");
    return false;
  }
  return b->get_bool();
}

// "tracking": {"opens": bool, "clicks": bool} (each optional: the tenant's default), or true /
// false for both.
void read_tracking(validator& v, const json::object& o, message_record& m) {
  const auto* t = o.if_contains("tracking");
  if (!t || t->is_null()) return;
  if (t->is_bool()) {
    m.track_opens = m.track_clicks = t->get_bool() ? 1 : 0;
    return;
  }
  if (!t->is_object()) {
    v.fail("tracking", "must be an object {\"opens\": true|false, \"clicks\": true|false}, or true or false");
    return;
  }
  for (const auto& kv : t->get_object()) {
    std::string key(kv.key());
    if (key != "opens" && key != "clicks") {
      v.fail("tracking." + key, "unknown field (opens, clicks)");
      continue;
    }
    if (kv.value().is_null()) continue;
    if (!kv.value().is_bool()) {
      v.fail("tracking." + key, "must be true or false");
      continue;
    }
    (key == "opens" ? m.track_opens : m.track_clicks) = kv.value().get_bool() ? 1 : 0;
  }
}

// "bulk": true/false; without it, a message with a campaign is bulk when so configured.
bool bulk_flag(validator& v, const json::object& o, const std::string& campaign) {
  const auto* b = o.if_contains("bulk");
  if (!b) return !campaign.empty() && v.settings.campaigns_are_bulk;
  if (!b->is_bool()) {
    v.fail("bulk", "must be true or false");
    return false;
  }
  return b->get_bool();
}

// "priority": "high" (transactional: served first at busy domains) or "normal" (default).
int priority_flag(validator& v, const json::object& o) {
  const auto* p = o.if_contains("priority");
  if (!p) return 0;
  if (p->is_string() && p->get_string() == "high") return 1;
  if (p->is_string() && p->get_string() == "normal") return 0;
  v.fail("priority", "must be \"high\" or \"normal\"");
  return 0;
}

// Per-recipient metadata onto the recipients made from "to" (duplicates keep the first's).
void add_metadata(message_record& m, const std::vector<validator::to_entry>& to) {
  std::unordered_map<std::string, const std::string*> by_address;
  for (const auto& t : to)
    if (!t.metadata.empty()) by_address.try_emplace(t.box.envelope_address(), &t.metadata);
  if (by_address.empty()) return;
  for (auto& r : m.recipients)
    if (auto it = by_address.find(r.address); it != by_address.end()) r.metadata_json = *it->second;
}

// A templated message: stored once as its source; each recipient keeps its data and gets a
// copy of its own at delivery. The first copy is built now, so that what cannot be built (a
// header that cannot be folded, a copy over the size limit) is a 400 or 413 at submission.
submission_result templated_message(message_record m, const message_spec& spec,
                                    const std::vector<validator::to_entry>& to, const std::string& substitutions,
                                    const submission_settings& settings, std::int64_t now_ms,
                                    std::int64_t send_at_ms) {
  m.templated = true;
  m.mail_from = spec.from.envelope_address();
  m.from_domain = spec.from.ascii_domain;
  m.subject = spec.subject;
  m.message_id_header = "<" + spec.message_id + ">";
  m.content = template_source(spec, substitutions);
  m.size = m.content.size();
  std::set<std::string> seen;
  for (const auto& t : to) {
    if (!seen.insert(t.box.envelope_address()).second) continue;
    auto r = make_recipient(t.box, recipient_kind::to, now_ms);
    r.personal_json = template_personal(t.box, t.substitutions);
    r.metadata_json = t.metadata;
    m.recipients.push_back(std::move(r));
  }
  auto first = render_template_copy(m.content, m.recipients.front().personal_json);
  if (!first) return submission_rejection{400, {{"", first.error()}}};
  if (first.value().content.size() > settings.max_message_bytes)
    return submission_rejection{
        413, {{"", "the message rendered for " + m.recipients.front().address + " is larger than " +
                       std::to_string(settings.max_message_bytes) + " bytes"}}};
  schedule(m, send_at_ms);
  return m;
}

// A whole message as the client sent it (raw API submissions, SMTP submission) into the
// record: checked and normalized (prepare_raw_message), with the envelope's recipients. A
// refusal names `field`.
std::optional<submission_rejection> take_raw(message_record& m, const mailbox& from, const std::vector<mailbox>& to,
                                             std::string_view raw, const submission_settings& settings,
                                             const char* field, std::int64_t now_ms) {
  if (raw.size() > settings.max_message_bytes)
    return submission_rejection{
        413, {{field, "the message is larger than " + std::to_string(settings.max_message_bytes) + " bytes"}}};
  auto prepared =
      prepare_raw_message(raw, message_id_for(m.id, settings.message_id_domain, from.ascii_domain), now_ms);
  if (!prepared) return submission_rejection{400, {{field, prepared.error()}}};
  auto& r = prepared.value();
  m.mail_from = from.envelope_address();
  m.from_domain = header_from_domain(r.from_header);
  m.subject = r.subject.substr(0, 998);
  m.message_id_header = r.message_id_header;
  m.content = std::move(r.content);
  m.size = m.content.size();
  std::set<std::string> seen;
  add_recipients(m, seen, to, recipient_kind::envelope, now_ms);
  return std::nullopt;
}

submission_result parse_raw(validator& v, const json::object& o, std::int64_t now_ms, std::int64_t send_at_ms) {
  // Structured fields next to raw were reported already, with a better reason.
  reject_unknown(v, o, {"raw", "envelope", "tags", "metadata", "campaign", "bulk", "priority", "send_at",
                        "batch_id", "sandbox", "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers",
                        "tracking"});
  message_record m;
  m.id = send_at_ms ? new_id_at(send_at_ms) : new_id();
  m.created_at_ms = now_ms;
  m.tags_json = v.tags_json(o.if_contains("tags"));
  m.metadata_json = v.metadata_json(o.if_contains("metadata"));
  m.campaign = v.text(o.if_contains("campaign"), "campaign", max_campaign_length, false).value_or("");
  m.bulk = bulk_flag(v, o, m.campaign);
  m.priority = priority_flag(v, o);
  m.batch_id = read_batch_id(v, o);
  m.sandbox = flag(v, o, "sandbox");

  const auto* envelope = o.if_contains("envelope");
  std::optional<mailbox> from;
  std::vector<mailbox> to;
  if (!envelope || !envelope->is_object()) {
    v.fail("envelope", "required with raw: an object {\"from\", \"to\": [...]}");
  } else {
    const auto& e = envelope->get_object();
    reject_unknown(v, e, {"from", "to"});
    if (const auto* f = e.if_contains("from"); f && f->is_string()) {
      auto p = parse_address(std::string_view(f->get_string()));
      if (p)
        from = p.value();
      else
        v.fail("envelope.from", p.error());
    } else {
      v.fail("envelope.from", "required, an address string");
    }
    const auto* t = e.if_contains("to");
    if (!t || !t->is_array()) {
      v.fail("envelope.to", "required, an array of address strings");
    } else {
      const auto& a = t->get_array();
      if (a.size() > v.settings.max_recipients) {
        v.fail("envelope.to", "at most " + std::to_string(v.settings.max_recipients) +
                                  " recipients are allowed, got " + std::to_string(a.size()));
        return v.rejection();
      }
      for (std::size_t i = 0; i < a.size(); ++i) {
        auto field = "envelope.to[" + std::to_string(i) + "]";
        if (!a[i].is_string()) {
          v.fail(field, "must be an address string");
          continue;
        }
        auto p = parse_address(std::string_view(a[i].get_string()));
        if (p)
          to.push_back(p.value());
        else
          v.fail(field, p.error());
      }
      if (a.empty()) v.fail("envelope.to", "at least one recipient is required");
    }
  }

  std::string raw;
  const auto* raw_value = o.if_contains("raw");
  if (!raw_value->is_string()) {
    v.fail("raw", "must be a base64 string");
  } else if (!decode_base64(std::string_view(raw_value->get_string()), raw)) {
    v.fail("raw", "not valid base64");
  }
  if (!v.ok()) return v.rejection();
  if (auto refused = take_raw(m, *from, to, raw, v.settings, "raw", now_ms)) return *refused;
  schedule(m, send_at_ms);
  return m;
}

}  // namespace

submission_result parse_submission(std::string_view body, const submission_settings& settings,
                                   std::int64_t now_ms, const template_record* stored, bool looked_up) {
  validator v(settings);
  json::monotonic_resource resource;
  auto input = parse_json_input(body, {max_json_depth, settings.max_json_values}, &resource);
  if (!input) return submission_rejection{400, {{input.field, input.error}}};
  const auto& doc = input.value;
  if (!doc.is_object()) return submission_rejection{400, {{"", "the body must be a JSON object"}}};
  const auto& o = doc.get_object();

  if (o.if_contains("raw")) {
    for (const char* structured : {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers",
                                   "attachments", "substitutions", "template", "strict", "template_id",
                                   "template_version"})
      if (o.if_contains(structured))
        v.fail(structured, "not allowed together with raw (the raw message carries it)");
    if (const auto* t = o.if_contains("tracking"); t && !(t->is_bool() && !t->get_bool()) && !t->is_null())
      v.fail("tracking", "not with raw: a raw message is sent as given; tracking rewrites the HTML of "
                         "structured messages");
    auto result = parse_raw(v, o, now_ms, read_send_at(v, o, settings, now_ms));
    if (!v.ok()) return v.rejection();
    return result;
  }

  reject_unknown(v, o, {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html",
                        "headers", "attachments", "tags", "metadata", "campaign", "bulk", "priority",
                        "send_at", "batch_id", "substitutions", "template", "strict", "template_id",
                        "template_version", "sandbox", "tracking"});
  // A stored template: looked up by the caller first, then its parts take the fields' place.
  const auto* template_id = o.if_contains("template_id");
  if (template_id && !template_id->is_null()) {
    auto id = template_id->is_string() ? id128::parse(std::string_view(template_id->get_string())) : std::nullopt;
    std::uint32_t version = 0;
    const auto* tv = o.if_contains("template_version");
    if (tv && !tv->is_null()) {
      if (!tv->is_int64() || tv->get_int64() < 1 || tv->get_int64() > 1'000'000)
        v.fail("template_version", "must be a version number (1, 2, ...)");
      else
        version = static_cast<std::uint32_t>(tv->get_int64());
    }
    if (!id) v.fail("template_id", "must be a template id (POST /v1/templates)");
    if (!v.ok()) return v.rejection();
    if (!looked_up) return template_needed{*id, version};
    if (!stored)
      return submission_rejection{400, {{"template_id", "no such template" +
                                                          (version ? " version " + std::to_string(version) : std::string()) +
                                                          " of this tenant"}}};
    for (const char* part : {"subject", "text", "html"})
      if (o.if_contains(part)) v.fail(part, "not with template_id: the template gives it");
  } else if (const auto* tv = o.if_contains("template_version"); tv && !tv->is_null()) {
    v.fail("template_version", "only with template_id");
  }
  auto send_at_ms = read_send_at(v, o, settings, now_ms);
  message_spec spec;
  const auto* from = o.if_contains("from");
  if (!from || from->is_null())
    v.fail("from", "required");
  else if (auto box = v.address(*from, "from"))
    spec.from = *box;
  bool personal_substitutions = false;
  auto to = v.to_list(o.if_contains("to"), personal_substitutions);
  for (const auto& t : to) spec.to.push_back(t.box);
  spec.cc = v.address_list(o.if_contains("cc"), "cc");
  auto bcc = v.address_list(o.if_contains("bcc"), "bcc");
  // Templates only when asked for: otherwise "{{...}}" is text like any other.
  auto substitutions = v.substitutions_json(o.if_contains("substitutions"), "substitutions");
  bool templated = flag(v, o, "template") || personal_substitutions || o.if_contains("substitutions") || stored;
  bool strict = flag(v, o, "strict");
  if (strict && !templated)
    v.fail("strict", "only with templates (\"substitutions\" or \"template\": true)");
  if (templated) {
    // Each recipient gets a copy of its own, To itself: there is no shared copy to cc.
    for (const char* shared : {"cc", "bcc"})
      if (const auto* x = o.if_contains(shared); x && !x->is_null())
        v.fail(shared, "not with templates: each recipient gets a copy of its own; list them in \"to\"");
  }
  spec.reply_to = v.address_list(o.if_contains("reply_to"), "reply_to");
  auto count = spec.to.size() + spec.cc.size() + bcc.size();
  if (count == 0 && v.ok()) v.fail("to", "at least one recipient (to, cc or bcc) is required");
  if (count > settings.max_recipients)
    v.fail("to", "at most " + std::to_string(settings.max_recipients) +
                     " recipients (to + cc + bcc) are allowed, got " + std::to_string(count));
  spec.subject = v.text(o.if_contains("subject"), "subject", settings.max_subject_length, false)
                     .value_or("");
  // Bodies are bounded by the message size below (413), not by a field length (400).
  spec.text = v.text(o.if_contains("text"), "text", std::string::npos, true);
  spec.html = v.text(o.if_contains("html"), "html", std::string::npos, true);
  if (stored) {
    spec.subject = stored->subject;
    if (stored->has_text) spec.text = stored->text;
    if (stored->has_html) spec.html = stored->html;
  }
  auto body_bytes = (spec.text ? spec.text->size() : 0) + (spec.html ? spec.html->size() : 0);
  if (body_bytes > settings.max_message_bytes)
    return submission_rejection{
        413, {{spec.html && !spec.text ? "html" : "text",
               "the message body is larger than " + std::to_string(settings.max_message_bytes) +
                   " bytes"}}};
  std::size_t attachment_bytes = 0;
  spec.attachments = read_attachments(v, o.if_contains("attachments"), attachment_bytes);
  // Base64 adds a third on the wire: what counts is what the message will weigh.
  if (body_bytes + attachment_bytes / 3 * 4 > settings.max_message_bytes)
    return submission_rejection{
        413, {{"attachments", "the message with its attachments (" + std::to_string(attachment_bytes) +
                                  " bytes of files, a third more in base64) is larger than " +
                                  std::to_string(settings.max_message_bytes) + " bytes"}}};
  if (!spec.text && !spec.html && !o.if_contains("text") && !o.if_contains("html"))
    v.fail("text", "a body is required: text, html or both");
  spec.headers = v.headers(o.if_contains("headers"));
  message_record m;
  m.tags_json = v.tags_json(o.if_contains("tags"));
  m.metadata_json = v.metadata_json(o.if_contains("metadata"));
  m.campaign = v.text(o.if_contains("campaign"), "campaign", max_campaign_length, false).value_or("");
  m.bulk = bulk_flag(v, o, m.campaign);
  m.priority = priority_flag(v, o);
  m.batch_id = read_batch_id(v, o);
  m.sandbox = flag(v, o, "sandbox");
  read_tracking(v, o, m);
  std::optional<message_templates> templates;
  if (templated && v.ok()) {
    auto compiled = message_templates::compile(spec.subject, spec.text, spec.html);
    if (!compiled) {
      auto colon = compiled.error().find(':');
      v.fail(compiled.error().substr(0, colon), compiled.error().substr(colon + 2));
    } else {
      templates = std::move(compiled.value());
    }
  }
  if (templates && strict) {
    // Every recipient's data is checked now: a missing value is a 400, not an empty greeting.
    for (std::size_t i = 0; i < to.size(); ++i) {
      message_spec copy;
      if (auto missing = templates->render(template_data(substitutions, to[i].substitutions), true, copy))
        v.fail("to[" + std::to_string(i) + "].substitutions", *missing + " (strict)");
    }
  }
  if (!v.ok()) return v.rejection();

  m.id = send_at_ms ? new_id_at(send_at_ms) : new_id();
  m.created_at_ms = now_ms;
  spec.message_id = message_id_for(m.id, settings.message_id_domain, spec.from.ascii_domain);
  spec.date_ms = now_ms;
  if (templates) return templated_message(std::move(m), spec, to, substitutions, settings, now_ms, send_at_ms);
  auto built = build_message(spec);
  if (!built) return submission_rejection{400, {{"headers", built.error()}}};
  if (built.value().content.size() > settings.max_message_bytes)
    return submission_rejection{
        413, {{"", "the message is larger than " + std::to_string(settings.max_message_bytes) +
                       " bytes"}}};
  m.mail_from = spec.from.envelope_address();
  m.from_domain = spec.from.ascii_domain;
  m.subject = spec.subject;
  m.message_id_header = built.value().message_id_header;
  m.content = std::move(built.value().content);
  m.size = m.content.size();
  std::set<std::string> seen;
  add_recipients(m, seen, spec.to, recipient_kind::to, now_ms);
  add_recipients(m, seen, spec.cc, recipient_kind::cc, now_ms);
  add_recipients(m, seen, bcc, recipient_kind::bcc, now_ms);
  add_metadata(m, to);
  // Tracking (the tenant's default or the message's) may still turn it into tracked copies.
  if (spec.html && (m.track_opens != 0 || m.track_clicks != 0))
    m.spec = std::make_shared<const message_spec>(std::move(spec));
  schedule(m, send_at_ms);
  return m;
}

submission_result parse_smtp_submission(const std::string& mail_from, const std::vector<std::string>& rcpt_to,
                                        std::string_view content, const submission_settings& settings,
                                        std::int64_t now_ms) {
  validator v(settings);
  std::optional<mailbox> from;
  if (mail_from.empty()) {
    v.fail("MAIL FROM", "a submission needs a sender address (not the null sender <>)");
  } else if (auto p = parse_address(mail_from)) {
    from = p.value();
  } else {
    v.fail("MAIL FROM", p.error());
  }
  std::vector<mailbox> to;
  if (rcpt_to.size() > settings.max_recipients)
    v.fail("RCPT TO", "at most " + std::to_string(settings.max_recipients) + " recipients are allowed");
  for (std::size_t i = 0; i < rcpt_to.size() && i < settings.max_recipients; ++i) {
    auto p = parse_address(rcpt_to[i]);
    if (p) to.push_back(p.value());
    else v.fail("RCPT TO:<" + rcpt_to[i] + ">", p.error());
  }
  if (!v.ok()) return v.rejection();
  message_record m;
  m.id = new_id();
  m.created_at_ms = now_ms;
  m.tags_json = "[]";
  m.metadata_json = "{}";
  if (auto refused = take_raw(m, *from, to, content, settings, "DATA", now_ms)) return *refused;
  return m;
}

}  // namespace petrel
