// Parsers for the value syntaxes used in the configuration and the APIs: durations ("30s",
// "5m", "1h30m"), byte sizes ("10MiB", "512KB"), rates ("100/s", "6000/min") and listen
// addresses ("127.0.0.1:8080", "[::1]:8080"). Pure functions; errors are values.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace petrel {

// A parse result: either the value or a human-readable reason why the text was rejected.
template <class T>
class parsed {
 public:
  parsed(T value) : value_(std::in_place_index<0>, std::move(value)) {}
  static parsed failure(std::string reason) { return parsed(std::move(reason), 0); }
  explicit operator bool() const { return value_.index() == 0; }
  const T& value() const { return std::get<0>(value_); }
  T& value() { return std::get<0>(value_); }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }
  const std::string& error() const { return std::get<1>(value_); }

 private:
  parsed(std::string reason, int) : value_(std::in_place_index<1>, std::move(reason)) {}
  std::variant<T, std::string> value_;  // index 0: the value, 1: the reason
};

// "250ms", "30s", "5m", "2h", "3d", and sums like "1h30m". A bare number is seconds.
parsed<std::chrono::milliseconds> parse_duration(std::string_view text);

// RFC 3339 date-time ("2026-12-07T10:00:00Z", an optional fraction, "Z" or an offset) as unix
// milliseconds; nothing when it is not one.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);
std::string format_duration(std::chrono::milliseconds d);

// "1024", "512B", "64KiB", "10MiB", "1GiB"; KB/MB/GB are read as powers of 1000.
parsed<std::uint64_t> parse_size(std::string_view text);

// A rate of events: "N/s", "N/min", "N/h", "N/d" (N may be fractional, e.g. "0.5/s").
struct rate {
  double per_second = 0;
  std::string text;  // as written, for messages and admin views
};
parsed<rate> parse_rate(std::string_view text);
// A rate as people write it: a whole count per second, minute, hour or day when there is one
// ("5/s", "50/min", "1000/d"), else per second ("0.25/s").
std::string format_rate(double per_second);

struct listen_address {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const;
};
// "host:port", "[v6]:port"; port 0 asks the kernel for an ephemeral port.
parsed<listen_address> parse_listen_address(std::string_view text);

// Where to connect: "host", "host:port", "[v6]" or "[v6]:port" (a bare IPv6 address has no
// port); `default_port` when none is given. Ports 1-65535.
parsed<listen_address> parse_host_port(std::string_view text, std::uint16_t default_port);

// An IP address ("192.0.2.1", "2001:db8::1") or a network ("10.0.0.0/8", "fd00::/8").
struct ip_network {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
  unsigned prefix = 128;
  bool contains(const std::array<std::uint8_t, 16>& address) const;
};
// false when text is neither; the reason is in `error`.
bool parse_ip_network(const std::string& text, ip_network& out, std::string& error);
// An IP address as 16 bytes (IPv4 mapped); false when text is not an IP address.
bool parse_ip_address(const std::string& text, std::array<std::uint8_t, 16>& out);

}  // namespace petrel
