#!/usr/bin/env bash
# Submission latency against load, with deliveries running (bench/delivery.sh, Petrel only,
# 1 KB): first the peak (wrk as fast as answers come back), then the same load offered at a
# fixed 25, 50, 75 and 100% of that peak (RATE in bench/delivery.lua). Prints, per step, the
# offered and achieved rate and the 202's p50/p99 as wrk saw them, and Petrel's CPU per message.
# COMMIT_INTERVAL and SQLITE_SYNCHRONOUS pass through to bench/delivery.sh.
#
#   bench/latency_curve.sh
#   DURATION=30s CONNECTIONS=64 bench/latency_curve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DURATION=${DURATION:-15s} CONNECTIONS=${CONNECTIONS:-32} SKIP_POSTFIX=1 SIZES=1024
work=$(mktemp -d /tmp/petrel-curve.XXXXXX)
trap 'rm -rf "$work"' EXIT

step() {  # $1: label, $2: rate (0 = as fast as possible)
  RATE=$2 bench/delivery.sh > "$work/$1.log" 2>&1 || { tail -20 "$work/$1.log" >&2; exit 1; }
  local achieved p50 p99 us
  achieved=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$work/$1.log")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/$1.log")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/$1.log")
  us=$(awk '/per delivered message:/ { print $7 }' "$work/$1.log")
  printf '%-6s %9s %9s %9s %9s %12s\n' "$1" "${2/#0/-}" "$achieved" "$p50" "$p99" "${us:-0}"
  echo "$achieved" > "$work/$1.rate"
}

printf '%-6s %9s %9s %9s %9s %12s\n' load offered/s achieved/s p50 p99 "CPU us/msg"
step peak 0
peak=$(cat "$work/peak.rate")
for percent in 25 50 75 100; do
  step "$percent%" $(( peak * percent / 100 ))
done
