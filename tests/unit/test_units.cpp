// Durations, sizes, rates and listen addresses as written in the configuration.
#include <catch2/catch.hpp>

#include "config/units.hpp"

using namespace petrel;
using namespace std::chrono_literals;

TEST_CASE("durations take units and sums; a number alone is refused, except 0") {
  CHECK(*parse_duration("250ms") == 250ms);
  CHECK(*parse_duration("30s") == 30s);
  CHECK(*parse_duration("5m") == 5min);
  CHECK(*parse_duration("1h30m") == 90min);
  CHECK(*parse_duration("3d") == 72h);
  CHECK(*parse_duration("1.5s") == 1500ms);
  CHECK(*parse_duration("0") == 0ms);
  auto bare = parse_duration("30");
  REQUIRE_FALSE(bare);
  CHECK_THAT(bare.error(), Catch::Contains("\"30\" has no unit"));
  CHECK_THAT(bare.error(), Catch::Contains("\"30s\""));
}

TEST_CASE("durations reject garbage with a reason") {
  auto bad = parse_duration("10 parsecs");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error(), Catch::Contains("10 parsecs"));
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("-5s"));
  CHECK_FALSE(parse_duration("5x"));
  CHECK_FALSE(parse_duration("s"));
}

TEST_CASE("durations format back to their shortest unit") {
  CHECK(format_duration(90min) == "90m");
  CHECK(format_duration(2h) == "2h");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(0ms) == "0s");
}

TEST_CASE("sizes accept binary and decimal units") {
  CHECK(*parse_size("1024") == 1024);
  CHECK(*parse_size("64KiB") == 64 * 1024);
  CHECK(*parse_size("10MiB") == 10 * 1024 * 1024);
  CHECK(*parse_size("1GB") == 1000000000ull);
  CHECK(*parse_size("512 KB") == 512000);
  CHECK_FALSE(parse_size("ten"));
  CHECK_FALSE(parse_size("5 furlongs"));
}

TEST_CASE("rates convert to per-second") {
  CHECK(parse_rate("100/s")->per_second == Approx(100));
  CHECK(parse_rate("6000/min")->per_second == Approx(100));
  CHECK(parse_rate("3600/h")->per_second == Approx(1));
  CHECK(parse_rate("86400/d")->per_second == Approx(1));
  CHECK(parse_rate("0.5/s")->per_second == Approx(0.5));
  CHECK(parse_rate("100/s")->text == "100/s");
  CHECK_FALSE(parse_rate("100"));
  CHECK_FALSE(parse_rate("100/week"));
  CHECK_FALSE(parse_rate("-1/s"));
}

TEST_CASE("listen addresses take IPv4, IPv6 and port 0") {
  auto v4 = parse_listen_address("127.0.0.1:8080");
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8080);
  auto v6 = parse_listen_address("[::1]:0");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 0);
  CHECK(v6->to_string() == "[::1]:0");
  CHECK_FALSE(parse_listen_address("8080"));
  CHECK_FALSE(parse_listen_address("host:99999"));
  CHECK_FALSE(parse_listen_address("::1:80"));
  CHECK_FALSE(parse_listen_address(":80"));
}

TEST_CASE("hosts to connect to: a name or an address, with or without a port") {
  auto named = parse_host_port("smtp.example.net", 25);
  REQUIRE(named);
  CHECK(named->host == "smtp.example.net");
  CHECK(named->port == 25);  // the default
  auto with_port = parse_host_port("smtp.example.net:587", 25);
  REQUIRE(with_port);
  CHECK(with_port->port == 587);
  auto v6 = parse_host_port("[2001:db8::1]:2525", 25);
  REQUIRE(v6);
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->port == 2525);
  auto bare_v6 = parse_host_port("2001:db8::1", 25);  // no brackets: all of it is the address
  REQUIRE(bare_v6);
  CHECK(bare_v6->host == "2001:db8::1");
  CHECK(bare_v6->port == 25);
  CHECK(parse_host_port("[::1]", 0)->port == 0);
  CHECK_FALSE(parse_host_port("", 25));
  CHECK_FALSE(parse_host_port("host:0", 25));
  CHECK_FALSE(parse_host_port("host:99999", 25));
  CHECK_FALSE(parse_host_port("host:", 25));
  CHECK_FALSE(parse_host_port("user@host", 25));
  CHECK_FALSE(parse_host_port("[::1", 25));
}
