// libFuzzer entry point for DNS answer handling (net/dns.hpp): any bytes as a DNS message given
// to the readers Petrel applies to answers (TTLs, TLSA, CNAME) and to c-ares's own parsers of
// the record types Petrel asks for (MX, A, AAAA, TXT). Malformed answers are refused, never
// read past their end. Built by bench/fuzz.sh.
#include <ares.h>
#include <netdb.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/dns.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (int type : {1, 5, 15, 16, 28, 52}) (void)petrel::dns_answer_ttl(data, size, type, 300);
  std::vector<petrel::tlsa_record> tlsa;
  if (petrel::parse_tlsa_answer(data, size, tlsa) && tlsa.size() > 64) std::abort();
  std::string target;
  (void)petrel::parse_cname_answer(data, size, "example.com", target);
  int length = static_cast<int>(size);
  ares_mx_reply* mx = nullptr;
  if (ares_parse_mx_reply(data, length, &mx) == ARES_SUCCESS) ares_free_data(mx);
  ares_txt_ext* txt = nullptr;
  if (ares_parse_txt_reply_ext(data, length, &txt) == ARES_SUCCESS) ares_free_data(txt);
  ares_addrttl v4[16];
  int n4 = 16;
  (void)ares_parse_a_reply(data, length, nullptr, v4, &n4);
  ares_addr6ttl v6[16];
  int n6 = 16;
  (void)ares_parse_aaaa_reply(data, length, nullptr, v6, &n6);
  return 0;
}
