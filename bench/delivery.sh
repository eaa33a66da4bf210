#!/usr/bin/env bash
# Delivery benchmark: how fast Petrel gets mail from its HTTP API out to SMTP servers, next to
# Postfix doing the same job on the same machine.
#
# Setup, all on 127.0.0.0/8:
# - four Postfix smtp-sink processes on 127.0.0.10..13:$SINK_PORT accept and discard mail;
# - tests/tools/dns_server.py (through bench/delivery_dns.py, which only enlarges its UDP buffer)
#   serves 1,000 domains d0..d999.bench.test, domain i with one MX mx{i % 4}.bench.test ->
#   127.0.0.{10 + i % 4} (bench/delivery_zone.py), so each sink is one MX site;
# - for each message size (1 KB and 20 KB of body text by default):
#   Petrel: a fresh data dir (SQLite, synchronous=full), default delivery settings. wrk posts
#     one-recipient messages (bench/delivery.lua) over the 1,000 domains for $DURATION with
#     $CONNECTIONS connections; then we wait until no recipient is queued or deferred, stop Petrel
#     with SIGTERM and compute from its database: delivered/s = delivered / (last 'delivered'
#     event - first message's created_at), and p50/p99 of (delivered event - message created_at),
#     i.e. 202 Accepted -> 250 from the sink.
#   Postfix: its own instance (config, queue on disk, maillog_file) under the temp dir, listening
#     on 127.0.0.1:$POSTFIX_PORT, relaying everything to the four sinks through a randmap
#     transport (no DNS: Postfix's resolver cannot be pointed at a test DNS server on another
#     port). smtp-source injects as many messages as Petrel accepted (at most
#     $POSTFIX_MAX_MESSAGES) over $CONNECTIONS sessions; delivered/s = sent / (wall time from the
#     start of the injection until the queue is empty); p50/p99 of the delay= of sent messages
#     (arrival in the queue -> sent).
# Default concurrency on both sides: Petrel 10 connections per MX site (40 in all), Postfix 20 per
# destination (80 in all, within its 100 smtp processes).
#
#   bench/delivery.sh                              # defaults below, about 4 minutes
#   DURATION=10s CONNECTIONS=64 SIZES="1024" bench/delivery.sh
#   SKIP_POSTFIX=1 bench/delivery.sh               # Petrel only
#   VERP=1 SKIP_POSTFIX=1 bench/delivery.sh        # with VERP envelope senders
#   KEEP_WORK=1 bench/delivery.sh                  # keep the temp dir (logs, databases)
#   SHAPED=1 SKIP_POSTFIX=1 bench/delivery.sh      # traffic shaping on, limits not binding
#   WEBHOOK=ok|dead SKIP_POSTFIX=1 bench/delivery.sh  # events to a webhook receiver (or a dead one)
#   OVERLOAD=1 SKIP_POSTFIX=1 SIZES=1024 DURATION=120s bench/delivery.sh
#                                                  # sites slower than the injection: RSS over time
#   EXTRA_TOML=$'[actors]\nthreads = 1' bench/delivery.sh   # more configuration for Petrel
#   RATE=1500 SKIP_POSTFIX=1 SIZES=1024 bench/delivery.sh   # offered at 1,500 requests/s
#   COMMIT_INTERVAL=0ms SQLITE_SYNCHRONOUS=normal bench/delivery.sh  # [storage] settings
#   ALLOCATOR=jemalloc|mimalloc bench/delivery.sh  # Petrel with Debian's jemalloc or mimalloc preloaded
#   PERF=1 SKIP_POSTFIX=1 SIZES=1024 bench/delivery.sh
#                                                  # perf record -g of Petrel during the injection
#                                                  # (perf.data and a report in the kept work dir)
set -euo pipefail
cd "$(dirname "$0")/.."

PETREL=${PETREL_BIN:-build/app/petrel}
PYTHON=/usr/bin/python3              # Debian's, which has python3-dnslib
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
SIZES=${SIZES:-"1024 20480"}         # bytes of body text
SINK_PORT=${SINK_PORT:-2525}
SINK_ADDRESSES=(127.0.0.10 127.0.0.11 127.0.0.12 127.0.0.13)
SINK_CONNECTIONS=${SINK_CONNECTIONS:-1000}   # smtp-sink -m: connections each sink serves at once
POSTFIX_PORT=${POSTFIX_PORT:-10025}
POSTFIX_MAX_MESSAGES=${POSTFIX_MAX_MESSAGES:-50000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}  # seconds to wait for every recipient to be final
SKIP_POSTFIX=${SKIP_POSTFIX:-0}
SHAPED=${SHAPED:-0}                  # 1: traffic shaping on (pools, rates, warm-up, rules)
OVERLOAD=${OVERLOAD:-0}              # 1: sites slower than the injection; RSS sampled
OVERLOAD_RATE=${OVERLOAD_RATE:-200/s}
OVERLOAD_BOUND=${OVERLOAD_BOUND:-200000}
WEBHOOK=${WEBHOOK:-}                 # ok: events posted to a local receiver; dead: to one that hangs
KEEP_WORK=${KEEP_WORK:-0}
PERF=${PERF:-0}                      # 1: profile Petrel with perf during the injection
PERF_FREQUENCY=${PERF_FREQUENCY:-499}
PETREL_LOG_LEVEL=${PETREL_LOG_LEVEL:-info}   # debug adds per-domain and per-session lines
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION=${DURATION}s

token=bench-admin-token-0123456789abcdef
pids=()                  # background processes we started, killed on exit
postfix_conf=""          # config dir of the running Postfix instance, stopped on exit
main_cf_backup=""        # copy of /etc/postfix/main.cf if we had to register our instance
declare -A result        # result[<size>.<name>] = value, printed in the summary

log() { echo "== $*" >&2; }
die() { echo "delivery.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }

# ---------------------------------------------------------------------------------------------
# Tools

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_tools() {
  local had_postfix=0 missing=() p
  installed postfix && had_postfix=1
  command -v wrk >/dev/null && command -v sqlite3 >/dev/null || bash scripts/install-deps.sh --bench
  for p in postfix python3-dnslib; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # "No configuration": the programs only, no /etc/postfix/main.cf, no system MTA started.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Should the package have started a system postfix anyway, stop it: nothing of ours may listen
  # on port 25. Only one that appeared with this install; a pre-existing MTA is left alone.
  if [ "$had_postfix" = 0 ] && ss -ltnp 'sport = :25' | grep -q '"master"'; then
    log "stopping the system postfix the package started"
    postfix stop >/dev/null 2>&1 || service postfix stop >/dev/null 2>&1 || true
  fi
  for p in wrk sqlite3 curl /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/sbin/postfix; do
    command -v "$p" >/dev/null || die "$p is missing"
  done
  "$PYTHON" -c 'import dnslib' || die "python3-dnslib is missing for $PYTHON"
  [ -x "$PETREL" ] || die "$PETREL not built"
}

# Machine-wide CPU ticks "busy total" from /proc/stat; busy_percent turns two samples into the
# share of all cores that was busy in between (100% = every core saturated).
cpu_sample() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
busy_percent() {  # $1, $2: samples
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.0f%%", (d > 0 ? (y[1] - x[1]) * 100 / d : 0) }'
}
# User + system CPU seconds a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' "/proc/$1/stat"; }
# Petrel's CPU and context switches per delivered message, one line that bench/ab.sh,
# bench/dkim.sh and bench/latency_curve.sh read.
per_message_report() {  # $1: size, $2: CPU seconds, $3: context switches ("V voluntary, N involuntary")
  awk -v size="$1" -v cpu="$2" -v d="${result[$1.petrel_delivered]:-0}" -v switches="$3" 'BEGIN {
    split(switches, f, " ")
    if (d > 0) printf "petrel %s B: per delivered message: %.0f µs CPU, %.2f context switches\n", size, cpu * 1e6 / d, (f[1] + f[3]) / d
  }'
}
# Context switches of a process's live threads so far (voluntary: it waited; involuntary: it was
# preempted). Threads that ended are not counted; Petrel's run for its whole life.
context_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { printf "%d voluntary, %d involuntary", v, n }'
}

# Runs "$@" in the background and waits for it: bash defers a TERM/INT trap until a foreground
# command ends, but not a `wait`; and the exit trap can then kill it with the rest.
interruptible() {
  local pid rc=0
  "$@" & pid=$!
  pids+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# Drops an ended process from $pids, so that the exit trap never signals a recycled pid.
forget_pid() {
  local keep=() pid
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  pids=("${keep[@]}")
}

# Waits (bounded) until command "$@" succeeds; $1 is the number of 0.1 s tries.
wait_for() {
  local tries=$1; shift
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
  return 1
}

# ---------------------------------------------------------------------------------------------
# SMTP sinks and DNS

start_sinks() {
  local address
  for address in "${SINK_ADDRESSES[@]}"; do
    # smtp-sink refuses to run as root without -u. Backlog 4096 so that bursts of connects
    # never see a full listen queue; it discards every message (no -d/-D dump).
    /usr/sbin/smtp-sink -u nobody -m "$SINK_CONNECTIONS" "$address:$SINK_PORT" 4096 \
      > "$work/sink-$address.log" 2>&1 &
    pids+=($!)
  done
  for address in "${SINK_ADDRESSES[@]}"; do
    wait_for 50 bash -c "exec 3<>/dev/tcp/$address/$SINK_PORT" 2>/dev/null ||
      die "smtp-sink on $address:$SINK_PORT did not start: $(cat "$work/sink-$address.log")"
  done
}

start_dns() {
  "$PYTHON" bench/delivery_zone.py 1000 "${#SINK_ADDRESSES[@]}" > "$work/zone.json"
  # tests/tools/dns_server.py with a larger UDP receive buffer (see bench/delivery_dns.py).
  "$PYTHON" bench/delivery_dns.py --listen 127.0.0.1:0 --zone "$work/zone.json" \
    --control 127.0.0.1:0 --ready-file "$work/dns.ready" > "$work/dns.log" 2>&1 &
  pids+=($!)
  wait_for 100 test -s "$work/dns.ready" || die "DNS server did not start: $(cat "$work/dns.log")"
  dns_port=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' \
               "$work/dns.ready")
  dns_control=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["control_port"])' \
                  "$work/dns.ready")
}

# UDP datagrams the kernel dropped for a full receive buffer, machine-wide, since boot.
udp_drops() { awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }

# Queries the DNS server answered since the last call, and the most any one name was asked
# (more than once per name and type means a resolver retried or its cache expired).
dns_stats() {
  curl -sf "http://127.0.0.1:$dns_control/stats" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
q, total, udp, tcp = s["queries"], s["total"], s["by_transport"]["udp"], s["by_transport"]["tcp"]
name, most = max(q.items(), key=lambda kv: kv[1], default=("-", 0))
print(f"{total} queries (udp {udp}, tcp {tcp}), {len(q)} names/types, most asked {name} x{most}")'
  curl -sf -X POST "http://127.0.0.1:$dns_control/reset" -o /dev/null
}

# ---------------------------------------------------------------------------------------------
# Petrel

start_petrel() {  # $1: directory for config, data and logs
  local dir=$1
  mkdir -p "$dir"
  cat > "$dir/petrel.toml" <<TOML
# "warn" would hide the listening lines, so info; delivery logs nothing per message at info.
[log]
level = "$PETREL_LOG_LEVEL"
[http]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "$token"
[storage]
data_dir = "$dir/data"
sqlite_synchronous = "${SQLITE_SYNCHRONOUS:-full}"
$([ -n "${COMMIT_INTERVAL:-}" ] && echo "commit_interval = \"$COMMIT_INTERVAL\"")
[bootstrap]
create_tenant = false
[dns]
servers = ["127.0.0.1:$dns_port"]
[delivery]
port = $SINK_PORT
allow_private_destinations = true   # the sinks are on loopback
$([ "$SHAPED" = 1 ] && printf 'connection_limit = 3\nmessage_rate = "1000/s"\nconnection_rate = "100/s"\nadaptive_concurrency = true\n')
[webhooks]
allow_private_networks = true
require_https = false
TOML
  if [ -n "${VERP:-}" ]; then
    # VERP=1: each delivery's envelope sender is a signed b-<token>@ address of its own.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/bounce.key"
    printf '[bounces]\nverp_domain = "bounces.bench.test"\nsecret_file = "%s"\n' "$dir/bounce.key" >> "$dir/petrel.toml"
  fi
  if [ "$SHAPED" = 1 ]; then
    # SHAPED=1: the traffic shaping a bulk sender runs with, at limits that do not bind here:
    # four sources in a weighted pool, each with a rate and a (large) warm-up budget, rates per
    # site x source, per domain and per tenant x domain, adaptive concurrency, and the example
    # configuration's response rules. Three connections per site x source (12 per sink, 48 in
    # all, close to the unshaped run's 10 per sink).
    cat >> "$dir/petrel.toml" <<TOML
[egress]
default_pool = "bulk"
[[delivery.domains]]
match = "*"
message_rate = "200/s"
tenant_rate = "100/s"
$(for i in 1 2 3 4; do
    # ip1 and ip2: 3,000/s with a warm-up schedule far above this run; ip3, ip4: 2,000/s, warm.
    printf '[[egress.sources]]\nname = "ip%d"\naddress = "127.0.0.%d"\n' "$i" $((19 + i))
    if [ "$i" -le 2 ]; then
      printf 'message_rate = "3000/s"\nwarmup = [{day = 1, per_day = 50000000, per_hour = 5000000}]\n'
    else
      printf 'message_rate = "2000/s"\n'
    fi
  done)
[[egress.pools]]
name = "bulk"
sources = [{source = "ip1", weight = 3}, {source = "ip2", weight = 3}, {source = "ip3", weight = 2}, {source = "ip4", weight = 2}]
TOML
    # The [[shaping.rules]] of the shipped example configuration.
    sed -n '/^\[\[shaping.rules\]\]/,/^$/p' config/petrel.toml >> "$dir/petrel.toml"
  fi
  if [ "$OVERLOAD" = 1 ]; then
    # OVERLOAD=1: every site takes only $OVERLOAD_RATE, so the backlog grows until Petrel's bound
    # ($OVERLOAD_BOUND waiting recipients) answers 503; RSS is sampled every second meanwhile.
    cat >> "$dir/petrel.toml" <<TOML
[[delivery.sites]]
match = "*"
message_rate = "$OVERLOAD_RATE"
[shaping]
max_waiting_recipients = $OVERLOAD_BOUND
max_waiting_per_tenant = $OVERLOAD_BOUND
TOML
  fi
  [ -n "${EXTRA_TOML:-}" ] && printf '%s\n' "$EXTRA_TOML" >> "$dir/petrel.toml"
  local preload=""
  case "${ALLOCATOR:-}" in
    "") ;;
    jemalloc) preload=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ;;
    mimalloc) preload=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ;;
    *) die "ALLOCATOR must be jemalloc or mimalloc" ;;
  esac
  [ -z "$preload" ] || [ -f "$preload" ] || die "$preload is missing (apt-get install libjemalloc2 libmimalloc2.0)"
  LD_PRELOAD=$preload "$PETREL" serve --config "$dir/petrel.toml" > "$dir/stdout" 2> "$dir/stderr" &
  petrel_pid=$!
  pids+=($petrel_pid)
  wait_for 100 grep -q "listener=admin" "$dir/stderr" || { cat "$dir/stderr" >&2; die "petrel did not start"; }
  api_port=$(grep -o 'listener=api address=[^ ]*' "$dir/stderr" | sed 's/.*://')
  admin_port=$(grep -o 'listener=admin address=[^ ]*' "$dir/stderr" | sed 's/.*://')
  wait_for 100 curl -sf "http://127.0.0.1:$api_port/readyz" -o /dev/null || die "petrel not ready"
  api_key=$(curl -sf "http://127.0.0.1:$admin_port/admin/tenants" -H "Authorization: Bearer $token" \
              -d '{"name":"bench","rate":"1000000/s","burst":1000000}' |
            sed 's/.*"api_key":"\([^"]*\)".*/\1/')
  [[ $api_key == pk_* ]] || die "could not create the tenant"
  if [ -n "$WEBHOOK" ]; then
    # WEBHOOK=ok: every event goes to a local receiver that answers 200; WEBHOOK=dead: to one
    # that never answers (each POST times out after 10 s, then is retried).
    "$PYTHON" tests/tools/webhook_server.py --listen 127.0.0.1:0 --control 127.0.0.1:0 \
      --ready-file "$dir/webhook.ready" > "$dir/webhook.log" 2>&1 &
    pids+=($!)
    wait_for 100 test -s "$dir/webhook.ready" || die "webhook receiver did not start"
    local hook_port hook_control
    hook_port=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' "$dir/webhook.ready")
    hook_control=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["control_port"])' "$dir/webhook.ready")
    if [ "$WEBHOOK" = dead ]; then
      curl -sf "http://127.0.0.1:$hook_control/config" -d '{"mode": "hang", "delay": 3600}' -o /dev/null
    fi
    curl -sf "http://127.0.0.1:$api_port/v1/webhooks" -H "Authorization: Bearer $api_key" \
      -H "Content-Type: application/json" -d "{\"url\":\"http://127.0.0.1:$hook_port/\"}" -o /dev/null ||
      die "could not create the webhook"
  fi
  if [ -n "${DKIM:-}" ]; then
    # Every message then carries DKIM signatures of bench.test (DKIM=rsa-sha256, or
    # DKIM=rsa-sha256,ed25519-sha256 for dual signing).
    local algorithms
    algorithms=$(echo "$DKIM" | sed 's/[^,]*/"&"/g')
    curl -sf "http://127.0.0.1:$api_port/v1/domains" -H "Authorization: Bearer $api_key" \
      -H "Content-Type: application/json" -d "{\"domain\":\"bench.test\",\"algorithms\":[$algorithms]}" \
      -o /dev/null || die "could not create the sender domain"
  fi
}

# Recipients still queued or deferred, from the admin API ("?" if it does not answer).
petrel_waiting() {
  curl -sf "http://127.0.0.1:$admin_port/admin/queues" -H "Authorization: Bearer $token" |
    "$PYTHON" -c 'import json, sys; t = json.load(sys.stdin)["totals"]; print(t["queued"] + t["deferred"])' \
    2>/dev/null || echo "?"
}

# Polls every 0.5 s until nothing is waiting, at most DRAIN_TIMEOUT seconds.
petrel_wait_drained() {
  local waiting deadline=$(( $(date +%s) + DRAIN_TIMEOUT )) last_report=0
  while :; do
    waiting=$(petrel_waiting)
    [ "$waiting" = 0 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "petrel: still $waiting recipients waiting after ${DRAIN_TIMEOUT}s; giving up"
      return 0
    fi
    if [ $(( $(date +%s) - last_report )) -ge 10 ]; then
      log "petrel: $waiting recipients waiting"; last_report=$(date +%s)
    fi
    sleep 0.5
  done
}

stop_petrel() {
  local rc=0
  kill -TERM "$petrel_pid"
  wait "$petrel_pid" || rc=$?
  forget_pid "$petrel_pid"
  [ "$rc" = 0 ] || log "petrel exited with $rc on SIGTERM (expected 0)"
}

# Figures from the stopped Petrel's database; sets result[$size.petrel_*].
petrel_report() {  # $1: size, $2: dir
  local size=$1 db=$2/data/petrel.db
  local row
  row=$(sqlite3 -separator ' ' "$db" "
    WITH d AS (SELECT e.created_at - m.created_at AS ms
                 FROM events e JOIN messages m ON m.id = e.message_id
                WHERE e.type = 'delivered')
    SELECT (SELECT COUNT(*) FROM messages),
           (SELECT COUNT(*) FROM d),
           (SELECT COUNT(*) FROM events WHERE type = 'deferred'),
           (SELECT COUNT(*) FROM events WHERE type = 'bounced'),
           (SELECT COUNT(*) FROM recipients WHERE state IN ('queued', 'deferred')),
           (SELECT COALESCE(MAX(created_at), 0) FROM events WHERE type = 'delivered')
             - (SELECT MIN(created_at) FROM messages),
           (SELECT ms FROM d ORDER BY ms LIMIT 1 OFFSET (SELECT (COUNT(*) - 1) * 50 / 100 FROM d)),
           (SELECT ms FROM d ORDER BY ms LIMIT 1 OFFSET (SELECT (COUNT(*) - 1) * 99 / 100 FROM d)),
           (SELECT MAX(ms) FROM d);")
  local messages delivered deferred bounced waiting span p50 p99 max
  read -r messages delivered deferred bounced waiting span p50 p99 max <<< "$row"
  result[$size.petrel_messages]=$messages
  result[$size.petrel_delivered]=$delivered
  result[$size.petrel_deferred]=$deferred
  result[$size.petrel_bounced]=$bounced
  result[$size.petrel_waiting]=$waiting
  result[$size.petrel_rate]=$(awk -v n="$delivered" -v ms="$span" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
  result[$size.petrel_p50]=${p50:-?}
  result[$size.petrel_p99]=${p99:-?}
  printf 'petrel %s B: %d messages in the store, %d delivered in %.1f s first accept -> last delivery = %s delivered/s\n' \
    "$size" "$messages" "$delivered" "$(awk -v ms="$span" 'BEGIN { print ms / 1000 }')" "${result[$size.petrel_rate]}"
  printf 'petrel %s B: deferred events %d, bounced %d, still waiting %d; 202->delivered ms p50 %s p99 %s max %s\n' \
    "$size" "$deferred" "$bounced" "$waiting" "${p50:-?}" "${p99:-?}" "${max:-?}"
  sqlite3 "$db" "SELECT 'petrel $size B: recipients ' || state || ' ' || COUNT(*) FROM recipients GROUP BY state"
  # Which egress sources carried the deliveries (more than "default" with SHAPED=1).
  sqlite3 "$db" "SELECT 'petrel $size B: delivered through ' || group_concat(s || ' ' || n, ', ') FROM
                   (SELECT json_extract(data, '\$.source') AS s, COUNT(*) AS n FROM events
                     WHERE type = 'delivered' GROUP BY s ORDER BY s)"
  # Anything Petrel complained about (warn and above) is worth seeing next to the numbers.
  local complaints
  complaints=$(grep -cE ' (warn|warning|error|critical) ' "$2/stderr" || true)
  echo "petrel $size B: $complaints warn/error lines on stderr"
  if [ "$complaints" != 0 ]; then
    grep -E ' (warn|warning|error|critical) ' "$2/stderr" | sed 's/^/    /' | head -20
  fi
}

run_petrel() {  # $1: body size in bytes
  local size=$1 dir=$work/petrel-$1
  log "petrel, $size B bodies: wrk -c$CONNECTIONS -d$DURATION"
  start_petrel "$dir"
  dns_stats > /dev/null   # reset the counts
  local drops_before cpu_before
  drops_before=$(udp_drops)
  cpu_before=$(cpu_sample)
  local sampler=""
  if [ "$OVERLOAD" = 1 ]; then
    # Seconds since the start, RSS in KiB, recipients waiting; once a second.
    (local t0; t0=$(date +%s)
     while kill -0 "$petrel_pid" 2>/dev/null; do
       echo "$(( $(date +%s) - t0 )) $(awk '/^VmRSS/ { print $2 }' "/proc/$petrel_pid/status") $(petrel_waiting)"
       sleep 1
     done) > "$dir/rss.txt" &
    sampler=$!
    pids+=("$sampler")
  fi
  local profiler=""
  if [ "$PERF" = 1 ]; then
    # Samples Petrel's threads (call graphs through frame pointers and DWARF-less unwinding)
    # from 2 s into the injection until 2 s before its end: the steady state only.
    local seconds_total=${DURATION%s}
    (sleep 2; exec perf record -q -F "$PERF_FREQUENCY" ${PERF_CALLGRAPH:+--call-graph $PERF_CALLGRAPH} -g -p "$petrel_pid" -o "$dir/perf.data" \
       -- sleep $(( seconds_total > 6 ? seconds_total - 4 : 2 ))) > "$dir/perf.log" 2>&1 &
    profiler=$!
    pids+=("$profiler")
  fi
  PETREL_KEY=$api_key MESSAGE_BYTES=$size RATE=${RATE:-0} CONNECTIONS=$CONNECTIONS interruptible wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s bench/delivery.lua "http://127.0.0.1:$api_port/v1/messages" > "$dir/wrk.txt"
  sed 's/^/    /' "$dir/wrk.txt" | grep -E 'Latency|requests in|Requests/sec|Non-2xx|Socket errors|  50%|  99%'
  if [ -n "$sampler" ]; then
    sleep 10   # after the injection: does memory settle?
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    forget_pid "$sampler"
    local refused
    refused=$(awk '/Non-2xx/ { print $NF }' "$dir/wrk.txt")
    echo "petrel $size B overload: bound $OVERLOAD_BOUND waiting recipients, sites at $OVERLOAD_RATE each;" \
         "${refused:-0} requests refused (429/503)"
    echo "petrel $size B overload: t(s) RSS(MiB) waiting, every 5 s:"
    awk 'NR % 5 == 1 { printf "    %4d %7.1f %s\n", $1, $2 / 1024, $3 }' "$dir/rss.txt"
    awk '{ if ($2 > m) m = $2; if ($3 + 0 > w) w = $3 + 0 } END { printf "petrel overload: max RSS %.1f MiB, max waiting %d\n", m / 1024, w }' "$dir/rss.txt"
    stop_petrel
    return 0
  fi
  if [ -n "$profiler" ]; then
    wait "$profiler" || true
    forget_pid "$profiler"
    perf report -i "$dir/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
      head -12 > "$dir/perf-dso.txt" || true
    perf report -i "$dir/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' |
      grep -v '^$' | head -40 > "$dir/perf-sym.txt" || true
    echo "petrel $size B: profile in $dir/perf.data; by library:"
    sed 's/^/    /' "$dir/perf-dso.txt"
    KEEP_WORK=1
  fi
  local metrics accepted seconds
  metrics=$(curl -sf "http://127.0.0.1:$admin_port/metrics")
  accepted=$(echo "$metrics" | awk '$1 == "petrel_messages_accepted_total" { print $2 }')
  seconds=$(awk '/requests in/ { d = $(NF-2); sub(/s,?$/, "", d); if (d ~ /m$/) { sub(/m$/, "", d); d *= 60 } print d }' "$dir/wrk.txt")
  result[$size.petrel_accepted]=$accepted
  result[$size.petrel_inject]=$(awk -v a="$accepted" -v s="$seconds" 'BEGIN { printf "%.0f", a / s }')
  echo "petrel $size B: accepted $accepted messages in $seconds s = ${result[$size.petrel_inject]} accepted/s"
  petrel_wait_drained
  curl -sf "http://127.0.0.1:$admin_port/metrics" > "$dir/metrics.txt"
  if [ -n "$WEBHOOK" ]; then
    # How long after the last delivery the webhook had every event (ok), or what it got (dead).
    local events_total t_caught_up=0 expected
    expected=$(awk '$1 == "petrel_messages_accepted_total" { a = $2 } $1 ~ /^petrel_recipient_outcomes_total/ { o += $2 } END { print a + o }' "$dir/metrics.txt")
    for _ in $(seq 1 600); do
      events_total=$(curl -sf "http://127.0.0.1:$admin_port/metrics" | awk '$1 == "petrel_webhook_events_total" { print $2 }')
      [ "${events_total:-0}" -ge "$expected" ] && break
      [ "$WEBHOOK" = dead ] && break
      sleep 0.1; t_caught_up=$((t_caught_up + 1))
    done
    echo "petrel $size B: webhook ($WEBHOOK): ${events_total:-0} of $expected events delivered;" \
         "caught up $(awk -v t="$t_caught_up" 'BEGIN { printf "%.1f", t / 10 }') s after the queue drained;" \
         "POSTs $(grep -E '^petrel_webhook_posts_total' "$dir/metrics.txt" | tr '\n' ' ')"
  fi
  echo "petrel $size B: DNS server saw $(dns_stats); UDP receive-buffer drops: $(( $(udp_drops) - drops_before ))"
  local cpu switches io
  cpu=$(cpu_seconds "$petrel_pid")
  switches=$(context_switches "$petrel_pid")
  io=$(awk '/^write_bytes/ { w = $2 } /^syscw/ { c = $2 } END { print w + 0, c + 0 }' "/proc/$petrel_pid/io" 2>/dev/null)
  echo "petrel $size B: machine CPU busy $(busy_percent "$cpu_before" "$(cpu_sample)") from injection start to drained;" \
       "petrel used $cpu CPU s; context switches $switches"
  stop_petrel
  petrel_report "$size" "$dir"
  per_message_report "$size" "$cpu" "$switches"
  # What reached the disk (the database, its WAL and checkpoints) over Petrel's life.
  awk -v size="$size" -v d="${result[$size.petrel_delivered]:-0}" -v io="$io" 'BEGIN {
    split(io, f, " ")
    if (d > 0) printf "petrel %s B: written to disk: %.1f KB per delivered message, and %.1f write calls (all sockets and files)\n", size, f[1] / d / 1024, f[2] / d
  }'
}

# ---------------------------------------------------------------------------------------------
# Postfix

# Root may run "postfix -c DIR" without registering DIR; only the unprivileged tools (postqueue,
# sendmail) insist on alternate_config_directories in the default main.cf. Register it anyway
# when a system main.cf exists, and put the file back byte for byte on exit. With the package's
# "No configuration" there is no main.cf, and we do not create one.
register_postfix_instance() {  # $1: config dir
  [ -f /etc/postfix/main.cf ] || return 0
  if [ -z "$main_cf_backup" ]; then
    main_cf_backup=$work/main.cf.system
    cp -p /etc/postfix/main.cf "$main_cf_backup"
  fi
  local dirs
  dirs=$(postconf -h alternate_config_directories 2>/dev/null || true)
  postconf -e "alternate_config_directories = ${dirs:+$dirs, }$1"
}

restore_main_cf() {
  [ -n "$main_cf_backup" ] || return 0
  cp -p "$main_cf_backup" /etc/postfix/main.cf
  main_cf_backup=""
}

write_postfix_config() {  # $1: instance dir
  local dir=$1 transports="" address
  for address in "${SINK_ADDRESSES[@]}"; do transports+="${transports:+, }smtp:[$address]:$SINK_PORT"; done
  mkdir -p "$dir/conf" "$dir/queue" "$dir/data"
  chown postfix "$dir/data"   # master and the daemons write their lock and caches there
  cat > "$dir/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file_prefixes = $dir
maillog_file = $dir/maillog
myhostname = postfix.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# Every recipient goes to one of the four sinks at random: four destinations, as Petrel has
# four MX sites. Brackets: no MX or A lookups.
transport_maps = randmap:{$transports}
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
biff = no
# Logging only: delay= with millisecond resolution (default 2 digits) for the percentiles.
delay_logging_resolution_limit = 3
CF
  # Debian's master.cf services with chroot off (it would need copies of /etc files in the
  # queue dir) and without the local and pipe delivery agents; smtpd on the injection port only.
  cat > "$dir/conf/master.cf" <<CF
127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
CF
}

start_postfix() {  # $1: instance dir
  local dir=$1
  write_postfix_config "$dir"
  register_postfix_instance "$dir/conf"
  # "check" creates the queue directories with the right owners.
  postfix -c "$dir/conf" check >/dev/null 2>&1 || true
  postfix_conf=$dir/conf
  postfix -c "$dir/conf" start >/dev/null 2>&1 ||
    { cat "$dir/maillog" >&2 2>/dev/null; die "postfix did not start"; }
  wait_for 100 bash -c "exec 3<>/dev/tcp/127.0.0.1/$POSTFIX_PORT" 2>/dev/null ||
    { cat "$dir/maillog" >&2 2>/dev/null; die "postfix does not listen on $POSTFIX_PORT"; }
}

stop_postfix() {
  [ -n "$postfix_conf" ] || return 0
  postfix -c "$postfix_conf" stop >/dev/null 2>&1 || postfix -c "$postfix_conf" abort >/dev/null 2>&1 || true
  postfix_conf=""
  restore_main_cf
}

# True while a message is anywhere in the queue on its way out. find -quit stops at the first
# file, so this stays cheap while the queue is large.
postfix_busy() {  # $1: queue dir
  [ -n "$(find "$1/maildrop" "$1/incoming" "$1/active" "$1/deferred" -type f -print -quit)" ]
}

percentile() {  # $1: percent; stdin: one number per line
  sort -n | awk -v p="$1" '{ v[NR] = $1 } END { if (NR) print v[int((NR - 1) * p / 100) + 1]; else print "?" }'
}

run_postfix() {  # $1: body size in bytes, $2: messages to inject
  local size=$1 count=$2 dir=$work/postfix-$1
  log "postfix, $size B bodies: smtp-source -s $CONNECTIONS -m $count"
  start_postfix "$dir"
  local t0 t_injected t_end
  local cpu_before
  cpu_before=$(cpu_sample)
  t0=$(now)
  # -d: keep each session open for the next message (wrk keeps its connections alive too).
  # -N: a unique recipient per message, so nothing is served from trivial-rewrite's cache.
  interruptible /usr/sbin/smtp-source -s "$CONNECTIONS" -d -m "$count" -l "$size" -N \
    -f bench@bench.test -t user@d1.bench.test "127.0.0.1:$POSTFIX_PORT" > "$dir/smtp-source.log" 2>&1 ||
    log "smtp-source failed: $(tail -3 "$dir/smtp-source.log")"
  t_injected=$(now)
  local deadline=$(( $(date +%s) + DRAIN_TIMEOUT ))
  while postfix_busy "$dir/queue" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  t_end=$(now)
  echo "postfix $size B: machine CPU busy $(busy_percent "$cpu_before" "$(cpu_sample)") from injection start to queue empty"
  postfix_busy "$dir/queue" && log "postfix: queue not empty after ${DRAIN_TIMEOUT}s"
  stop_postfix

  local received sent deferred bounced p50 p99
  received=$(grep -c 'postfix/cleanup\[.*message-id=' "$dir/maillog" || true)
  sent=$(grep -c 'status=sent' "$dir/maillog" || true)
  deferred=$(grep -c 'status=deferred' "$dir/maillog" || true)
  bounced=$(grep -c 'status=bounced' "$dir/maillog" || true)
  grep 'status=sent' "$dir/maillog" | grep -o ' delay=[0-9.]*' | cut -d= -f2 > "$dir/delays.txt" || true
  p50=$(percentile 50 < "$dir/delays.txt" | awk '$1 != "?" { printf "%.0f", $1 * 1000; next } { print }')
  p99=$(percentile 99 < "$dir/delays.txt" | awk '$1 != "?" { printf "%.0f", $1 * 1000; next } { print }')
  result[$size.postfix_messages]=$received
  result[$size.postfix_delivered]=$sent
  result[$size.postfix_inject]=$(awk -v n="$received" -v a="$t0" -v b="$t_injected" 'BEGIN { printf "%.0f", n / (b - a) }')
  result[$size.postfix_rate]=$(awk -v n="$sent" -v a="$t0" -v b="$t_end" 'BEGIN { printf "%.0f", n / (b - a) }')
  result[$size.postfix_p50]=$p50
  result[$size.postfix_p99]=$p99
  printf 'postfix %s B: received %d in %.1f s = %s received/s; %d sent in %.1f s injection start -> queue empty = %s delivered/s\n' \
    "$size" "$received" "$(awk -v a="$t0" -v b="$t_injected" 'BEGIN { print b - a }')" "${result[$size.postfix_inject]}" \
    "$sent" "$(awk -v a="$t0" -v b="$t_end" 'BEGIN { print b - a }')" "${result[$size.postfix_rate]}"
  echo "postfix $size B: deferred $deferred, bounced $bounced; queue arrival->sent ms p50 $p50 p99 $p99"
  local complaints
  complaints=$(grep -cE ': (warning|error|fatal|panic):' "$dir/maillog" || true)
  echo "postfix $size B: $complaints warning/error lines in its maillog"
  [ "$complaints" = 0 ] || grep -E ': (warning|error|fatal|panic):' "$dir/maillog" | sed 's/^/    /' | head -10
}

# ---------------------------------------------------------------------------------------------
# Summary and cleanup

label() { awk -v b="$1" 'BEGIN { if (b % 1024 == 0) printf "%d KB", b / 1024; else printf "%d B", b }'; }

print_summary() {
  echo
  echo "environment: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
       "petrel $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+uncommitted changes')" \
       "(binary built $(date -r "$PETREL" '+%F %T'))," \
       "postfix $(postconf -d -h mail_version 2>/dev/null || echo '?'), Debian $(cat /etc/debian_version)"
  echo "load: $CONNECTIONS connections; petrel wrk -d$DURATION; postfix smtp-source -s $CONNECTIONS -d, same message count (max $POSTFIX_MAX_MESSAGES)"
  echo "routing: petrel via DNS MX (1,000 domains -> 4 sinks), 10 connections/site; postfix via randmap transport over the 4 sinks, 20 connections/destination"
  printf '%-6s | %12s %12s | %12s %12s | %7s | %17s | %17s\n' \
    size "petrel in/s" "postfix in/s" "petrel dlv/s" "postfix dlv/s" "P/PF" "petrel p50/p99 ms" "postfix p50/p99 ms"
  local size ratio
  for size in $SIZES; do
    ratio=$(awk -v a="${result[$size.petrel_rate]:-0}" -v b="${result[$size.postfix_rate]:-0}" \
              'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-6s | %12s %12s | %12s %12s | %7s | %17s | %17s\n' "$(label "$size")" \
      "${result[$size.petrel_inject]:--}" "${result[$size.postfix_inject]:--}" \
      "${result[$size.petrel_rate]:--}" "${result[$size.postfix_rate]:--}" "$ratio" \
      "${result[$size.petrel_p50]:--}/${result[$size.petrel_p99]:--}" \
      "${result[$size.postfix_p50]:--}/${result[$size.postfix_p99]:--}"
  done
  echo "(in/s: messages accepted (202) / received (250 after DATA) per second while injecting;"
  echo " dlv/s: delivered per second from the first injection to the last delivery; P/PF: petrel"
  echo " dlv/s / postfix dlv/s; p50/p99: petrel 202 -> delivered event, postfix delay= of status=sent)"
  for size in $SIZES; do
    echo "$(label "$size"): petrel accepted ${result[$size.petrel_accepted]:--}, delivered ${result[$size.petrel_delivered]:--}," \
         "deferred ${result[$size.petrel_deferred]:--}, bounced ${result[$size.petrel_bounced]:--}," \
         "waiting ${result[$size.petrel_waiting]:--} | postfix received ${result[$size.postfix_messages]:--}, sent ${result[$size.postfix_delivered]:--}"
  done
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e
  stop_postfix
  restore_main_cf
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "$KEEP_WORK" = 1 ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}

# ---------------------------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (apt-get and the Postfix instance need it)"
install_tools
work=$(mktemp -d /tmp/petrel-delivery.XXXXXX)
chmod 755 "$work"   # Postfix daemons reach their data dir under it as user postfix
trap cleanup EXIT
trap 'exit 130' INT TERM

start_sinks
start_dns
log "sinks on ${SINK_ADDRESSES[*]} port $SINK_PORT; DNS on 127.0.0.1:$dns_port"
for size in $SIZES; do
  run_petrel "$size"
  if [ "$SKIP_POSTFIX" != 1 ]; then
    count=${result[$size.petrel_accepted]:-0}
    [ "$count" -gt "$POSTFIX_MAX_MESSAGES" ] && count=$POSTFIX_MAX_MESSAGES
    [ "$count" -gt 0 ] || count=10000
    run_postfix "$size" "$count"
  fi
done
print_summary
