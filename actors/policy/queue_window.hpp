// Which of a destination domain's waiting recipients are held in memory (docs/architecture.md,
// "Queues larger than memory"). Plain code: no actor, no clock; the domain actor applies it.
//
// A domain's waiting recipients fall into classes, one per (tenant, priority), each ordered by
// key = (next attempt time, recipient id), the order of the store's index. Of each class the
// memory holds a prefix of that order, the recipients due soonest; the rest stay in the store
// and are read in pages, in key order, as the prefix drains and as time advances. So a tenant
// with millions waiting keeps a window of its own earliest recipients, and another tenant's
// ten recipients are held in full beside it: the fair rotation and the priorities see every
// class's head.
//
// A class is complete (everything it has waiting is in memory) or partial, with a boundary:
// every waiting recipient of the class with key <= boundary is in memory (some above it may
// be too); pages read keys > boundary. The window turns a class partial when a new recipient
// is not held (the domain holds max_in_memory already, or it is due past the horizon), and
// complete again when a page finds nothing more in the store.
//
// Counts: every waiting recipient, in memory or not, by state (queued, deferred); taken from
// the store's summary when the domain starts, then kept by the domain actor (+1 accepted,
// -1 final). When a class becomes complete its counts are set from memory, which corrects any
// drift of the summary against recipients accepted while it was read.
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/ids.hpp"

namespace petrel {

struct queue_key {
  std::int64_t due_ms = 0;
  id128 id;
  friend auto operator<=>(const queue_key&, const queue_key&) = default;
};

// The largest key with this due time (every id of that millisecond is <= it).
inline queue_key end_of(std::int64_t due_ms) {
  return {due_ms, id128{std::numeric_limits<std::uint64_t>::max(), std::numeric_limits<std::uint64_t>::max()}};
}
// The largest key below k.
queue_key key_before(const queue_key& k);

struct queue_window_limits {
  std::int64_t horizon_ms = 15 * 60 * 1000;  // recipients due later than now + this stay in the store
  std::uint64_t max_in_memory = 20'000;       // recipients of the domain held in memory
  std::uint64_t page = 1'000;                 // rows read per page, at most
};

class queue_window {
 public:
  using class_index = std::uint32_t;

  struct class_state {
    id128 tenant;
    int priority = 0;
    std::uint64_t queued = 0;    // waiting, never attempted (memory and store)
    std::uint64_t deferred = 0;  // waiting after a failed attempt
    std::uint64_t in_memory = 0;
    std::optional<queue_key> boundary;  // nullopt: complete
    // The earliest due time known among recipients of the class not in memory (partial).
    std::optional<std::int64_t> stored_next_due_ms;
    // The oldest creation time among recipients not in memory, from the summary (a bound:
    // those may have been delivered since); 0 when none.
    std::int64_t stored_oldest_ms = 0;
    // Summary: the highest recipient id it counted. A recipient accepted later with an id up to
    // this may have been counted already; see accepted().
    id128 summary_max_id;
    bool page_out = false;
    // Recipients refused while a page is out: the page may have been read without them.
    std::optional<queue_key> refused_while_paging;

    std::uint64_t waiting() const { return queued + deferred; }
    bool complete() const { return !boundary.has_value(); }
  };

  struct page_request {
    class_index cls = 0;
    queue_key after;           // keys > this ...
    std::int64_t until_ms = 0; // ... due at the latest then ...
    std::uint64_t limit = 0;   // ... at most this many, in key order
  };

  // What the store answered for a page.
  struct page_result {
    std::uint64_t rows = 0;               // rows read (those already in memory included)
    std::optional<queue_key> last;         // the last row's key
    std::optional<std::int64_t> next_due_ms;  // the first due time past the page's range, if any
  };

  explicit queue_window(queue_window_limits limits = {}) : limits_(limits) {}

  const queue_window_limits& limits() const { return limits_; }
  void set_limits(const queue_window_limits& limits) { limits_ = limits; }

  // The class of (tenant, priority), made when new (complete, nothing counted).
  class_index class_of(const id128& tenant, int priority);
  class_state& at(class_index c) { return classes_[c]; }
  const class_state& at(class_index c) const { return classes_[c]; }
  const std::vector<class_state>& classes() const { return classes_; }

  // The store's summary of a class (at start or a repair): partial from the lowest key, so
  // pages read it from its start. Counts replace what was known.
  void summarized(class_index c, std::uint64_t queued, std::uint64_t deferred,
                  std::int64_t oldest_ms, std::int64_t next_due_ms, const id128& max_id);

  // A recipient just accepted for this domain: whether it counts (false when the summary may
  // have counted it already) — the caller adds it to the counts when true.
  bool counts_new(class_index c, const id128& id) const;

  // Whether a recipient (new, or one whose due time changed after an attempt) is held in
  // memory. False when the class is partial and the key lies past its boundary, when the
  // domain holds max_in_memory already, or when it is due past the horizon; then the class
  // becomes partial below the key, and the key is remembered as stored.
  bool hold(class_index c, const queue_key& key, std::int64_t now_ms);

  // Bookkeeping of what is in memory (the actor calls these as it adds and forgets).
  void held(class_index c) { ++classes_[c].in_memory, ++in_memory_; }
  void released(class_index c) { --classes_[c].in_memory, --in_memory_; }
  std::uint64_t in_memory() const { return in_memory_; }

  // The page to read next, if a class needs one now: partial, no page out, room in memory,
  // and recipients due within the horizon (or not known). The class with the earliest known
  // stored recipient goes first; a class's share of memory is max_in_memory / classes waiting.
  std::optional<page_request> next_page(std::int64_t now_ms) const;
  void page_sent(const page_request& r) { classes_[r.cls].page_out = true; }
  // A page came back: moves the boundary; a class whose store has nothing more becomes
  // complete (true: the caller resets its counts from memory).
  bool page_loaded(const page_request& r, const page_result& result);
  // A page failed: the class stays as it was and is asked for again later.
  void page_failed(const page_request& r) { classes_[r.cls].page_out = false; }
  bool page_out() const;

  // When a page may be needed next without anything else happening (a stored recipient's due
  // time entering the horizon); nullopt: not by time alone.
  std::optional<std::int64_t> next_check_ms(std::int64_t now_ms) const;

  // An operator flush made every stored recipient due now: their keys moved below others.
  void flushed(std::int64_t now_ms);

  // Everything this window tracks about stored recipients (for the admin view).
  std::uint64_t waiting() const;
  bool any_stored() const;  // some class is partial

 private:
  std::uint64_t share(std::size_t waiting_classes) const;
  queue_window_limits limits_;
  std::vector<class_state> classes_;
  // (tenant, priority) -> class.
  struct class_key_hash {
    std::size_t operator()(const std::pair<id128, int>& k) const noexcept {
      return id128_hash{}(k.first) ^ (static_cast<std::size_t>(k.second) * 0x9E3779B97F4A7C15ull);
    }
  };
  std::unordered_map<std::pair<id128, int>, class_index, class_key_hash> index_;
  std::uint64_t in_memory_ = 0;
};

}  // namespace petrel
