// c-ares on Asio (see dns.hpp). Every call into c-ares happens on one strand; c-ares tells us
// through its socket-state callback which sockets to watch, and we call ares_process_fd when
// one is ready or when its next timeout is due.
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <mutex>
#include <type_traits>
#include <stdexcept>
#include <unordered_map>

#include "net/dns.hpp"

namespace petrel {

namespace asio = boost::asio;

std::string_view to_string(dns_outcome o) {
  switch (o) {
    case dns_outcome::found: return "found";
    case dns_outcome::no_records: return "no_records";
    case dns_outcome::no_domain: return "no_domain";
    case dns_outcome::temporary: return "temporary";
  }
  return "unknown";
}

namespace {

// Reads a 16/32-bit big-endian value; callers check bounds first.
std::uint16_t read16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t read32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

// Skips a possibly compressed domain name at pos; false when it runs past the end.
bool skip_name(const unsigned char* m, std::size_t len, std::size_t& pos) {
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= len) return false;
    unsigned char l = m[pos];
    if (l == 0) {
      ++pos;
      return true;
    }
    if ((l & 0xC0) == 0xC0) {  // compression pointer: two octets end the name here
      if (pos + 2 > len) return false;
      pos += 2;
      return true;
    }
    if ((l & 0xC0) != 0) return false;
    pos += 1 + l;
  }
  return false;
}

dns_outcome outcome_of(int status) {
  switch (status) {
    case ARES_SUCCESS: return dns_outcome::found;
    case ARES_ENODATA: return dns_outcome::no_records;
    case ARES_ENOTFOUND: return dns_outcome::no_domain;
    default: return dns_outcome::temporary;
  }
}

// Negative answers without an SOA are cached this long (seconds).
constexpr std::uint32_t default_negative_ttl = 60;

}  // namespace

address_lookup combine_address_lookups(const address_lookup& a, const address_lookup& b,
                                       bool prefer_v6) {
  address_lookup out;
  out.secure = a.secure && b.secure;
  const auto& first = prefer_v6 ? b : a;
  const auto& second = prefer_v6 ? a : b;
  out.addresses = first.addresses;
  out.addresses.insert(out.addresses.end(), second.addresses.begin(), second.addresses.end());
  if (!out.addresses.empty()) {
    out.outcome = dns_outcome::found;
    bool any = false;
    for (const auto* r : {&a, &b})
      if (r->outcome == dns_outcome::found && (!any || r->ttl < out.ttl)) {
        out.ttl = r->ttl;
        any = true;
      }
  } else if (a.outcome == dns_outcome::temporary || b.outcome == dns_outcome::temporary) {
    out.outcome = dns_outcome::temporary;
    out.error = a.outcome == dns_outcome::temporary ? a.error : b.error;
  } else {
    // Both negative: the A answer says whether the name exists; remembered for the shorter TTL.
    out.outcome = a.outcome == dns_outcome::no_domain ? dns_outcome::no_domain : dns_outcome::no_records;
    out.ttl = std::min(a.ttl, b.ttl);
  }
  return out;
}

namespace {

// Walks `count` resource records from pos, calling visit(type, ttl, rdata position, rdata
// length) for each; false when the message is malformed.
template <class Visit>
bool walk_records(const unsigned char* m, std::size_t len, std::size_t& pos, std::size_t count, Visit visit) {
  for (std::size_t i = 0; i < count; ++i) {
    if (!skip_name(m, len, pos) || pos + 10 > len) return false;
    auto rtype = read16(m + pos);
    auto ttl = read32(m + pos + 4);
    auto rdlength = read16(m + pos + 8);
    pos += 10;
    if (pos + rdlength > len) return false;
    visit(rtype, ttl, pos, rdlength);
    pos += rdlength;
  }
  return true;
}

// Past the question section (pos: 12, the end of the header); false when it is malformed.
bool skip_questions(const unsigned char* m, std::size_t len, std::size_t& pos) {
  std::size_t qd = read16(m + 4);
  for (std::size_t i = 0; i < qd; ++i) {
    if (!skip_name(m, len, pos) || pos + 4 > len) return false;
    pos += 4;
  }
  return true;
}

}  // namespace

bool parse_tlsa_answer(const unsigned char* m, std::size_t len, std::vector<tlsa_record>& out) {
  if (!m || len < 12) return false;
  std::size_t an = read16(m + 6);
  std::size_t pos = 12;
  if (!skip_questions(m, len, pos)) return false;
  return walk_records(m, len, pos, an, [&](int rtype, std::uint32_t, std::size_t rdata, std::size_t rdlength) {
    constexpr int tlsa_type = 52;  // RFC 6698
    if (rtype != tlsa_type || rdlength < 3 || out.size() >= 64) return;
    tlsa_record r;
    r.usage = m[rdata];
    r.selector = m[rdata + 1];
    r.matching = m[rdata + 2];
    r.data.assign(reinterpret_cast<const char*>(m + rdata + 3), rdlength - 3);
    out.push_back(std::move(r));
  });
}

bool parse_cname_answer(const unsigned char* m, std::size_t len, std::string_view name, std::string& target) {
  target.clear();
  if (!m || len < 12) return false;
  std::size_t an = read16(m + 6);
  std::size_t pos = 12;
  if (!skip_questions(m, len, pos)) return false;
  auto lower = [](std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    while (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  auto wanted = lower(std::string(name));
  bool malformed = false;
  // Each record's owner is read again from its start: walk_records gives where its data is.
  std::size_t owner_at = pos;
  bool whole = walk_records(m, len, pos, an, [&](int rtype, std::uint32_t, std::size_t rdata, std::size_t rdlength) {
    std::size_t here = owner_at;
    owner_at = rdata + rdlength;
    if (rtype != ns_t_cname || !target.empty()) return;
    char* owner = nullptr;
    char* alias = nullptr;
    long used = 0;
    if (ares_expand_name(m + here, m, static_cast<int>(len), &owner, &used) != ARES_SUCCESS ||
        ares_expand_name(m + rdata, m, static_cast<int>(len), &alias, &used) != ARES_SUCCESS) {
      malformed = true;
    } else if (lower(owner) == wanted) {
      target = lower(alias);
    }
    ares_free_string(owner);
    ares_free_string(alias);
  });
  return whole && !malformed;
}

std::uint32_t dns_answer_ttl(const unsigned char* m, std::size_t len, int type,
                             std::uint32_t fallback) {
  if (!m || len < 12) return fallback;
  std::size_t an = read16(m + 6), ns = read16(m + 8);
  std::size_t pos = 12;
  if (!skip_questions(m, len, pos)) return fallback;
  bool found = false;
  std::uint32_t best = 0;
  auto consider = [&](std::uint32_t ttl) {
    if (!found || ttl < best) best = ttl;
    found = true;
  };
  // The records of the asked type in the answer; else the SOA's negative TTL (RFC 2308 5).
  bool whole = walk_records(m, len, pos, an, [&](int rtype, std::uint32_t ttl, std::size_t, std::size_t) {
    if (rtype == type) consider(ttl);
  });
  if (!whole) return fallback;
  if (found) return best;
  whole = walk_records(m, len, pos, ns, [&](int rtype, std::uint32_t ttl, std::size_t rdata, std::size_t rdlength) {
    if (rtype != ns_t_soa) return;
    // RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM (5 x 32 bit).
    std::size_t p = rdata;
    if (skip_name(m, len, p) && skip_name(m, len, p) && p + 20 <= rdata + rdlength)
      consider(std::min(ttl, read32(m + p + 16)));
  });
  if (!whole) return fallback;
  return found ? best : fallback;
}

struct dns_client::impl : std::enable_shared_from_this<impl> {
  // One watched socket. Shared with the pending wait handlers, which check `active`.
  struct watch {
    explicit watch(asio::strand<asio::io_context::executor_type>& s, int fd) : descriptor(s, fd) {}
    asio::posix::stream_descriptor descriptor;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;
    bool active = true;
  };

  impl(asio::io_context& io, const dns_settings& s)
      : strand(asio::make_strand(io)), timer(strand), settings(s) {}

  ~impl() {
    if (channel) ares_destroy(channel);
  }

  void init() {
    static std::once_flag library;
    std::call_once(library, [] { ares_library_init(ARES_LIB_INIT_ALL); });
    ares_options options{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    options.sock_state_cb = &impl::socket_state;
    options.sock_state_cb_data = this;
    options.timeout = static_cast<int>(settings.timeout.count());
    options.tries = settings.tries;
    options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
    if (int rc = ares_init_options(&channel, &options, mask); rc != ARES_SUCCESS)
      throw std::runtime_error(std::string("DNS resolver could not start: ") + ares_strerror(rc));
    if (!settings.servers.empty()) {
      std::string csv;
      for (const auto& s : settings.servers) csv += (csv.empty() ? "" : ",") + s;
      if (int rc = ares_set_servers_ports_csv(channel, csv.c_str()); rc != ARES_SUCCESS)
        throw std::runtime_error("dns.servers \"" + csv + "\": " + ares_strerror(rc));
    }
    std::string remote;  // resolvers not on loopback
    bool any = false;
    ares_addr_port_node* servers = nullptr;
    if (ares_get_servers_ports(channel, &servers) == ARES_SUCCESS) {
      for (auto* s = servers; s; s = s->next) {
        any = true;
        char text[INET6_ADDRSTRLEN] = {};
        bool loopback = false;
        if (s->family == AF_INET) {
          loopback = (ntohl(s->addr.addr4.s_addr) >> 24) == 127;
          inet_ntop(AF_INET, &s->addr.addr4, text, sizeof text);
        } else if (s->family == AF_INET6) {
          const auto* b = reinterpret_cast<const unsigned char*>(&s->addr.addr6);
          loopback = std::all_of(b, b + 15, [](unsigned char c) { return c == 0; }) && b[15] == 1;
          inet_ntop(AF_INET6, &s->addr.addr6, text, sizeof text);
        }
        if (!loopback) remote += std::string(remote.empty() ? "" : ", ") + text;
      }
      ares_free_data(servers);
    }
    trusted = settings.dnssec_trusted || (remote.empty() && any);
    if (settings.require_dnssec && !trusted)
      throw std::runtime_error(
          "delivery.dane needs a DNSSEC-validating resolver whose answers Petrel can trust: " +
          (remote.empty() ? std::string("no resolver is configured") : "the resolver " + remote + " is not on loopback") +
          " (dns.servers, else /etc/resolv.conf); run a validating resolver on loopback (unbound, for one) or set "
          "dns.dnssec_trusted = true if the path to it is trusted");
  }

  // Whether an answer says DNSSEC validated it (the AD bit), from a resolver we believe.
  bool secure(const unsigned char* answer, int length) const {
    return trusted && answer && length >= 4 && (answer[3] & 0x20) != 0;
  }

  static void socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<impl*>(data)->on_socket_state(fd, readable != 0, writable != 0);
  }

  // Runs inside ares calls, hence on the strand.
  void on_socket_state(int fd, bool readable, bool writable) {
    if (!readable && !writable) {
      auto it = watches.find(fd);
      if (it == watches.end()) return;
      it->second->active = false;
      boost::system::error_code ec;
      it->second->descriptor.cancel(ec);
      it->second->descriptor.release();  // c-ares closes the socket itself
      watches.erase(it);
      return;
    }
    auto& w = watches[fd];
    if (!w) w = std::make_shared<watch>(strand, fd);
    w->want_read = readable;
    w->want_write = writable;
    arm(w, fd);
  }

  void arm(const std::shared_ptr<watch>& w, int fd) {
    if (w->want_read && !w->reading) wait_on(w, fd, asio::posix::stream_descriptor::wait_read, &watch::reading);
    if (w->want_write && !w->writing) wait_on(w, fd, asio::posix::stream_descriptor::wait_write, &watch::writing);
  }

  // Waits until the socket is readable or writable, then lets c-ares process it that way.
  void wait_on(const std::shared_ptr<watch>& w, int fd, asio::posix::stream_descriptor::wait_type type,
               bool watch::*busy) {
    auto self = shared_from_this();
    (*w).*busy = true;
    w->descriptor.async_wait(type, [self, w, fd, type, busy](boost::system::error_code ec) {
      (*w).*busy = false;
      if (ec || !w->active || !self->channel) return;
      bool readable = type == asio::posix::stream_descriptor::wait_read;
      ares_process_fd(self->channel, readable ? fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : fd);
      self->after_process(fd);
    });
  }

  // After c-ares ran: re-arm the socket if it is still wanted, and the timeout timer.
  void after_process(int fd) {
    auto it = watches.find(fd);
    if (it != watches.end()) arm(it->second, fd);
    schedule_timeout();
  }

  void schedule_timeout() {
    if (!channel) return;
    timeval tv{};
    if (!ares_timeout(channel, nullptr, &tv)) {
      timer.cancel();
      return;
    }
    auto delay = std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
    timer.expires_after(delay);
    auto self = shared_from_this();
    timer.async_wait([self](boost::system::error_code ec) {
      if (ec || !self->channel) return;
      ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->schedule_timeout();
    });
  }

  // One query; `done` gets the c-ares status and the raw answer (on the strand). The query is
  // built here to set the AD bit, which asks the resolver to say whether it validated the
  // answer (RFC 6840 5.7; c-ares has no option for it), with EDNS like ares_query's.
  using raw_callback = std::function<void(int status, const unsigned char* answer, int length)>;
  void query(const std::string& name, int type, raw_callback done) {
    if (!channel) {
      done(ARES_EDESTRUCTION, nullptr, 0);
      return;
    }
    unsigned char* buffer = nullptr;
    int length = 0;
    if (int rc = ares_create_query(name.c_str(), ns_c_in, type, 0, 1, &buffer, &length, 1232); rc != ARES_SUCCESS) {
      done(rc, nullptr, 0);
      return;
    }
    buffer[3] |= 0x20;  // AD
    auto* heap = new raw_callback(std::move(done));
    ares_send(channel, buffer, length,
              [](void* arg, int status, int, unsigned char* answer, int length) {
                std::unique_ptr<raw_callback> cb(static_cast<raw_callback*>(arg));
                (*cb)(status == ARES_SUCCESS ? status_of_answer(answer, length) : status, answer, length);
              },
              heap);
    ares_free_string(buffer);
    schedule_timeout();
  }

  // What ares_query would have said of an answer ares_send delivers as it came: its RCODE, or
  // "no data" for a success without answer records.
  static int status_of_answer(const unsigned char* answer, int length) {
    if (!answer || length < 12) return ARES_EBADRESP;
    switch (answer[3] & 0x0F) {
      case 0: return read16(answer + 6) == 0 ? ARES_ENODATA : ARES_SUCCESS;
      case 1: return ARES_EFORMERR;
      case 2: return ARES_ESERVFAIL;
      case 3: return ARES_ENOTFOUND;
      case 4: return ARES_ENOTIMP;
      case 5: return ARES_EREFUSED;
      default: return ARES_EBADRESP;
    }
  }

  static std::string failure(int status) { return std::string("DNS: ") + ares_strerror(status); }

  void lookup_mx(const std::string& domain, const std::function<void(mx_lookup)>& done) {
    query(domain, ns_t_mx, [this, done](int status, const unsigned char* answer, int length) {
      mx_lookup out;
      out.outcome = outcome_of(status);
      out.secure = out.outcome != dns_outcome::temporary && secure(answer, length);
      if (out.outcome == dns_outcome::found) {
        ares_mx_reply* mx = nullptr;
        int rc = ares_parse_mx_reply(answer, length, &mx);
        if (rc == ARES_SUCCESS) {
          for (auto* r = mx; r; r = r->next) out.records.push_back({r->priority, normalize_host(r->host)});
          ares_free_data(mx);
          out.ttl = dns_answer_ttl(answer, static_cast<std::size_t>(length), ns_t_mx, 300);
        } else if (rc == ARES_ENODATA) {
          out.outcome = dns_outcome::no_records;
        } else {
          out.outcome = dns_outcome::temporary;
          out.error = "DNS: malformed MX answer (" + std::string(ares_strerror(rc)) + ")";
        }
      }
      if (out.outcome == dns_outcome::no_records || out.outcome == dns_outcome::no_domain)
        out.ttl = dns_answer_ttl(answer, static_cast<std::size_t>(std::max(length, 0)), ns_t_mx,
                                 default_negative_ttl);
      if (out.outcome == dns_outcome::temporary && out.error.empty()) out.error = failure(status);
      done(std::move(out));
    });
  }

  void lookup_tlsa(const std::string& name, const std::function<void(tlsa_lookup)>& done) {
    constexpr int tlsa_type = 52;
    query(name, tlsa_type, [this, done](int status, const unsigned char* answer, int length) {
      tlsa_lookup out;
      out.outcome = outcome_of(status);
      out.secure = out.outcome != dns_outcome::temporary && secure(answer, length);
      if (out.outcome == dns_outcome::found) {
        if (!parse_tlsa_answer(answer, static_cast<std::size_t>(length), out.records)) {
          out.outcome = dns_outcome::temporary;
          out.secure = false;
          out.error = "DNS: malformed TLSA answer";
        } else {
          out.ttl = dns_answer_ttl(answer, static_cast<std::size_t>(length), tlsa_type, 300);
          if (out.records.empty()) out.outcome = dns_outcome::no_records;
        }
      } else if (out.outcome == dns_outcome::temporary) {
        out.error = failure(status);
      } else {
        out.ttl = dns_answer_ttl(answer, static_cast<std::size_t>(std::max(length, 0)), tlsa_type, default_negative_ttl);
      }
      done(std::move(out));
    });
  }

  void lookup_cname(const std::string& name, const std::function<void(cname_lookup)>& done) {
    query(name, ns_t_cname, [done, name](int status, const unsigned char* answer, int length) {
      cname_lookup out;
      out.outcome = outcome_of(status);
      if (out.outcome == dns_outcome::found) {
        if (!parse_cname_answer(answer, static_cast<std::size_t>(length), name, out.target)) {
          out.outcome = dns_outcome::temporary;
          out.error = "DNS: malformed CNAME answer";
        } else if (out.target.empty()) {
          out.outcome = dns_outcome::no_records;
        }
      } else if (out.outcome == dns_outcome::temporary) {
        out.error = failure(status);
      }
      done(std::move(out));
    });
  }

  void lookup_txt(const std::string& name, const std::function<void(txt_lookup)>& done) {
    query(name, ns_t_txt, [done](int status, const unsigned char* answer, int length) {
      txt_lookup out;
      out.outcome = outcome_of(status);
      if (out.outcome == dns_outcome::found) {
        ares_txt_ext* txt = nullptr;
        if (ares_parse_txt_reply_ext(answer, length, &txt) == ARES_SUCCESS) {
          for (auto* t = txt; t; t = t->next) {
            // Several character-strings of one record are one text (RFC 7208 3.3).
            std::string chunk(reinterpret_cast<const char*>(t->txt), t->length);
            if (t->record_start || out.records.empty())
              out.records.push_back(std::move(chunk));
            else
              out.records.back() += chunk;
          }
          ares_free_data(txt);
        } else {
          out.outcome = dns_outcome::temporary;
          out.error = "DNS: malformed TXT answer";
        }
      } else if (out.outcome == dns_outcome::temporary) {
        out.error = failure(status);
      }
      done(std::move(out));
    });
  }

  // A (and AAAA) of a host, combined into one answer.
  void lookup_addresses(const std::string& host, const std::function<void(address_lookup)>& done) {
    struct pending {
      address_lookup v4, v6;
      int remaining = 0;
    };
    auto state = std::make_shared<pending>();
    state->remaining = settings.ipv6 ? 2 : 1;
    auto prefer_v6 = settings.prefer_ipv6;
    auto ipv6 = settings.ipv6;
    auto finish = [state, done, prefer_v6, ipv6] {
      if (--state->remaining > 0) return;
      if (!ipv6) return done(std::move(state->v4));
      done(combine_address_lookups(state->v4, state->v6, prefer_v6));
    };
    query(host, ns_t_a, [this, state, finish](int status, const unsigned char* answer, int length) {
      read_addresses<ares_addrttl, INET_ADDRSTRLEN>(status, answer, length, ns_t_a, state->v4);
      state->v4.secure = state->v4.outcome != dns_outcome::temporary && secure(answer, length);
      finish();
    });
    if (!settings.ipv6) return;
    query(host, ns_t_aaaa, [this, state, finish](int status, const unsigned char* answer, int length) {
      read_addresses<ares_addr6ttl, INET6_ADDRSTRLEN>(status, answer, length, ns_t_aaaa, state->v6);
      state->v6.secure = state->v6.outcome != dns_outcome::temporary && secure(answer, length);
      finish();
    });
  }

  // One A or AAAA answer: its addresses with the smallest of their TTLs; for a negative answer,
  // the TTL the zone gives negative answers (RFC 2308), for either type alike.
  template <class Ttl, std::size_t TextSize>
  static void read_addresses(int status, const unsigned char* answer, int length, int type, address_lookup& out) {
    out.outcome = outcome_of(status);
    if (out.outcome == dns_outcome::found) {
      Ttl ttls[64];
      int count = 64;
      hostent* he = nullptr;
      int parsed = 0;
      if constexpr (std::is_same_v<Ttl, ares_addrttl>)
        parsed = ares_parse_a_reply(answer, length, &he, ttls, &count);
      else
        parsed = ares_parse_aaaa_reply(answer, length, &he, ttls, &count);
      if (parsed == ARES_SUCCESS) {
        bool first = true;
        for (int i = 0; i < count; ++i) {
          char text[TextSize];
          if constexpr (std::is_same_v<Ttl, ares_addrttl>)
            inet_ntop(AF_INET, &ttls[i].ipaddr, text, sizeof text);
          else
            inet_ntop(AF_INET6, &ttls[i].ip6addr, text, sizeof text);
          out.addresses.push_back(text);
          auto ttl = static_cast<std::uint32_t>(std::max(ttls[i].ttl, 0));
          if (first || ttl < out.ttl) out.ttl = ttl;
          first = false;
        }
        if (he) ares_free_hostent(he);
      }
      if (out.addresses.empty()) out.outcome = dns_outcome::no_records;
    } else if (out.outcome == dns_outcome::temporary) {
      out.error = failure(status);
    } else {
      out.ttl = dns_answer_ttl(answer, static_cast<std::size_t>(std::max(length, 0)), type, default_negative_ttl);
    }
  }

  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  dns_settings settings;
  ares_channel channel = nullptr;
  bool trusted = false;  // see dns_client::ad_trusted
  std::unordered_map<int, std::shared_ptr<watch>> watches;
};

dns_client::dns_client(asio::io_context& io, const dns_settings& settings)
    : impl_(std::make_shared<impl>(io, settings)) {
  impl_->init();
}

dns_client::~dns_client() { shutdown(); }

void dns_client::lookup_mx(std::string domain, std::function<void(mx_lookup)> done) {
  auto self = impl_;
  asio::post(self->strand, [self, domain = std::move(domain), done = std::move(done)] {
    self->lookup_mx(domain, done);
  });
}

void dns_client::lookup_addresses(std::string host, std::function<void(address_lookup)> done) {
  auto self = impl_;
  asio::post(self->strand, [self, host = std::move(host), done = std::move(done)] {
    self->lookup_addresses(host, done);
  });
}

bool dns_client::ad_trusted() const { return impl_->trusted; }

void dns_client::lookup_tlsa(std::string name, std::function<void(tlsa_lookup)> done) {
  auto self = impl_;
  asio::post(self->strand, [self, name = std::move(name), done = std::move(done)] { self->lookup_tlsa(name, done); });
}

void dns_client::lookup_cname(std::string name, std::function<void(cname_lookup)> done) {
  auto self = impl_;
  asio::post(self->strand, [self, name = std::move(name), done = std::move(done)] { self->lookup_cname(name, done); });
}

void dns_client::lookup_txt(std::string name, std::function<void(txt_lookup)> done) {
  auto self = impl_;
  asio::post(self->strand, [self, name = std::move(name), done = std::move(done)] {
    self->lookup_txt(name, done);
  });
}

void dns_client::shutdown() {
  auto self = impl_;
  asio::post(self->strand, [self] {
    if (!self->channel) return;
    auto channel = self->channel;
    self->channel = nullptr;  // callbacks running inside ares_destroy must not query again
    ares_destroy(channel);    // pending callbacks run now with ARES_EDESTRUCTION
    self->timer.cancel();
    for (auto& [fd, w] : self->watches) {
      w->active = false;
      boost::system::error_code ec;
      w->descriptor.cancel(ec);
      w->descriptor.release();
    }
    self->watches.clear();
  });
}

}  // namespace petrel
