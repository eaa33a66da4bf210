// The senders actor: the sender domains of every tenant, their DKIM keys and their DNS
// verification. Keys are generated here (OpenSSL; the actor runs on its own thread, since an
// RSA key takes ~0.1 s) or imported, stored (encrypted at rest when a key is configured),
// parsed once into signers, and published in the signing table the signer workers read.
// Verification runs on the I/O threads (DNS) and reports back; every domain is checked again
// every domains.verify_interval, and one that stops verifying raises an event.
//
// Claims: several tenants may register the same domain, each with keys of its own, and none
// learns of the others' claims. DNS decides: the first claim that verifies owns the domain;
// from then on no other claim of it verifies or signs. Public mailbox domains (gmail.com, ...)
// cannot be registered at all.
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>

#include "actors/actor_start.hpp"
#include "actors/actor_support.hpp"
#include "actors/policy/event_data.hpp"
#include "actors/api_key.hpp"
#include "actors/metrics.hpp"
#include "actors/services.hpp"
#include "actors/spawn.hpp"
#include "net/mail/email_address.hpp"
#include "net/secret_box.hpp"

namespace petrel {

namespace {

struct pending_check {
  std::vector<caf::typed_response_promise<sender_domain_view>> waiting;
};

// What the senders actor is given when it starts (its spawn arguments).
using senders_start = io_actor_start;

struct senders_state : senders_start {
  senders_state() = default;
  std::map<std::string, sender_domain_record> domains;  // by claim_key; keys as stored
  std::map<std::string, std::shared_ptr<const dkim_signer>> signers;  // by key id
  std::map<std::string, pending_check> checks;  // verifications under way, by claim_key
  bool loaded = false;
  static inline const char* name = "senders";
};

using senders_pointer = senders_actor::stateful_pointer<senders_state>;

// Domains of public mailbox providers: addresses there belong to the provider's users, so no
// tenant may claim to send for them (nor for their subdomains).
const std::vector<std::string>& public_mailbox_domains() {
  static const std::vector<std::string> names = {
      "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
      "passport.com", "yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "icloud.com",
      "me.com", "mac.com", "proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.de",
      "gmx.net", "web.de", "mail.com", "zoho.com", "yandex.ru", "yandex.com", "mail.ru",
      "qq.com", "163.com", "126.com", "naver.com", "fastmail.com", "tutanota.com"};
  return names;
}

bool is_public_mailbox_domain(const std::string& domain, const std::vector<std::string>& more) {
  auto matches = [&](const std::string& name) {
    return domain == name ||
           (domain.size() > name.size() && domain.compare(domain.size() - name.size(), name.size(), name) == 0 &&
            domain[domain.size() - name.size() - 1] == '.');
  };
  for (const auto& n : public_mailbox_domains())
    if (matches(n)) return true;
  for (const auto& n : more)
    if (matches(n)) return true;
  return false;
}

// The claims of tenants on one domain: "domain tenant".
std::string claim_key(const std::string& domain, const id128& tenant) {
  return domain + " " + tenant.str();
}

// The claim that verified the domain first and owns it, if any.
const sender_domain_record* verified_claim(senders_pointer self, const std::string& domain) {
  auto& domains = self->state.domains;
  for (auto it = domains.lower_bound(domain + " "); it != domains.end() && it->second.domain == domain; ++it)
    if (it->second.verified) return &it->second;
  return nullptr;
}

std::vector<std::string> egress_addresses(const node_settings& s) {
  std::vector<std::string> out;
  for (const auto& source : s.config->sources)
    if (!source.address.empty()) out.push_back(source.address);
  return out;
}

// The signer of a stored key, parsed on first use and kept.
std::shared_ptr<const dkim_signer> signer_for(senders_pointer self, const std::string& domain,
                                              const dkim_key_record& k) {
  auto& st = self->state;
  auto key = k.id.str();
  if (auto it = st.signers.find(key); it != st.signers.end()) return it->second;
  auto pem = open_secret(st.settings.config->key_encryption_key, k.private_key);
  if (!pem) {
    spdlog::error("senders.key_unusable domain={} selector={} error=\"{}\"", domain, k.selector, pem.error());
    return nullptr;
  }
  auto signer = dkim_signer::from_pem(domain, k.selector, pem.value());
  if (!signer) {
    spdlog::error("senders.key_unusable domain={} selector={} error=\"{}\"", domain, k.selector, signer.error());
    return nullptr;
  }
  st.signers.emplace(key, signer.value());
  return signer.value();
}

void publish(senders_pointer self) {
  auto table = std::make_shared<signing_table>();
  for (const auto& [key, d] : self->state.domains) {
    // Once a claim verified the domain, only that one signs.
    auto* owner = verified_claim(self, d.domain);
    if (owner && owner != &d) continue;
    signing_entry entry;
    entry.tenant_id = d.tenant_id;
    entry.verified = d.verified;
    for (const auto& k : d.keys)
      if (k.state == "active")
        if (auto s = signer_for(self, d.domain, k)) entry.signers.push_back(std::move(s));
    table->emplace(signing_key(d.domain, d.tenant_id), std::move(entry));
  }
  self->state.settings.shared.signing->set(std::move(table));
}

sender_domain_view view(senders_pointer self, const sender_domain_record& d) {
  const auto& cfg = self->state.settings.config->domains;
  sender_domain_view out;
  out.domain = d;
  for (auto& k : out.domain.keys) k.private_key.clear();  // never leaves Petrel
  for (const auto& k : d.keys) {
    if (k.state == "retired") continue;
    if (auto s = signer_for(self, d.domain, k))
      out.records.push_back({"TXT", k.selector + "._domainkey." + d.domain, s->dns_record(), "dkim"});
  }
  std::string spf;
  for (const auto& a : egress_addresses(self->state.settings))
    spf += (a.find(':') == std::string::npos ? " ip4:" : " ip6:") + a;
  if (!cfg.spf_include.empty()) spf += " include:" + cfg.spf_include;
  if (!spf.empty()) out.records.push_back({"TXT", d.domain, "v=spf1" + spf + " ~all", "spf"});
  std::string dmarc = "v=DMARC1; p=none; adkim=r; aspf=r";
  if (!cfg.dmarc_rua.empty()) dmarc += "; rua=mailto:" + cfg.dmarc_rua;
  out.records.push_back({"TXT", "_dmarc." + d.domain, dmarc, "dmarc"});
  if (!cfg.bounce_mx_host.empty()) {
    auto return_path = cfg.return_path_label + "." + d.domain;
    out.records.push_back({"MX", return_path, "10 " + cfg.bounce_mx_host, "return_path"});
    if (!spf.empty()) out.records.push_back({"TXT", return_path, "v=spf1" + spf + " ~all", "return_path"});
  }
  return out;
}

std::string new_selector(dkim_algorithm a) {
  // "pt" + 6 random hex digits + r/e: unique per key, tells the algorithm apart in DNS.
  return "pt" + random_hex(3) + (a == dkim_algorithm::rsa_sha256 ? "r" : "e");
}

parsed<dkim_key_record> make_key(senders_pointer self, const id128& domain_id,
                                 const std::string& domain, dkim_algorithm algorithm,
                                 std::string selector, std::string pem) {
  auto& st = self->state;
  if (pem.empty()) pem = generate_dkim_key(algorithm, st.settings.config->dkim.rsa_bits);
  if (selector.empty()) selector = new_selector(algorithm);
  auto signer = dkim_signer::from_pem(domain, selector, pem);
  if (!signer) return parsed<dkim_key_record>::failure(signer.error());
  dkim_key_record k;
  k.id = new_id();
  k.domain_id = domain_id;
  k.selector = selector;
  k.algorithm = std::string(to_string(signer.value()->algorithm()));
  k.private_key = st.settings.config->key_encryption_key.empty() ? pem : seal_secret(st.settings.config->key_encryption_key, pem);
  k.public_key = signer.value()->public_key_base64();
  k.created_at_ms = unix_now_ms();
  k.state = "active";
  st.signers.emplace(k.id.str(), signer.value());
  return k;
}

sender_domain_record* owned(senders_pointer self, const id128& tenant, const std::string& domain) {
  auto it = self->state.domains.find(claim_key(domain, tenant));
  if (it == self->state.domains.end()) return nullptr;
  return &it->second;
}

caf::error not_found() { return make_error(petrel_errc::not_found, "no such sender domain"); }

void verify(senders_pointer self, const std::string& key) {
  auto& st = self->state;
  auto it = st.domains.find(key);
  if (it == st.domains.end() || !st.runtime || !st.runtime->dns) return;
  start_domain_verification(st.runtime, caf::actor_cast<senders_actor>(self), it->second, key,
                            egress_addresses(st.settings), st.settings.config->domains);
}

void on_checked(senders_pointer self, const std::string& key, const domain_check& check) {
  auto& st = self->state;
  auto pending = std::move(st.checks[key].waiting);
  st.checks.erase(key);
  auto it = st.domains.find(key);
  if (it == st.domains.end()) {
    for (auto& p : pending) p.deliver(not_found());
    return;
  }
  auto& d = it->second;
  const auto& domain = d.domain;
  bool was = d.verified;
  auto* owner = verified_claim(self, domain);
  d.verified = check.verified && (!owner || owner == &d);
  d.checked_at_ms = unix_now_ms();
  d.status_json = check.status_json;
  if (check.verified && !d.verified) {
    // This tenant controls the DNS too, so it may learn why: another account verified first.
    d.status_json.pop_back();  // the closing brace of the report
    d.status_json += ",\"conflict\":\"the domain is verified by another account; ask the "
                     "operator to transfer it\"}";
  }
  publish(self);
  self->request(st.store, st.settings.config->storage.request_timeout, verify_atom::value, d.id, d.verified,
                d.checked_at_ms, d.status_json)
      .then([](caf::ok_atom) {}, [domain](caf::error&) {
        spdlog::warn("senders.status_not_stored domain={}", domain);
      });
  if (was && !d.verified) {
    spdlog::warn("senders.verification_failed domain={} status={}", domain, d.status_json);
    event_record e;
    e.id = new_id();
    e.tenant_id = d.tenant_id;
    e.type = "domain_verification_failed";
    e.at_ms = d.checked_at_ms;
    e.data_json = event_data::domain_verification_failed(domain, d.status_json);
    self->request(st.store, st.settings.config->storage.request_timeout, record_atom::value, e)
        .then([](caf::ok_atom) {}, [](caf::error&) {});
  }
  auto v = view(self, d);
  for (auto& p : pending) p.deliver(v);
}

// A tenant claims a sender domain: checked, keys made (or imported), stored, then published.
caf::result<sender_domain_view> create_domain(senders_pointer self, id128 tenant, new_sender_domain& request) {
  auto& s = self->state;
  if (!s.loaded) return make_error(petrel_errc::unavailable, "sender domains are loading", 1000);
  auto checked = parse_address("postmaster@" + request.domain);
  if (!checked || checked->ascii_domain.front() == '[')
    return make_error(petrel_errc::invalid, "domain: not a valid domain name");
  auto name = checked->ascii_domain;
  if (is_public_mailbox_domain(name, s.settings.config->domains.unclaimable))
    return make_error(petrel_errc::invalid,
                      "domain: " + name + " is a public mailbox provider's domain; send from "
                      "a domain of your own");
  // Only this tenant's own claims are looked at: whether another tenant has the domain
  // is not told (it can never verify while another claim is verified).
  if (owned(self, tenant, name))
    return make_error(petrel_errc::conflict,
                      "the domain " + name + " is registered already by this account");
  sender_domain_record d;
  d.id = new_id();
  d.tenant_id = tenant;
  d.domain = name;
  d.created_at_ms = unix_now_ms();
  if (!request.private_key_pem.empty()) {
    if (request.selector.empty())
      return make_error(petrel_errc::invalid, "dkim.selector: required with an imported key");
    auto k = make_key(self, d.id, name, dkim_algorithm::rsa_sha256, request.selector,
                      request.private_key_pem);
    if (!k) return make_error(petrel_errc::invalid, "dkim.private_key: " + k.error());
    d.keys.push_back(std::move(k.value()));
  } else {
    auto algorithms = request.algorithms.empty() ? s.settings.config->dkim.algorithms : request.algorithms;
    for (const auto& a : algorithms) {
      auto algorithm = a == "ed25519-sha256" ? dkim_algorithm::ed25519_sha256 : dkim_algorithm::rsa_sha256;
      auto k = make_key(self, d.id, name, algorithm, algorithms.size() == 1 ? request.selector : "", "");
      if (!k) return make_error(petrel_errc::invalid, k.error());
      d.keys.push_back(std::move(k.value()));
    }
  }
  auto rp = self->make_response_promise<sender_domain_view>();
  self->request(s.store, s.settings.config->storage.request_timeout, persist_atom::value, d)
      .then(
          [=](caf::ok_atom) mutable {
            auto& current = self->state.domains[claim_key(d.domain, d.tenant_id)];
            current = d;
            publish(self);
            spdlog::info("senders.created domain={} tenant={} keys={}", d.domain, d.tenant_id.str(), d.keys.size());
            rp.deliver(view(self, current));
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
  return rp;
}

// New keys for every active one; the old ones step back to "published" (still in DNS, not signing).
caf::result<sender_domain_view> rotate_keys(senders_pointer self, id128 tenant, const std::string& domain) {
  auto* d = owned(self, tenant, domain);
  if (!d) return not_found();
  std::vector<dkim_key_record> fresh;
  std::vector<id128> old;
  for (const auto& k : d->keys) {
    if (k.state != "active") continue;
    auto algorithm = k.algorithm == "ed25519-sha256" ? dkim_algorithm::ed25519_sha256 : dkim_algorithm::rsa_sha256;
    auto n = make_key(self, d->id, domain, algorithm, "", "");
    if (!n) return make_error(petrel_errc::invalid, n.error());
    fresh.push_back(std::move(n.value()));
    old.push_back(k.id);
  }
  if (fresh.empty()) {
    auto n = make_key(self, d->id, domain, dkim_algorithm::rsa_sha256, "", "");
    if (!n) return make_error(petrel_errc::invalid, n.error());
    fresh.push_back(std::move(n.value()));
  }
  auto& s = self->state;
  // New keys first, then the old ones step back to "published" (still in DNS, not signing).
  auto rp = self->make_response_promise<sender_domain_view>();
  auto remaining = std::make_shared<std::size_t>(fresh.size() + old.size());
  auto failed = std::make_shared<bool>(false);
  auto done = [=]() mutable {
    if (--*remaining > 0) return;
    auto* current = owned(self, tenant, domain);
    if (!current) {
      rp.deliver(not_found());
      return;
    }
    if (*failed) {
      rp.deliver(make_error(petrel_errc::store_failed, "the new keys could not be stored", 1000));
      return;
    }
    for (auto& k : current->keys)
      for (const auto& id : old)
        if (k.id == id) k.state = "published";
    for (const auto& k : fresh) current->keys.push_back(k);
    publish(self);
    spdlog::info("senders.rotated domain={} new_keys={}", domain, fresh.size());
    rp.deliver(view(self, *current));
  };
  for (const auto& k : fresh)
    self->request(s.store, s.settings.config->storage.request_timeout, persist_atom::value, k)
        .then([=](caf::ok_atom) mutable { done(); }, [=](caf::error&) mutable { *failed = true; done(); });
  for (const auto& id : old)
    self->request(s.store, s.settings.config->storage.request_timeout, record_atom::value, id, std::string("published"))
        .then([=](caf::ok_atom) mutable { done(); }, [=](caf::error&) mutable { *failed = true; done(); });
  return rp;
}

// A key leaves DNS and signing for good.
caf::result<sender_domain_view> retire_key(senders_pointer self, id128 tenant, const std::string& domain, const std::string& selector) {
  auto* d = owned(self, tenant, domain);
  if (!d) return not_found();
  auto key = std::find_if(d->keys.begin(), d->keys.end(),
                          [&](const auto& k) { return k.selector == selector && k.state != "retired"; });
  if (key == d->keys.end()) return make_error(petrel_errc::not_found, "no such key");
  auto id = key->id;
  auto rp = self->make_response_promise<sender_domain_view>();
  self->request(self->state.store, self->state.settings.config->storage.request_timeout, record_atom::value, id,
                std::string("retired"))
      .then(
          [=](caf::ok_atom) mutable {
            auto* current = owned(self, tenant, domain);
            if (!current) {
              rp.deliver(not_found());
              return;
            }
            for (auto& k : current->keys)
              if (k.id == id) k.state = "retired";
            publish(self);
            rp.deliver(view(self, *current));
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
  return rp;
}

// The claim and its keys are deleted (store first).
caf::result<caf::ok_atom> delete_domain(senders_pointer self, id128 tenant, const std::string& domain) {
  auto* d = owned(self, tenant, domain);
  if (!d) return not_found();
  auto id = d->id;
  auto rp = self->make_response_promise<caf::ok_atom>();
  self->request(self->state.store, self->state.settings.config->storage.request_timeout, caf::delete_atom::value, id)
      .then(
          [=](caf::ok_atom) mutable {
            self->state.domains.erase(claim_key(domain, tenant));
            publish(self);
            rp.deliver(caf::ok_atom::value);
          },
          [=](caf::error& e) mutable { rp.deliver(e); });
  return rp;
}

senders_actor::behavior_type senders_behavior(senders_pointer self, senders_start start) {
  auto& st = start_actor(self);
  static_cast<senders_start&>(st) = std::move(start);
  self->request(st.store, st.settings.config->storage.request_timeout, load_atom::value, sender_atom::value)
      .then(
          [=](std::vector<sender_domain_record>& domains) {
            for (auto& d : domains) {
              auto key = claim_key(d.domain, d.tenant_id);
              self->state.domains.emplace(std::move(key), std::move(d));
            }
            self->state.loaded = true;
            publish(self);
            spdlog::info("senders.loaded domains={}", self->state.domains.size());
            self->delayed_send(self, self->state.settings.config->domains.verify_interval, caf::tick_atom::value);
          },
          [=](caf::error& e) {
            spdlog::error("senders.load_failed error=\"{}\"", self->system().render(e));
            self->quit(e);
          });
  return {
      [=](create_atom, id128 tenant, new_sender_domain& request) -> caf::result<sender_domain_view> {
        return create_domain(self, tenant, request);
      },
      [=](list_atom, id128 tenant) {
        std::vector<sender_domain_view> out;
        for (const auto& [name, d] : self->state.domains)
          if (d.tenant_id == tenant) out.push_back(view(self, d));
        return out;
      },
      [=](verify_atom, id128 tenant, const std::string& domain) -> caf::result<sender_domain_view> {
        if (!owned(self, tenant, domain)) return not_found();
        auto rp = self->make_response_promise<sender_domain_view>();
        auto key = claim_key(domain, tenant);
        auto& pending = self->state.checks[key];
        pending.waiting.push_back(rp);
        if (pending.waiting.size() == 1) verify(self, key);
        return rp;
      },
      [=](rotate_atom, id128 tenant, const std::string& domain) -> caf::result<sender_domain_view> {
        return rotate_keys(self, tenant, domain);
      },
      [=](retire_atom, id128 tenant, const std::string& domain, const std::string& selector) -> caf::result<sender_domain_view> {
        return retire_key(self, tenant, domain, selector);
      },
      [=](caf::delete_atom, id128 tenant, const std::string& domain) -> caf::result<caf::ok_atom> {
        return delete_domain(self, tenant, domain);
      },
      [=](verify_atom, const std::string& domain, const domain_check& check) {
        on_checked(self, domain, check);
      },
      [=](caf::tick_atom) {
        for (const auto& [key, d] : self->state.domains)
          if (!self->state.checks.count(key)) {
            self->state.checks[key];  // a check under way, without anyone waiting
            verify(self, key);
          }
        self->delayed_send(self, self->state.settings.config->domains.verify_interval, caf::tick_atom::value);
      },
  };
}

}  // namespace

senders_actor spawn_senders(caf::actor_system& sys, caf::local_actor* parent, store_actor store,
                            std::shared_ptr<delivery_runtime> runtime, const node_settings& settings) {
  // Detached: key generation takes a noticeable time and must not hold a shared worker.
  auto where = settings.config->store_detached ? runs_on::own_thread : runs_on::scheduler;
  return spawn_child(sys, parent, where, senders_behavior,
                     senders_start{std::move(store), std::move(runtime), settings});
}

}  // namespace petrel
