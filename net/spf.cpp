// SPF evaluation (see spf.hpp).
#include "net/spf.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <sstream>

namespace petrel {

namespace asio = boost::asio;

std::string_view to_string(spf_result r) {
  switch (r) {
    case spf_result::none: return "none";
    case spf_result::neutral: return "neutral";
    case spf_result::pass: return "pass";
    case spf_result::fail: return "fail";
    case spf_result::softfail: return "softfail";
    case spf_result::temperror: return "temperror";
    case spf_result::permerror: return "permerror";
  }
  return "none";
}

namespace {

constexpr int max_lookups = 10;  // RFC 7208 4.6.4
constexpr int max_void_lookups = 2;
constexpr std::size_t max_mx_hosts = 10;

// After a mechanism's lookup: a DNS error is a temperror, and one void lookup too many a
// permerror (RFC 7208 4.6.4); true when `out` is then the result.
bool lookup_ends_evaluation(dns_outcome outcome, bool empty, const std::string& what, int& voids,
                            spf_evaluation& out) {
  if (outcome == dns_outcome::temporary) {
    out.result = spf_result::temperror;
    out.explanation = "DNS error for " + what;
    return true;
  }
  if (empty && ++voids > max_void_lookups) {
    out.result = spf_result::permerror;
    out.explanation = "more than 2 void lookups";
    return true;
  }
  return false;
}

struct address {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
};

bool parse_ip(const std::string& text, address& out) {
  if (inet_pton(AF_INET, text.c_str(), out.bytes.data()) == 1) {
    out.family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out.bytes.data()) == 1) {
    out.family = AF_INET6;
    return true;
  }
  return false;
}

bool in_network(const address& ip, const address& net, int prefix) {
  if (ip.family != net.family) return false;
  int bits = ip.family == AF_INET ? 32 : 128;
  if (prefix < 0 || prefix > bits) return false;
  for (int i = 0; i < prefix; ++i) {
    int byte = i / 8, bit = 7 - i % 8;
    if (((ip.bytes[static_cast<std::size_t>(byte)] >> bit) & 1) != ((net.bytes[static_cast<std::size_t>(byte)] >> bit) & 1))
      return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct evaluator {
  spf_dns& dns;
  address ip;
  int lookups = 0;
  int voids = 0;

  bool count_lookup(spf_evaluation& out) {
    if (++lookups > max_lookups) {
      out.result = spf_result::permerror;
      out.explanation = "more than 10 DNS lookups (RFC 7208 4.6.4)";
      return false;
    }
    return true;
  }

  // "domain/cidr4//cidr6" split.
  static void split_cidr(const std::string& spec, std::string& domain, int& v4, int& v6) {
    domain = spec;
    v4 = 32;
    v6 = 128;
    auto dbl = domain.find("//");
    if (dbl != std::string::npos) {
      v6 = std::atoi(domain.c_str() + dbl + 2);
      domain = domain.substr(0, dbl);
    }
    auto slash = domain.find('/');
    if (slash != std::string::npos) {
      v4 = std::atoi(domain.c_str() + slash + 1);
      domain = domain.substr(0, slash);
    }
  }

  bool matches_any(const std::vector<std::string>& addresses, int v4, int v6) const {
    for (const auto& a : addresses) {
      address net;
      if (parse_ip(a, net) && in_network(ip, net, net.family == AF_INET ? v4 : v6)) return true;
    }
    return false;
  }

  asio::awaitable<spf_evaluation> check(std::string domain, int depth) {
    spf_evaluation out;
    if (depth > max_lookups) {
      out.result = spf_result::permerror;
      out.explanation = "include/redirect loop";
      co_return out;
    }
    auto txt = co_await dns.txt(domain);
    if (txt.outcome == dns_outcome::temporary) {
      out.result = spf_result::temperror;
      out.explanation = "DNS error for " + domain + ": " + txt.error;
      co_return out;
    }
    std::vector<std::string> spf;
    for (const auto& r : txt.records) {
      auto l = lower(r);
      if (l == "v=spf1" || l.rfind("v=spf1 ", 0) == 0) spf.push_back(r);
    }
    if (spf.empty()) {
      out.result = spf_result::none;
      out.explanation = "no SPF record at " + domain;
      co_return out;
    }
    if (spf.size() > 1) {
      out.result = spf_result::permerror;
      out.explanation = "more than one SPF record at " + domain;
      co_return out;
    }
    std::istringstream terms(spf.front().substr(6));
    std::string term, redirect;
    while (terms >> term) {
      auto lterm = lower(term);
      if (lterm.find('%') != std::string::npos) {
        out.result = spf_result::permerror;
        out.explanation = "macros are not supported: " + term;
        co_return out;
      }
      if (lterm.rfind("redirect=", 0) == 0) {
        redirect = lterm.substr(9);
        continue;
      }
      if (lterm.rfind("exp=", 0) == 0 || lterm.find('=') != std::string::npos) continue;
      spf_result qualifier = spf_result::pass;
      switch (lterm[0]) {
        case '+': lterm.erase(0, 1); break;
        case '-': qualifier = spf_result::fail; lterm.erase(0, 1); break;
        case '~': qualifier = spf_result::softfail; lterm.erase(0, 1); break;
        case '?': qualifier = spf_result::neutral; lterm.erase(0, 1); break;
        default: break;
      }
      auto colon = lterm.find(':');
      auto slash = lterm.find('/');
      auto name_end = std::min(colon, slash);
      auto mechanism = lterm.substr(0, name_end);
      std::string argument = colon == std::string::npos ? "" : lterm.substr(colon + 1);
      bool matched = false;
      if (mechanism == "all") {
        matched = true;
      } else if (mechanism == "ip4" || mechanism == "ip6") {
        std::string net = argument;
        int prefix = mechanism == "ip4" ? 32 : 128;
        auto s = net.find('/');
        if (s != std::string::npos) {
          prefix = std::atoi(net.c_str() + s + 1);
          net = net.substr(0, s);
        }
        address n;
        if (!parse_ip(net, n)) {
          out.result = spf_result::permerror;
          out.explanation = "bad address in " + term;
          co_return out;
        }
        matched = in_network(ip, n, prefix);
      } else if (mechanism == "a" || mechanism == "mx" || mechanism == "exists") {
        if (!count_lookup(out)) co_return out;
        std::string target;
        int v4 = 32, v6 = 128;
        if (mechanism == "exists") {
          target = argument;
        } else {
          // "a", "a/24", "a:example.com", "a:example.com/24//64"
          auto spec = argument.empty()
                          ? domain + (slash == std::string::npos ? std::string() : lterm.substr(slash))
                          : argument;
          split_cidr(spec, target, v4, v6);
        }
        if (mechanism == "mx") {
          auto mx = co_await dns.mx(target);
          if (lookup_ends_evaluation(mx.outcome, mx.records.empty(), "MX " + target, voids, out)) co_return out;
          for (std::size_t i = 0; i < mx.records.size() && i < max_mx_hosts && !matched; ++i) {
            auto a = co_await dns.addresses(mx.records[i].host);
            matched = matches_any(a.addresses, v4, v6);
          }
        } else {
          auto a = co_await dns.addresses(target);
          if (lookup_ends_evaluation(a.outcome, a.addresses.empty(), target, voids, out)) co_return out;
          matched = mechanism == "exists" ? !a.addresses.empty() : matches_any(a.addresses, v4, v6);
        }
      } else if (mechanism == "include") {
        if (!count_lookup(out)) co_return out;
        auto inner = co_await check(argument, depth + 1);  // counts into the same `lookups`
        if (inner.result == spf_result::pass) matched = true;
        else if (inner.result == spf_result::temperror || inner.result == spf_result::permerror) {
          out = inner;
          co_return out;
        } else if (inner.result == spf_result::none) {
          out.result = spf_result::permerror;  // RFC 7208 5.2: include of a domain without SPF
          out.explanation = "include:" + argument + " has no SPF record";
          co_return out;
        }
      } else if (mechanism == "ptr") {
        if (!count_lookup(out)) co_return out;  // counted, never matched (RFC 7208 5.5)
      } else {
        out.result = spf_result::permerror;
        out.explanation = "unknown mechanism " + term;
        co_return out;
      }
      if (matched) {
        out.result = qualifier;
        out.explanation = term + " at " + domain;
        out.lookups = lookups;
        co_return out;
      }
    }
    if (!redirect.empty()) {
      if (!count_lookup(out)) co_return out;
      auto inner = co_await check(redirect, depth + 1);
      if (inner.result == spf_result::none) inner.result = spf_result::permerror;
      co_return inner;
    }
    out.result = spf_result::neutral;
    out.explanation = "no mechanism matched at " + domain;
    out.lookups = lookups;
    co_return out;
  }
};

}  // namespace

asio::awaitable<spf_evaluation> spf_check(spf_dns& dns, std::string ip, std::string domain) {
  evaluator e{dns, {}, 0, 0};
  spf_evaluation out;
  if (!parse_ip(ip, e.ip)) {
    out.result = spf_result::permerror;
    out.explanation = "not an IP address: " + ip;
    co_return out;
  }
  out = co_await e.check(lower(domain), 0);
  out.lookups = e.lookups;
  co_return out;
}

}  // namespace petrel
