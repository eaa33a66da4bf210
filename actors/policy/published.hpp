// A value many threads read and one owner replaces whole: readers take a snapshot (a shared
// pointer) without locking and keep it as long as they need; the owner publishes a new one.
#pragma once

#include <atomic>
#include <memory>

namespace petrel {

template <class T>
class published {
 public:
  std::shared_ptr<const T> get() const { return current_.load(); }
  void set(std::shared_ptr<const T> value) { current_.store(std::move(value)); }

 private:
  std::atomic<std::shared_ptr<const T>> current_{std::make_shared<T>()};
};

}  // namespace petrel
