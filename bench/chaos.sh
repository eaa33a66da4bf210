#!/usr/bin/env bash
# Chaos under load, longer than the test suite's run (tests/system/test_chaos.py): the node is
# killed with SIGKILL at random moments CHAOS_CYCLES times (default 200) under sustained
# submissions and deliveries, on SQLite, then on PostgreSQL with PostgreSQL restarted too; each
# run prints and writes its report (acknowledged, lost, duplicates) to build/artifacts/.
#
#   bench/chaos.sh [cycles]        (after a build: build/app/petrel)
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-${CHAOS_CYCLES:-200}}"
export PETREL_BIN="${PETREL_BIN:-$PWD/build/app/petrel}"
export PETREL_ARTIFACTS_DIR="${PETREL_ARTIFACTS_DIR:-$PWD/build/artifacts}"
export CHAOS_CYCLES="$cycles"
pg="$(mktemp -d /tmp/petrel-chaos-pg.XXXXXX)"
trap 'tests/pg/pg-server.sh stop "$pg" >/dev/null 2>&1 || true; rm -rf "$pg"' EXIT
echo "== SQLite: $cycles kills"
(cd tests/system && /usr/bin/python3 -m pytest -q -s -p no:cacheprovider test_chaos.py 2>&1 | grep -E "chaos report|passed|failed|Error")
echo "== PostgreSQL: $cycles kills, then kills and PostgreSQL restarts"
tests/pg/pg-server.sh start "$pg" >/dev/null
(cd tests/system && PETREL_TEST_STORE=postgresql PETREL_PG_URL_FILE="$pg/url" \
   /usr/bin/python3 -m pytest -q -s -p no:cacheprovider test_chaos.py 2>&1 | grep -E "chaos report|restarts|passed|failed|Error")
