// Parsers for durations, sizes, rates and listen addresses (see units.hpp).
#include "config/units.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cstdio>

namespace petrel {

namespace {

bool parse_number(std::string_view text, double& out) {
  if (text.empty()) return false;
  auto first = text.data();
  auto last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc{} && ptr == last && std::isfinite(out);
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

}  // namespace

parsed<std::chrono::milliseconds> parse_duration(std::string_view text) {
  using std::chrono::milliseconds;
  if (text.empty()) return parsed<milliseconds>::failure("empty duration");
  double bare = 0;
  if (parse_number(text, bare)) {
    // A number alone is ambiguous (seconds? minutes?): only 0 means the same in every unit.
    if (bare == 0) return milliseconds(0);
    return parsed<milliseconds>::failure("the duration " + quoted(text) + " has no unit: write it like \"" +
                                         std::string(text) + "s\", \"5m\", \"250ms\", \"1h30m\" or \"3d\" "
                                         "(units ms, s, m, h, d)");
  }
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    double amount = 0;
    if (!parse_number(text.substr(start, i - start), amount))
      return parsed<milliseconds>::failure("expected a number in duration " + quoted(text) +
                                           " (e.g. \"30s\", \"5m\", \"1h30m\")");
    std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    auto unit = text.substr(unit_start, i - unit_start);
    double factor = 0;
    if (unit == "ms") factor = 1;
    else if (unit == "s") factor = 1000;
    else if (unit == "m" || unit == "min") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else if (unit == "d") factor = 86'400'000;
    else
      return parsed<milliseconds>::failure("unknown unit " + quoted(unit) + " in duration " +
                                           quoted(text) + " (use ms, s, m, h, d)");
    total_ms += amount * factor;
  }
  if (total_ms > 1e15) return parsed<milliseconds>::failure("duration too large " + quoted(text));
  return milliseconds(static_cast<std::int64_t>(std::llround(total_ms)));
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

parsed<std::uint64_t> parse_size(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  double amount = 0;
  if (!parse_number(text.substr(0, i), amount) || amount < 0)
    return parsed<std::uint64_t>::failure("expected a size like \"10MiB\" or \"512KB\", got " +
                                          quoted(text));
  auto unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  double factor = 0;
  if (unit.empty() || unit == "B") factor = 1;
  else if (unit == "KiB") factor = 1024.0;
  else if (unit == "MiB") factor = 1024.0 * 1024;
  else if (unit == "GiB") factor = 1024.0 * 1024 * 1024;
  else if (unit == "KB" || unit == "kB") factor = 1e3;
  else if (unit == "MB") factor = 1e6;
  else if (unit == "GB") factor = 1e9;
  else
    return parsed<std::uint64_t>::failure("unknown unit " + quoted(unit) + " in size " +
                                          quoted(text) + " (use B, KiB, MiB, GiB, KB, MB, GB)");
  double bytes = amount * factor;
  if (bytes > 1e15) return parsed<std::uint64_t>::failure("size too large " + quoted(text));
  return static_cast<std::uint64_t>(std::llround(bytes));
}

parsed<rate> parse_rate(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return parsed<rate>::failure("expected a rate like \"100/s\" or \"6000/h\", got " +
                                 quoted(text));
  double amount = 0;
  if (!parse_number(text.substr(0, slash), amount) || amount < 0)
    return parsed<rate>::failure("expected a non-negative number before '/' in rate " +
                                 quoted(text));
  auto unit = text.substr(slash + 1);
  double seconds = 0;
  if (unit == "s" || unit == "sec") seconds = 1;
  else if (unit == "min" || unit == "m") seconds = 60;
  else if (unit == "h") seconds = 3600;
  else if (unit == "d") seconds = 86400;
  else
    return parsed<rate>::failure("unknown period " + quoted(unit) + " in rate " + quoted(text) +
                                 " (use s, min, h, d)");
  return rate{amount / seconds, std::string(text)};
}

std::string listen_address::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string format_rate(double per_second) {
  if (!(per_second > 0)) return "0/s";
  struct unit {
    const char* name;
    double seconds;
  };
  for (auto u : {unit{"s", 1}, unit{"min", 60}, unit{"h", 3600}, unit{"d", 86400}}) {
    double count = per_second * u.seconds;
    double whole = std::round(count);
    if (whole >= 1 && std::abs(count - whole) <= 1e-6 * whole) {
      char buffer[48];
      std::snprintf(buffer, sizeof buffer, "%.0f/%s", whole, u.name);
      return buffer;
    }
  }
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.6g/s", per_second);
  return buffer;
}

parsed<listen_address> parse_listen_address(std::string_view text) {
  auto fail = [&] {
    return parsed<listen_address>::failure("expected \"host:port\" or \"[ipv6]:port\", got " +
                                           quoted(text));
  };
  listen_address out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail();
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return fail();
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty() || port_text.empty()) return fail();
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port > 65535)
    return parsed<listen_address>::failure("port must be a number from 0 to 65535 in " +
                                           quoted(text));
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

parsed<listen_address> parse_host_port(std::string_view text, std::uint16_t default_port) {
  auto fail = [&] {
    return parsed<listen_address>::failure("expected \"host\", \"host:port\" or \"[ipv6]:port\", got " +
                                           quoted(text));
  };
  listen_address out;
  out.port = default_port;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return fail();
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return fail();
      port_text = text.substr(close + 2);
      if (port_text.empty()) return fail();
    }
  } else if (auto colon = text.find(':'); colon != std::string_view::npos && text.rfind(':') == colon) {
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (port_text.empty()) return fail();
  } else {
    out.host = std::string(text);  // a name, an IPv4 address or a bare IPv6 address
  }
  if (out.host.empty() || out.host.find_first_of(" \t/@") != std::string::npos) return fail();
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return parsed<listen_address>::failure("port must be a number from 1 to 65535 in " + quoted(text));
    out.port = static_cast<std::uint16_t>(port);
  }
  return out;
}

bool parse_ip_address(const std::string& text, std::array<std::uint8_t, 16>& out) {
  out.fill(0);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return true;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return true;
  }
  return false;
}

bool parse_ip_network(const std::string& text, ip_network& out, std::string& error) {
  auto slash = text.find('/');
  auto address = text.substr(0, slash);
  if (!parse_ip_address(address, out.bytes)) {
    error = "\"" + text + "\" is not an IP address or network (e.g. 10.0.0.0/8, fd00::/8)";
    return false;
  }
  bool v4 = address.find(':') == std::string::npos;
  out.prefix = 128;
  if (slash != std::string::npos) {
    auto digits = text.substr(slash + 1);
    unsigned max = v4 ? 32 : 128;
    if (digits.empty() || digits.size() > 3 ||
        digits.find_first_not_of("0123456789") != std::string::npos ||
        static_cast<unsigned>(std::stoul(digits)) > max) {
      error = "\"" + text + "\" has an invalid prefix length (0-" + std::to_string(max) + ")";
      return false;
    }
    out.prefix = static_cast<unsigned>(std::stoul(digits)) + (v4 ? 96 : 0);
  }
  return true;
}

bool ip_network::contains(const std::array<std::uint8_t, 16>& address) const {
  unsigned full = prefix / 8;
  if (std::memcmp(bytes.data(), address.data(), full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (bytes[full] & mask) == (address[full] & mask);
}

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view input) {
  std::string text(input.substr(0, 64));
  if (text.size() != input.size()) return std::nullopt;
  std::tm tm{};
  int ms = 0;
  const char* p = text.c_str();
  int year, month, day, hour, minute, second;
  int n = 0;
  if (std::sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second, &n) != 6)
    return std::nullopt;
  p += n;
  if (*p == '.') {
    ++p;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
      if (digits < 3) ms = ms * 10 + (*p - '0');
      ++digits;
      ++p;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) ms *= 10;
  }
  int offset_minutes = 0;
  if (*p == 'Z' || *p == 'z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int oh = 0, om = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset_minutes = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return std::nullopt;
  }
  if (*p != '\0' || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  auto t = timegm(&tm);
  return (static_cast<std::int64_t>(t) - offset_minutes * 60) * 1000 + ms;
}

}  // namespace petrel
