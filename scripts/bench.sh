#!/usr/bin/env bash
# make bench: one run on a fresh database, on this machine, measured against this machine.
#
# 1. builds Tally in release mode;
# 2. starts PostgreSQL (fsync and synchronous_commit on) and seeds BENCH_ORGS organisations;
# 3. measures PostgreSQL's own ceiling with pgbench running the bare SQL of a spend, and the
#    cost of Tally's own SQL with pgbench running the statements of a spend as Tally sends them;
# 4. loads Tally over HTTP on loopback with wrk, scenario by scenario, and prints a table with
#    requests/s, p50/p99/p99.9 latency, errors and the ratio to the ceiling, and the server's
#    peak resident memory;
# 5. seeds BENCH_RENEWALS due subscriptions and times `tally jobs run` renewing them.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_ORGS=${BENCH_ORGS:-10000}
BENCH_RENEWALS=${BENCH_RENEWALS:-100000}
DURATION=${BENCH_DURATION:-15}
CONNECTIONS=${BENCH_CONNECTIONS:-64}

source scripts/ensure-deps.sh
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null && apt-get install -y -qq wrk </dev/null
  else
    echo "error: wrk is needed (sudo apt-get install wrk)" >&2; exit 1
  fi
fi
command -v pgbench >/dev/null 2>&1 || { echo "error: pgbench is needed (postgresql-client)" >&2; exit 1; }

echo "== building release" >&2
swift build -c release --product tally 2>&1 | tail -1 >&2
TALLY="$(swift build -c release --show-bin-path)/tally"

# Durable, as in production: the ceiling and Tally both pay for real commits.
TEST_PG_SETTINGS=$'max_connections = 300\nshared_buffers = 512MB'
source scripts/test-postgres.sh
WORK=$(mktemp -d /tmp/tally-bench.XXXXXX)
SERVER_PID=""
BOUNCER_PID_FILE=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  [ -n "$BOUNCER_PID_FILE" ] && [ -f "$BOUNCER_PID_FILE" ] && kill "$(cat "$BOUNCER_PID_FILE")" 2>/dev/null || true
  rm -rf "$WORK"
  stop_test_postgres
}
trap cleanup EXIT

ADMIN_URL="$TEST_PG_URL"
DB_URL="${ADMIN_URL%/postgres}/bench"
# Tally's database, and a copy for pgbench: the bare SQL writes ledger rows without postings,
# which `tally verify` would rightly report as drift.
CEILING_URL="${ADMIN_URL%/postgres}/ceiling"
echo "== seeding $BENCH_ORGS organisations" >&2
for db in bench ceiling; do
  psql "$ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
  DATABASE_URL="${ADMIN_URL%/postgres}/$db" TALLY_LOG_LEVEL=warning "$TALLY" migrate >/dev/null
  psql "${ADMIN_URL%/postgres}/$db" -q -v orgs="$BENCH_ORGS" -f scripts/bench/seed.sql >/dev/null
done
psql "$DB_URL" -Atc "SELECT org_id FROM bench_orgs WHERE n > 0 ORDER BY n" > "$WORK/orgs.txt"
HOT_ORG=$(psql "$DB_URL" -Atc "SELECT org_id FROM bench_orgs WHERE n = 0")

pgbench_tps() { # script clients [first last]: organisations n = first..last (default: all but the hot one)
  pgbench -n -M prepared -D orgs="$BENCH_ORGS" -D first="${3:-1}" -D last="${4:-$BENCH_ORGS}" -f "$1" -c "$2" -j 2 -T "$DURATION" "$CEILING_URL" 2>/dev/null \
    | awk '/^tps/ {print int($3)}'
}
echo "== ceiling: pgbench with the bare SQL of a spend" >&2
CEILING_MANY_16=$(pgbench_tps scripts/bench/ceiling.sql 16)
CEILING_MANY_64=$(pgbench_tps scripts/bench/ceiling.sql 64)
CEILING_HOT_16=$(pgbench_tps scripts/bench/ceiling.sql 16 0 0)
CEILING_HOT_64=$(pgbench_tps scripts/bench/ceiling.sql 64 0 0)
echo "   ceiling: $CEILING_MANY_16 tps @16, $CEILING_MANY_64 @64; hot: $CEILING_HOT_16 @16, $CEILING_HOT_64 @64" >&2
# Tally's own statements for a spend, without the service around them: what its SQL costs.
python3 scripts/bench/tally-sql.py "$WORK/tally-sql.sql"
OWN_SQL_16=$(pgbench_tps "$WORK/tally-sql.sql" 16)
OWN_SQL_64=$(pgbench_tps "$WORK/tally-sql.sql" 64)
echo "   Tally's own SQL: $OWN_SQL_16 tps @16, $OWN_SQL_64 @64" >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TALLY_PLATFORM_KEY="bench-platform-key-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TALLY_RATE_LIMIT_PLATFORM=0 DATABASE_URL="$DB_URL" TALLY_PORT="$PORT" TALLY_LOG_LEVEL=warning "$TALLY" serve --connections 48 --jobs-interval 0 2>"$WORK/serve.log" &
SERVER_PID=$!
ready() { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && grep -q ' 200 ' <&3; }
for _ in $(seq 1 150); do
  (ready) 2>/dev/null && break
  sleep 0.2
done

run_wrk() { # scenario
  # Every scenario starts from a checkpoint: the dirty pages of the one before (the pgbench runs
  # before the first) are not flushed in the middle of its run (a 0.85 s p99 tail once).
  psql "$DB_URL" -qc CHECKPOINT >/dev/null
  BENCH_SCENARIO="$1" TALLY_KEY="$TALLY_PLATFORM_KEY" BENCH_ORGS="$WORK/orgs.txt" BENCH_HOT_ORG="$HOT_ORG" \
    wrk -t 2 -c 4 -d 2s -s scripts/bench/wrk.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true   # warm-up
  BENCH_SCENARIO="$1" TALLY_KEY="$TALLY_PLATFORM_KEY" BENCH_ORGS="$WORK/orgs.txt" BENCH_HOT_ORG="$HOT_ORG" \
    wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency -s scripts/bench/wrk.lua "http://127.0.0.1:$PORT" | awk '/^RESULT/ {$1=""; print}'
}
echo "== loading Tally ($CONNECTIONS connections, ${DURATION}s each)" >&2
consume_counters() { # "transactions spends" from the server's metrics
  python3 -c 'import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
values = {line.split()[0]: int(float(line.split()[1])) for line in text.splitlines() if line.startswith("tally_consume_")}
print(values.get("tally_consume_transactions", 0), values.get("tally_consume_spends", 0))' "http://127.0.0.1:$PORT/metrics"
}
source scripts/bench/member-keys.sh
member_keys "$TALLY_PLATFORM_KEY" "$WORK/orgs.txt" > "$WORK/members.txt"
export BENCH_MEMBERS="$WORK/members.txt"
declare -A RESULT
declare -A BATCHING
# The machine's speed drifts within a run (one run's /healthz a third below the run before's while
# the ceiling, measured first, was not), so the ceiling is measured again right before and right
# after the spends over many organisations, each from a checkpoint as the scenarios are, while
# Tally idles: the ratio to their mean compares the two at the same minutes.
near_ceiling() { psql "$DB_URL" -qc CHECKPOINT >/dev/null; pgbench_tps scripts/bench/ceiling.sql "$CONNECTIONS"; }
for scenario in consume_many consume_hot consume_batch quote balance balance_member healthz replay; do
  if [ "$scenario" = consume_many ]; then CEILING_BEFORE=$(near_ceiling); fi
  read -r tx0 sp0 <<<"$(consume_counters)"
  RESULT[$scenario]=$(run_wrk "$scenario")
  read -r tx1 sp1 <<<"$(consume_counters)"
  if [ "$scenario" = consume_many ]; then
    CEILING_AFTER=$(near_ceiling)
    psql "$ADMIN_URL" -qc "DROP DATABASE ceiling" >/dev/null
    echo "   ceiling @$CONNECTIONS around it: $CEILING_BEFORE tps before, $CEILING_AFTER after" >&2
  fi
  BATCHING[$scenario]=$(awk -v t=$((tx1 - tx0)) -v s=$((sp1 - sp0)) 'BEGIN { if (t > 0) printf "%.1f spends per transaction", s / t }')
  echo "   $scenario: ${RESULT[$scenario]} ${BATCHING[$scenario]}; server RSS $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status") MB, peak $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$SERVER_PID/status") MB" >&2
done
# Fairness: one organisation's key floods (64 connections, as fast as it can; the per-key limit
# answers 429 beyond 200/s) while another organisation spends at a modest pace (4 connections).
# The victim's p99 alone and under the flood.
FLOOD_ORG=$(sed -n 1p "$WORK/orgs.txt"); VICTIM_ORG=$(sed -n 2p "$WORK/orgs.txt")
FLOOD_KEY=$(member_key "$TALLY_PLATFORM_KEY" "$FLOOD_ORG"); VICTIM_KEY=$(member_key "$TALLY_PLATFORM_KEY" "$VICTIM_ORG")
victim() {
  BENCH_SCENARIO=consume_org TALLY_KEY="$VICTIM_KEY" BENCH_ORG="$VICTIM_ORG" BENCH_ORGS="$WORK/orgs.txt" \
    wrk -t 1 -c 4 -d "${DURATION}s" --latency -s scripts/bench/wrk.lua "http://127.0.0.1:$PORT" | awk '/^RESULT/ {print $3}'
}
VICTIM_ALONE_P99=$(victim)
BENCH_SCENARIO=consume_org TALLY_KEY="$FLOOD_KEY" BENCH_ORG="$FLOOD_ORG" BENCH_ORGS="$WORK/orgs.txt" \
  wrk -t 1 -c 64 -d "$((DURATION + 2))s" -s scripts/bench/wrk.lua "http://127.0.0.1:$PORT" > "$WORK/flood.txt" 2>&1 &
FLOOD_PID=$!
sleep 1
VICTIM_FLOOD_P99=$(victim)
wait "$FLOOD_PID" || true
FLOOD_RPS=$(awk '/^RESULT/ {print $2}' "$WORK/flood.txt")
echo "   fairness: victim p99 ${VICTIM_ALONE_P99} ms alone, ${VICTIM_FLOOD_P99} ms under a flood of ${FLOOD_RPS} requests/s" >&2
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""

# The same service behind PgBouncer (Debian's, transaction pooling, default settings but the pool
# size): what the pooler costs against the direct connection above, in the same run.
PGBOUNCER=$(command -v pgbouncer || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true)
if [ -n "$PGBOUNCER" ]; then
  echo "== through PgBouncer (transaction pooling)" >&2
  BOUNCER_DIR=$(mktemp -d /tmp/tally-bench-pgbouncer.XXXXXX)
  BOUNCER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_PORT=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).port)' "$DB_URL")
  echo '"tally" ""' > "$BOUNCER_DIR/userlist.txt"
  cat > "$BOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER_DIR/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 48
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_DIR/pgbouncer.pid
INI
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$BOUNCER_DIR"
  BOUNCER_PID_FILE="$BOUNCER_DIR/pgbouncer.pid"
  "${as_pg[@]}" "$PGBOUNCER" -d "$BOUNCER_DIR/pgbouncer.ini" >/dev/null 2>&1
  TALLY_RATE_LIMIT_PLATFORM=0 DATABASE_URL="postgres://tally@127.0.0.1:$BOUNCER_PORT/bench" TALLY_DATABASE_POOLER=transaction \
    TALLY_MIGRATION_DATABASE_URL="$DB_URL" TALLY_PORT="$PORT" TALLY_LOG_LEVEL=warning \
    "$TALLY" serve --connections 48 --jobs-interval 0 2>"$WORK/serve-pgbouncer.log" &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    (ready) 2>/dev/null && break
    sleep 0.2
  done
  for scenario in consume_many balance; do
    RESULT[pgbouncer_$scenario]=$(run_wrk "$scenario")
    echo "   pgbouncer $scenario: ${RESULT[pgbouncer_$scenario]}" >&2
  done
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
  kill "$(cat "$BOUNCER_PID_FILE")" 2>/dev/null || true
  rm -rf "$BOUNCER_DIR"
fi

echo "== renewals: $BENCH_RENEWALS due subscriptions" >&2
psql "$DB_URL" -q -v subs="$BENCH_RENEWALS" -f scripts/bench/seed-renewals.sql >/dev/null
RENEW_START=$(date +%s%N)
DATABASE_URL="$DB_URL" TALLY_LOG_LEVEL=warning "$TALLY" jobs run > "$WORK/jobs.txt"
RENEW_SECONDS=$(awk -v s="$RENEW_START" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')
RENEWED=$(psql "$DB_URL" -Atc "SELECT count(*) FROM subscriptions s JOIN bench_subs b USING (subscription_id) WHERE s.period_index = 1")
TWICE=$(psql "$DB_URL" -Atc "SELECT count(*) FROM (SELECT subscription_id, period_start FROM credit_buckets WHERE source = 'plan_allocation' GROUP BY 1, 2 HAVING count(*) > 1) AS d")
CHARGES=$(psql "$DB_URL" -Atc "SELECT count(*) FROM invoices WHERE kind = 'subscription'")
DRIFT=$(DATABASE_URL="$DB_URL" TALLY_LOG_LEVEL=warning "$TALLY" verify | tail -1 || true)

echo "== retention: 1,000,000 stored answers past retention" >&2
psql "$DB_URL" -qc "INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, status_code, response_body, created_at)
  SELECT o.org_id, 'old-' || g, '\\x00'::bytea, 201, repeat('x', 200)::bytea, now() - interval '40 days'
  FROM generate_series(1, 1000000) g, LATERAL (SELECT org_id FROM bench_orgs WHERE n = 1 + g % $BENCH_ORGS) o" >/dev/null
KEYS_MB=$(psql "$DB_URL" -Atc "SELECT pg_total_relation_size('idempotency_keys') / 1048576")
RETAIN_START=$(date +%s%N)
DATABASE_URL="$DB_URL" TALLY_LOG_LEVEL=warning "$TALLY" jobs run > "$WORK/retention.txt"
RETAIN_SECONDS=$(awk -v s="$RETAIN_START" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')
KEYS_LEFT=$(psql "$DB_URL" -Atc "SELECT count(*) FROM idempotency_keys WHERE created_at < now() - interval '30 days'")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Tally benchmark: $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}'), fsync on, synchronous_commit on, $BENCH_ORGS organisations"
echo
printf "ceiling (pgbench, bare SQL of a spend)   %6s tps @16  %6s tps @64   one hot organisation: %6s tps @16  %6s tps @64\n" \
  "$CEILING_MANY_16" "$CEILING_MANY_64" "$CEILING_HOT_16" "$CEILING_HOT_64"
CEILING_AROUND=$(( (CEILING_BEFORE + CEILING_AFTER) / 2 ))
printf "ceiling @$CONNECTIONS around consume-many    %6s tps before it, %6s after: mean %s tps\n" "$CEILING_BEFORE" "$CEILING_AFTER" "$CEILING_AROUND"
printf "Tally's own SQL of a spend (pgbench)     %6s tps @16  %6s tps @64\n" "$OWN_SQL_16" "$OWN_SQL_64"
echo
printf "%-34s %10s %8s %8s %8s %7s %s\n" "scenario (wrk, $CONNECTIONS connections)" "requests/s" "p50 ms" "p99 ms" "p99.9 ms" "errors" "ratio"
row() { # name scenario ratio-description ratio-value
  read -r rps p50 p99 p999 errors requests <<<"${RESULT[$2]}"
  printf "%-34s %10s %8s %8s %8s %7s %s\n" "$1" "$rps" "$p50" "$p99" "$p999" "$errors" "$3"
}
read -r many_rps _ <<<"${RESULT[consume_many]}"
read -r hot_rps _ <<<"${RESULT[consume_hot]}"
row "consume, $BENCH_ORGS organisations" consume_many "$(ratio "$many_rps" "$CEILING_MANY_16") x ceiling@16, $(ratio "$many_rps" "$CEILING_MANY_64") x ceiling@64, $(ratio "$many_rps" "$CEILING_AROUND") x ceiling around it, $(ratio "$many_rps" "$OWN_SQL_64") x own SQL@64"
row "consume, one hot organisation" consume_hot "$(ratio "$hot_rps" "$many_rps") x consume-many, $(ratio "$hot_rps" "$CEILING_HOT_64") x hot ceiling@64, ${BATCHING[consume_hot]}"
read -r batch_rps _ <<<"${RESULT[consume_batch]}"
read -r healthz_rps _ <<<"${RESULT[healthz]}"
read -r member_rps _ <<<"${RESULT[balance_member]}"
batch_spends=$(awk -v r="$batch_rps" 'BEGIN { printf "%.0f", r * 100 }')
row "consume, batches of 100 (requests)" consume_batch "$batch_spends spends/s = $(ratio "$batch_spends" "$many_rps") x consume-many, ${BATCHING[consume_batch]}"
row "quote" quote ""
row "balance read (platform key)" balance "$(ratio "$(read -r r _ <<<"${RESULT[balance]}"; echo "$r")" "$healthz_rps") x /healthz"
row "balance read (member keys)" balance_member "$(ratio "$member_rps" "$healthz_rps") x /healthz"
row "/healthz" healthz ""
row "consume, idempotent replay" replay ""
if [ -n "${RESULT[pgbouncer_consume_many]:-}" ]; then
  read -r bouncer_many _ <<<"${RESULT[pgbouncer_consume_many]}"
  read -r bouncer_balance _ <<<"${RESULT[pgbouncer_balance]}"
  read -r direct_balance _ <<<"${RESULT[balance]}"
  row "consume, via PgBouncer (transaction)" pgbouncer_consume_many "$(ratio "$bouncer_many" "$many_rps") x the direct connection"
  row "balance read, via PgBouncer" pgbouncer_balance "$(ratio "$bouncer_balance" "$direct_balance") x the direct connection (no key cache: no LISTEN)"
fi
echo
echo "fairness: another organisation's spend p99 ${VICTIM_ALONE_P99} ms alone, ${VICTIM_FLOOD_P99} ms while one key floods (${FLOOD_RPS} requests/s sent, beyond 200/s answered 429): $(ratio "$VICTIM_FLOOD_P99" "$VICTIM_ALONE_P99") x"
echo "server peak RSS: $((PEAK_RSS_KB / 1024)) MB"
echo "renewals: $RENEWED of $BENCH_RENEWALS subscriptions renewed in ${RENEW_SECONDS} s ($(cat "$WORK/jobs.txt")); renewed twice: $TWICE; subscription invoices: $CHARGES"
echo "verify: $DRIFT"
echo "retention: idempotency_keys was ${KEYS_MB} MB; 1,000,000 answers past 30 days deleted in ${RETAIN_SECONDS} s by one tally jobs run ($(grep -o 'deleted [0-9]* idempotency' "$WORK/retention.txt" || true)); left past retention: $KEYS_LEFT"
