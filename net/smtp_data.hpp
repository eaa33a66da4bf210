// The DATA payload of an SMTP transaction (RFC 5321 4.5.2): line endings normalized to CRLF so
// no bare CR or LF reaches the wire (SMTP smuggling, CVE-2023-51766 and kin), lines starting
// with '.' dot-stuffed, and the ".\r\n" terminator appended.
#pragma once

#include <string>
#include <string_view>

namespace petrel {

std::string prepare_smtp_data(std::string_view message);

// true when the message has an octet above 127 (needs 8BITMIME, else 7-bit clean).
bool has_8bit(std::string_view message);

}  // namespace petrel
