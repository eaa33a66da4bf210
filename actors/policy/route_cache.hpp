// A bounded cache with expiry and least-recently-used eviction, for DNS answers. Plain code:
// the resolver actor owns one per kind of answer.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace petrel {

template <class Value>
class expiring_cache {
 public:
  explicit expiring_cache(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // The value if present and not expired at now_ms (an expired one is dropped).
  const Value* find(const std::string& key, std::int64_t now_ms) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    if (it->second->expires_at_ms <= now_ms) {
      order_.erase(it->second);
      index_.erase(it);
      return nullptr;
    }
    order_.splice(order_.begin(), order_, it->second);  // most recently used first
    return &it->second->value;
  }

  void put(const std::string& key, Value value, std::int64_t expires_at_ms) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
    order_.push_front(entry{key, std::move(value), expires_at_ms});
    index_[key] = order_.begin();
    while (index_.size() > capacity_) {
      index_.erase(order_.back().key);
      order_.pop_back();
    }
  }

  std::size_t size() const { return index_.size(); }

 private:
  struct entry {
    std::string key;
    Value value;
    std::int64_t expires_at_ms;
  };
  std::size_t capacity_;
  std::list<entry> order_;
  std::unordered_map<std::string, typename std::list<entry>::iterator> index_;
};

}  // namespace petrel
