// The command line client's parts shared by its framework (app/cli.cpp: parsing, connection,
// help, exit codes) and its commands (app/cli_commands.cpp). Internal to the CLI.
#pragma once

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/cli.hpp"

namespace petrel::cli {

namespace json = boost::json;

// A bad command line: exit code 2, with the command's help pointed to.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One flag of a command: "--name VALUE" (value names the placeholder) or a switch (value "").
struct flag_spec {
  std::string name;
  std::string value;
  std::string help;
  bool repeatable = false;
};

// Where to connect and with what, and where each setting came from (for error messages).
struct connection {
  std::string url = "http://127.0.0.1:8080";
  std::string admin_url = "http://127.0.0.1:8081";
  std::string key;
  std::string admin_token;
  std::string url_from = "the default (--url, PETREL_URL or --config set it)";
  std::string admin_url_from = "the default (--admin-url, PETREL_ADMIN_URL or --config set it)";
  std::string token_from;  // where the admin token was read from
  std::chrono::milliseconds timeout{30000};
};

// A parsed command line: positional arguments, options (repeatable) and switches.
struct command_line {
  std::string command;
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  std::vector<std::string> flags;

  bool flag(const std::string& name) const {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
  }
  std::string option(const std::string& name, const std::string& fallback = {}) const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  bool has(const std::string& name) const { return options.count(name) > 0; }
  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = options.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
  std::string arg(std::size_t i, const char* what) const {
    if (i >= positional.size()) throw usage_error(std::string("missing ") + what);
    return positional[i];
  }
};

// A command: its name, synopsis lines, what it does, its flags (besides the connection flags
// every command takes) and whether it uses the admin API.
struct command_spec {
  std::string name;
  std::vector<std::string> synopsis;
  std::string summary;  // one line, for `petrel --help`
  std::string details;  // paragraphs, for `petrel <command> --help`
  std::vector<flag_spec> flags;
  bool admin = false;
  int (*run)(const command_line&, const connection&) = nullptr;
};

// Every client command (app/cli_commands.cpp).
const std::vector<command_spec>& command_specs();

// -- helpers for commands -------------------------------------------------------------------

std::string read_file(const std::string& path);
std::string read_stdin();
// A flag's value, where "-" reads standard input and "@path" a file ("@@..." is a literal "@...").
std::string value_or_file(const std::string& value);
std::string percent_encode(const std::string& s);
std::string text_of(const json::value& v);
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
void print_objects(const json::array& items, const std::vector<std::string>& fields);

// Sends a request; on failure prints why and returns the exit code (else ok with `doc` set).
int request(const connection& conn, bool admin, const std::string& method, const std::string& path,
            const std::string& body, json::value& doc, std::string* raw = nullptr);

// Prints the JSON of an answer (--json) or calls `human`.
template <class F>
int answer(const command_line& c, int code, const std::string& raw, F&& human) {
  if (code != ok) return code;
  if (c.flag("json")) std::printf("%s\n", raw.c_str());
  else human();
  return ok;
}

// A tenant named by its id or by its name -> its id (admin API); usage_error when none.
std::string tenant_id_of(const connection& conn, const std::string& id_or_name);

}  // namespace petrel::cli
