#!/usr/bin/env bash
# Submission benchmark: concurrent HTTP clients (wrk) post 1 KB messages, one recipient each,
# to a fresh Petrel on the embedded SQLite store (synchronous=FULL) for a fixed time.
# Reports accepted/s, latency percentiles of the 202, and the store's group-commit batches.
#
#   bench/submit.sh                    # defaults below
#   DURATION=30s CONNECTIONS=128 bench/submit.sh
#   SYNCHRONOUS=normal bench/submit.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PETREL=${PETREL_BIN:-build/app/petrel}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
HTTP_THREADS=${HTTP_THREADS:-1}
SYNCHRONOUS=${SYNCHRONOUS:-full}
STORE_URL=${STORE_URL:-}

command -v wrk >/dev/null || bash scripts/install-deps.sh --bench

work=$(mktemp -d /tmp/petrel-bench.XXXXXX)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-admin-token-0123456789abcdef
cat > "$work/petrel.toml" <<TOML
[log]
level = "warn"
[http]
listen = "127.0.0.1:0"
[io]
threads = $HTTP_THREADS
[admin]
listen = "127.0.0.1:0"
token = "$token"
[storage]
data_dir = "$work/data"
url = "$STORE_URL"
sqlite_synchronous = "$SYNCHRONOUS"
[bootstrap]
create_tenant = false
TOML
# "warn" hides the listening lines; ask for them at info, then quiet the rest with grep.
sed -i 's/level = "warn"/level = "info"/' "$work/petrel.toml"

"$PETREL" serve --config "$work/petrel.toml" > "$work/stdout" 2> "$work/stderr" &
pid=$!
for _ in $(seq 1 200); do
  grep -q "listener=admin" "$work/stderr" 2>/dev/null && break
  sleep 0.05
done
api_port=$(grep -o 'listener=api address=[^ ]*' "$work/stderr" | sed 's/.*://')
admin_port=$(grep -o 'listener=admin address=[^ ]*' "$work/stderr" | sed 's/.*://')
[ -n "$api_port" ] && [ -n "$admin_port" ] || { cat "$work/stderr"; exit 1; }
until curl -sf "http://127.0.0.1:$api_port/readyz" >/dev/null; do sleep 0.05; done

key=$(curl -sf "http://127.0.0.1:$admin_port/admin/tenants" -H "Authorization: Bearer $token" \
        -d '{"name":"bench","rate":"1000000/s","burst":1000000}' |
      sed 's/.*"api_key":"\([^"]*\)".*/\1/')

echo "petrel $(git rev-parse --short HEAD 2>/dev/null || echo '?'): $(nproc) cores," \
     "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, io.threads=$HTTP_THREADS," \
     "store=${STORE_URL:-sqlite} synchronous=$SYNCHRONOUS"
PETREL_KEY=$key DOMAIN_SUFFIX=bench.example wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
  -s bench/delivery.lua "http://127.0.0.1:$api_port/v1/messages" | tee "$work/wrk.txt"

metrics=$(curl -sf "http://127.0.0.1:$admin_port/metrics")
metric() { echo "$metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
accepted=$(metric petrel_messages_accepted_total)
commits=$(metric petrel_store_commits_total)
ops=$(metric petrel_store_batch_operations_sum)
commit_seconds=$(metric petrel_store_commit_seconds_sum)
rejected=$(echo "$metrics" | awk '/^petrel_http_requests_total\{listener="api",code="(4|5)/ { s += $2 } END { print s + 0 }')
seconds=$(awk '/requests in/ { d = $(NF-2); sub(/s,?$/, "", d); if (d ~ /m$/) { sub(/m$/, "", d); d *= 60 } print d }' "$work/wrk.txt")
rss=$(metric process_resident_memory_bytes)

kill -TERM $pid
wait $pid
if [ -n "$STORE_URL" ]; then
  rows=$(psql "$STORE_URL" -X -At -c "SELECT COUNT(*) FROM messages" 2>/dev/null || echo "?")
else
  rows=$(sqlite3 "$work/data/petrel.db" "SELECT COUNT(*) FROM messages" 2>/dev/null || echo "?")
fi

awk -v a="$accepted" -v s="$seconds" -v c="$commits" -v o="$ops" -v cs="$commit_seconds" \
    -v r="$rejected" -v rows="$rows" -v rss="$rss" 'BEGIN {
  printf "accepted: %d messages in %.1f s = %.0f accepted/s (non-2xx: %d)\n", a, s, a / s, r
  printf "store: %d commits = %.0f commits/s, %.1f writes per commit (a write: message + recipient + event rows), mean commit %.2f ms\n", c, c / s, o / c, cs / c * 1000
  printf "rows in messages table after SIGTERM: %s; RSS at end of load: %.0f MiB\n", rows, rss / 1048576
}'
