// Test tool: signs the message on standard input with Petrel's DKIM signer (the code under
// test) and writes the signed message. Usage:
//   petrel_dkim_sign DOMAIN SELECTOR KEY.pem [SELECTOR2 KEY2.pem ...] < message > signed
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "net/mail/dkim.hpp"

int main(int argc, char** argv) {
  if (argc < 4 || (argc - 2) % 2 != 0) {
    std::fprintf(stderr, "usage: petrel_dkim_sign DOMAIN SELECTOR KEY.pem [SELECTOR KEY.pem ...]\n");
    return 2;
  }
  std::string message((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string signatures;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::ifstream in(argv[i + 1]);
    std::stringstream pem;
    pem << in.rdbuf();
    auto signer = petrel::dkim_signer::from_pem(argv[1], argv[i], pem.str());
    if (!signer) {
      std::fprintf(stderr, "%s: %s\n", argv[i + 1], signer.error().c_str());
      return 1;
    }
    signatures += signer.value()->sign(message, std::time(nullptr));
  }
  std::cout << signatures << message;
  return 0;
}
