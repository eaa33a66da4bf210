// The petrel command: "petrel serve --config FILE" runs a node; --help explains the rest.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "app/server.hpp"
#include "config/config.hpp"

namespace {

constexpr const char* version = "0.1.0";

void usage(std::FILE* out) {
  std::fprintf(out,
               "petrel %s - outbound email delivery server\n"
               "\n"
               "Usage:\n"
               "  petrel serve [--config FILE] [--check]   run a node (or only check the config)\n"
               "  petrel --version                         print the version\n"
               "  petrel --help                            this text\n"
               "  petrel <command> --help                  help on a command\n"
               "\n"
               "Documentation: docs/ (configuration.md, api.md, operations.md, cli.md).\n"
               "\n%s",
               version, petrel::cli::client_help().c_str());
}

void serve_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: petrel serve [--config FILE] [--check]\n"
               "\n"
               "Runs a Petrel node: the submission API, the admin API and the delivery actors,\n"
               "on the store the configuration names (embedded SQLite by default). Stops cleanly\n"
               "on SIGTERM or SIGINT: listeners stop, pending store commits finish, exit 0.\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE  TOML configuration; every key has a default, so the file\n"
               "                     holds only what differs (see config/petrel.toml)\n"
               "      --check        validate the configuration and exit: 0 valid, 2 invalid\n"
               "  -h, --help         this text\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("petrel %s\n", version);
    return 0;
  }
  // `petrel --config FILE <command> ...`: the server's configuration for a client command.
  if ((args[0] == "--config" || args[0] == "-c") && args.size() >= 3 && petrel::cli::is_command(args[2])) {
    std::vector<std::string> moved = {args[2], "--config", args[1]};
    moved.insert(moved.end(), args.begin() + 3, args.end());
    args = std::move(moved);
  }
  if (petrel::cli::is_command(args[0])) return petrel::cli::run(args);
  if (args[0] != "serve") {
    std::fprintf(stderr, "petrel: unknown command \"%s\" (see petrel --help)\n", args[0].c_str());
    return 2;
  }
  std::string config_path;
  bool check_only = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--help" || a == "-h") {
      serve_usage(stdout);
      return 0;
    }
    if (a == "--check") {
      check_only = true;
    } else if (a == "--config" || a == "-c") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "petrel serve: %s needs a file name\n", a.c_str());
        return 2;
      }
      config_path = args[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else {
      std::fprintf(stderr, "petrel serve: unknown option \"%s\" (see petrel serve --help)\n",
                   a.c_str());
      return 2;
    }
  }
  petrel::config_result loaded;
  if (config_path.empty()) {
    loaded = petrel::load_config_text("", "(defaults)");
  } else {
    loaded = petrel::load_config(config_path);
  }
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "petrel: the configuration is invalid (%zu error%s)\n",
                 loaded.errors.size(), loaded.errors.size() == 1 ? "" : "s");
    return 2;
  }
  if (check_only) {
    std::printf("%s: configuration is valid\n", loaded.value.source.c_str());
    return 0;
  }
  return petrel::run_server(loaded.value);
}
