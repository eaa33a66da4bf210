#!/usr/bin/env bash
# DKIM costs: signatures per second of Petrel's signer (RSA-2048 and Ed25519, 1 KB and 20 KB,
# one core), then the end-to-end delivery benchmark (bench/delivery.sh, Petrel only, 1 KB)
# with DKIM off, RSA, and RSA + Ed25519 (dual), and the ratios.
#
#   bench/dkim.sh
#   DURATION=30s bench/dkim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PETREL_BUILD_DIR:-build}

echo "=== signing, one thread ==="
"$build/bench/petrel_dkim_bench"

# One delivery run: "<delivered/s> <Petrel CPU µs per delivered message>".
rate() {
  SKIP_POSTFIX=1 SIZES=1024 DURATION=${DURATION:-15s} "$@" bash bench/delivery.sh 2>&1 |
    awk '/^1 KB +\|/ { rate = $7 }
         /per delivered message:/ { us = $7 }
         END { printf "%s %s\n", rate, (us == "" ? 0 : us) }'
}
echo
echo "=== delivery, 1 KB, DKIM off vs on ==="
read -r off off_us <<<"$(rate env)"
read -r rsa rsa_us <<<"$(rate env DKIM=rsa-sha256)"
read -r dual dual_us <<<"$(rate env DKIM=rsa-sha256,ed25519-sha256)"
awk -v off="$off" -v rsa="$rsa" -v dual="$dual" -v off_us="$off_us" -v rsa_us="$rsa_us" -v dual_us="$dual_us" 'BEGIN {
  printf "delivered/s: DKIM off %s, RSA %s (%.2fx), RSA+Ed25519 %s (%.2fx)\n", off, rsa, rsa / off, dual, dual / off
  printf "Petrel CPU per delivered message: off %d us, RSA %d us (+%d us signing), RSA+Ed25519 %d us (+%d us)\n",
         off_us, rsa_us, rsa_us - off_us, dual_us, dual_us - off_us
  print "(compare the +us with the raw signature costs printed by the signing benchmark above)"
}'
