// Preparing a loaded message for its SMTP transaction (see message_preparation.hpp).
#include "actors/policy/message_preparation.hpp"

#include <cctype>

#include <boost/json.hpp>

#include "net/mail/email_address.hpp"
#include "net/mail/recipient_token.hpp"
#include "net/mail/template_message.hpp"

namespace petrel {

tracking_decision decide_tracking(const tracking_environment& env, const tenant_record::tracking_settings& tenant,
                                  std::int8_t asked_opens, std::int8_t asked_clicks) {
  tracking_decision d;
  bool asked = asked_opens == 1 || asked_clicks == 1;
  if (!env.enabled) {
    if (asked) d.refusal = "tracking is not enabled on this server (tracking.enabled)";
    return d;
  }
  d.opens = asked_opens < 0 ? tenant.opens : asked_opens == 1;
  d.clicks = asked_clicks < 0 ? tenant.clicks : asked_clicks == 1;
  if (!d.opens && !d.clicks) return d;
  if (tenant.verified && !tenant.domain.empty())
    d.base_url = env.scheme + "://" + tenant.domain;
  else
    d.base_url = env.node_base_url;
  if (d.base_url.empty()) {
    if (asked)
      d.refusal = "tracking needs a verified tracking domain of this tenant (PUT /v1/tracking) or the server's "
                  "tracking.base_url";
    d.opens = d.clicks = false;
  }
  return d;
}

bool apply_tracking(message_record& m, const tracking_decision& d, std::int64_t expires_ms) {
  if ((!d.opens && !d.clicks) || d.base_url.empty()) return false;
  tracking_plan plan{d.opens, d.clicks, d.base_url, expires_ms};
  tracked_source tracked;
  if (m.templated) {
    auto t = tracked_template_source(m.content, plan);
    if (!t) return false;
    tracked = std::move(t.value());
  } else if (m.spec && m.spec->html) {
    tracked = tracked_literal_source(*m.spec, plan);
  } else {
    return false;
  }
  if (!d.opens && tracked.links.empty()) return false;
  m.content = std::move(tracked.source);
  m.tracking_links = std::move(tracked.links);
  m.tracking_expires_ms = expires_ms;
  if (!m.templated) {
    m.templated = true;
    // A copy per recipient, each sent alone (a recipient with personal data is).
    for (auto& r : m.recipients) r.personal_json = boost::json::serialize(boost::json::object{{"email", r.address}});
  }
  m.spec.reset();
  return true;
}

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
