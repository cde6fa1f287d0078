#!/usr/bin/env bash
# One or a few benchmark scenarios against one server, with where the CPU went: what measured
# each change of issue "Performance" when the machine's speed moved too much between full runs
# (`make bench`) to compare them. Seeds BENCH_ORGS (10,000) organisations as make bench does,
# serves a release build, and for each scenario of SCENARIOS (default consume_many; names as in
# scripts/bench/wrk.lua) prints wrk's RESULT line, CPU per request of the postgres and tally
# processes (from /proc/<pid>/stat over the run) and WAL bytes per request.
#   PGSS=1          also each statement's calls, plans, planning and running time (pg_stat_statements)
#   TOGGLES="a|b"   SQL run before the first, second, ... scenario (e.g. drop, then add back, a constraint)
#   PERF=1          also where Tally's CPU went (perf record of the server, its top symbols)
#   EXPLAIN=1       also the plans of a sample of statements with each node's time (auto_explain), kept
#                   in /tmp/tally-scenario-postgres.log
#   WAITS=1         also what PostgreSQL's backends were doing (pg_stat_activity sampled every 0.1 s)
#   TALLY_B=path    another tally binary (e.g. a copy of the build before a change): the 2nd, 4th, ...
#                   scenario runs on it, the others on this build's; an A/B on one database and machine.
#                   AB=ABBABAAB: which build runs each scenario instead (the tables grow run by run,
#                   and later runs are slower: alternate in mirrored order)
#   SYSCALLS=1      also Tally's system calls per request (perf stat of syscall tracepoints)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh >/dev/null
PG_BINDIR=$(pg_config --bindir)
swift build -c release --product tally >/dev/null
TALLY="$(swift build -c release --show-bin-path)/tally"
TEST_PG_SETTINGS=$'max_connections = 300\nshared_buffers = 512MB'
PRELOAD=
if [ -n "${PGSS:-}" ]; then PRELOAD+=pg_stat_statements,; TEST_PG_SETTINGS+=$'\npg_stat_statements.track_planning = on'; fi
if [ -n "${EXPLAIN:-}" ]; then   # one statement in a hundred, with each node's time, rows and WAL
  PRELOAD+=auto_explain,
  TEST_PG_SETTINGS+=$'\nauto_explain.log_min_duration = 0\nauto_explain.sample_rate = 0.01\nauto_explain.log_analyze = on\nauto_explain.log_buffers = on\nauto_explain.log_wal = on'
fi
if [ -n "$PRELOAD" ]; then TEST_PG_SETTINGS+=$'\n'"shared_preload_libraries = '${PRELOAD%,}'"; fi
source scripts/test-postgres.sh
WORK=$(mktemp -d /tmp/tally-scenario.XXXXXX)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
  if [ -n "${EXPLAIN:-}" ]; then cp "$TEST_PG_DIR/postgres.log" /tmp/tally-scenario-postgres.log; fi
  rm -rf "$WORK"; stop_test_postgres
}
trap cleanup EXIT

DB_URL="${TEST_PG_URL%/postgres}/bench"
psql "$TEST_PG_URL" -qc "CREATE DATABASE bench"
DATABASE_URL="$DB_URL" TALLY_LOG_LEVEL=warning "$TALLY" migrate >/dev/null
if [ -n "${PGSS:-}" ]; then psql "$DB_URL" -qc "CREATE EXTENSION pg_stat_statements"; fi
psql "$DB_URL" -q -v orgs="${BENCH_ORGS:-10000}" -f scripts/bench/seed.sql >/dev/null
psql "$DB_URL" -Atc "SELECT org_id FROM bench_orgs WHERE n > 0 ORDER BY n" > "$WORK/orgs.txt"
export BENCH_HOT_ORG=$(psql "$DB_URL" -Atc "SELECT org_id FROM bench_orgs WHERE n = 0")
PORT=$(free_port)
start_server() { # $1: the tally binary to serve
  TALLY_PLATFORM_KEY=benchkey TALLY_RATE_LIMIT_PLATFORM=0 DATABASE_URL="$DB_URL" TALLY_PORT="$PORT" TALLY_LOG_LEVEL=warning \
    "$1" serve --connections 48 --jobs-interval 0 2>>"$WORK/serve.log" &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=; }
start_server "$TALLY"
if [ -n "${TALLY_B:-}" ]; then mkdir "$WORK/b"; cp "$TALLY_B" "$WORK/b/tally"; TALLY_B="$WORK/b/tally"; fi   # named tally: counted as tally
if [[ " ${SCENARIOS:-consume_many} " == *" balance_member "* ]]; then
  source scripts/bench/member-keys.sh   # as make bench does
  member_keys benchkey "$WORK/orgs.txt" > "$WORK/members.txt"
  export BENCH_MEMBERS="$WORK/members.txt"
fi

ticks() { # "postgres tally": CPU ticks (utime + stime) of all processes of each name
  # Through cat: a process that ends while this reads must not end the count (mawk stops at a missing file).
  local stats; stats=$(cat /proc/[0-9]*/stat 2>/dev/null || true)
  for name in postgres tally; do
    echo "$stats" | awk -v name="($name)" '$2 == name {t += $14 + $15} END {printf "%d ", t}'
  done
}
IFS="|" read -ra TOGGLE <<< "${TOGGLES:-}"
i=0
for scenario in ${SCENARIOS:-consume_many}; do
  if [ -n "${TOGGLE[$i]:-}" ]; then psql "$DB_URL" -qc "${TOGGLE[$i]}" >/dev/null; echo "== before $scenario: ${TOGGLE[$i]}"; fi
  i=$((i + 1))
  if [ -n "${TALLY_B:-}" ]; then
    stop_server
    if [ "${AB:-}" ]; then build=${AB:$((i - 1)):1}; else build=$([ $((i % 2)) = 0 ] && echo B || echo A); fi
    if [ "$build" = B ]; then start_server "$TALLY_B"; echo "== on TALLY_B"; else start_server "$TALLY"; echo "== on this build"; fi
  fi
  run() { BENCH_SCENARIO=$scenario TALLY_KEY=benchkey BENCH_ORGS="$WORK/orgs.txt" wrk -t 2 "$@" -s scripts/bench/wrk.lua "http://127.0.0.1:$PORT"; }
  run -c 4 -d 2s >/dev/null 2>&1 || true   # warm-up
  psql "$DB_URL" -qc "VACUUM ANALYZE" -c CHECKPOINT
  if [ -n "${PGSS:-}" ]; then psql "$DB_URL" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null; fi
  before=$(ticks); lsn=$(psql "$DB_URL" -Atc "SELECT pg_current_wal_lsn()")
  if [ -n "${PERF:-}" ]; then perf record -q -e cpu-clock -F 499 -g -p "$SERVER" -o "$WORK/perf.data" >/dev/null 2>&1 & PERF_PID=$!; fi
  SYSCALL_EVENTS=read,write,writev,readv,epoll_wait,futex,sched_yield,sendmsg,recvmsg
  if [ -n "${SYSCALLS:-}" ]; then
    # PERF_EVENTS: more events to count, e.g. uprobes made with perf probe -x <libswift_Concurrency.so> -a swift_task_switch
    perf stat -x, -e "$(echo $SYSCALL_EVENTS | sed 's/[a-z_]*/syscalls:sys_enter_&/g')${PERF_EVENTS:+,$PERF_EVENTS}" -p "$SERVER" -o "$WORK/syscalls.txt" & STAT_PID=$!
  fi
  if [ -n "${WAITS:-}" ]; then
    (for _ in $(seq $((${BENCH_DURATION:-15} * 10 - 20))); do
       psql "$DB_URL" -Atc "SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') || ' ' || state
                              || CASE WHEN state <> 'idle' THEN ' (' || left(regexp_replace(query, '\s+', ' ', 'g'), 40) || ')' ELSE '' END FROM pg_stat_activity
                            WHERE datname = 'bench' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"; sleep 0.1
     done > "$WORK/waits.txt") & WAITS_PID=$!
  fi
  result=$(run -c 64 -d "${BENCH_DURATION:-15}s" --latency | awk '/^RESULT/')
  if [ -n "${WAITS:-}" ]; then
    wait "$WAITS_PID" || true
    samples=$((${BENCH_DURATION:-15} * 10 - 20))
    echo "   postgres backends (of $(awk -v n="$(wc -l < "$WORK/waits.txt")" -v s=$samples 'BEGIN { printf "%.1f", n / s }') connections, on average: how many were doing what):"
    sort "$WORK/waits.txt" | uniq -c | sort -rn | head -14 | awk -v s=$samples '{c = $1; $1 = ""; printf "     %5.2f %s\n", c / s, $0}'
  fi
  if [ -n "${PERF:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
  if [ -n "${SYSCALLS:-}" ]; then kill -INT "$STAT_PID"; wait "$STAT_PID" || true; fi
  after=$(ticks)
  requests=$(echo "$result" | awk '{print $7}')
  echo "== $scenario: $result"
  python3 -c 'import sys
a, b, n, hz = sys.argv[1].split(), sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4])
print("   cpu per request: postgres %.0f us, tally %.0f us" % tuple((int(y) - int(x)) * 1e6 / hz / n for x, y in zip(a, b)))' \
    "$before" "$after" "$requests" "$(getconf CLK_TCK)"
  echo "   wal per request: $(psql "$DB_URL" -Atc "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / $requests)") bytes"
  if [ -n "${SYSCALLS:-}" ]; then
    echo "   tally's system calls per request: $(awk -F, -v n="$requests" '$3 ~ /sys_enter_|:/ {sub(/.*(sys_enter_|:)/, "", $3); printf "%s %.2f  ", $3, $1 / n}' "$WORK/syscalls.txt")"
  fi
  if [ -n "${PERF:-}" ]; then
    cp "$WORK/perf.data" "/tmp/perf-$scenario.data"   # for perf report -i with other views
    perf report -i "$WORK/perf.data" -g none --no-children --sort dso --stdio 2>/dev/null | grep '%' | head -8 || true
    perf report -i "$WORK/perf.data" -g none --no-children --sort symbol --stdio 2>/dev/null | grep '%' | head -25 | cut -c1-150 || true
  fi
  if [ -n "${PGSS:-}" ]; then psql "$DB_URL" -c "SELECT calls, plans, round(total_plan_time::numeric) AS plan_ms, round(total_exec_time::numeric) AS exec_ms,
      rows, left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS statement FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8"
    psql "$DB_URL" -c "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE n_tup_upd > 0 ORDER BY relname"; fi
done
