// Names of recipient states and kinds as they appear in the store and the API.
#include "storage/records.hpp"

#include <array>

namespace petrel {

namespace {
constexpr std::array<std::string_view, 7> state_names = {
    "queued", "deferred", "delivered", "bounced", "expired", "suppressed", "cancelled"};
constexpr std::array<std::string_view, 4> kind_names = {"to", "cc", "bcc", "envelope"};
}  // namespace

std::string_view to_string(recipient_state s) {
  return state_names.at(static_cast<std::size_t>(s));
}

std::optional<recipient_state> parse_recipient_state(std::string_view text) {
  for (std::size_t i = 0; i < state_names.size(); ++i)
    if (state_names[i] == text) return static_cast<recipient_state>(i);
  return std::nullopt;
}

std::string suppression_key(std::string_view address, std::string_view ascii_domain) {
  auto at = address.rfind('@');
  std::string out(address.substr(0, at == std::string_view::npos ? address.size() : at));
  out += '@';
  for (char c : ascii_domain) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::string suppression_key(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return std::string(address);
  return suppression_key(address, address.substr(at + 1));
}

std::string_view to_string(recipient_kind k) { return kind_names.at(static_cast<std::size_t>(k)); }

std::optional<recipient_kind> parse_recipient_kind(std::string_view text) {
  for (std::size_t i = 0; i < kind_names.size(); ++i)
    if (kind_names[i] == text) return static_cast<recipient_kind>(i);
  return std::nullopt;
}

}  // namespace petrel
