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

}  // namespace

std::uint32_t dns_answer_ttl(const unsigned char* m, std::size_t len, int type,
                             std::uint32_t fallback) {
  if (!m || len < 12) return fallback;
  std::size_t qd = read16(m + 4), an = read16(m + 6), ns = read16(m + 8);
  std::size_t pos = 12;
  for (std::size_t i = 0; i < qd; ++i) {
    if (!skip_name(m, len, pos) || pos + 4 > len) return fallback;
    pos += 4;
  }
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

  // One query; `done` gets the c-ares status and the raw answer (on the strand).
  using raw_callback = std::function<void(int status, const unsigned char* answer, int length)>;
  void query(const std::string& name, int type, raw_callback done) {
    if (!channel) {
      done(ARES_EDESTRUCTION, nullptr, 0);
      return;
    }
    auto* heap = new raw_callback(std::move(done));
    ares_query(channel, name.c_str(), ns_c_in, type,
               [](void* arg, int status, int, unsigned char* answer, int length) {
                 std::unique_ptr<raw_callback> cb(static_cast<raw_callback*>(arg));
                 (*cb)(status, answer, length);
               },
               heap);
    schedule_timeout();
  }

  static std::string failure(int status) { return std::string("DNS: ") + ares_strerror(status); }

  void lookup_mx(const std::string& domain, const std::function<void(mx_lookup)>& done) {
    query(domain, ns_t_mx, [done](int status, const unsigned char* answer, int length) {
      mx_lookup out;
      out.outcome = outcome_of(status);
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
    query(host, ns_t_a, [state, finish](int status, const unsigned char* answer, int length) {
      read_addresses<ares_addrttl, INET_ADDRSTRLEN>(status, answer, length, ns_t_a, state->v4);
      finish();
    });
    if (!settings.ipv6) return;
    query(host, ns_t_aaaa, [state, finish](int status, const unsigned char* answer, int length) {
      read_addresses<ares_addr6ttl, INET6_ADDRSTRLEN>(status, answer, length, ns_t_aaaa, state->v6);
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
