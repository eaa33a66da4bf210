#!/usr/bin/env bash
# Two Petrel binaries on bench/delivery.sh, alternating A, B, B, A, ... in one session, one line
# per run and the medians: delivered/s, Petrel's CPU per delivered message, its context switches
# per delivered message, and the 202 -> delivered p50/p99. Single runs on this machine differ by
# up to a quarter, so a change is judged on alternating pairs (docs/performance.md), and on the
# count of pairs it wins as much as on the medians.
#
#   bench/ab.sh /tmp/petrel-before build/app/petrel          # 3 pairs, 1 KB, 15 s each
#   PAIRS=5 SIZE=20480 DURATION=20s bench/ab.sh A B
#   EXTRA_TOML=... bench/ab.sh A B                           # passed on to bench/delivery.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: bench/ab.sh <binary A> <binary B>" >&2; exit 2; }
a=$1 b=$2
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "ab: $bin is not an executable" >&2; exit 2; }; done
PAIRS=${PAIRS:-3}
SIZE=${SIZE:-1024}
DURATION=${DURATION:-15s}
work=$(mktemp -d /tmp/petrel-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM  # the EXIT trap runs on these too

# "<delivered/s> <CPU µs/msg> <context switches/msg> <p50 ms> <p99 ms>" of one run's log.
summary() {
  awk '
    /= [0-9]+ delivered\/s/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "delivered/s") rate = $i }
    /per delivered message:/ { us = $7; switches = $10 }
    /202->delivered ms/ { for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1) } }
    END { if (us != "") print rate, us, switches, p50, p99 }' "$1"
}

run() {  # $1: label, $2: binary, $3: pair number
  local log="$work/$1-$3.log" line
  PETREL_BIN=$2 SKIP_POSTFIX=1 SIZES=$SIZE DURATION=$DURATION bash bench/delivery.sh > "$log" 2>&1 ||
    { echo "ab: run $1 $3 failed; its log:" >&2; tail -20 "$log" >&2; exit 1; }
  line=$(summary "$log")
  [ -n "$line" ] || { echo "ab: no figures in run $1 $3" >&2; tail -20 "$log" >&2; exit 1; }
  echo "$1 $line" >> "$work/results"
  printf '%-3s pair %d: %8s delivered/s  %5s µs/msg  %6s switches/msg  p50/p99 %s/%s ms\n' "$1" "$3" $line
}

echo "A = $a"
echo "B = $b"
echo "$PAIRS pairs, $SIZE B, $DURATION each"
# The order alternates between pairs (A B, B A, A B, ...): the first run of a pair was measured
# to have an edge over the second (the machine's state after a run), which a fixed order turns
# into a bias for A.
for i in $(seq 1 "$PAIRS"); do
  if (( i % 2 )); then
    run A "$a" "$i"
    run B "$b" "$i"
  else
    run B "$b" "$i"
    run A "$a" "$i"
  fi
done
echo
echo "medians:"
for label in A B; do
  awk -v l="$label" '$1 == l' "$work/results" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in sys.stdin]
m = [statistics.median(col) for col in zip(*rows)]
print("%-3s %8.0f delivered/s  %5.0f µs/msg  %6.2f switches/msg  p50/p99 %.0f/%.0f ms" % (sys.argv[1], *m))
' "$label"
done
