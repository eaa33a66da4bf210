#!/bin/bash
# Bounce parsing and classification speed (one thread): builds bench/bounce_bench.cpp and runs
# it over the corpus in tests/data/bounces/emails. Usage: bench/bounces.sh [build dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cmake --build "$build" --target petrel_bounce_bench >/dev/null
exec "$build/bench/petrel_bounce_bench" "$root/tests/data/bounces/emails"
