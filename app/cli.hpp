// The command line client: petrel subcommands that talk to a node's tenant and admin APIs
// (docs/cli.md). run() returns the process exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace petrel::cli {

// Exit codes (docs/cli.md).
enum exit_code : int {
  ok = 0,
  failure = 1,       // the server could not be reached, or answered 5xx
  usage = 2,         // bad command line or CLI configuration
  rejected = 3,      // the request was refused (400, 409, 413, 415, 429)
  not_found = 4,     // 404
  unauthorized = 5,  // 401, 403: no, wrong or revoked key / token
  not_verified = 6,  // domains verify: the domain is not verified (yet)
};

// True when args[0] names a client command.
bool is_command(const std::string& name);
// The commands, a line each, and the exit codes (petrel --help).
std::string client_help();
// The exit codes as `--help` and docs/cli.md show them (one table).
const char* exit_code_table();
int run(const std::vector<std::string>& args);

struct url_parts {
  bool https = false;
  std::string host;
  std::uint16_t port = 80;
  std::string base_path;
};
bool split_url(const std::string& url, url_parts& out, std::string& error);

struct response {
  int status = 0;  // 0: no answer (error says why)
  std::string body;
  std::string error;
};
response call(const std::string& base_url, const std::string& method, const std::string& path,
              const std::string& token, const std::string& body, std::chrono::milliseconds timeout);

}  // namespace petrel::cli
