#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for tests: initdb in a directory of our own, run by the
# non-root "postgres" user (initdb refuses root), listening only on 127.0.0.1 at a free port,
# trust authentication. Nothing of the system's own clusters is touched.
#
#   tests/pg/pg-server.sh start DIR     # writes DIR/url (postgresql://postgres@127.0.0.1:PORT/postgres)
#   tests/pg/pg-server.sh restart DIR   # fast restart, same port (fault tests)
#   tests/pg/pg-server.sh stop DIR
#   tests/pg/pg-server.sh standby DIR PRIMARY_DIR  # a streaming replica of PRIMARY_DIR's cluster,
#                                                  # made synchronous: a commit on the primary
#                                                  # returns once the replica has it on disk
#   tests/pg/pg-server.sh crash DIR     # immediate stop, as a crash (no shutdown checkpoint)
#   tests/pg/pg-server.sh promote DIR   # the replica becomes a primary (failover)
#
# The cluster itself lives in a directory of the postgres user under /tmp (DIR may sit below
# directories that user cannot enter, such as pytest's private temp dirs); DIR/cluster names it.
set -euo pipefail

command_name=${1:?usage: pg-server.sh start|restart|stop DIR}
dir=$(realpath -m "${2:?usage: pg-server.sh start|restart|stop DIR}")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "pg-server.sh: no PostgreSQL server installed (postgresql-15)" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# DIR made anew, and the cluster's own directory (owned by postgres) named in DIR/cluster: sets
# $cluster.
new_cluster_dir() {
  rm -rf "$dir"
  mkdir -p "$dir"
  cluster=$(mktemp -d /tmp/petrel-pg.XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$cluster"; fi
  echo "$cluster" >"$dir/cluster"
}

case "$command_name" in
  start)
    new_cluster_dir
    as_postgres "$bin/initdb" -D "$cluster/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(free_port)
    cat >>"$cluster/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$cluster'
max_connections = 200
fsync = on
synchronous_commit = on
logging_collector = off
CONF
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 30 start >/dev/null ||
      { cat "$cluster/server.log" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    echo "postgresql ready: $(cat "$dir/url")"
    ;;
  standby)
    primary_cluster=$(cat "$(realpath -m "${3:?usage: pg-server.sh standby DIR PRIMARY_DIR}")/cluster")
    primary_port=$(sed -n 's/^port = //p' "$primary_cluster/data/postgresql.conf" | tail -n 1)
    new_cluster_dir
    as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$cluster/data" -R \
      -X stream --no-sync -c fast >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    port=$(free_port)
    cat >>"$cluster/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$cluster'
CONF
    echo "primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres application_name=standby'" \
      >>"$cluster/data/postgresql.auto.conf"
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 30 start >/dev/null ||
      { cat "$cluster/server.log" >&2; exit 1; }
    # Synchronous from now on: the primary waits for the standby's flush at each commit.
    as_postgres psql -h 127.0.0.1 -p "$primary_port" -U postgres -qAt -c \
      "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 100); do
      state=$(as_postgres psql -h 127.0.0.1 -p "$primary_port" -U postgres -qAt -c \
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
      [ "$state" = sync ] && break
      sleep 0.1
    done
    [ "$state" = sync ] || { echo "pg-server.sh: the standby did not become synchronous ($state)" >&2; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    echo "postgresql standby ready: $(cat "$dir/url")"
    ;;
  crash)
    cluster=$(cat "$dir/cluster")
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -m immediate -w -t 30 stop >/dev/null
    ;;
  promote)
    cluster=$(cat "$dir/cluster")
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -w -t 30 promote >/dev/null
    ;;
  restart)
    cluster=$(cat "$dir/cluster")
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -m fast -w -t 30 restart >/dev/null
    ;;
  stop)
    if [ -f "$dir/cluster" ]; then
      cluster=$(cat "$dir/cluster")
      if [ -f "$cluster/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$cluster/data" -m fast -w -t 30 stop >/dev/null || true
      fi
      rm -rf "$cluster"
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg-server.sh start|restart|stop|crash|promote DIR, pg-server.sh standby DIR PRIMARY_DIR" >&2
    exit 2
    ;;
esac
