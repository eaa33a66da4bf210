// Fair service of due recipients (see fair_queue.hpp).
#include "actors/policy/fair_queue.hpp"

#include <algorithm>

namespace petrel {

void fair_queue::push(const id128& recipient, const id128& message, const id128& tenant,
                      int priority, std::uint32_t weight, bool alone) {
  auto& cls = classes_[priority];
  auto [it, added] = cls.tenants.try_emplace(tenant);
  auto& q = it->second;
  q.weight = std::max<std::uint32_t>(weight, 1);
  if (added || q.messages.empty()) {
    if (std::find(cls.rotation.begin(), cls.rotation.end(), tenant) == cls.rotation.end())
      cls.rotation.push_back(tenant);
  }
  // A message already waiting (not yet taken) gets the recipient; else a new entry.
  if (alone) {
    q.messages.push_back({message, tenant, priority, {recipient}});
    ++recipients_;
    return;
  }
  if (q.open.count(message)) {
    // Recipients of one message mostly fall due together: it is near the back.
    for (auto m = q.messages.rbegin(); m != q.messages.rend(); ++m)
      if (m->message == message) {
        m->recipients.push_back(recipient);
        break;
      }
  } else {
    q.messages.push_back({message, tenant, priority, {recipient}});
  }
  ++q.open[message];
  ++recipients_;
}

std::optional<ready_job> fair_queue::pop(std::size_t max_recipients,
                                         const std::function<bool(const id128&)>& eligible) {
  max_recipients = std::max<std::size_t>(max_recipients, 1);
  for (auto cls_it = classes_.begin(); cls_it != classes_.end();) {
    auto& cls = cls_it->second;
    // One pass over the rotation: the first eligible tenant with work serves the job.
    for (std::size_t tries = cls.rotation.size(); tries > 0; --tries) {
      auto tenant = cls.rotation.front();
      auto tq = cls.tenants.find(tenant);
      if (tq == cls.tenants.end() || tq->second.messages.empty()) {
        cls.rotation.pop_front();
        if (tq != cls.tenants.end()) cls.tenants.erase(tq);
        continue;
      }
      auto& q = tq->second;
      if (eligible && !eligible(tenant)) {
        // Not now (its rate, a suspension): its turn passes, its place in line stays.
        cls.rotation.pop_front();
        cls.rotation.push_back(tenant);
        q.served = 0;
        continue;
      }
      auto& front = q.messages.front();
      ready_job job;
      job.message = front.message;
      job.tenant = tenant;
      job.priority = cls_it->first;
      if (front.recipients.size() <= max_recipients) {
        job.recipients = std::move(front.recipients);
        q.open.erase(front.message);
        q.messages.pop_front();
      } else {
        job.recipients.assign(front.recipients.begin(), front.recipients.begin() + static_cast<std::ptrdiff_t>(max_recipients));
        front.recipients.erase(front.recipients.begin(), front.recipients.begin() + static_cast<std::ptrdiff_t>(max_recipients));
        q.open[front.message] -= max_recipients;
      }
      recipients_ -= job.recipients.size();
      if (++q.served >= q.weight || q.messages.empty()) {
        q.served = 0;
        cls.rotation.pop_front();
        if (q.messages.empty())
          cls.tenants.erase(tq);
        else
          cls.rotation.push_back(tenant);
      }
      return job;
    }
    if (cls.tenants.empty())
      cls_it = classes_.erase(cls_it);
    else
      ++cls_it;  // every tenant of this class is ineligible now: a lower class may serve
  }
  return std::nullopt;
}

std::vector<ready_job> fair_queue::drain(const std::function<bool(const id128&)>& pick) {
  std::vector<ready_job> out;
  for (auto cls_it = classes_.begin(); cls_it != classes_.end();) {
    auto& cls = cls_it->second;
    for (auto it = cls.tenants.begin(); it != cls.tenants.end();) {
      if (pick && !pick(it->first)) {
        ++it;
        continue;
      }
      for (auto& m : it->second.messages) {
        recipients_ -= m.recipients.size();
        out.push_back(std::move(m));
      }
      cls.rotation.erase(std::remove(cls.rotation.begin(), cls.rotation.end(), it->first),
                         cls.rotation.end());
      it = cls.tenants.erase(it);
    }
    if (cls.tenants.empty())
      cls_it = classes_.erase(cls_it);
    else
      ++cls_it;
  }
  return out;
}

std::size_t fair_queue::jobs(std::size_t max_recipients) const {
  max_recipients = std::max<std::size_t>(max_recipients, 1);
  std::size_t n = 0;
  for (const auto& [priority, cls] : classes_)
    for (const auto& [tenant, q] : cls.tenants)
      for (const auto& m : q.messages) n += (m.recipients.size() + max_recipients - 1) / max_recipients;
  return n;
}

std::unordered_map<id128, std::size_t, id128_hash> fair_queue::per_tenant() const {
  std::unordered_map<id128, std::size_t, id128_hash> out;
  for (const auto& [priority, cls] : classes_)
    for (const auto& [tenant, q] : cls.tenants)
      for (const auto& m : q.messages) out[tenant] += m.recipients.size();
  return out;
}

}  // namespace petrel
