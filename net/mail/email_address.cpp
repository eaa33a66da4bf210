// Address parsing and normalization (see email_address.hpp).
#include "net/mail/email_address.hpp"

#include <arpa/inet.h>
#include <idn2.h>

#include <algorithm>
#include <cstring>

namespace petrel {

bool is_atext(unsigned char c) {
  if (c >= 0x80) return true;  // UTF-8 octets (RFC 6531 extends atext); validated separately
  if (std::isalnum(c)) return true;
  return std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != 0;
}

namespace {

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Checks a dot-atom or quoted-string local part.
std::string check_local_part(std::string_view local) {
  if (local.empty()) return "the local part (before @) is empty";
  if (local.size() > max_local_part_octets)
    return "the local part is longer than 64 octets (RFC 5321 4.5.3.1.1)";
  if (!is_clean_utf8(local, false)) return "the local part has control characters or invalid UTF-8";
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return "unterminated quoted local part";
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(local[i]);
      if (c == '\\') {
        if (i + 2 >= local.size()) return "dangling backslash in the quoted local part";
        ++i;
        continue;
      }
      if (c == '"') return "unescaped quote inside the quoted local part";
    }
    return {};
  }
  if (local.front() == '.' || local.back() == '.') return "the local part starts or ends with a dot";
  for (std::size_t i = 0; i < local.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(local[i]);
    if (c == '.') {
      if (local[i + 1] == '.') return "the local part has two dots in a row";
      continue;
    }
    if (!is_atext(c))
      return std::string("the local part has a character that needs quoting: '") +
             static_cast<char>(c) + "'";
  }
  return {};
}

}  // namespace

std::string check_ascii_domain(std::string_view domain) {
  if (domain.empty()) return "the domain is empty";
  if (domain.size() > 253) return "the domain is longer than 253 octets";
  if (domain.find('.') == std::string_view::npos)
    return "the domain " + quoted(domain) + " has no dot (not a public domain)";
  std::size_t start = 0;
  while (start <= domain.size()) {
    auto end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    auto label = domain.substr(start, end - start);
    if (label.empty()) return "the domain " + quoted(domain) + " has an empty label";
    if (label.size() > 63) return "a label of the domain is longer than 63 octets";
    if (label.front() == '-' || label.back() == '-')
      return "a label of the domain starts or ends with a hyphen";
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
        return std::string("the domain has an invalid character '") + c + "'";
    start = end + 1;
  }
  auto tld = domain.substr(domain.rfind('.') + 1);
  if (std::all_of(tld.begin(), tld.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return "the domain's last label is numeric (use [address] for an IP literal)";
  return {};
}

namespace {

std::string check_domain(std::string_view domain, std::string& ascii) {
  if (domain.size() > max_domain_octets) return "the domain is longer than 255 octets";
  if (!domain.empty() && domain.front() == '[') {
    if (domain.back() != ']') return "unterminated address literal";
    auto inner = std::string(domain.substr(1, domain.size() - 2));
    unsigned char buf[16];
    if (inner.rfind("IPv6:", 0) == 0) {
      if (inet_pton(AF_INET6, inner.c_str() + 5, buf) != 1) return "invalid IPv6 address literal";
    } else if (inet_pton(AF_INET, inner.c_str(), buf) != 1) {
      return "invalid IPv4 address literal";
    }
    ascii = std::string(domain);
    return {};
  }
  if (has_non_ascii(domain)) {
    if (!is_clean_utf8(domain, false)) return "the domain is not valid UTF-8";
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(std::string(domain).c_str(), &out,
                              IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      std::string reason = std::string("the internationalized domain is invalid: ") +
                           idn2_strerror(rc);
      return reason;
    }
    ascii = lower_ascii(out);
    idn2_free(out);
  } else {
    ascii = lower_ascii(domain);
    // An A-label must be what IDNA 2008 makes of some U-label: decode and encode it again.
    if (ascii.rfind("xn--", 0) == 0 || ascii.find(".xn--") != std::string::npos) {
      char* unicode = nullptr;
      int rc = idn2_to_unicode_8z8z(ascii.c_str(), &unicode, 0);
      std::string back;
      if (rc == IDN2_OK) {
        char* again = nullptr;
        rc = idn2_to_ascii_8z(unicode, &again, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        if (rc == IDN2_OK) back = lower_ascii(again);
        idn2_free(again);
      }
      idn2_free(unicode);
      if (rc != IDN2_OK || back != ascii)
        return "the domain " + quoted(domain) + " has an A-label (xn--) that is not valid IDNA";
    }
  }
  return check_ascii_domain(ascii);
}

bool is_dot_atom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (s[i + 1] == '.') return false;
      continue;
    }
    if (!is_atext(c)) return false;
  }
  return true;
}

// RFC 5321 4.1.2: a quoted local part whose content is a valid dot-atom names the same mailbox
// as the unquoted one; quoted-pairs stand for the character they escape.
std::string canonical_local(std::string_view local) {
  if (local.empty() || local.front() != '"') return std::string(local);
  std::string content;
  for (std::size_t i = 1; i + 1 < local.size(); ++i) {
    if (local[i] == '\\' && i + 2 < local.size()) ++i;
    content.push_back(local[i]);
  }
  if (is_dot_atom(content)) return content;
  return quoted_string(content);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string quoted_string(std::string_view content) {
  std::string out = "\"";
  out.reserve(content.size() + 2);
  for (char c : content) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

bool has_non_ascii(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

bool mailbox::needs_smtputf8() const { return has_non_ascii(local_part); }

namespace {

// True when none of the 8 bytes is a control character (below 0x20 or 0x7f) or non-ASCII.
bool printable_ascii_word(const char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  auto below_space = (w - ones * 0x20) & ~w & highs;          // a byte < 0x20
  auto del = ((w ^ (ones * 0x7f)) - ones) & ~(w ^ (ones * 0x7f)) & highs;  // a byte == 0x7f
  return ((w & highs) | below_space | del) == 0;
}

}  // namespace

bool is_clean_utf8(std::string_view text, bool allow_tab, bool allow_line_breaks) {
  std::size_t i = 0;
  while (i < text.size()) {
    // Plain text is mostly printable ASCII: eight octets at a time.
    while (i + 8 <= text.size() && printable_ascii_word(text.data() + i)) i += 8;
    if (i >= text.size()) break;
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      bool allowed = c >= 0x20 ? c != 0x7f
                               : (allow_tab && c == '\t') || (allow_line_breaks && (c == '\r' || c == '\n'));
      if (!allowed) return false;
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= text.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp >= 0x80 && cp < 0xA0) return false;  // C1 controls
    i += n + 1;
  }
  return true;
}

parsed<mailbox> parse_address(std::string_view text) {
  if (text.empty()) return parsed<mailbox>::failure("the address is empty");
  if (text.size() > max_path_octets)
    return parsed<mailbox>::failure("the address is longer than 254 octets");
  // The last @ separates: a quoted local part may itself contain @.
  auto at = text.rfind('@');
  if (at == std::string_view::npos)
    return parsed<mailbox>::failure("the address " + quoted(text) + " has no @");
  mailbox out;
  auto local = text.substr(0, at);
  auto domain = text.substr(at + 1);
  if (auto reason = check_local_part(local); !reason.empty())
    return parsed<mailbox>::failure(reason + " in " + quoted(text));
  if (auto reason = check_domain(domain, out.ascii_domain); !reason.empty())
    return parsed<mailbox>::failure(reason + " in " + quoted(text));
  out.local_part = std::string(local);
  out.canonical_local_part = canonical_local(local);
  out.domain = has_non_ascii(domain) ? std::string(domain) : lower_ascii(domain);
  return out;
}

parsed<std::string> canonical_address(std::string_view text) {
  auto box = parse_address(text);
  if (!box) return parsed<std::string>::failure(box.error());
  return box.value().envelope_address();
}

parsed<std::string> check_display_name(std::string_view name) {
  if (name.size() > max_display_name_octets)
    return parsed<std::string>::failure("the display name is longer than 256 octets");
  if (!is_clean_utf8(name, false))
    return parsed<std::string>::failure(
        "the display name has control characters (CR, LF, ...) or invalid UTF-8");
  return std::string(trim(name));
}

parsed<mailbox> parse_mailbox(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.back() != '>') return parse_address(text);
  auto open = text.rfind('<');
  if (open == std::string_view::npos)
    return parsed<mailbox>::failure("unbalanced '>' in " + quoted(text));
  auto address = parse_address(text.substr(open + 1, text.size() - open - 2));
  if (!address) return address;
  auto name = trim(text.substr(0, open));
  std::string display;
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
    // A quoted display name: undo the quoting (\" and \\).
    for (std::size_t i = 1; i + 1 < name.size(); ++i) {
      if (name[i] == '\\' && i + 2 < name.size()) ++i;
      display.push_back(name[i]);
    }
  } else {
    display = std::string(name);
  }
  auto checked = check_display_name(display);
  if (!checked) return parsed<mailbox>::failure(checked.error());
  mailbox out = address.value();
  out.display_name = checked.value();
  return out;
}

}  // namespace petrel
