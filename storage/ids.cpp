// ULID encoding and a process-wide monotonic generator (see ids.hpp).
#include "storage/ids.hpp"

#include <chrono>
#include <mutex>
#include <utility>
#include <random>

namespace petrel {

namespace {

constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int decode_char(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  switch (c) {  // Crockford: I and L read as 1, O as 0
    case 'I': case 'L': return 1;
    case 'O': return 0;
    default: break;
  }
  for (int i = 0; i < 32; ++i)
    if (alphabet[i] == c) return i;
  return -1;
}

}  // namespace

std::string id128::str() const {
  // 130 bits of base32 carry 128 bits: the first character holds the top 3 bits.
  std::string out(26, '0');
  unsigned __int128 v = (static_cast<unsigned __int128>(hi) << 64) | lo;
  for (int i = 25; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = alphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

std::optional<id128> id128::parse(std::string_view text) {
  if (text.size() != 26) return std::nullopt;
  unsigned __int128 v = 0;
  for (std::size_t i = 0; i < 26; ++i) {
    int d = decode_char(text[i]);
    if (d < 0) return std::nullopt;
    if (i == 0 && d > 7) return std::nullopt;  // would overflow 128 bits
    v = (v << 5) | static_cast<unsigned>(d);
  }
  return id128{static_cast<std::uint64_t>(v >> 64), static_cast<std::uint64_t>(v)};
}

std::int64_t clock_ms() {
  using namespace std::chrono;
  static const auto anchor = [] { return std::pair{system_clock::now(), steady_clock::now()}; }();
  auto now = anchor.first + duration_cast<system_clock::duration>(steady_clock::now() - anchor.second);
  return duration_cast<milliseconds>(now.time_since_epoch()).count();
}

id128 new_id() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}() ^
                             (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  static std::uint64_t last_ms = 0;
  static unsigned __int128 last_random = 0;  // low 80 bits used
  constexpr unsigned __int128 random_mask = (static_cast<unsigned __int128>(1) << 80) - 1;

  auto now_ms = static_cast<std::uint64_t>(clock_ms());
  std::lock_guard<std::mutex> lock(mutex);
  if (now_ms <= last_ms) {
    // Same millisecond (or the clock stepped back): keep the time, count up the random part.
    now_ms = last_ms;
    last_random = (last_random + 1) & random_mask;
    if (last_random == 0) ++now_ms;  // 2^80 ids in one millisecond: borrow the next one
  } else {
    last_random = ((static_cast<unsigned __int128>(rng()) << 64) | rng()) & random_mask;
    // Leave headroom so that counting up within this millisecond never wraps.
    last_random &= ~(static_cast<unsigned __int128>(1) << 79);
  }
  last_ms = now_ms;
  unsigned __int128 v = (static_cast<unsigned __int128>(now_ms & 0xFFFFFFFFFFFFull) << 80) |
                        last_random;
  return id128{static_cast<std::uint64_t>(v >> 64), static_cast<std::uint64_t>(v)};
}

id128 new_id_at(std::int64_t unix_ms) {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  constexpr unsigned __int128 random_mask = (static_cast<unsigned __int128>(1) << 80) - 1;
  unsigned __int128 random = ((static_cast<unsigned __int128>(rng()) << 64) | rng()) & random_mask;
  unsigned __int128 v = (static_cast<unsigned __int128>(static_cast<std::uint64_t>(unix_ms) & 0xFFFFFFFFFFFFull) << 80) | random;
  return id128{static_cast<std::uint64_t>(v >> 64), static_cast<std::uint64_t>(v)};
}

}  // namespace petrel
