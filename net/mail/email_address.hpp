// Email addresses as Petrel accepts them from clients: an RFC 5321 mailbox (local-part@domain,
// dot-atom or quoted local part, RFC 6531 UTF-8 allowed) with an optional display name. The
// destination domain is normalized to lower-case ASCII (IDNA A-labels via libidn2), which is
// what DNS lookups and per-domain queues are keyed by.
#pragma once

#include <string>
#include <string_view>

#include "config/units.hpp"

namespace petrel {

struct mailbox {
  std::string display_name;  // UTF-8, may be empty
  std::string local_part;    // as given (quoted form kept with its quotes)
  std::string domain;        // as given, lower-cased if ASCII
  std::string ascii_domain;  // A-label form, lower case; [literal] kept as is
  // The local part unquoted where RFC 5321 4.1.2 allows ("a.b" -> a.b, "a\b" -> ab), else
  // quoted with only the escapes it needs: one mailbox has one spelling.
  std::string canonical_local_part;

  // local_part@domain, the form shown back to clients.
  std::string address() const { return local_part + "@" + domain; }
  // canonical_local_part@ascii_domain: the one spelling of the mailbox, used in the SMTP
  // envelope (no UTF-8 domain goes on the wire), for routing and for suppressions.
  std::string envelope_address() const { return canonical_local_part + "@" + ascii_domain; }
  // A non-ASCII local part can only travel with SMTPUTF8 (RFC 6531).
  bool needs_smtputf8() const;
};

// RFC 5322 3.2.3 atext (and, as RFC 6531 allows, any UTF-8 octet).
bool is_atext(unsigned char c);

// content as an RFC 5322 quoted-string: in double quotes, with '"' and '\' escaped.
std::string quoted_string(std::string_view content);

// Limits from RFC 5321 section 4.5.3.1.
constexpr std::size_t max_local_part_octets = 64;
constexpr std::size_t max_domain_octets = 255;
constexpr std::size_t max_path_octets = 254;  // local@domain without the angle brackets
constexpr std::size_t max_display_name_octets = 256;

// "local@domain" only.
parsed<mailbox> parse_address(std::string_view text);
// "local@domain", "Name <local@domain>" or "\"Name, Quoted\" <local@domain>".
parsed<mailbox> parse_mailbox(std::string_view text);
// The canonical form of "local@domain" (see mailbox::envelope_address), or the reason the
// text is no address.
parsed<std::string> canonical_address(std::string_view text);
// A display name given separately (JSON {"email", "name"}): no control characters, bounded.
parsed<std::string> check_display_name(std::string_view name);

// Why an ASCII host name is not one: labels of letters, digits and hyphens, two or more, the
// last not numeric (RFC 1035, RFC 5321 2.3.5); "" when it is.
std::string check_ascii_domain(std::string_view domain);

// true when text is well-formed UTF-8 without C0 controls other than TAB (and no DEL).
bool is_clean_utf8(std::string_view text, bool allow_tab = true, bool allow_line_breaks = false);
// Whether text has a byte >= 0x80 (UTF-8 beyond ASCII).
bool has_non_ascii(std::string_view s);

}  // namespace petrel
