// MX ordering and site naming (see mx.hpp).
#include "net/mx.hpp"

#include <algorithm>
#include <set>

namespace petrel {

std::string normalize_host(std::string_view name) {
  std::string out(name);
  while (!out.empty() && out.back() == '.') out.pop_back();
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_null_mx(const std::vector<mx_record>& records) {
  return records.size() == 1 && normalize_host(records[0].host).empty();
}

std::vector<mx_record> order_mx(std::vector<mx_record> records, std::mt19937_64& rng) {
  for (auto& r : records) r.host = normalize_host(r.host);
  records.erase(std::remove_if(records.begin(), records.end(),
                               [](const mx_record& r) { return r.host.empty(); }),
                records.end());
  std::shuffle(records.begin(), records.end(), rng);  // random order within equal preferences ...
  std::stable_sort(records.begin(), records.end(),    // ... kept by the stable sort
                   [](const mx_record& a, const mx_record& b) { return a.preference < b.preference; });
  std::set<std::string> seen;
  std::vector<mx_record> out;
  for (auto& r : records)
    if (seen.insert(r.host).second) out.push_back(std::move(r));
  return out;
}

std::string site_name(const std::vector<mx_record>& records) {
  std::set<std::string> hosts;
  for (const auto& r : records) {
    auto h = normalize_host(r.host);
    if (!h.empty()) hosts.insert(h);
  }
  std::string out;
  for (const auto& h : hosts) {
    if (!out.empty()) out += ',';
    out += h;
  }
  return out;
}

}  // namespace petrel
