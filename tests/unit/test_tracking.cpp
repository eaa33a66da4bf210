// Tracking tokens and the rewriting of HTML for opens and clicks (net/mail/tracking.hpp).
#include <catch2/catch.hpp>

#include "net/mail/template_message.hpp"
#include "net/mail/tracking.hpp"

using namespace petrel;

namespace {
const std::string secret = "0123456789abcdef0123456789abcdef-tracking";
const id128 message = *id128::parse("01M98HTZRT0000AGW4E9QVKFYB");
const id128 recipient = *id128::parse("01M98HTZRTCYKAGW4E9QVKFYBP");
}  // namespace

TEST_CASE("tracking tokens carry message, recipient, link and expiry under an HMAC", "[tracking]") {
  auto token = make_tracking_token(secret, {message, recipient, 3, 1'900'000'000});
  CHECK(token.size() == 64);
  CHECK(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  auto read = read_tracking_token(secret, token);
  REQUIRE(read);
  CHECK(read->message == message);
  CHECK(read->recipient == recipient);
  CHECK(read->link == 3);
  CHECK(read->expires_s == 1'900'000'000u);
  // Another secret, one character changed, another length, other characters: refused.
  CHECK_FALSE(read_tracking_token("another secret another secret 0123", token));
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto altered = token;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    CHECK_FALSE(read_tracking_token(secret, altered));
  }
  CHECK_FALSE(read_tracking_token(secret, token.substr(1)));
  CHECK_FALSE(read_tracking_token(secret, token + "A"));
  CHECK_FALSE(read_tracking_token(secret, std::string(64, '=')));
  CHECK_FALSE(read_tracking_token("", token));
  // The pixel is link 0; tokens of other links of the same recipient differ.
  CHECK(make_tracking_token(secret, {message, recipient, 0, 1'900'000'000}) != token);
  // The same recipient id under another message is another token.
  CHECK(make_tracking_token(secret, {recipient, recipient, 3, 1'900'000'000}) != token);
}

TEST_CASE("trackable links are the http and https hrefs of a elements", "[tracking]") {
  std::string html = R"(<html><head><style>a[href="https://style.example/"]{}</style>
<script>var s = '<a href="https://script.example/">';</script></head><body>
<!-- <a href="https://comment.example/"> -->
<p><A HREF="https://example.com/a?x=1&amp;y=2">one</A>
<a class=x href = 'http://example.com/b' >two</a>
<a href=https://example.com/c>three</a>
<a href="mailto:me@example.com">mail</a> <a href="#top">top</a> <a href="/relative">rel</a>
<a href="tel:+123">tel</a> <a href="https://example.com/{{user}}">var</a>
<a data-petrel-notrack href="https://example.com/private">no</a>
<a href="  https://example.com/d&#x3D;&#61;  ">four</a>
<a name="anchor">no href</a> <img src="https://example.com/logo.png">
</p></body></html>)";
  auto links = trackable_links(html);
  REQUIRE(links.size() == 4);
  CHECK(links[0] == "https://example.com/a?x=1&y=2");
  CHECK(links[1] == "http://example.com/b");
  CHECK(links[2] == "https://example.com/c");
  CHECK(links[3] == "https://example.com/d==");

  auto out = rewrite_html(html, [](std::size_t n) { return "https://t.example/c/" + std::to_string(n); },
                          "https://t.example/o/p.gif");
  CHECK(out.find(R"(<A HREF="https://t.example/c/1">one</A>)") != std::string::npos);
  CHECK(out.find(R"(href = "https://t.example/c/2" >two</a>)") != std::string::npos);
  CHECK(out.find(R"(<a href="https://t.example/c/3">three</a>)") != std::string::npos);
  CHECK(out.find(R"(<a href="https://t.example/c/4">four</a>)") != std::string::npos);
  // What is not tracked is left as it was.
  for (const char* kept : {"mailto:me@example.com", "#top", "/relative", "https://example.com/{{user}}",
                           "https://example.com/private", "https://comment.example/", "https://script.example/",
                           "https://style.example/", "https://example.com/logo.png"})
    CHECK(out.find(kept) != std::string::npos);
  // The pixel goes before </body>.
  auto pixel = out.find(R"(<img src="https://t.example/o/p.gif" width="1" height="1" alt="")");
  REQUIRE(pixel != std::string::npos);
  CHECK(pixel < out.find("</body>"));
  CHECK(trackable_links(out).size() == 4);
}

// Inputs the fuzzer (tests/fuzz/fuzz_tracking.cpp) found: the pixel must never land inside an
// attribute or an unclosed tag, where it would turn text into a new link.
TEST_CASE("the pixel never changes what the document's links are", "[tracking]") {
  auto url = [](std::size_t n) { return "https://t.example/c/" + std::to_string(n); };
  const std::string inputs[] = {
      std::string("<a hrev=\"hbod\0\0\0ha></bodyyfody\xff\xff><a href=http://b>y</a></bod><a href=http:<)a<ae)f/=;", 72),
      "<pt><A HREF = 'https://d' data-petrel-notrack",
      "<p><a href=\"https://x.example/\">x</a><!-- unclosed </body>",
      "<body><a title=\"</body>\" href=\"https://y.example/\">y</a></BODY>",
  };
  for (const auto& html : inputs) {
    auto before = trackable_links(html);
    auto out = rewrite_html(html, url, "https://t.example/o.gif");
    auto after = trackable_links(out);
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] == url(i + 1));
  }
  // The pixel of the last one goes before the real </BODY>, not into the title.
  auto out = rewrite_html(inputs[3], url, "https://t.example/o.gif");
  auto pixel = out.find("<img src=\"https://t.example/o.gif\"");
  REQUIRE(pixel != std::string::npos);
  CHECK(pixel > out.find("</a>"));
  CHECK(out.find("</BODY>") == out.find("/>", pixel) + 2);
  CHECK(out.find("title=\"</body>\"") != std::string::npos);
  // An unclosed tag or comment at the end gets no pixel.
  CHECK(rewrite_html(inputs[1], url, "https://t.example/o.gif").find("o.gif") == std::string::npos);
  CHECK(rewrite_html(inputs[2], url, "https://t.example/o.gif").find("o.gif") == std::string::npos);
}

TEST_CASE("rewriting without links, body or pixel", "[tracking]") {
  auto same = rewrite_html("<p>no links</p>", [](std::size_t) { return std::string("x"); }, "");
  CHECK(same == "<p>no links</p>");
  auto appended = rewrite_html("<p>fragment", [](std::size_t) { return std::string("x"); }, "https://t/p");
  CHECK(appended.rfind("<img src=\"https://t/p\"", std::string::npos) != std::string::npos);
  CHECK(appended.rfind("<p>fragment", 0) == 0);
  // Unterminated markup does not run past the end.
  CHECK(trackable_links("<a href=\"https://example.com/x").size() == 1);
  CHECK(trackable_links("<a href=").empty());
  CHECK(trackable_links("<!-- never closed <a href=\"https://x.example/\">").empty());
  CHECK(trackable_links("<script><a href=\"https://x.example/\">").empty());
}

TEST_CASE("tracked HTML: links and pixel become marks, and each copy's marks its own URLs", "[tracking]") {
  std::vector<std::string> links;
  auto marked = mark_tracking(R"(<body><a href="https://a.example/x?y=1&amp;z=2">A</a> <a href="mailto:m@x.example">M</a></body>)",
                              true, true, links);
  CHECK(links == std::vector<std::string>{"https://a.example/x?y=1&z=2"});
  CHECK(marked.find("https://a.example") == std::string::npos);
  auto resolved = resolve_tracking_marks(marked, [](std::size_t n) { return "U" + std::to_string(n); });
  CHECK(resolved.find("href=\"U1\"") != std::string::npos);
  CHECK(resolved.find("src=\"U0\"") != std::string::npos);
  CHECK(resolved.find("mailto:m@x.example") != std::string::npos);
  CHECK(resolved.find('\x01') == std::string::npos);
  // Opens only: links untouched; clicks only: no pixel.
  links.clear();
  auto opens_only = mark_tracking("<a href=\"https://a.example/\">A</a>", true, false, links);
  CHECK(links.empty());
  CHECK(opens_only.find("https://a.example/") != std::string::npos);
  CHECK(opens_only.find('\x01') != std::string::npos);
  auto clicks_only = mark_tracking("<a href=\"https://a.example/\">A</a>", false, true, links);
  CHECK(resolve_tracking_marks(clicks_only, [](std::size_t n) { return "U" + std::to_string(n); }) ==
        "<a href=\"U1\">A</a>");
  // Stray mark bytes (from data) are dropped, not turned into URLs of other links.
  CHECK(resolve_tracking_marks(std::string("a\x01x\x02" "b\x02" "c\x01", 8), [](std::size_t) { return "U"; }) == "axbc");
  CHECK(resolve_tracking_marks(std::string("\x01" "123456\x02", 8), [](std::size_t) { return "U"; }) == "123456");
}

TEST_CASE("tracked copies: a literal message keeps To and Cc; a template renders, then tracks", "[tracking]") {
  message_spec spec;
  spec.from = parse_mailbox("Shop <shop@example.com>").value();
  spec.to = {parse_mailbox("a@example.net").value(), parse_mailbox("b@example.net").value()};
  spec.cc = {parse_mailbox("c@example.net").value()};
  spec.subject = "Sale {{not a template}}";
  spec.text = "Go to https://shop.example.com/";
  spec.html = "<p>{{literal}}</p><a href=\"https://shop.example.com/\">Shop</a>";
  spec.message_id = "m1@example.com";
  spec.date_ms = 1'700'000'000'000;
  tracking_plan plan{true, true, "https://t.example.com", 1'900'000'000'000};
  auto tracked = tracked_literal_source(spec, plan);
  CHECK(tracked.links == std::vector<std::string>{"https://shop.example.com/"});
  auto copies = template_copies::read(tracked.source);
  REQUIRE(copies);
  CHECK(copies.value().tracked());
  auto message = *id128::parse("01M98HTZRT0000AGW4E9QVKFYB");
  auto recipient = *id128::parse("01M98HTZRTCYKAGW4E9QVKFYBP");
  copy_tracking keys{secret, message, recipient};
  auto copy = copies.value().render("{\"email\":\"b@example.net\"}", &keys);
  REQUIRE(copy);
  const auto& c = copy.value().content;
  CHECK(c.find("To: a@example.net, b@example.net") != std::string::npos);
  CHECK(c.find("Cc: c@example.net") != std::string::npos);
  CHECK(c.find("Subject: Sale {{not a template}}") != std::string::npos);
  CHECK(c.find("{{literal}}") != std::string::npos);
  CHECK(c.find("Go to https://shop.example.com/") != std::string::npos);  // the text part as it was
  auto click = make_tracking_token(secret, {message, recipient, 1, 1'900'000'000});
  auto pixel = make_tracking_token(secret, {message, recipient, 0, 1'900'000'000});
  // The HTML part is quoted-printable: look for the tokens, which have no characters it encodes.
  CHECK(c.find(click.substr(0, 40)) != std::string::npos);
  CHECK(c.find(pixel.substr(0, 40)) != std::string::npos);
  // A preview without keys: the original links, no tracking URL.
  auto preview = copies.value().render("{}", nullptr);
  REQUIRE(preview);
  CHECK(preview.value().content.find("t.example.com") == std::string::npos);
  CHECK(preview.value().content.find("shop.example.com") != std::string::npos);

  // A template: Mustache first, then the marks; links built from data are not tracked.
  message_spec t;
  t.from = spec.from;
  t.subject = "Hi {{name}}";
  t.html = "<a href=\"https://shop.example.com/\">{{name}}</a><a href=\"https://shop.example.com/{{id}}\">own</a>";
  t.message_id = "m2@example.com";
  auto source = template_source(t, "{}");
  auto tracked_template = tracked_template_source(source, {false, true, "https://t.example.com", 1'900'000'000'000});
  REQUIRE(tracked_template);
  CHECK(tracked_template.value().links == std::vector<std::string>{"https://shop.example.com/"});
  auto tc = template_copies::read(tracked_template.value().source);
  REQUIRE(tc);
  auto one = tc.value().render(template_personal(parse_mailbox("x@example.net").value(), R"({"name":"Ann","id":"7"})"),
                               &keys);
  REQUIRE(one);
  CHECK(one.value().content.find("Ann") != std::string::npos);
  CHECK(one.value().content.find("shop.example.com/7") != std::string::npos);
  CHECK(one.value().content.find(make_tracking_token(secret, {message, recipient, 1, 1'900'000'000}).substr(0, 40)) !=
        std::string::npos);
  CHECK_FALSE(tracked_template_source("not json", plan));
}
