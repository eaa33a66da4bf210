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

// A stored source read once (its JSON parsed, attachments decoded, templates compiled): what
// every recipient's copy shares, so that a batch does not repeat that work per copy.
class template_copies {
 public:
  // Fails with the reason when the source is not what template_source wrote.
  static parsed<template_copies> read(std::string_view source);
  // A recipient's copy: rendered with its data and built, To the recipient. Fails when the
  // personal data are not what template_personal wrote, or the built message is invalid.
  parsed<built_message> render(std::string_view personal) const;

 private:
  template_copies() = default;
  message_spec base_;  // no recipient; subject, text and html unrendered
  std::optional<message_templates> templates_;
  std::string substitutions_;  // the message's data (JSON object text)
};

// read(source), then render(personal): one copy.
parsed<built_message> render_template_copy(std::string_view source, std::string_view personal);

}  // namespace petrel
