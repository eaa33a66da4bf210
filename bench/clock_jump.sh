#!/usr/bin/env bash
# Wall-clock jumps under Debian's libfaketime (tests/system/test_clock.py): the node's wall clock
# moves an hour back, then an hour forward, while a retry waits; the retry must come on schedule
# by the monotonic clock. Not in CI (ISSUE-NOTES: faketime in a script).
#
#   bench/clock_jump.sh        (after a build; installs faketime when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get install -y -qq faketime
fi
export PETREL_BIN="${PETREL_BIN:-$PWD/build/app/petrel}" PETREL_CLOCK_TEST=1
cd tests/system && exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider test_clock.py
