// Open and click tracking, the message's side (docs/sending.md, "Tracking"): signed tokens that
// name a recipient, a link of its message and an expiry; and the rewriting of an HTML part for
// one recipient (each trackable link to its click URL, an invisible pixel for opens). The target
// of a click always comes from the stored message (tracking_links), never from the token: a
// token only says which link of which recipient's message it stands for.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/ids.hpp"

namespace petrel {

struct tracking_token {
  id128 message;
  id128 recipient;
  std::uint16_t link = 0;      // 0: the open pixel; n >= 1: the n-th trackable link
  std::uint32_t expires_s = 0;  // unix seconds
};

// 48 bytes (message, recipient, link, expiry, the first 10 bytes of HMAC-SHA256(secret, ...))
// in base64url without padding: 64 characters. The message id lets a token outlive the
// recipient's row (storage.retention); its links are kept for the token's lifetime.
std::string make_tracking_token(std::string_view secret, const tracking_token& t);
// The token's fields if it is well formed and its HMAC matches (compared in constant time). The
// expiry is the caller's to check.
std::optional<tracking_token> read_tracking_token(std::string_view secret, std::string_view token);

// The trackable links of an HTML document, in document order: the href of each <a> element
// whose target is an absolute http or https URL, HTML character references decoded. Not
// tracked: mailto:, tel:, fragments and relative links, links whose href holds a Mustache tag
// ("{{"), and <a> elements with a data-petrel-notrack attribute. Comments, <script> and <style>
// are skipped.
std::vector<std::string> trackable_links(std::string_view html);

// The document with the href of its n-th trackable link (1-based, as above) replaced by
// click_url(n) (links untouched when click_url is empty), and, when pixel_url is not empty, a 1x1 image of it before the last </body> tag
// (else at the end; not at all when the text ends inside an unclosed tag, comment or script).
std::string rewrite_html(std::string_view html, const std::function<std::string(std::size_t)>& click_url,
                         const std::string& pixel_url);

// A tracked HTML part as stored: its trackable links (when clicks) and an open pixel (when opens)
// replaced by marks ("\x01" n "\x02", n = 0 the pixel) that Mustache rendering leaves alone;
// `links` gets the links, in order. Bodies never hold these control characters (submissions
// refuse them).
std::string mark_tracking(std::string_view html, bool opens, bool clicks, std::vector<std::string>& links);

// A rendered copy with each mark replaced by url(n); mark bytes that form no mark are dropped.
std::string resolve_tracking_marks(std::string_view html, const std::function<std::string(std::size_t)>& url);

}  // namespace petrel
