#include "actors/policy/sandbox.hpp"

#include <cctype>

namespace petrel {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

simulated_outcome simulated_outcome_for(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos || !iequals(address.substr(at + 1), simulator_domain))
    return simulated_outcome::delivered;
  auto local = address.substr(0, at);
  if (auto plus = local.find('+'); plus != std::string_view::npos) local = local.substr(0, plus);
  if (iequals(local, "bounce")) return simulated_outcome::bounce;
  if (iequals(local, "complaint")) return simulated_outcome::complaint;
  if (iequals(local, "defer")) return simulated_outcome::defer_once;
  if (iequals(local, "ooto")) return simulated_outcome::out_of_office;
  return simulated_outcome::delivered;
}

const char* to_string(simulated_outcome o) {
  switch (o) {
    case simulated_outcome::delivered: return "delivered";
    case simulated_outcome::bounce: return "bounce";
    case simulated_outcome::complaint: return "complaint";
    case simulated_outcome::defer_once: return "defer";
    case simulated_outcome::out_of_office: return "out_of_office";
  }
  return "delivered";
}

}  // namespace petrel
