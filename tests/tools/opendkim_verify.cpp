// Test tool: verifies every DKIM signature of the message on standard input with libopendkim
// (an implementation independent of Petrel's), reading keys from a file instead of DNS.
// KEYS holds lines "<selector>._domainkey.<domain> <TXT record>". Prints one line per
// signature ("pass" or "fail" with the reason) and exits 0 only if every one passed.
//   opendkim_verify KEYS < message
// dkim.h is a C header that uses C99's _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: opendkim_verify KEYFILE < message\n");
    return 2;
  }
  std::string message((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  dkim_query_t method = DKIM_QUERY_FILE;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, argv[1], std::strlen(argv[1]));
  DKIM_STAT status;
  DKIM* dkim = dkim_verify(lib, reinterpret_cast<const unsigned char*>("test"), nullptr, &status);
  // Feed the message in chunks, as a filter would.
  for (std::size_t i = 0; i < message.size(); i += 1000) {
    auto n = std::min<std::size_t>(1000, message.size() - i);
    dkim_chunk(dkim, reinterpret_cast<unsigned char*>(message.data() + i), n);
  }
  dkim_chunk(dkim, nullptr, 0);
  bool testkey = false;
  status = dkim_eom(dkim, &testkey);
  DKIM_SIGINFO** sigs = nullptr;
  int nsigs = 0;
  dkim_getsiglist(dkim, &sigs, &nsigs);
  bool all = nsigs > 0;
  for (int i = 0; i < nsigs; ++i) {
    bool pass = (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_PASSED) &&
                dkim_sig_getbh(sigs[i]) == DKIM_SIGBH_MATCH;
    std::printf("d=%s s=%s %s %s\n", dkim_sig_getdomain(sigs[i]), dkim_sig_getselector(sigs[i]),
                pass ? "pass" : "fail", pass ? "" : dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i])));
    all = all && pass;
  }
  if (nsigs == 0) std::printf("no signature (%s)\n", dkim_getresultstr(status));
  dkim_free(dkim);
  dkim_close(lib);
  return all ? 0 : 1;
}
