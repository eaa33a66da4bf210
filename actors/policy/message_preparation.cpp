// Preparing a loaded message for its SMTP transaction (see message_preparation.hpp).
#include "actors/policy/message_preparation.hpp"

#include <cctype>

#include "net/mail/email_address.hpp"
#include "net/mail/recipient_token.hpp"

namespace petrel {

bool has_header(std::string_view message, std::string_view name) {
  std::size_t pos = 0;
  while (pos < message.size()) {
    auto end = message.find("\r\n", pos);
    if (end == std::string_view::npos) end = message.size();
    if (end == pos) return false;  // the empty line: end of the header
    if (end - pos >= name.size()) {
      bool same = true;
      for (std::size_t i = 0; i < name.size() && same; ++i)
        same = std::tolower(static_cast<unsigned char>(message[pos + i])) == name[i];
      if (same) return true;
    }
    pos = end + 2;
  }
  return false;
}

prepared_message prepare_message(const preparation_settings& settings, std::vector<id128> recipient_ids,
                                 delivery_content content) {
  prepared_message out;
  for (std::size_t i = 0; i < content.addresses.size() && i < recipient_ids.size(); ++i) {
    if (i < content.suppressed.size() && content.suppressed[i]) {
      out.suppressed.push_back({recipient_ids[i], std::move(content.addresses[i])});
    } else {
      out.recipient_ids.push_back(recipient_ids[i]);
      out.addresses.push_back(std::move(content.addresses[i]));
    }
  }
  if (out.recipient_ids.empty()) return out;
  // SMTPUTF8 when the envelope sender or a recipient's local part is not ASCII (a non-ASCII
  // recipient domain travels as its A-label).
  out.needs_smtputf8 = has_non_ascii(content.mail_from);
  for (const auto& a : out.addresses)
    if (has_non_ascii(std::string_view(a).substr(0, a.rfind('@')))) out.needs_smtputf8 = true;
  bool single = out.recipient_ids.size() == 1;
  const auto& recipient = out.recipient_ids.front();
  bool tokens = !settings.bounce_secret.empty();
  if (single && tokens && !settings.verp_domain.empty())
    out.mail_from = verp_address(settings.bounce_secret, recipient, settings.verp_domain);
  else
    out.mail_from = std::move(content.mail_from);
  if (single && tokens && content.bulk && !settings.unsubscribe_base_url.empty() &&
      !has_header(content.content, "list-unsubscribe:")) {
    auto token = make_recipient_token(settings.bounce_secret, token_purpose::unsubscribe, recipient);
    out.content = "List-Unsubscribe: <" + settings.unsubscribe_base_url + "/u/" + token +
                  ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
    out.content += content.content;
    out.unsubscribe_added = true;
  } else {
    out.content = std::move(content.content);
  }
  return out;
}

}  // namespace petrel
