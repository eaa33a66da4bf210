// IP address policy (see ip_policy.hpp).
#include "net/ip_policy.hpp"

#include <boost/asio/ip/address.hpp>

#include <cctype>
#include <string>

namespace petrel {

bool is_ip_literal(std::string_view host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  return !ec;
}

bool is_public_address(std::string_view text) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return false;
  if (a.is_v6()) {
    auto v6 = a.to_v6();
    if (v6.is_v4_mapped())
      return is_public_address(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string());
    if (v6.is_loopback() || v6.is_unspecified() || v6.is_link_local() || v6.is_multicast() ||
        v6.is_site_local())
      return false;
    auto b = v6.to_bytes();
    if ((b[0] & 0xfe) == 0xfc) return false;                   // fc00::/7 unique local
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false;  // documentation
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return false;  // NAT64 (may map private)
    return true;
  }
  auto b = a.to_v4().to_bytes();
  if (b[0] == 0 || b[0] == 10 || b[0] == 127) return false;
  if (b[0] == 100 && (b[1] & 0xc0) == 64) return false;   // 100.64/10 CGNAT
  if (b[0] == 169 && b[1] == 254) return false;           // link-local (cloud metadata)
  if (b[0] == 172 && (b[1] & 0xf0) == 16) return false;   // 172.16/12
  if (b[0] == 192 && b[1] == 168) return false;
  if (b[0] == 192 && b[1] == 0 && (b[2] == 0 || b[2] == 2)) return false;
  if (b[0] == 198 && (b[1] & 0xfe) == 18) return false;   // benchmarking
  if (b[0] == 198 && b[1] == 51 && b[2] == 100) return false;
  if (b[0] == 203 && b[1] == 0 && b[2] == 113) return false;
  if (b[0] >= 224) return false;                          // multicast, reserved, broadcast
  return true;
}

bool is_numeric_host_form(std::string_view host) {
  if (host.empty() || is_ip_literal(host)) return false;
  if (host.back() == '.') host.remove_suffix(1);
  auto dot = host.rfind('.');
  auto last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  bool digits = true;
  for (char c : last) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (digits) return true;
  if (last.size() > 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
    for (char c : last.substr(2))
      if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
  }
  return false;
}

}  // namespace petrel
