#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for tests: initdb in a directory of our own, run by the
# non-root "postgres" user (initdb refuses root), listening only on 127.0.0.1 at a free port,
# trust authentication. Nothing of the system's own clusters is touched.
#
#   tests/pg/pg-server.sh start DIR     # writes DIR/url (postgresql://postgres@127.0.0.1:PORT/postgres)
#   tests/pg/pg-server.sh restart DIR   # fast restart, same port (fault tests)
#   tests/pg/pg-server.sh stop DIR
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

case "$command_name" in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    cluster=$(mktemp -d /tmp/petrel-pg.XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$cluster"
    echo "$cluster" >"$dir/cluster"
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
    echo "usage: pg-server.sh start|restart|stop DIR" >&2
    exit 2
    ;;
esac
