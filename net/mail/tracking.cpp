// Tracking tokens and HTML rewriting (see tracking.hpp).
#include "net/mail/tracking.hpp"

#include "net/mail/token_mac.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cctype>
#include <cstring>

namespace petrel {

namespace {

constexpr std::size_t body_bytes = 16 + 16 + 2 + 4;
constexpr std::size_t mac_bytes = 10;
constexpr std::size_t token_bytes = body_bytes + mac_bytes;  // 48 bytes -> 64 characters
constexpr std::string_view b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::array<unsigned char, mac_bytes> mac(std::string_view secret, const unsigned char* body) {
  return token_mac<mac_bytes>(secret, "petrel-tracking", body, body_bytes);
}

std::string encode(const unsigned char* data, std::size_t size) { return encode_token<6>(b64, data, size); }

bool decode(std::string_view text, unsigned char* out, std::size_t size) {
  return decode_token<6>(
      text,
      [](char c) {
        auto pos = b64.find(c);
        return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
      },
      out, size);
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool starts_with_ci(std::string_view text, std::size_t at, std::string_view prefix) {
  if (text.size() - at < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (lower(text[at + i]) != prefix[i]) return false;
  return true;
}

std::size_t find_ci(std::string_view text, std::string_view what, std::size_t from) {
  for (std::size_t i = from; i + what.size() <= text.size(); ++i)
    if (starts_with_ci(text, i, what)) return i;
  return std::string_view::npos;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// The characters a character reference stands for (the few a URL needs), appended to out.
std::size_t decode_reference(std::string_view s, std::size_t at, std::string& out) {
  auto semi = s.find(';', at);
  if (semi == std::string_view::npos || semi - at > 10) {
    out.push_back('&');
    return at + 1;
  }
  auto name = s.substr(at + 1, semi - at - 1);
  auto put = [&](unsigned long cp) {
    if (cp < 0x80) out.push_back(static_cast<char>(cp));
    else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  };
  if (name == "amp") out.push_back('&');
  else if (name == "lt") out.push_back('<');
  else if (name == "gt") out.push_back('>');
  else if (name == "quot") out.push_back('"');
  else if (name == "apos") out.push_back('\'');
  else if (name.size() > 1 && name[0] == '#') {
    bool hex = name[1] == 'x' || name[1] == 'X';
    auto digits = name.substr(hex ? 2 : 1);
    unsigned long cp = 0;
    bool ok = !digits.empty();
    for (char c : digits) {
      int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
              : hex && std::isxdigit(static_cast<unsigned char>(c)) ? lower(c) - 'a' + 10
                                                                    : -1;
      if (v < 0 || cp > 0x10FFFF) ok = false;
      else cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(v);
    }
    if (!ok || cp == 0 || cp > 0x10FFFF) {
      out.push_back('&');
      return at + 1;
    }
    put(cp);
  } else {
    out.push_back('&');
    return at + 1;
  }
  return semi + 1;
}

std::string decode_references(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '&') i = decode_reference(s, i, out);
    else out.push_back(s[i++]);
  }
  return out;
}

struct link_site {
  std::size_t value_begin = 0;  // the attribute value, with its quotes when quoted
  std::size_t value_end = 0;
  std::string url;
};

struct scanned {
  std::vector<link_site> links;  // each <a> element's trackable href, in document order
  std::size_t body_end = std::string_view::npos;  // where the last </body> tag starts
  bool open_at_end = false;  // the text ends inside a tag, a comment, a script or a style
};

scanned scan(std::string_view html) {
  scanned result;
  auto& out = result.links;
  std::size_t i = 0;
  while (i < html.size()) {
    auto lt = html.find('<', i);
    if (lt == std::string_view::npos) break;
    if (html.compare(lt, 4, "<!--") == 0) {
      auto end = html.find("-->", lt + 4);
      if (end == std::string_view::npos) result.open_at_end = true;
      i = end == std::string_view::npos ? html.size() : end + 3;
      continue;
    }
    std::size_t j = lt + 1;
    bool closing = j < html.size() && html[j] == '/';
    if (closing) ++j;
    std::size_t name_begin = j;
    while (j < html.size() && std::isalnum(static_cast<unsigned char>(html[j]))) ++j;
    std::string name;
    for (auto k = name_begin; k < j; ++k) name.push_back(lower(html[k]));
    if (name.empty()) {
      i = lt + 1;
      continue;
    }
    // The attributes, up to the tag's end.
    std::optional<link_site> href;
    bool notrack = false;
    while (j < html.size() && html[j] != '>') {
      if (is_space(html[j]) || html[j] == '/') {
        ++j;
        continue;
      }
      std::size_t attr_begin = j;
      while (j < html.size() && !is_space(html[j]) && html[j] != '=' && html[j] != '>' && html[j] != '/') ++j;
      std::string attr;
      for (auto k = attr_begin; k < j; ++k) attr.push_back(lower(html[k]));
      while (j < html.size() && is_space(html[j])) ++j;
      if (j >= html.size() || html[j] != '=') {
        if (attr == "data-petrel-notrack") notrack = true;
        continue;
      }
      ++j;
      while (j < html.size() && is_space(html[j])) ++j;
      std::size_t value_begin = j, raw_begin, raw_end;
      if (j < html.size() && (html[j] == '"' || html[j] == '\'')) {
        char quote = html[j];
        auto close = html.find(quote, j + 1);
        if (close == std::string_view::npos) close = html.size();
        raw_begin = j + 1;
        raw_end = close;
        j = close < html.size() ? close + 1 : close;
      } else {
        raw_begin = j;
        while (j < html.size() && !is_space(html[j]) && html[j] != '>') ++j;
        raw_end = j;
      }
      if (attr == "data-petrel-notrack") notrack = true;
      if (attr == "href" && !href)
        href = link_site{value_begin, j, decode_references(html.substr(raw_begin, raw_end - raw_begin))};
    }
    if (j >= html.size()) result.open_at_end = true;
    std::size_t tag_end = j < html.size() ? j + 1 : html.size();
    if (closing && name == "body") result.body_end = lt;
    if (!closing && (name == "script" || name == "style")) {
      auto end = find_ci(html, "</" + name, tag_end);
      if (end == std::string_view::npos) result.open_at_end = true;
      i = end == std::string_view::npos ? html.size() : end;
      continue;
    }
    if (!closing && name == "a" && href && !notrack) {
      auto& url = href->url;
      // Surrounding white space is not part of a URL (HTML's "valid URL potentially surrounded
      // by spaces").
      while (!url.empty() && is_space(url.front())) url.erase(url.begin());
      while (!url.empty() && is_space(url.back())) url.pop_back();
      bool web = starts_with_ci(url, 0, "http://") || starts_with_ci(url, 0, "https://");
      if (web && url.find("{{") == std::string::npos) out.push_back(std::move(*href));
    }
    i = tag_end;
  }
  return result;
}

}  // namespace

std::string make_tracking_token(std::string_view secret, const tracking_token& t) {
  std::array<unsigned char, token_bytes> raw{};
  auto put_id = [&](const id128& id, std::size_t at) {
    for (std::size_t i = 0; i < 8; ++i) {
      raw[at + i] = static_cast<unsigned char>(id.hi >> (56 - 8 * i));
      raw[at + 8 + i] = static_cast<unsigned char>(id.lo >> (56 - 8 * i));
    }
  };
  put_id(t.message, 0);
  put_id(t.recipient, 16);
  raw[32] = static_cast<unsigned char>(t.link >> 8);
  raw[33] = static_cast<unsigned char>(t.link);
  for (std::size_t i = 0; i < 4; ++i) raw[34 + i] = static_cast<unsigned char>(t.expires_s >> (24 - 8 * i));
  auto m = mac(secret, raw.data());
  std::memcpy(raw.data() + body_bytes, m.data(), mac_bytes);
  return encode(raw.data(), raw.size());
}

std::optional<tracking_token> read_tracking_token(std::string_view secret, std::string_view token) {
  if (secret.empty() || token.size() != (token_bytes * 8 + 5) / 6) return std::nullopt;
  std::array<unsigned char, token_bytes> raw{};
  if (!decode(token, raw.data(), raw.size())) return std::nullopt;
  auto expected = mac(secret, raw.data());
  if (CRYPTO_memcmp(expected.data(), raw.data() + body_bytes, mac_bytes) != 0) return std::nullopt;
  tracking_token t;
  auto get_id = [&](id128& id, std::size_t at) {
    for (std::size_t i = 0; i < 8; ++i) {
      id.hi = (id.hi << 8) | raw[at + i];
      id.lo = (id.lo << 8) | raw[at + 8 + i];
    }
  };
  get_id(t.message, 0);
  get_id(t.recipient, 16);
  t.link = static_cast<std::uint16_t>((raw[32] << 8) | raw[33]);
  for (std::size_t i = 0; i < 4; ++i) t.expires_s = (t.expires_s << 8) | raw[34 + i];
  return t;
}

std::vector<std::string> trackable_links(std::string_view html) {
  std::vector<std::string> out;
  for (auto& l : scan(html).links) out.push_back(std::move(l.url));
  return out;
}

std::string rewrite_html(std::string_view html, const std::function<std::string(std::size_t)>& click_url,
                         const std::string& pixel_url) {
  std::string out;
  out.reserve(html.size() + 256);
  auto found = scan(html);
  std::string pixel;
  if (!pixel_url.empty())
    pixel = "<img src=\"" + pixel_url +
            "\" width=\"1\" height=\"1\" alt=\"\" style=\"height:1px !important;width:1px !important;"
            "border-width:0 !important;margin:0 !important;padding:0 !important\" />";
  // The pixel goes before the last </body> tag the scan saw as a tag (never inside an attribute
  // or a comment), else at the end.
  bool pixel_placed = pixel.empty();
  std::size_t at = 0, n = 0;
  auto copy_to = [&](std::size_t end) {
    if (!pixel_placed && found.body_end >= at && found.body_end < end) {
      out.append(html.substr(at, found.body_end - at));
      out.append(pixel);
      pixel_placed = true;
      at = found.body_end;
    }
    out.append(html.substr(at, end - at));
    at = end;
  };
  for (const auto& l : found.links) {
    if (!click_url) break;
    copy_to(l.value_begin);
    out.push_back('"');
    out.append(click_url(++n));
    out.push_back('"');
    at = l.value_end;
  }
  copy_to(html.size());
  // Without </body> it goes at the end, unless the text ends inside a tag, a comment or raw text:
  // there it would become part of that (no pixel then).
  if (!pixel_placed && !found.open_at_end) out.append(pixel);
  return out;
}

namespace {
constexpr char mark_open = '\x01';
constexpr char mark_close = '\x02';
std::string mark(std::size_t n) { return mark_open + std::to_string(n) + mark_close; }
}  // namespace

std::string mark_tracking(std::string_view html, bool opens, bool clicks, std::vector<std::string>& links) {
  if (clicks) links = trackable_links(html);
  std::function<std::string(std::size_t)> click;
  if (clicks) click = [](std::size_t n) { return mark(n); };
  return rewrite_html(html, click, opens ? mark(0) : std::string());
}

std::string resolve_tracking_marks(std::string_view html, const std::function<std::string(std::size_t)>& url) {
  std::string out;
  out.reserve(html.size() + 512);
  std::size_t at = 0;
  while (at < html.size()) {
    auto open = html.find(mark_open, at);
    auto stray = html.find(mark_close, at);
    auto next = std::min(open, stray);
    if (next == std::string_view::npos) {
      out.append(html.substr(at));
      break;
    }
    out.append(html.substr(at, next - at));
    at = next + 1;
    if (next == stray) continue;  // a closing byte alone: dropped
    auto close = html.find(mark_close, at);
    auto digits = html.substr(at, close == std::string_view::npos ? 0 : close - at);
    bool number = !digits.empty() && digits.size() <= 5 &&
                  digits.find_first_not_of("0123456789") == std::string_view::npos;
    if (!number) continue;  // an opening byte alone: dropped, what follows stays
    out.append(url(static_cast<std::size_t>(std::stoul(std::string(digits)))));
    at = close + 1;
  }
  return out;
}

}  // namespace petrel
