// DATA preparation (see smtp_data.hpp).
#include "net/smtp_data.hpp"

#include <algorithm>
#include <cstring>

namespace petrel {

std::string prepare_smtp_data(std::string_view message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64 + 8);
  // Whole lines at a time: the built messages already end their lines with CRLF, so most
  // lines are copied as they are; a leading dot is doubled, bare CR and bare LF become CRLF.
  std::size_t i = 0;
  const auto n = message.size();
  while (i < n) {
    if (message[i] == '.') out.push_back('.');
    // The line ends at the first CR or LF.
    const char* base = message.data();
    const void* lf = std::memchr(base + i, '\n', n - i);
    std::size_t end = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - base) : n;
    if (const void* cr = std::memchr(base + i, '\r', end - i))
      end = static_cast<std::size_t>(static_cast<const char*>(cr) - base);
    out.append(message, i, end - i);
    out += "\r\n";
    if (end < n && message[end] == '\r' && end + 1 < n && message[end + 1] == '\n') ++end;
    i = end + 1;
  }
  out += ".\r\n";
  return out;
}

bool has_8bit(std::string_view message) {
  return std::any_of(message.begin(), message.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace petrel
