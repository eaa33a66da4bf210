// Message building, checked by parsing the result back with GMime's parser (a real MIME
// parser; the system tests parse delivered messages with Python's email package as well).
#include <catch2/catch.hpp>

#include <gmime/gmime.h>

#include "net/mail/mime_message.hpp"

using namespace petrel;

namespace {

struct parsed_message {
  GMimeMessage* message = nullptr;
  explicit parsed_message(const std::string& content) {
    mime_init();
    GMimeStream* stream = g_mime_stream_mem_new_with_buffer(content.data(), content.size());
    GMimeParser* parser = g_mime_parser_new_with_stream(stream);
    message = g_mime_parser_construct_message(parser, nullptr);
    g_object_unref(parser);
    g_object_unref(stream);
  }
  ~parsed_message() {
    if (message) g_object_unref(message);
  }
  std::string header(const char* name) const {
    auto* v = g_mime_object_get_header(GMIME_OBJECT(message), name);
    return v ? v : "";
  }
};

std::string part_text(GMimeObject* part) {
  REQUIRE(GMIME_IS_TEXT_PART(part));
  char* text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
  std::string out = text ? text : "";
  g_free(text);
  // GMime keeps the wire's CRLF; compare against LF text.
  std::string lf;
  for (std::size_t i = 0; i < out.size(); ++i)
    if (!(out[i] == '\r' && i + 1 < out.size() && out[i + 1] == '\n')) lf.push_back(out[i]);
  return lf;
}

mailbox box(const char* address, const char* name = "") {
  auto b = parse_address(address).value();
  b.display_name = name;
  return b;
}

message_spec basic_spec() {
  message_spec s;
  s.from = box("app@example.com", "App");
  s.to = {box("a@example.net")};
  s.subject = "Hello";
  s.text = "Hi there.\nSecond line.\n";
  s.message_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV@example.com";
  s.date_ms = 1'700'000'000'000;
  return s;
}

void check_wire_form(const std::string& content) {
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\n') {
      REQUIRE(i > 0);
      REQUIRE(content[i - 1] == '\r');  // no bare LF
      REQUIRE(i - 1 - line_start <= max_line_octets);
      line_start = i + 1;
    } else if (content[i] == '\r') {
      REQUIRE(i + 1 < content.size());
      REQUIRE(content[i + 1] == '\n');  // no bare CR
    } else {
      REQUIRE(static_cast<unsigned char>(content[i]) < 0x80);  // 7-bit clean
    }
  }
}

// The wire form of a spec's message, built and checked (CRLF only, short lines, 7-bit, ...).
std::string built_and_checked(const message_spec& spec) {
  auto built = build_message(spec);
  REQUIRE(built);
  check_wire_form(built->content);
  return built->content;
}

}  // namespace

TEST_CASE("a plain text message has the structural headers and its body") {
  auto built = build_message(basic_spec());
  REQUIRE(built);
  const auto& content = built->content;
  check_wire_form(content);
  parsed_message p(content);
  REQUIRE(p.message);
  CHECK(p.header("Message-Id") == "<01ARZ3NDEKTSV4RRFFQ69G5FAV@example.com>");
  CHECK(built->message_id_header == "<01ARZ3NDEKTSV4RRFFQ69G5FAV@example.com>");
  CHECK(p.header("MIME-Version") == "1.0");
  CHECK(p.header("Date") == "Tue, 14 Nov 2023 22:13:20 +0000");
  CHECK(std::string(g_mime_message_get_subject(p.message)) == "Hello");
  CHECK(p.header("From") == "App <app@example.com>");
  CHECK(p.header("To") == "a@example.net");
  auto* body = g_mime_message_get_mime_part(p.message);
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "text", "plain"));
  CHECK(part_text(body) == "Hi there.\nSecond line.\n");
}

TEST_CASE("UTF-8 subject, names and bodies are encoded and decode back") {
  auto spec = basic_spec();
  spec.from = box("app@example.com", "Zoë Ångström");
  spec.subject = "Grüße aus Köln – 日本語のテスト";
  spec.text = "Ça va? 😀\n";
  auto built = build_message(spec);
  REQUIRE(built);
  check_wire_form(built->content);
  CHECK(built->content.find("=?") != std::string::npos);  // RFC 2047 encoded words
  parsed_message p(built->content);
  CHECK(std::string(g_mime_message_get_subject(p.message)) == spec.subject);
  auto* from = internet_address_list_get_address(g_mime_message_get_from(p.message), 0);
  CHECK(std::string(internet_address_get_name(from)) == "Zoë Ångström");
  auto* body = g_mime_message_get_mime_part(p.message);
  CHECK(std::string(g_mime_object_get_content_type_parameter(body, "charset")) == "utf-8");
  CHECK(part_text(body) == "Ça va? 😀\n");
}

TEST_CASE("text and html become multipart/alternative, plain first") {
  auto spec = basic_spec();
  spec.html = "<p>Hi <b>there</b></p>";
  parsed_message p(built_and_checked(spec));
  auto* body = g_mime_message_get_mime_part(p.message);
  REQUIRE(GMIME_IS_MULTIPART(body));
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "multipart", "alternative"));
  auto* mp = GMIME_MULTIPART(body);
  REQUIRE(g_mime_multipart_get_count(mp) == 2);
  auto* plain = g_mime_multipart_get_part(mp, 0);
  auto* html = g_mime_multipart_get_part(mp, 1);
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(plain), "text", "plain"));
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(html), "text", "html"));
  CHECK(part_text(html) == "<p>Hi <b>there</b></p>");
}

TEST_CASE("an html-only message is a single text/html part") {
  auto spec = basic_spec();
  spec.text.reset();
  spec.html = "<p>only html</p>";
  auto built = build_message(spec);
  REQUIRE(built);
  parsed_message p(built->content);
  auto* body = g_mime_message_get_mime_part(p.message);
  CHECK(g_mime_content_type_is_type(g_mime_object_get_content_type(body), "text", "html"));
}

namespace {

std::string part_bytes(GMimeObject* part) {
  REQUIRE(GMIME_IS_PART(part));
  auto* wrapper = g_mime_part_get_content(GMIME_PART(part));
  GMimeStream* out = g_mime_stream_mem_new();
  g_mime_data_wrapper_write_to_stream(wrapper, out);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
  std::string data(reinterpret_cast<const char*>(bytes->data), bytes->len);
  g_object_unref(out);
  return data;
}

bool is_type(GMimeObject* part, const char* type, const char* subtype) {
  return g_mime_content_type_is_type(g_mime_object_get_content_type(part), type, subtype);
}

}  // namespace

TEST_CASE("attachments: mixed around related around alternative, base64, RFC 2231 names") {
  auto spec = basic_spec();
  spec.html = "<p>Logo: <img src=\"cid:logo@example.com\"></p>";
  std::string pdf = "%PDF-1.4\n";
  for (int i = 0; i < 3000; ++i) pdf.push_back(static_cast<char>(i % 256));  // binary, long
  std::string png = "\x89PNG\r\n\x1a\n" + std::string(100, '\0');
  spec.attachments = {{"Rechnung März 2026.pdf", "application/pdf", pdf, false, ""},
                      {"logo.png", "image/png", png, true, "logo@example.com"},
                      {"notes.txt", "text/plain", "plain\r\nnotes\n", true, ""}};
  auto content = built_and_checked(spec);
  auto pdf_at = content.find("Rechnung");
  REQUIRE(pdf_at != std::string::npos);
  INFO(content.substr(pdf_at > 200 ? pdf_at - 200 : 0, 400));
  CHECK(content.find("filename*=UTF-8''Rechnung%20M%C3%A4rz%202026.pdf") != std::string::npos);

  parsed_message p(content);
  auto* top = g_mime_message_get_mime_part(p.message);
  REQUIRE(is_type(top, "multipart", "mixed"));
  auto* mixed = GMIME_MULTIPART(top);
  REQUIRE(g_mime_multipart_get_count(mixed) == 3);  // related, the pdf, the inline text without cid
  auto* related_part = g_mime_multipart_get_part(mixed, 0);
  REQUIRE(is_type(related_part, "multipart", "related"));
  CHECK(std::string(g_mime_object_get_content_type_parameter(related_part, "type")) == "multipart/alternative");
  auto* related = GMIME_MULTIPART(related_part);
  REQUIRE(g_mime_multipart_get_count(related) == 2);
  CHECK(is_type(g_mime_multipart_get_part(related, 0), "multipart", "alternative"));
  auto* logo = g_mime_multipart_get_part(related, 1);
  CHECK(is_type(logo, "image", "png"));
  CHECK(std::string(g_mime_object_get_content_id(logo)) == "logo@example.com");
  CHECK(std::string(g_mime_object_get_disposition(logo)) == "inline");
  CHECK(part_bytes(logo) == png);

  auto* file = g_mime_multipart_get_part(mixed, 1);
  CHECK(is_type(file, "application", "pdf"));
  CHECK(std::string(g_mime_object_get_disposition(file)) == "attachment");
  CHECK(std::string(g_mime_part_get_filename(GMIME_PART(file))) == "Rechnung März 2026.pdf");
  CHECK(g_mime_part_get_content_encoding(GMIME_PART(file)) == GMIME_CONTENT_ENCODING_BASE64);
  CHECK(part_bytes(file) == pdf);
  auto* notes = g_mime_multipart_get_part(mixed, 2);
  CHECK(std::string(g_mime_object_get_disposition(notes)) == "inline");
  CHECK(part_bytes(notes) == "plain\r\nnotes\n");  // bytes, not text: line endings kept
}

TEST_CASE("attachments without html: an inline part with a content_id has nothing to be related to") {
  auto spec = basic_spec();
  spec.attachments = {{"a.bin", "application/octet-stream", "abc", true, "x@y"}};
  parsed_message p(built_and_checked(spec));
  auto* top = g_mime_message_get_mime_part(p.message);
  REQUIRE(is_type(top, "multipart", "mixed"));
  CHECK(is_type(g_mime_multipart_get_part(GMIME_MULTIPART(top), 0), "text", "plain"));
  CHECK(part_bytes(g_mime_multipart_get_part(GMIME_MULTIPART(top), 1)) == "abc");
}

TEST_CASE("a body line longer than 998 octets is transfer-encoded, not cut") {
  auto spec = basic_spec();
  std::string long_line(5000, 'x');
  spec.text = long_line + "\nend\n";
  parsed_message p(built_and_checked(spec));
  CHECK(part_text(g_mime_message_get_mime_part(p.message)) == long_line + "\nend\n");
}

TEST_CASE("lines with leading dots and CRLF in the input survive") {
  auto spec = basic_spec();
  spec.text = ".\r\n..two dots\r\n.\r\nlast";
  parsed_message p(built_and_checked(spec));
  // GMime ends the last line with a line break, as a MIME body line should.
  CHECK(part_text(g_mime_message_get_mime_part(p.message)) == ".\n..two dots\n.\nlast\n");
}

TEST_CASE("bcc recipients never appear; to, cc, reply-to and extra headers do") {
  auto spec = basic_spec();
  spec.cc = {box("c@example.net", "Cee")};
  spec.reply_to = {box("replies@example.com")};
  spec.headers = {{"X-Campaign", "spring"}, {"X-Note", "naïve café"}};
  auto built = build_message(spec);
  REQUIRE(built);
  check_wire_form(built->content);
  CHECK(built->content.find("Bcc") == std::string::npos);
  parsed_message p(built->content);
  CHECK(p.header("Cc") == "Cee <c@example.net>");
  CHECK(p.header("Reply-To") == "replies@example.com");
  CHECK(p.header("X-Campaign") == "spring");
  char* decoded = g_mime_utils_header_decode_text(nullptr, p.header("X-Note").c_str());
  CHECK(std::string(decoded) == "naïve café");
  g_free(decoded);
}

TEST_CASE("reserved and invalid header names are recognized") {
  CHECK(is_reserved_header("Bcc"));
  CHECK(is_reserved_header("content-TYPE"));
  CHECK(is_reserved_header("DKIM-Signature"));
  CHECK(is_reserved_header("Received"));
  CHECK_FALSE(is_reserved_header("X-Mailer"));
  CHECK_FALSE(is_reserved_header("List-Unsubscribe"));
  CHECK(is_valid_header_name("X-Tag"));
  CHECK_FALSE(is_valid_header_name("X Tag"));
  CHECK_FALSE(is_valid_header_name("X:Tag"));
  CHECK_FALSE(is_valid_header_name(""));
  CHECK_FALSE(is_valid_header_name("X-\xC3\xA9"));
}

TEST_CASE("raw messages get CRLF line endings and missing Message-ID and Date") {
  auto raw = prepare_raw_message("From: a@example.com\nSubject: hi\n\nbody\rmore\n", "ID@example.com",
                                 1'700'000'000'000);
  REQUIRE(raw);
  CHECK(raw->content ==
        "Message-ID: <ID@example.com>\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\nmore\r\n");
  CHECK(raw->message_id_header == "<ID@example.com>");
  CHECK(raw->subject == "hi");
}

TEST_CASE("raw messages keep their own Message-ID, Date and bytes") {
  std::string original =
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <own@x.example>\r\nFrom: a@example.com\r\n"
      "Subject: folded\r\n subject\r\n\r\nbody line\r\n";
  auto raw = prepare_raw_message(original, "unused@example.com", 0);
  REQUIRE(raw);
  CHECK(raw->content == original);
  CHECK(raw->message_id_header == "<own@x.example>");
  CHECK(raw->subject == "folded subject");
}

TEST_CASE("raw messages that are not RFC 5322 are refused with the reason") {
  auto no_from = prepare_raw_message("Subject: x\r\n\r\nbody\r\n", "i@x.example", 0);
  REQUIRE_FALSE(no_from);
  CHECK_THAT(no_from.error(), Catch::Contains("no From"));
  auto not_mail = prepare_raw_message("just some text\r\n", "i@x.example", 0);
  REQUIRE_FALSE(not_mail);
  CHECK_THAT(not_mail.error(), Catch::Contains("line 1 is not a header field"));
  auto long_line = prepare_raw_message("From: a@example.com\r\n\r\n" + std::string(1000, 'y') + "\r\n",
                                       "i@x.example", 0);
  REQUIRE_FALSE(long_line);
  CHECK_THAT(long_line.error(), Catch::Contains("line 3"));
  std::string with_nul = "From: a@example.com\r\n\r\nx";
  with_nul.push_back('\0');
  with_nul += "y\r\n";
  auto nul = prepare_raw_message(with_nul, "i@x.example", 0);
  REQUIRE_FALSE(nul);
  CHECK_THAT(nul.error(), Catch::Contains("NUL"));
  auto broken = prepare_raw_message("From: a@example.com\r\nnot a header\r\n", "i@x.example", 0);
  REQUIRE_FALSE(broken);
  CHECK_THAT(broken.error(), Catch::Contains("line 2"));
}

TEST_CASE("a headers-only raw message ends with a line break") {
  auto raw = prepare_raw_message("From: a@example.com\r\nSubject: x", "i@x.example", 0);
  REQUIRE(raw);
  CHECK(raw->content.substr(raw->content.size() - 2) == "\r\n");
}

TEST_CASE("raw messages lose their Bcc fields, folded ones too, and keep everything else") {
  auto raw = prepare_raw_message(
      "From: a@example.com\r\nBcc: hidden@example.net,\r\n other@example.net\r\nTo: b@example.com\r\n"
      "BCC: again@example.net\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n",
      "ID@example.com", 1'700'000'000'000);
  REQUIRE(raw);
  CHECK(raw->content.find("hidden@") == std::string::npos);
  CHECK(raw->content.find("other@") == std::string::npos);
  CHECK(raw->content.find("again@") == std::string::npos);
  CHECK(raw->content.find("From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\n"
                          "Bcc: in the body stays\r\n") != std::string::npos);
  auto last = prepare_raw_message("From: a@example.com\r\nBcc: x@example.net\r\n", "ID@example.com",
                                  1'700'000'000'000);
  REQUIRE(last);
  CHECK(last->content.find("Bcc") == std::string::npos);
  CHECK(last->content.find("From: a@example.com\r\n") != std::string::npos);
}

namespace {

// Every line of the header section, for length checks.
std::vector<std::string> header_lines(const std::string& content) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (;;) {
    auto end = content.find("\r\n", start);
    if (end == std::string::npos || end == start) return lines;
    lines.push_back(content.substr(start, end - start));
    start = end + 2;
  }
}

std::string decoded_subject(const parsed_message& p) { return g_mime_message_get_subject(p.message); }

}  // namespace

TEST_CASE("headers: display names are quoted or encoded as needed, and lists and long subjects fold") {
  auto spec = basic_spec();
  spec.from = box("app@example.com", "Doe, John \"JD\" \\ Sr.");
  for (int i = 0; i < 40; ++i)
    spec.to.push_back(box(("user" + std::to_string(i) + "@example.net").c_str(), i % 2 ? "Zoë Ångström" : "Ann"));
  std::string subject;
  for (int i = 0; i < 30; ++i) subject += "word" + std::to_string(i) + " ";
  subject += "end";
  spec.subject = subject;
  auto content = built_and_checked(spec);
  for (const auto& line : header_lines(content)) {
    INFO(line);
    CHECK(line.size() <= 78);
  }
  parsed_message p(content);
  CHECK(decoded_subject(p) == subject);
  auto* from = internet_address_list_get_address(g_mime_message_get_from(p.message), 0);
  CHECK(std::string(internet_address_get_name(from)) == "Doe, John \"JD\" \\ Sr.");
  auto* to = g_mime_message_get_addresses(p.message, GMIME_ADDRESS_TYPE_TO);
  REQUIRE(internet_address_list_length(to) == 41);
  for (int i = 0; i < 40; ++i) {
    auto* a = internet_address_list_get_address(to, i + 1);
    CHECK(std::string(internet_address_get_name(a)) == (i % 2 ? "Zoë Ångström" : "Ann"));
    CHECK(std::string(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a))) ==
          "user" + std::to_string(i) + "@example.net");
  }
}

TEST_CASE("headers: text that looks like an encoded word stays literal, and U-label domains go out as A-labels") {
  auto spec = basic_spec();
  spec.subject = "=?utf-8?q?not_encoded?= really";
  spec.to = {box("user@bücher.example")};
  spec.headers = {{"X-Long", std::string(120, 'a') + " " + std::string(20, 'b')}};
  auto content = built_and_checked(spec);
  parsed_message p(content);
  CHECK(decoded_subject(p) == spec.subject);
  CHECK(content.find("To: user@xn--bcher-kva.example\r\n") != std::string::npos);
  CHECK(content.find("X-Long: " + std::string(120, 'a') + "\r\n " + std::string(20, 'b') + "\r\n") != std::string::npos);
}

TEST_CASE("bodies: quoted-printable and base64 round-trip, and a boundary never occurs in a part") {
  auto spec = basic_spec();
  // Mostly ASCII with '=', trailing white space, 8-bit and a long line: quoted-printable.
  std::string text = "a=b \nZoë  \n\tindented\n" + std::string(200, 'y') + "é\nlast line no break";
  // Mostly 8-bit: base64.
  std::string html = "<p>日本語のテキストです。日本語のテキストです。</p>\n";
  // A 7-bit part that contains what the first boundary would be.
  spec.text = text;
  spec.html = html;
  auto content = built_and_checked(spec);
  CHECK(content.find("Content-Transfer-Encoding: quoted-printable") != std::string::npos);
  CHECK(content.find("Content-Transfer-Encoding: base64") != std::string::npos);
  parsed_message p(content);
  auto* mp = GMIME_MULTIPART(g_mime_message_get_mime_part(p.message));
  CHECK(part_text(g_mime_multipart_get_part(mp, 0)) == text);
  CHECK(part_text(g_mime_multipart_get_part(mp, 1)) == html);

  auto tricky = basic_spec();
  tricky.text = "--=_1_01ARZ3NDEKTSV4RRFFQ69G5FAV\nnot a boundary\n";
  tricky.html = "<p>x</p>";
  parsed_message q(built_and_checked(tricky));
  auto* alt = GMIME_MULTIPART(g_mime_message_get_mime_part(q.message));
  REQUIRE(g_mime_multipart_get_count(alt) == 2);
  CHECK(part_text(g_mime_multipart_get_part(alt, 0)) == *tricky.text);
}

TEST_CASE("attachments: long and non-ASCII file names are continued (RFC 2231) and read back whole") {
  auto spec = basic_spec();
  std::string name;
  for (int i = 0; i < 12; ++i) name += "Überweisungsbeleg ";
  name += "final \"copy\".pdf";
  std::string ascii_long(150, 'n');
  ascii_long += ".txt";
  spec.attachments = {{name, "application/pdf", "%PDF", false, ""},
                      {ascii_long, "text/plain", "x", false, ""},
                      {"a b;c.txt", "text/plain", "y", false, ""}};
  auto content = built_and_checked(spec);
  for (const auto& line : header_lines(content)) CHECK(line.size() <= 78);
  parsed_message p(content);
  auto* mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(p.message));
  REQUIRE(g_mime_multipart_get_count(mixed) == 4);
  CHECK(std::string(g_mime_part_get_filename(GMIME_PART(g_mime_multipart_get_part(mixed, 1)))) == name);
  CHECK(std::string(g_mime_part_get_filename(GMIME_PART(g_mime_multipart_get_part(mixed, 2)))) == ascii_long);
  CHECK(std::string(g_mime_part_get_filename(GMIME_PART(g_mime_multipart_get_part(mixed, 3)))) == "a b;c.txt");
}
