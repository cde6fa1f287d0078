#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (sourced by scripts/test.sh and
# scripts/bench.sh): loopback only, a free port, data in a temporary folder that is removed on
# exit. As root it runs as the unprivileged `postgres` user, because PostgreSQL refuses root.
# Exports TEST_PG_URL and TEST_PG_DIR; registers a cleanup trap. Extra server settings may be
# passed in TEST_PG_SETTINGS.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $(( 20000 + RANDOM % 20000 ))
}

TEST_PG_DIR=$(mktemp -d /tmp/tally-pg.XXXXXX)
chmod 755 "$TEST_PG_DIR"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres:postgres "$TEST_PG_DIR"
  as_pg=(runuser -u postgres --)
fi

stop_test_postgres() {
  "${as_pg[@]}" "$PG_BINDIR/pg_ctl" stop -D "$TEST_PG_DIR/data" -m immediate -w >/dev/null 2>&1 || true
  rm -rf "$TEST_PG_DIR"
}
trap stop_test_postgres EXIT

port=$(free_port)
(cd "$TEST_PG_DIR" && "${as_pg[@]}" "$PG_BINDIR/initdb" -D "$TEST_PG_DIR/data" -U tally --auth=trust --encoding=UTF8 --locale=C >"$TEST_PG_DIR/initdb.log" 2>&1) \
  || { cat "$TEST_PG_DIR/initdb.log" >&2; exit 1; }
cat >>"$TEST_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 400
shared_buffers = 256MB
${TEST_PG_SETTINGS:-}
CONF
(cd "$TEST_PG_DIR" && "${as_pg[@]}" "$PG_BINDIR/pg_ctl" start -D "$TEST_PG_DIR/data" -l "$TEST_PG_DIR/postgres.log" -w -t 120 >/dev/null) \
  || { cat "$TEST_PG_DIR/postgres.log" >&2; exit 1; }
TEST_PG_URL="postgres://tally@127.0.0.1:$port/postgres"
export TEST_PG_URL TEST_PG_DIR
