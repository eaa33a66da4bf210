#include "actors/policy/queue_window.hpp"

#include <algorithm>
#include <utility>
#include <tuple>

namespace petrel {

queue_key key_before(const queue_key& k) {
  if (k.id.lo != 0) return {k.due_ms, id128{k.id.hi, k.id.lo - 1}};
  if (k.id.hi != 0) return {k.due_ms, id128{k.id.hi - 1, std::numeric_limits<std::uint64_t>::max()}};
  if (k.due_ms == std::numeric_limits<std::int64_t>::min()) return k;  // nothing is below
  return end_of(k.due_ms - 1);
}

namespace {

const queue_key lowest{std::numeric_limits<std::int64_t>::min(), id128{}};

void lower(std::optional<queue_key>& boundary, const queue_key& to) {
  if (!boundary || to < *boundary) boundary = to;
}

void remember_stored(queue_window::class_state& c, std::int64_t due_ms) {
  if (!c.stored_next_due_ms || due_ms < *c.stored_next_due_ms) c.stored_next_due_ms = due_ms;
}

}  // namespace

queue_window::class_index queue_window::class_of(const id128& tenant, int priority) {
  auto [it, added] = index_.try_emplace({tenant, priority}, static_cast<class_index>(classes_.size()));
  if (!added) return it->second;
  class_state c;
  c.tenant = tenant;
  c.priority = priority;
  classes_.push_back(c);
  return static_cast<class_index>(classes_.size() - 1);
}

void queue_window::summarized(class_index i, std::uint64_t queued, std::uint64_t deferred,
                              std::int64_t oldest_ms, std::int64_t next_due_ms, const id128& max_id) {
  auto& c = classes_[i];
  c.queued = queued;
  c.deferred = deferred;
  c.stored_oldest_ms = oldest_ms;
  c.summary_max_id = std::max(c.summary_max_id, max_id);
  if (queued + deferred == 0) return;
  c.boundary = lowest;  // read from the start; what memory holds already is skipped
  if (c.page_out) c.refused_while_paging = lowest;  // and so does the page being read
  c.stored_next_due_ms = next_due_ms;
}

bool queue_window::counts_new(class_index i, const id128& id) const {
  return id > classes_[i].summary_max_id;
}

bool queue_window::hold(class_index i, const queue_key& key, std::int64_t now_ms) {
  auto& c = classes_[i];
  auto refuse = [&](std::optional<queue_key> new_boundary) {
    if (new_boundary) lower(c.boundary, *new_boundary);
    remember_stored(c, key.due_ms);
    if (c.page_out && (!c.refused_while_paging || key < *c.refused_while_paging))
      c.refused_while_paging = key;
    return false;
  };
  if (c.boundary && key > *c.boundary) return refuse(std::nullopt);
  if (in_memory_ >= limits_.max_in_memory) return refuse(key_before(key));
  if (key.due_ms > now_ms + limits_.horizon_ms) {
    auto horizon_end = end_of(now_ms + limits_.horizon_ms);
    return refuse(horizon_end < key ? horizon_end : key_before(key));
  }
  return true;
}

std::uint64_t queue_window::share(std::size_t waiting_classes) const {
  auto n = std::max<std::size_t>(waiting_classes, 1);
  // Every class gets room for a few jobs even when very many tenants wait at one domain.
  return std::max<std::uint64_t>(limits_.max_in_memory / n, 16);
}

std::optional<queue_window::page_request> queue_window::next_page(std::int64_t now_ms) const {
  if (in_memory_ >= limits_.max_in_memory) return std::nullopt;
  std::size_t waiting_classes = 0;
  for (const auto& c : classes_)
    if (c.waiting() > 0 || c.in_memory > 0) ++waiting_classes;
  auto each = share(waiting_classes);
  auto room = limits_.max_in_memory - in_memory_;
  std::optional<page_request> best;
  // Order of choice: a class with nothing in memory (its tenant would wait on others' pages),
  // then the class whose stored recipients are due first (not known: first of all), then the
  // one holding least.
  using rank = std::tuple<bool, std::int64_t, std::uint64_t>;
  std::optional<rank> best_rank;
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    const auto& c = classes_[i];
    if (c.complete() || c.page_out) continue;
    if (c.stored_next_due_ms && *c.stored_next_due_ms > now_ms + limits_.horizon_ms) continue;
    if (c.in_memory >= each) continue;
    auto need = std::min<std::uint64_t>(each - c.in_memory, room);
    // Read in pages worth the round trip: at least half a page (or half the share).
    auto worth = std::max<std::uint64_t>(1, std::min<std::uint64_t>(limits_.page, each) / 2);
    if (need < worth) continue;
    rank r{c.in_memory > 0, c.stored_next_due_ms.value_or(std::numeric_limits<std::int64_t>::min()),
           c.in_memory};
    if (best_rank && *best_rank <= r) continue;
    best = page_request{static_cast<class_index>(i), *c.boundary, now_ms + limits_.horizon_ms,
                        std::min<std::uint64_t>(need, limits_.page)};
    best_rank = r;
  }
  return best;
}

bool queue_window::page_loaded(const page_request& r, const page_result& result) {
  auto& c = classes_[r.cls];
  c.page_out = false;
  auto refused = c.refused_while_paging;
  c.refused_while_paging.reset();
  if (c.complete()) return false;  // (summarized again meanwhile? nothing to move)
  bool now_complete = false;
  if (result.rows >= r.limit && result.last) {
    // Full page: everything up to its last key is in memory now; more may follow at once.
    c.boundary = std::max(*c.boundary, *result.last);
    c.stored_next_due_ms = result.last->due_ms;
  } else if (result.next_due_ms) {
    // Everything due within the horizon is in memory; the store holds later ones.
    c.boundary = std::max(*c.boundary, end_of(r.until_ms));
    c.stored_next_due_ms = result.next_due_ms;
  } else {
    now_complete = true;
  }
  // A recipient refused while the page was read may be missing from it: stay below it.
  if (refused) {
    if (now_complete) {
      now_complete = false;
      c.boundary = key_before(*refused);
      c.stored_next_due_ms.reset();
    } else {
      lower(c.boundary, key_before(*refused));
    }
    remember_stored(c, refused->due_ms);
  }
  if (now_complete) {
    c.boundary.reset();
    c.stored_next_due_ms.reset();
    c.stored_oldest_ms = 0;
  }
  return now_complete;
}

bool queue_window::page_out() const {
  return std::any_of(classes_.begin(), classes_.end(), [](const auto& c) { return c.page_out; });
}

std::optional<std::int64_t> queue_window::next_check_ms(std::int64_t now_ms) const {
  std::optional<std::int64_t> out;
  for (const auto& c : classes_) {
    if (c.complete() || c.page_out || !c.stored_next_due_ms) continue;
    auto at = *c.stored_next_due_ms - limits_.horizon_ms;
    if (at <= now_ms) continue;  // due within the horizon already: paging waits for room
    if (!out || at < *out) out = at;
  }
  return out;
}

void queue_window::flushed(std::int64_t now_ms) {
  for (auto& c : classes_) {
    if (c.complete()) continue;
    lower(c.boundary, end_of(now_ms - 1));
    remember_stored(c, now_ms);
    // A page being read may have missed the moved recipients: it must not raise the boundary
    // past them.
    queue_key moved{now_ms, id128{}};
    if (c.page_out && (!c.refused_while_paging || moved < *c.refused_while_paging))
      c.refused_while_paging = moved;
  }
}

std::uint64_t queue_window::waiting() const {
  std::uint64_t n = 0;
  for (const auto& c : classes_) n += c.waiting();
  return n;
}

bool queue_window::any_stored() const {
  return std::any_of(classes_.begin(), classes_.end(), [](const auto& c) { return !c.complete(); });
}

}  // namespace petrel
