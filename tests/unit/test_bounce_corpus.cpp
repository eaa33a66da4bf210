// The bounce parser and classifier against real mail no one here wrote: every file of
// tests/data/bounces (Sisimai's set-of-emails) is parsed and classified with the shipped rules,
// and compared with what Sisimai 4.25.15 read from it (labels.jsonl, see its README.md).
#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config/bounce_rules.hpp"
#include "net/mail/bounce.hpp"
#include "net/mail/bounce_parser.hpp"

using namespace petrel;
namespace fs = std::filesystem;

namespace {

const fs::path data_dir = PETREL_TESTDATA_DIR;

// PETREL_BOUNCE_CORPUS=dir runs the comparison on another collection laid out like
// tests/data/bounces (emails/ and labels.jsonl with Sisimai's reading): the figures are printed,
// the shipped corpus's file count and documented exceptions are not checked. With
// PETREL_BOUNCE_CORPUS_VERBOSE=1 every compared row is printed.
fs::path corpus_dir() {
  const char* dir = std::getenv("PETREL_BOUNCE_CORPUS");
  return dir && *dir ? fs::path(dir) : data_dir / "bounces";
}
bool external_corpus() {
  const char* dir = std::getenv("PETREL_BOUNCE_CORPUS");
  return dir && *dir;
}
bool verbose() {
  const char* v = std::getenv("PETREL_BOUNCE_CORPUS_VERBOSE");
  return v && *v && std::string(v) != "0";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct label {
  std::string file;
  bool parsed = false;
  std::string recipient, reason, status, action, feedback_type;
  int softbounce = -1;
};

std::vector<label> read_labels() {
  std::vector<label> out;
  std::ifstream in(corpus_dir() / "labels.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto object = boost::json::parse(line).as_object();
    auto text = [&](const char* key) {
      auto* v = object.if_contains(key);
      return v && v->is_string() ? std::string(v->as_string().c_str()) : std::string();
    };
    label l;
    l.file = text("file");
    l.parsed = object.at("parsed").to_number<int>() == 1;
    l.recipient = text("recipient");
    l.reason = text("reason");
    l.status = text("deliverystatus");
    l.action = text("action");
    l.feedback_type = text("feedbacktype");
    if (auto* soft = object.if_contains("softbounce")) l.softbounce = soft->to_number<int>();
    out.push_back(std::move(l));
  }
  return out;
}

// Where Petrel reads a file differently from Sisimai, and why. Each entry must still disagree
// (a stale entry fails the test), and each counts as a disagreement in the rates below.
struct exception_entry {
  const char* file;
  const char* what;  // "recipient", "hardness", "kind"
  const char* reason;
};

// Reasons shared by several files: each is a principle of net/mail/bounce.hpp ("When a failure
// is hard") where Sisimai reads the file from what it knows of one mail system.
constexpr const char* phrase_only =
    "only a phrase says the user is unknown: no address status, no sign that it answered RCPT TO, "
    "no named address; Petrel does not suppress on a phrase alone (content filters say it too); "
    "Sisimai reads it hard from its module for this mail system";
constexpr const char* signals_disagree =
    "the status names another cause than the text (5.7.1 policy vs 'Invalid recipient'): when "
    "the signals disagree the failure is soft";
constexpr const char* too_vague =
    "the text does not say why (InterScan 'Unable to deliver message', '542 Rejected'): "
    "Petrel will not suppress an address on it; Sisimai guesses userunknown";
constexpr const char* same_reply_read_hard =
    "the reply names the refused address as unknown ('550 5.2.1 <a>... User Unknown', '550 <a>: "
    "User unknown'), which Sisimai itself reads as userunknown in other files (lhost-powermta-01, "
    "lhost-yandex-02, rfc3464-58); here its module for this mail system says filtered";
constexpr const char* gmail_text =
    "'The email account that you tried to reach does not exist' is Gmail's reply to RCPT TO for "
    "5.1.1; Sisimai reads filtered because this DSN carries no status of its own";

const std::vector<exception_entry> exceptions = {
    {"arf-12.eml", "recipient",
     "the report names no recipient (To: <Undisclosed Recipients>); Sisimai invents a placeholder, "
     "Petrel reports the Removal-Recipient the report does give"},
    {"arf-15.eml", "recipient", "no usable recipient in the report; Sisimai invents a placeholder, Petrel reports none"},
    {"arf-26.eml", "kind",
     "Apple Mail's one-click unsubscribe (X-Apple-Unsubscribe: true): an opt-out Petrel must act on, "
     "so feedback/opt-out; Sisimai calls it vacation because it is Auto-Submitted: auto-replied"},
    {"lhost-domino-03.eml", "recipient",
     "the DSN's Final-Recipient (and the returned message's Received: for) say @neko.example.org; "
     "only the prose says @neko.example.com: Petrel trusts the machine-readable field"},
    {"lhost-fml-02.eml", "recipient", "an FML mailing-list 'you are not a member' reply, not a delivery report"},
    {"lhost-fml-02.eml", "kind", "as above"},
    {"lhost-bigfoot-02.eml", "hardness", signals_disagree},
    {"lhost-exim-37.eml", "hardness",
     "'553 neko.example.com does not exist' after end of DATA: the recipient's domain had taken RCPT TO, "
     "so the domain said not to exist is another one (a header's); not hard after DATA"},
    {"lhost-imailserver-03.eml", "hardness", phrase_only},
    {"lhost-verizon-02.eml", "hardness", phrase_only},
    {"lhost-messagingserver-06.eml", "hardness", same_reply_read_hard},
    {"lhost-postfix-07.eml", "hardness", same_reply_read_hard},
    {"lhost-mfilter-02.eml", "hardness",
     "m-FILTER reports the failure at 'SMTP command DATA', so Petrel does not call it hard; Sisimai "
     "does here but not for the same situation in lhost-mfilter-01"},
    {"lhost-postfix-13.eml", "hardness",
     "the DSN says 5.2.1 User Unknown for this recipient; Sisimai reports mailbox full (the other recipient's reason)"},
    {"lhost-receivingses-01.eml", "hardness",
     "Status 5.1.1 and '550 5.1.1 Mailbox does not exist', the two most trusted signals, say the mailbox "
     "does not exist; Sisimai's module for SES says filtered"},
    {"lhost-trendmicro-02.eml", "hardness", too_vague},
    {"lhost-trendmicro-03.eml", "hardness", too_vague},
    {"rhost-messagelabs-03.eml", "hardness", too_vague},
    {"rfc3464-42.eml", "hardness", gmail_text},
    {"rfc3464-66.eml", "hardness", gmail_text},
};

// Files of not-bounces/ that are bounces after all.
const std::vector<exception_entry> not_bounce_exceptions = {
    {"rb-issue-368-bug.eml", "kind",
     "a real bounce: From postmaster, Return-Path <>, 'an email you sent was rejected ... reject reason: "
     "Mailbox full, target mail address: xxxx@yyyyyy.net' with the returned message; Petrel reports it"},
};

const exception_entry* find_exception(const std::string& file, const std::string& what) {
  if (external_corpus()) return nullptr;
  for (const auto& e : exceptions)
    if (file == e.file && what == e.what) return &e;
  return nullptr;
}

// The mail system a corpus file comes from: "lhost-postfix-07.eml" -> "lhost-postfix".
std::string mail_system(const std::string& file) {
  auto dash = file.rfind('-');
  return dash == std::string::npos ? file : file.substr(0, dash);
}

struct corpus {
  bounce_classifier classifier;
  std::map<std::string, bounce_report> reports;
};

const corpus& load_corpus() {
  static const corpus c = [] {
    auto rules = load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
    if (!rules) throw std::runtime_error(rules.error());
    corpus out{bounce_classifier(*rules), {}};
    for (const auto& entry : fs::directory_iterator(corpus_dir() / "emails"))
      out.reports.emplace(entry.path().filename().string(), parse_bounce(read_file(entry.path())));
    return out;
  }();
  return c;
}

const bounce_recipient* find_recipient(const bounce_report& report, const std::string& address) {
  for (const auto& r : report.recipients)
    if (lower(r.address) == lower(address)) return &r;
  return nullptr;
}

std::string describe(const bounce_report& report) {
  std::string out = std::string(to_string(report.kind)) + (report.standard ? " standard" : " heuristic") + " [";
  for (const auto& r : report.recipients) out += r.address + " ";
  return out + "]";
}

struct tally {
  int agreed = 0, total = 0;
  std::vector<std::string> disagreements;     // not documented as exceptions
  std::map<std::string, bool> excepted_seen;  // "file what" -> disagreed on some row
  double rate() const { return total ? 100.0 * agreed / total : 100.0; }
  void count(bool agree, const std::string& file, const std::string& what, const std::string& detail) {
    ++total;
    agreed += agree ? 1 : 0;
    if (find_exception(file, what)) {
      excepted_seen[file + " " + what] |= !agree;
    } else if (!agree) {
      disagreements.push_back(file + " " + what + ": " + detail);
    }
  }
  // Documented exceptions whose rows all agree now.
  std::vector<std::string> stale() const {
    std::vector<std::string> out;
    for (const auto& [key, disagreed] : excepted_seen)
      if (!disagreed) out.push_back(key);
    return out;
  }
};

}  // namespace

TEST_CASE("bounce corpus: recipients, hard/soft and report kinds agree with Sisimai", "[bounce][corpus]") {
  const auto& c = load_corpus();
  auto labels = read_labels();
  if (!external_corpus()) {
    REQUIRE(labels.size() > 400);
    REQUIRE(c.reports.size() == 429);
  }

  tally recipients, hardness, feedback, kinds;
  // The costly error: Sisimai reads a temporary failure, Petrel a hard one (it would suppress
  // an address that works). And the other way round.
  int sisimai_soft = 0, sisimai_hard = 0, false_hard = 0, false_soft = 0;
  std::map<std::string, int> false_hard_by_system;
  for (const auto& l : labels) {
    auto it = c.reports.find(l.file);
    REQUIRE(it != c.reports.end());
    const auto& report = it->second;
    if (!l.parsed || l.recipient.empty()) continue;
    const auto* found = find_recipient(report, l.recipient);
    recipients.count(found != nullptr, l.file, "recipient", "want " + l.recipient + ", got " + describe(report));

    if (l.reason == "vacation") {
      kinds.count(report.kind == report_kind::auto_reply, l.file, "kind", "want auto_reply, got " + describe(report));
    } else if (l.reason == "feedback" || l.file.rfind("arf-", 0) == 0) {
      feedback.count(report.kind == report_kind::feedback, l.file, "kind", "want feedback, got " + describe(report));
    } else if (l.reason == "delivered") {
      bool delivered = found && found->action == "delivered";
      kinds.count(delivered, l.file, "kind", "want action delivered, got " + describe(report));
    } else {
      kinds.count(report.kind == report_kind::delivery_failure, l.file, "kind",
                  "want delivery_failure, got " + describe(report));
    }

    if (l.softbounce == 0 || l.softbounce == 1) {
      const auto* r = found ? found : (report.recipients.empty() ? nullptr : &report.recipients.front());
      bounce_recipient none;
      if (!r) r = &none;
      auto verdict = c.classifier.classify(r->reply_code, r->status, r->diagnostic, r->remote_mta, r->command);
      bool want_hard = l.softbounce == 0;
      (want_hard ? sisimai_hard : sisimai_soft) += 1;
      if (!want_hard && verdict.hard) {
        ++false_hard;
        ++false_hard_by_system[mail_system(l.file)];
      }
      if (want_hard && !verdict.hard) ++false_soft;
      if (verbose())
        std::printf("row %s %s: sisimai %s %s %s | petrel %s %s %s %s rule %d cmd %s | %s\n", l.file.c_str(),
                    l.recipient.c_str(), want_hard ? "hard" : "soft", l.reason.c_str(), l.status.c_str(),
                    verdict.hard ? "hard" : "soft", std::string(to_string(verdict.category)).c_str(),
                    verdict.reason.c_str(), verdict.enhanced.c_str(), verdict.rule, r->command.c_str(),
                    r->diagnostic.substr(0, 200).c_str());
      hardness.count(verdict.hard == want_hard, l.file, "hardness",
                     std::string(want_hard ? "want hard" : "want soft") + " (" + l.reason + " " + l.status +
                         "), got " + std::string(to_string(verdict.category)) + " " + verdict.enhanced +
                         " rule " + std::to_string(verdict.rule) + " code " + std::to_string(r->reply_code) +
                         " status " + r->status + " | " + r->diagnostic.substr(0, 300));
    }
  }

  std::printf("bounce corpus: recipients %d/%d (%.1f%%), hard/soft %d/%d (%.1f%%), feedback %d/%d, kinds %d/%d\n",
              recipients.agreed, recipients.total, recipients.rate(), hardness.agreed, hardness.total,
              hardness.rate(), feedback.agreed, feedback.total, kinds.agreed, kinds.total);
  auto percent = [](int n, int of) { return of ? 100.0 * n / of : 0.0; };
  std::printf("bounce corpus: false-hard %d of %d soft (%.1f%%), false-soft %d of %d hard (%.1f%%)\n", false_hard,
              sisimai_soft, percent(false_hard, sisimai_soft), false_soft, sisimai_hard,
              percent(false_soft, sisimai_hard));
  for (const auto& [system, n] : false_hard_by_system) std::printf("  false-hard in %s: %d\n", system.c_str(), n);
  std::printf("documented exceptions: %zu (listed in %s)\n", exceptions.size(), __FILE__);
  for (const auto* t : {&recipients, &hardness, &feedback, &kinds})
    for (const auto& d : t->disagreements) std::printf("  undocumented disagreement: %s\n", d.c_str());
  std::fflush(stdout);

  if (external_corpus()) return;  // figures only
  std::vector<std::string> stale;
  for (const auto* t : {&recipients, &hardness, &feedback, &kinds}) {
    auto more = t->stale();
    stale.insert(stale.end(), more.begin(), more.end());
  }
  INFO("documented exceptions that agree with Sisimai now (remove them): " << Catch::Detail::stringify(stale));
  CHECK(stale.empty());

  REQUIRE(recipients.rate() >= 95.0);
  REQUIRE(hardness.rate() >= 90.0);
  REQUIRE(feedback.disagreements.empty());
  // A hard reading suppresses the address for good: at most 3 % of Sisimai's soft ones.
  REQUIRE(percent(false_hard, sisimai_soft) <= 3.0);
}

namespace {

// The words by which a rule's comment or provider names the mail system of a corpus file
// ("lhost-exchange2007-04.eml": Exchange); the system's own name when it is not listed.
std::vector<std::string> system_words(const std::string& system) {
  auto name = system.substr(system.find('-') + 1);
  static const std::map<std::string, std::vector<std::string>> aliases = {
      {"exchange2003", {"exchange", "microsoft"}}, {"exchange2007", {"exchange", "microsoft"}},
      {"office365", {"office 365", "exchange", "microsoft"}}, {"outlook", {"outlook", "hotmail", "microsoft"}},
      {"microsoft", {"microsoft", "outlook", "hotmail", "exchange", "office 365"}},
      {"gmail", {"gmail", "google"}}, {"google", {"gmail", "google"}}, {"gsuite", {"gmail", "google"}},
      {"googlegroups", {"gmail", "google"}}, {"yahoo", {"yahoo"}}, {"yahooinc", {"yahoo", "aol"}},
      {"aol", {"aol", "yahoo"}}, {"amazonses", {"ses", "amazon"}}, {"receivingses", {"ses", "amazon"}},
      {"amazonworkmail", {"amazon"}}, {"domino", {"domino", "notes"}}, {"notes", {"notes", "domino"}},
      {"mailru", {"mail.ru"}}, {"imailserver", {"imail"}}, {"tencent", {"qq", "tencent"}},
      {"apple", {"icloud", "apple"}}, {"gmx", {"gmx", "web.de"}}, {"v5sendmail", {"sendmail"}},
      {"kddi", {"kddi", "ezweb", "au "}}, {"ezweb", {"ezweb", "kddi"}}, {"nttdocomo", {"docomo"}}};
  auto found = aliases.find(name);
  return found != aliases.end() ? found->second : std::vector<std::string>{name};
}

bool rule_names_system(const bounce_rule& rule, const std::vector<std::string>& words) {
  auto text = lower(rule.comment + " " + rule.provider);
  return std::any_of(words.begin(), words.end(), [&](const std::string& w) { return text.find(w) != std::string::npos; });
}

}  // namespace

// How the rules do on mail systems they were not written for: for each mail system of the
// corpus, the rules whose comment or provider names it are taken out, and its files are scored
// with the rest (the parser's readers stay: they are code, not rules).
TEST_CASE("bounce corpus: leaving whole mail systems out of the rules", "[bounce][corpus]") {
  const auto& c = load_corpus();
  auto labels = read_labels();
  auto rules = load_bounce_rules(std::string(PETREL_SOURCE_DIR) + "/config/bounce_rules.toml");
  REQUIRE(rules);
  std::map<std::string, std::vector<const label*>> by_system;
  for (const auto& l : labels)
    if (l.parsed && (l.softbounce == 0 || l.softbounce == 1)) by_system[mail_system(l.file)].push_back(&l);
  int agreed = 0, total = 0, soft = 0, false_hard = 0, systems_with_rules = 0, rules_removed = 0;
  for (const auto& [system, rows] : by_system) {
    auto words = system_words(system);
    std::vector<bounce_rule> kept;
    for (const auto& rule : *rules)
      if (!rule_names_system(rule, words)) kept.push_back(rule);
    auto removed = static_cast<int>(rules->size() - kept.size());
    systems_with_rules += removed > 0 ? 1 : 0;
    rules_removed += removed;
    bounce_classifier without(kept);
    for (const auto* l : rows) {
      const auto& report = c.reports.at(l->file);
      const auto* r = find_recipient(report, l->recipient);
      if (!r && !report.recipients.empty()) r = &report.recipients.front();
      bounce_recipient none;
      if (!r) r = &none;
      bool hard = without.classify(r->reply_code, r->status, r->diagnostic, r->remote_mta, r->command).hard;
      bool want_hard = l->softbounce == 0;
      ++total;
      agreed += hard == want_hard ? 1 : 0;
      soft += want_hard ? 0 : 1;
      false_hard += !want_hard && hard ? 1 : 0;
    }
  }
  double agreement = total ? 100.0 * agreed / total : 100.0;
  double false_hard_rate = soft ? 100.0 * false_hard / soft : 0.0;
  std::printf("bounce corpus, each mail system without its own rules (%d systems had %d rules): "
              "hard/soft %d/%d (%.1f%%), false-hard %d of %d soft (%.1f%%)\n",
              systems_with_rules, rules_removed, agreed, total, agreement, false_hard, soft, false_hard_rate);
  std::fflush(stdout);
  if (external_corpus()) return;
  CHECK(agreement >= 90.0);
  CHECK(false_hard_rate <= 3.0);
}

TEST_CASE("bounce corpus: every ARF report is a complaint", "[bounce][corpus]") {
  const auto& c = load_corpus();
  for (const auto& [file, report] : c.reports) {
    if (file.rfind("arf-", 0) != 0) continue;
    INFO(file << ": " << describe(report));
    CHECK(report.kind == report_kind::feedback);
  }
}

TEST_CASE("bounce corpus: ordinary mail is never a delivery failure", "[bounce][corpus]") {
  for (const auto& entry : fs::directory_iterator(data_dir / "not-bounces")) {
    auto file = entry.path().filename().string();
    auto report = parse_bounce(read_file(entry.path()));
    INFO(file << ": " << describe(report));
    bool excepted = std::any_of(not_bounce_exceptions.begin(), not_bounce_exceptions.end(),
                                [&](const exception_entry& e) { return file == e.file; });
    if (excepted) {
      CHECK(report.kind == report_kind::delivery_failure);  // still read as the bounce it is
      continue;
    }
    CHECK((report.kind == report_kind::not_a_report || report.kind == report_kind::auto_reply));
  }
}

TEST_CASE("bounce corpus: what a parsed report carries", "[bounce][corpus]") {
  const auto& c = load_corpus();
  SECTION("a Postfix DSN") {
    const auto& report = c.reports.at("rhost-google-02.eml");
    REQUIRE(report.kind == report_kind::delivery_failure);
    REQUIRE(report.recipients.size() == 1);
    const auto& r = report.recipients.front();
    CHECK(r.address == "neko-nyaan@example.org");
    CHECK(r.action == "failed");
    CHECK(r.status == "5.1.1");
    CHECK(r.reply_code == 550);
    CHECK_THAT(r.diagnostic, Catch::Contains("does not exist"));
    CHECK(r.remote_mta == "aspmx.l.google.com");
    CHECK(report.original_message_id.front() == '<');
    CHECK_FALSE(report.original_headers.empty());
    auto verdict = c.classifier.classify(r.reply_code, r.status, r.diagnostic, r.remote_mta, r.command);
    CHECK(verdict.category == bounce_category::invalid_recipient);
    CHECK(verdict.hard);
  }
  SECTION("a qmail bounce without MIME") {
    const auto& report = c.reports.at("lhost-qmail-01.eml");
    REQUIRE(report.kind == report_kind::delivery_failure);
    CHECK_FALSE(report.standard);
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients.front().address == "kijitora@example.ne.jp");
    CHECK(report.recipients.front().reply_code == 550);
    CHECK(report.original_message_id == "<000000000.9999999999999.JavaMail.postmaster@mailhub>");
    CHECK(report.original_subject == "Message");
  }
  SECTION("an ARF complaint") {
    const auto& report = c.reports.at("arf-02.eml");
    REQUIRE(report.kind == report_kind::feedback);
    CHECK(report.standard);
    CHECK(report.feedback_type == "abuse");
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients.front().address == "this-local-part-does-not-exist-on-yahoo@yahoo.com");
  }
  SECTION("an auto-reply") {
    const auto& report = c.reports.at("rfc3834-02.eml");
    CHECK(report.kind == report_kind::auto_reply);
  }
  SECTION("a delivered notification") {
    const auto& report = c.reports.at("lhost-amazonses-12.eml");
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients.front().action == "delivered");
    CHECK(c.classifier.classify(report.recipients.front().reply_code, report.recipients.front().status, "").category ==
          bounce_category::none);
  }
}
