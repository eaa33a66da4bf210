// The command line client's framework (docs/cli.md): each command's flags parsed strictly from
// its spec (app/cli_commands.cpp), where to connect (flags, environment, the server's own
// configuration, the CLI config file), requests with errors that say what was tried, tables or
// JSON, the help of every command, and one table of exit codes.
#include "app/cli.hpp"

#include <unistd.h>

#include <toml++/toml.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "app/cli_support.hpp"
#include "config/config.hpp"

namespace petrel::cli {

namespace {

// The flags every command takes.
const std::vector<flag_spec>& connection_flags() {
  static const std::vector<flag_spec> all = {
      {"config", "FILE", "the server's configuration (PETREL_CONFIG): its listen addresses and admin token file"},
      {"url", "URL", "tenant API (PETREL_URL; default http://127.0.0.1:8080)"},
      {"admin-url", "URL", "admin API (PETREL_ADMIN_URL; default http://127.0.0.1:8081)"},
      {"key", "KEY", "API key (PETREL_API_KEY)"},
      {"admin-token", "TOKEN", "admin token (PETREL_ADMIN_TOKEN)"},
      {"admin-token-file", "FILE", "file with the admin token (default data/admin.token)"},
      {"cli-config", "FILE", "TOML with url, admin_url, key, admin_token, admin_token_file "
                             "(PETREL_CLI_CONFIG; default ~/.config/petrel/cli.toml)"},
      {"json", "", "print the API's JSON as it is (events: one object per line)"},
      {"help", "", "this command's help"},
  };
  return all;
}

const command_spec* find_command(const std::string& name) {
  for (const auto& spec : command_specs())
    if (spec.name == name) return &spec;
  return nullptr;
}

const flag_spec* find_flag(const command_spec& spec, const std::string& name) {
  for (const auto& f : spec.flags)
    if (f.name == name) return &f;
  for (const auto& f : connection_flags())
    if (f.name == name) return &f;
  return nullptr;
}

command_line parse(const command_spec& spec, const std::vector<std::string>& args, std::size_t from) {
  command_line c;
  c.command = spec.name;
  bool only_positional = false;
  for (std::size_t i = from; i < args.size(); ++i) {
    const auto& a = args[i];
    if (only_positional || a.rfind("--", 0) != 0 || a == "-") {
      c.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    auto name = a.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const auto* flag = find_flag(spec, name);
    if (!flag) throw usage_error("unknown flag --" + name);
    if (flag->value.empty()) {
      if (value) throw usage_error("--" + name + " takes no value");
      c.flags.push_back(name);
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) throw usage_error("--" + name + " needs a value (" + flag->value + ")");
      value = args[++i];
    }
    if (!flag->repeatable && c.options.count(name)) throw usage_error("--" + name + " is given twice");
    c.options.emplace(name, *value);
  }
  return c;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// "http://host:port" for a listener of the server's configuration, reachable from this machine
// when it listens on every address.
std::string url_of(const listen_address& l) {
  std::string host = l.host;
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(l.port);
}

connection connect_from(const command_line& c) {
  connection out;
  std::string token_file = "data/admin.token";
  std::string token_file_from = "the default data/admin.token";
  bool explicit_token_file = false;

  // 1. The CLI config file (lowest of the explicit sources).
  std::string file = c.option("cli-config");
  if (file.empty()) {
    if (const char* e = std::getenv("PETREL_CLI_CONFIG"); e && *e) file = e;
    else if (const char* home = std::getenv("HOME"); home && access((std::string(home) + "/.config/petrel/cli.toml").c_str(), R_OK) == 0)
      file = std::string(home) + "/.config/petrel/cli.toml";
  }
  if (!file.empty()) {
    toml::table t;
    try {
      t = toml::parse_file(file);
    } catch (const toml::parse_error& e) {
      throw usage_error(file + ": " + std::string(e.description()));
    }
    for (auto&& [k, v] : t) {
      std::string key(k.str());
      auto s = v.value<std::string>();
      if (!s) throw usage_error(file + ": " + key + " must be a string");
      if (key == "url") out.url = *s, out.url_from = file;
      else if (key == "admin_url") out.admin_url = *s, out.admin_url_from = file;
      else if (key == "key") out.key = *s;
      else if (key == "admin_token") out.admin_token = *s, out.token_from = file;
      else if (key == "admin_token_file") token_file = *s, token_file_from = file, explicit_token_file = true;
      else throw usage_error(file + ": unknown key " + key + " (url, admin_url, key, admin_token, admin_token_file)");
    }
  }

  // 2. The server's configuration: where it listens, and its admin token.
  std::string server = c.option("config");
  std::string server_from = "--config";
  if (server.empty())
    if (const char* e = std::getenv("PETREL_CONFIG"); e && *e) server = e, server_from = "PETREL_CONFIG";
  if (!server.empty()) {
    auto loaded = load_config(server);
    if (!loaded.errors.empty())
      throw usage_error(server_from + " " + server + ": " + loaded.errors.front().to_string());
    const auto& cfg = loaded.value;
    out.url = url_of(cfg.http.listen);
    out.url_from = server + " (http.listen, via " + server_from + ")";
    out.admin_url = url_of(cfg.admin.listen);
    out.admin_url_from = server + " (admin.listen, via " + server_from + ")";
    if (!cfg.admin.token.empty()) {
      out.admin_token = cfg.admin.token;
      out.token_from = server + " (admin.token)";
    } else {
      token_file = cfg.admin.token_file.empty() ? cfg.storage.data_dir + "/admin.token" : cfg.admin.token_file;
      token_file_from = server;
      explicit_token_file = true;
    }
  }

  // 3. The environment, 4. the flags.
  auto env = [](const char* name, std::string& target, std::string* from) {
    if (const char* e = std::getenv(name); e && *e) {
      target = e;
      if (from) *from = name;
    }
  };
  env("PETREL_URL", out.url, &out.url_from);
  env("PETREL_ADMIN_URL", out.admin_url, &out.admin_url_from);
  env("PETREL_API_KEY", out.key, nullptr);
  env("PETREL_ADMIN_TOKEN", out.admin_token, &out.token_from);
  if (c.has("url")) out.url = c.option("url"), out.url_from = "--url";
  if (c.has("admin-url")) out.admin_url = c.option("admin-url"), out.admin_url_from = "--admin-url";
  if (c.has("key")) out.key = c.option("key");
  if (c.has("admin-token")) out.admin_token = c.option("admin-token"), out.token_from = "--admin-token";
  if (c.has("admin-token-file"))
    token_file = c.option("admin-token-file"), token_file_from = "--admin-token-file", explicit_token_file = true;
  if (out.admin_token.empty() && (explicit_token_file || access(token_file.c_str(), R_OK) == 0)) {
    std::ifstream in(token_file);
    if (in) {
      std::ostringstream s;
      s << in.rdbuf();
      out.admin_token = trim(s.str());
      out.token_from = token_file + " (from " + token_file_from + ")";
    } else {
      out.token_from = token_file + " (from " + token_file_from + "), which cannot be read";
    }
  }
  return out;
}

std::string wrap(const std::string& text, std::size_t indent, std::size_t width = 96) {
  std::string out, line;
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      out += line + "\n" + std::string(indent, ' ');
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  return out + line;
}

void print_flags(const std::vector<flag_spec>& flags) {
  for (const auto& f : flags) {
    auto head = "  --" + f.name + (f.value.empty() ? "" : " " + f.value);
    if (head.size() < 26) head += std::string(26 - head.size(), ' ');
    else head += "\n" + std::string(26, ' ');
    std::printf("%s%s%s\n", head.c_str(), wrap(f.help, 26).c_str(), f.repeatable ? " (repeatable)" : "");
  }
}

void command_help(const command_spec& spec) {
  std::printf("Usage:\n");
  for (const auto& s : spec.synopsis) std::printf("  petrel %s\n", s.c_str());
  std::printf("\n%s\n", wrap(spec.summary + (spec.details.empty() ? "" : " " + spec.details), 0).c_str());
  if (!spec.flags.empty()) {
    std::printf("\nFlags:\n");
    print_flags(spec.flags);
  }
  std::printf("\nConnection (a flag, else the environment, else --config, else the CLI config file)%s:\n",
              spec.admin ? "; this command uses the admin API and its token" : "");
  print_flags(connection_flags());
  std::printf("\n%s", exit_code_table());
}

// Connection failures say what was tried and what sets it.
std::string unreachable(const connection& conn, bool admin, const std::string& error) {
  const auto& url = admin ? conn.admin_url : conn.url;
  const auto& from = admin ? conn.admin_url_from : conn.url_from;
  return "cannot reach the " + std::string(admin ? "admin API" : "tenant API") + " at " + url + " (" + from +
         "): " + error + ". Is `petrel serve` running there? " +
         (admin ? "--admin-url, PETREL_ADMIN_URL" : "--url, PETREL_URL") + " or --config FILE (the server's config) say where it listens.";
}

}  // namespace

// -- helpers for commands -------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string read_stdin() {
  std::ostringstream s;
  s << std::cin.rdbuf();
  return s.str();
}

std::string value_or_file(const std::string& value) {
  if (value == "-") return read_stdin();
  if (value.rfind("@@", 0) == 0) return value.substr(1);
  if (!value.empty() && value.front() == '@') return read_file(value.substr(1));
  return value;
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '@') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string text_of(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_bool()) return v.get_bool() ? "yes" : "no";
  if (v.is_double()) {
    // Plain decimals ("50", "0.977"), never "5E1".
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.6g", v.get_double());
    return buffer;
  }
  return json::serialize(v);
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - std::min(width[i], cells[i].size()) + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  std::vector<std::string> upper;
  for (auto h : header) {
    for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    upper.push_back(h);
  }
  line(upper);
  for (const auto& r : rows) line(r);
}

void print_objects(const json::array& items, const std::vector<std::string>& fields) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : items) {
    std::vector<std::string> row;
    for (const auto& f : fields) {
      const auto* v = item.is_object() ? item.get_object().if_contains(f) : nullptr;
      row.push_back(v ? text_of(*v) : "-");
    }
    rows.push_back(std::move(row));
  }
  print_table(fields, rows);
}

int exit_for(int status) {
  if (status >= 200 && status < 300) return ok;
  if (status == 401 || status == 403) return unauthorized;
  if (status == 404) return not_found;
  if (status >= 400 && status < 500) return rejected;
  return failure;
}

int request(const connection& conn, bool admin, const std::string& method, const std::string& path,
            const std::string& body, json::value& doc, std::string* raw) {
  const auto& base = admin ? conn.admin_url : conn.url;
  const auto& token = admin ? conn.admin_token : conn.key;
  if (token.empty())
    throw usage_error(admin ? "no admin token: --admin-token, PETREL_ADMIN_TOKEN, --config FILE (the server's "
                              "config names its token file) or --admin-token-file" +
                                  (conn.token_from.empty() ? std::string() : "; tried " + conn.token_from)
                            : std::string("no API key: --key or PETREL_API_KEY (an API key is made by "
                                          "`petrel tenants create` or printed at the first start)"));
  auto r = call(base, method, path, token, body, conn.timeout);
  if (r.status == 0) {
    std::fprintf(stderr, "petrel: %s\n", unreachable(conn, admin, r.error).c_str());
    return failure;
  }
  boost::system::error_code ec;
  doc = r.body.empty() ? json::value(nullptr) : json::parse(r.body, ec);
  if (raw) *raw = r.body;
  auto code = exit_for(r.status);
  if (code != ok) {
    std::string detail = r.body;
    if (!ec && doc.is_object())
      if (const auto* d = doc.get_object().if_contains("detail"); d && d->is_string()) detail = std::string(d->get_string());
    std::fprintf(stderr, "petrel: %d: %s\n", r.status, detail.c_str());
    if (r.status == 401 && admin && !conn.token_from.empty())
      std::fprintf(stderr, "petrel: the admin token came from %s\n", conn.token_from.c_str());
  }
  return code;
}

std::string tenant_id_of(const connection& conn, const std::string& id_or_name) {
  json::value doc;
  if (request(conn, true, "GET", "/admin/tenants", "", doc) != ok)
    throw usage_error("cannot look up tenant " + id_or_name);
  for (const auto& t : doc.at("tenants").as_array())
    if (text_of(t.at("id")) == id_or_name || text_of(t.at("name")) == id_or_name) return text_of(t.at("id"));
  throw usage_error("no tenant has the id or name \"" + id_or_name + "\" (petrel tenants list)");
}

const char* exit_code_table() {
  return "Exit codes:\n"
         "  0  done\n"
         "  1  the node could not be reached or answered 5xx (retry later); petrel serve: it failed while running\n"
         "  2  usage: a bad command line, CLI config file or server configuration\n"
         "  3  the request was refused: 400 (the message names the field), 409, 413, 415, 429 or another 4xx\n"
         "  4  not found (404)\n"
         "  5  unauthorized: no, a wrong or a revoked key or token (401, 403)\n"
         "  6  domains verify: the domain is not verified (yet)\n";
}

bool is_command(const std::string& name) { return find_command(name) != nullptr; }

std::string client_help() {
  std::string out = "Client commands (talk to a running node; petrel <command> --help for each):\n";
  for (const auto& spec : command_specs()) {
    auto head = "  " + spec.name;
    if (head.size() < 16) head += std::string(16 - head.size(), ' ');
    out += head + spec.summary + (spec.admin ? " (admin)" : "") + "\n";
  }
  out += "\nWhere to connect: --config FILE (or PETREL_CONFIG) reads the server's configuration;\n"
         "--url, --admin-url, --key, --admin-token and their PETREL_* variables override it.\n\n";
  out += exit_code_table();
  return out;
}

int run(const std::vector<std::string>& args) {
  const auto& name = args.at(0);
  const auto* spec = find_command(name);
  if (!spec) return usage;
  try {
    auto c = parse(*spec, args, 1);
    if (c.flag("help")) {
      command_help(*spec);
      return ok;
    }
    auto conn = connect_from(c);
    return spec->run(c, conn);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "petrel %s: %s (petrel %s --help)\n", name.c_str(), e.what(), name.c_str());
    return usage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "petrel %s: unexpected answer: %s\n", name.c_str(), e.what());
    return failure;
  }
}

}  // namespace petrel::cli
