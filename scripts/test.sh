#!/usr/bin/env bash
# The whole test suite against a real PostgreSQL started here and removed afterwards.
# Extra arguments go to `swift test` (e.g. --filter CreditsTests).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
# Tests drive their own clocks and build their own databases; durability is not what they test.
TEST_PG_SETTINGS=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off'
source scripts/test-postgres.sh
export TALLY_TEST_DATABASE_URL="$TEST_PG_URL"
start=$(date +%s)
swift build --build-tests
swift test --skip-build "$@"
# Against servers of their own, only for the whole suite (not a filter): database faults (a
# minute or two), then the contract: schemathesis on /openapi.json (about two minutes) and a
# client generated from it driving seed 001; then the credits portal in headless Chromium
# (about a minute, screenshots in .build/portal-screenshots/).
if [ $# -eq 0 ]; then
  python3 scripts/faults/run_faults.py
  python3 scripts/faults/run_failover.py
  python3 scripts/faults/run_pgbouncer.py
  python3 scripts/contract/run_schemathesis.py
  python3 scripts/contract/run_generated_client.py
  python3 scripts/portal/run_browser.py
fi
echo "tests passed in $(( $(date +%s) - start )) s (build included)"
