// Bounce handling speed, one thread: parsing the real corpus (tests/data/bounces/emails: DSNs, ARF
// and non-standard bounces) and classifying SMTP replies with the shipped rules. Run by
// bench/bounces.sh; prints one line per case.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/shipped_rules.hpp"
#include "net/mail/bounce.hpp"
#include "net/mail/bounce_parser.hpp"

using namespace petrel;

namespace {

template <class F>
void measure(const char* name, std::size_t items_per_round, F&& round) {
  std::size_t n = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{0};
  while (elapsed.count() < 2.0) {  // two seconds per case
    round();
    n += items_per_round;
    elapsed = std::chrono::steady_clock::now() - start;
  }
  std::printf("%-34s %9.0f /s (%.1f us each)\n", name, n / elapsed.count(), 1e6 * elapsed.count() / n);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "tests/data/bounces/emails";
  std::vector<std::string> corpus;
  std::size_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".eml") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    corpus.push_back(text.str());
    bytes += corpus.back().size();
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "no .eml files in %s\n", dir.c_str());
    return 1;
  }
  std::printf("corpus: %zu messages, %.1f KB average\n", corpus.size(), bytes / 1024.0 / corpus.size());
  std::size_t sink = 0;
  measure("parse_bounce (corpus)", corpus.size(), [&] {
    for (const auto& m : corpus) sink += parse_bounce(m).recipients.size();
  });
  auto rules = load_bounce_rules_text(shipped_bounce_rules_text(), "shipped");
  bounce_classifier classifier(rules.value());
  const std::vector<std::pair<int, std::string>> replies = {
      {550, "5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"},
      {421, "4.7.0 [192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited."},
      {554, "5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org"},
      {452, "4.2.2 The email account that you tried to reach is over quota."},
      {451, "4.3.0 Temporary failure, try again later"},
      {550, "Requested action not taken: mailbox unavailable"},
  };
  measure("classify (SMTP replies)", replies.size(), [&] {
    for (const auto& [code, text] : replies) sink += static_cast<std::size_t>(classifier.classify(code, "", text).category);
  });
  std::vector<bounce_report> reports;
  for (const auto& m : corpus) reports.push_back(parse_bounce(m));
  std::size_t diagnostics = 0;
  for (const auto& r : reports) diagnostics += r.recipients.size();
  measure("classify (corpus diagnostics)", diagnostics, [&] {
    for (const auto& r : reports)
      for (const auto& x : r.recipients)
        sink += static_cast<std::size_t>(classifier.classify(x.reply_code, x.status, x.diagnostic, x.remote_mta, x.command).category);
  });
  return sink == 42 ? 1 : 0;
}
