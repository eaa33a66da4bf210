// Strict JSON reading of client input: bounds while parsing, duplicate keys, numbers that do
// not round-trip; every error names the path of the value.
#include <catch2/catch.hpp>

#include <boost/json/serialize.hpp>

#include "net/json_input.hpp"

using namespace petrel;

namespace {

json_input parse(const std::string& text, json_limits limits = {}) { return parse_json_input(text, limits); }

}  // namespace

TEST_CASE("json input: valid documents come back whole") {
  auto in = parse(R"({"a":[1,-2,3.5,"x",true,null,{"b":{}}],"c":"\u00e9"})");
  REQUIRE(in);
  CHECK(boost::json::serialize(in.value) == R"({"a":[1,-2,3.5E0,"x",true,null,{"b":{}}],"c":"é"})");
}

TEST_CASE("json input: errors name the path and the reason") {
  auto dup = parse(R"({"a":{"b":[0,{"c":1,"c":2}]}})");
  CHECK_FALSE(dup);
  CHECK(dup.field == "a.b[1].c");
  CHECK_THAT(dup.error, Catch::Contains("twice"));
  auto inf = parse(R"({"list":[1,2,1e309]})");
  CHECK(inf.field == "list[2]");
  CHECK_THAT(inf.error, Catch::Contains("finite"));
  auto big = parse(R"([18446744073709551616])");
  CHECK(big.field == "[0]");
  CHECK_THAT(big.error, Catch::Contains("64 bits"));
  auto syntax = parse(R"({"a":)");
  CHECK_FALSE(syntax);
  CHECK_THAT(syntax.error, Catch::Contains("not valid JSON"));
  CHECK_FALSE(parse("{} x"));  // extra data after the document
  // Where: the line and column of the byte the parser stopped at, as an editor counts them.
  auto where = parse("{\n  \"to\": [\"a@example.com\",]\n}");
  CHECK_FALSE(where);
  CHECK_THAT(where.error, Catch::Contains("at line 2, column 26"));  // the "]"
}

TEST_CASE("json input: the value bound and the depth bound hold while parsing") {
  std::string many = "[";
  for (int i = 0; i < 100; ++i) many += i ? ",0" : "0";
  many += "]";
  CHECK(parse(many, {32, 101}));
  auto over = parse(many, {32, 100});
  CHECK_FALSE(over);
  CHECK(over.field == "[99]");
  CHECK_THAT(over.error, Catch::Contains("more than 100 values"));
  CHECK(parse(std::string(32, '[') + std::string(32, ']')));
  auto deep = parse(std::string(33, '[') + std::string(33, ']'));
  CHECK_FALSE(deep);
  CHECK_THAT(deep.error, Catch::Contains("deeper than 32"));
}

TEST_CASE("json input: many keys in one object are checked for duplicates without quadratic cost") {
  std::string text = "{";
  for (int i = 0; i < 20000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  CHECK(parse(text + "}", {32, 100000}));
  auto dup = parse(text + ",\"k19999\":1}", {32, 100000});
  CHECK_FALSE(dup);
  CHECK(dup.field == "k19999");
}
