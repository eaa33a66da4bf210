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

rate() {
  SKIP_POSTFIX=1 SIZES=1024 DURATION=${DURATION:-15s} "$@" bash bench/delivery.sh 2>&1 |
    awk '/^1 KB +\|/ { print $7 }'
}
echo
echo "=== delivery, 1 KB, DKIM off vs on ==="
off=$(rate env)
rsa=$(rate env DKIM=rsa-sha256)
dual=$(rate env DKIM=rsa-sha256,ed25519-sha256)
awk -v off="$off" -v rsa="$rsa" -v dual="$dual" 'BEGIN {
  printf "delivered/s: DKIM off %s, RSA %s (%.2fx), RSA+Ed25519 %s (%.2fx)\n", off, rsa, rsa / off, dual, dual / off
}'
