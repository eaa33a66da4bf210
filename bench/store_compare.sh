#!/usr/bin/env bash
# The submission benchmark (bench/submit.sh) on both stores in one run: the embedded SQLite
# file and a private PostgreSQL 15 cluster (tests/pg/pg-server.sh, synchronous_commit on, fsync
# on), same load, one after the other. Reports for each: accepted/s, latency percentiles of the
# 202, commits/s and writes per commit (each write: a message, its recipient and its event).
#
#   bench/store_compare.sh
#   DURATION=30s CONNECTIONS=128 bench/store_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pg_dir=$(mktemp -d /tmp/petrel-bench-pg.XXXXXX)
trap 'tests/pg/pg-server.sh stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
tests/pg/pg-server.sh start "$pg_dir" >/dev/null
admin=$(cat "$pg_dir/url")
psql "$admin" -X -q -c "CREATE DATABASE petrel_bench"
pg_url="${admin%/*}/petrel_bench"

echo "=== SQLite (synchronous=FULL) ==="
bash bench/submit.sh | grep -E "Latency Distribution|50%|90%|99%|accepted:|store:|rows in"
echo
echo "=== PostgreSQL 15 (synchronous_commit=on) ==="
STORE_URL="$pg_url" bash bench/submit.sh | grep -E "Latency Distribution|50%|90%|99%|accepted:|store:|rows in"
