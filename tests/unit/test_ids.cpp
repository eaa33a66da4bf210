// ULID identifiers: text form, parsing, ordering and uniqueness.
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "storage/ids.hpp"

using namespace petrel;

TEST_CASE("ids round-trip through their 26-character text") {
  auto id = new_id();
  auto text = id.str();
  CHECK(text.size() == 26);
  auto back = id128::parse(text);
  REQUIRE(back);
  CHECK(*back == id);
  std::string lower = text;
  for (auto& c : lower) c = static_cast<char>(std::tolower(c));
  CHECK(*id128::parse(lower) == id);
}

TEST_CASE("known ULID text decodes to its bits") {
  auto id = id128::parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
  REQUIRE(id);
  CHECK(id->hi == ~0ull);
  CHECK(id->lo == ~0ull);
  CHECK(id128{0, 1}.str() == "00000000000000000000000001");
}

TEST_CASE("malformed id text is rejected") {
  CHECK_FALSE(id128::parse(""));
  CHECK_FALSE(id128::parse("01ARZ3NDEKTSV4RRFFQ69G5FA"));    // 25 characters
  CHECK_FALSE(id128::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));   // over 128 bits
  CHECK_FALSE(id128::parse("01ARZ3NDEKTSV4RRFFQ69G5FA!"));
  CHECK_FALSE(id128::parse("01ARZ3NDEKTSV4RRFFQ69G5FAU"));   // U is not Crockford base32
}

TEST_CASE("ids are strictly increasing and carry the time") {
  auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  id128 previous = new_id();
  CHECK(previous.time_ms() >= before);
  for (int i = 0; i < 100000; ++i) {
    auto next = new_id();
    REQUIRE(previous < next);
    REQUIRE(previous.str() < next.str());  // text sorts like the bits
    previous = next;
  }
}

TEST_CASE("ids from several threads never collide") {
  std::vector<std::vector<id128>> made(4);
  std::vector<std::thread> threads;
  for (auto& list : made)
    threads.emplace_back([&list] {
      for (int i = 0; i < 20000; ++i) list.push_back(new_id());
    });
  for (auto& t : threads) t.join();
  std::set<id128> all;
  for (auto& list : made) all.insert(list.begin(), list.end());
  CHECK(all.size() == 80000);
}
