// DKIM signing speed: signatures per second for RSA-2048 and Ed25519 on 1 KB and 20 KB
// messages, one thread, keys parsed once (as the signer workers hold them). Run by
// bench/dkim.sh; prints one line per case.
#include <chrono>
#include <cstdio>
#include <string>

#include "net/mail/dkim.hpp"

using namespace petrel;

int main() {
  for (auto algorithm : {dkim_algorithm::rsa_sha256, dkim_algorithm::ed25519_sha256}) {
    auto signer = dkim_signer::from_pem("bench.test", "s", generate_dkim_key(algorithm, 2048)).value();
    for (std::size_t size : {1024u, 20480u}) {
      std::string message =
          "From: Bench <bench@bench.test>\r\nTo: user@d1.bench.test\r\nSubject: Benchmark\r\n"
          "Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <b@bench.test>\r\n"
          "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
      while (message.size() < size) message += "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n";
      int n = 0;
      std::size_t sink = 0;
      auto start = std::chrono::steady_clock::now();
      auto elapsed = std::chrono::duration<double>(0);
      while (elapsed.count() < 2.0) {  // two seconds per case
        for (int i = 0; i < 20; ++i) sink += signer->sign(message, 1700000000).size();
        n += 20;
        elapsed = std::chrono::steady_clock::now() - start;
      }
      std::printf("%-15s %6zu bytes: %8.0f signatures/s (%.1f us each)%s\n",
                  std::string(to_string(algorithm)).c_str(), size, n / elapsed.count(),
                  1e6 * elapsed.count() / n, sink ? "" : " ");
    }
  }
}
