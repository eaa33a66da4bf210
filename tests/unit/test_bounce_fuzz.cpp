// Robustness of parse_bounce on hostile input: deterministic mutations of every corpus file
// (truncations, byte flips, duplicated and removed MIME boundaries) and crafted monsters (5 MB of
// garbage, deep multipart nesting, a 1 MB header line). parse_bounce must return, never throw or
// crash, and keep its output bounded. tests/fuzz/fuzz_bounce.cpp is the libFuzzer counterpart.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "net/mail/bounce_parser.hpp"

using namespace petrel;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> corpus_files() {
  std::vector<std::string> out;
  std::vector<fs::path> paths;
  for (const auto* dir : {"bounces/emails", "not-bounces"})
    for (const auto& entry : fs::directory_iterator(fs::path(PETREL_TESTDATA_DIR) / dir)) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    out.push_back(text.str());
  }
  return out;
}

// The output stays within the documented bounds whatever the input.
void check_bounded(const bounce_report& report) {
  REQUIRE(report.recipients.size() <= max_bounce_recipients);
  for (const auto& r : report.recipients) {
    REQUIRE(r.diagnostic.size() <= max_bounce_diagnostic_octets);
    REQUIRE(r.address.size() <= 254);
  }
}

void parse_and_check(std::string_view input) { check_bounded(parse_bounce(input)); }

// The boundary a multipart message declares, or "".
std::string declared_boundary(const std::string& message) {
  auto pos = message.find("boundary=");
  if (pos == std::string::npos) return {};
  pos += 9;
  bool quoted = pos < message.size() && message[pos] == '"';
  if (quoted) ++pos;
  auto end = message.find_first_of(quoted ? "\"" : "; \r\n", pos);
  return message.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

}  // namespace

TEST_CASE("parse_bounce survives truncation of every corpus file", "[bounce][fuzz]") {
  for (const auto& message : corpus_files()) {
    for (int i = 1; i <= 20; ++i) parse_and_check(std::string_view(message).substr(0, message.size() * i / 21));
  }
}

TEST_CASE("parse_bounce survives random byte flips", "[bounce][fuzz]") {
  std::mt19937 random(20240611);  // fixed seed: the same mutations on every run
  auto files = corpus_files();
  for (const auto& original : files) {
    std::string message = original;
    if (message.empty()) continue;
    std::uniform_int_distribution<std::size_t> position(0, message.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int flip = 0; flip < 200; ++flip) message[position(random)] = static_cast<char>(byte(random));
    parse_and_check(message);
  }
}

TEST_CASE("parse_bounce survives duplicated and removed MIME boundaries", "[bounce][fuzz]") {
  for (const auto& message : corpus_files()) {
    auto boundary = declared_boundary(message);
    if (boundary.empty()) continue;
    auto delimiter = "--" + boundary;
    std::string removed, doubled;
    std::size_t pos = 0;
    for (auto found = message.find(delimiter); found != std::string::npos; found = message.find(delimiter, pos)) {
      removed += message.substr(pos, found - pos);
      doubled += message.substr(pos, found - pos) + delimiter + "\n" + delimiter;
      pos = found + delimiter.size();
    }
    removed += message.substr(pos);
    doubled += message.substr(pos);
    parse_and_check(removed);
    parse_and_check(doubled);
    // Every boundary line made a closing one, and the declared boundary changed.
    std::string closed = doubled;
    for (auto at = closed.find(delimiter); at != std::string::npos; at = closed.find(delimiter, at + 1))
      closed.insert(at + delimiter.size(), "--");
    parse_and_check(closed);
  }
}

TEST_CASE("parse_bounce bounds its work on monster inputs", "[bounce][fuzz]") {
  SECTION("5 MB of garbage") {
    std::mt19937 random(7);
    std::string garbage(5 * 1024 * 1024, '\0');
    for (auto& c : garbage) c = static_cast<char>(random() & 0xff);
    auto report = parse_bounce(garbage);
    CHECK(report.kind == report_kind::not_a_report);
  }
  SECTION("5 MB of addresses and reply codes in a bounce") {
    std::string message = "From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail Returned to Sender\n\n";
    for (int i = 0; message.size() < 5 * 1024 * 1024; ++i)
      message += "<user" + std::to_string(i) + "@example.com>: host mx.example.com said: 550 5.1.1 User unknown\n";
    auto report = parse_bounce(message);
    CHECK(report.kind == report_kind::delivery_failure);
    check_bounded(report);
  }
  SECTION("deeply nested multipart") {
    std::string message = "From: MAILER-DAEMON@example.org\nSubject: failure notice\nMIME-Version: 1.0\n";
    for (int depth = 0; depth < 5000; ++depth)
      message += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(depth) + "\"\n\n--b" +
                 std::to_string(depth) + "\n";
    message += "Content-Type: text/plain\n\n<x@example.com>: 550 5.1.1 User unknown\n";
    parse_and_check(message);
  }
  SECTION("deeply nested message/rfc822") {
    std::string message;
    for (int depth = 0; depth < 5000; ++depth) message += "From: a@example.org\nContent-Type: message/rfc822\n\n";
    message += "Subject: inner\n\nbody\n";
    parse_and_check(message);
  }
  SECTION("a header line of 1 MB") {
    std::string message = "From: MAILER-DAEMON@example.org\nSubject: " + std::string(1024 * 1024, 'x') +
                          "\nX-Failed-Recipients: a@example.com\n\nThe following address(es) failed:\n  a@example.com\n";
    auto report = parse_bounce(message);
    CHECK(report.kind == report_kind::delivery_failure);
  }
  SECTION("a delivery-status part of 1 MB of fields") {
    std::string message =
        "From: MAILER-DAEMON@example.org\nMIME-Version: 1.0\nContent-Type: multipart/report; "
        "report-type=delivery-status; boundary=\"b\"\n\n--b\nContent-Type: message/delivery-status\n\n";
    for (int i = 0; message.size() < 1024 * 1024; ++i)
      message += "Final-Recipient: rfc822; u" + std::to_string(i) + "@example.com\nAction: failed\nStatus: 5.1.1\n\n";
    message += "--b--\n";
    auto report = parse_bounce(message);
    CHECK(report.recipients.size() == max_bounce_recipients);
    check_bounded(report);
  }
  SECTION("empty and tiny inputs") {
    for (const char* input : {"", "\n", ":", "From:", "\r\n\r\n", "Content-Type: multipart/report\n\n--"})
      CHECK(parse_bounce(input).kind == report_kind::not_a_report);
  }
}
