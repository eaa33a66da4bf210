// Messages rendered per recipient (docs/api.md, "Templates and batches"). A submission with
// substitutions, "template": true or a stored template sends each of its recipients a copy of
// its own, To that recipient, with the subject, text and HTML rendered as Mustache templates
// over the message's substitutions with the recipient's on top (key by key).
//
// The store keeps such a message once, as its source: everything the MIME builder needs except
// the recipient, the templates unrendered; each recipient row keeps its personal data. A copy is
// rendered and built when the recipient is attempted, then signed (DKIM) like any message.
// Plain code: no CAF, no store.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/mail/mime_message.hpp"
#include "storage/ids.hpp"

namespace petrel {

namespace mustache {
class compiled_template;
}

// The compiled subject, text and HTML templates of a message.
class message_templates {
 public:
  // Compiles them; a failure names the field and where: "html: line 3, column 7: unclosed
  // section \"items\"".
  static parsed<message_templates> compile(std::string_view subject, const std::optional<std::string>& text,
                                           const std::optional<std::string>& html);

  // Renders subject, text and HTML into spec over data (a JSON object's text). strict: a
  // variable without a value is a failure naming it ("no value for \"first_name\""); else it
  // renders empty. {{name}} is HTML-escaped in the HTML only. A rendered subject with line
  // breaks or control characters is a failure (header injection through data).
  std::optional<std::string> render(std::string_view data_json, bool strict, message_spec& spec) const;

  // The variables the templates use (dotted names whole), each once.
  std::vector<std::string> variables() const;

 private:
  std::shared_ptr<const mustache::compiled_template> subject_, text_, html_;
};

// The stored source of a templated message: spec without recipients (to and cc are not kept),
// and the message's substitutions (a JSON object's text, "{}" none).
std::string template_source(const message_spec& spec, std::string_view substitutions_json);

// A recipient's personal data, stored with it: its address as given, display name and
// substitutions (a JSON object's text, "" none).
std::string template_personal(const mailbox& to, std::string_view substitutions_json);

// The data a recipient's copy is rendered with: the message's substitutions, the recipient's
// over them, key by key (a JSON object's text).
std::string template_data(std::string_view substitutions_json, std::string_view personal_substitutions_json);

// Open and click tracking of a message's copies (docs/sending.md, "Tracking"): the HTML's
// trackable links and the open pixel become marks in the stored source
// (net/mail/tracking.hpp), which each recipient's copy turns into its own tracking URLs.
struct tracking_plan {
  bool opens = false;
  bool clicks = false;
  std::string base_url;         // "https://t.example.com": /o/{token}.gif and /c/{token} under it
  std::int64_t expires_ms = 0;  // when the tokens stop working
};

// A tracked source and the links its HTML had (the n-th trackable link at [n-1]).
struct tracked_source {
  std::string source;
  std::vector<std::string> links;
};

// A structured message that is no template, tracked: each recipient gets a copy of the message
// as given (To and Cc as submitted, nothing rendered) with tracking URLs of its own.
tracked_source tracked_literal_source(const message_spec& spec, const tracking_plan& plan);
// A templated message's source (template_source) with tracking; fails when it is not one.
parsed<tracked_source> tracked_template_source(std::string_view source, const tracking_plan& plan);

// Whose copy it is, for its tracking URLs (tokens signed with secret).
struct copy_tracking {
  std::string_view secret;
  id128 message;
  id128 recipient;
};

// A stored source read once (its JSON parsed, attachments decoded, templates compiled): what
// every recipient's copy shares, so that a batch does not repeat that work per copy.
class template_copies {
 public:
  // Fails with the reason when the source is not what template_source (or a tracked source)
  // wrote.
  static parsed<template_copies> read(std::string_view source);
  // A recipient's copy: rendered with its data and built, To the recipient (a literal copy: as
  // submitted). Fails when the personal data are not what template_personal wrote, or the built
  // message is invalid. A tracked copy gets the recipient's tracking URLs; without `tracking`
  // (a preview) its links stay as they were and it has no pixel.
  parsed<built_message> render(std::string_view personal, const copy_tracking* tracking = nullptr) const;

  bool tracked() const { return tracking_.opens || tracking_.clicks; }

 private:
  template_copies() = default;
  message_spec base_;  // no recipient (literal: To and Cc as submitted); subject, text and html unrendered
  std::optional<message_templates> templates_;  // none: literal
  std::string substitutions_;  // the message's data (JSON object text)
  tracking_plan tracking_;
  std::vector<std::string> links_;
};

// read(source), then render(personal): one copy.
parsed<built_message> render_template_copy(std::string_view source, std::string_view personal);

}  // namespace petrel
