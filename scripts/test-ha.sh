#!/usr/bin/env bash
# make test-ha: Tally behind HAProxy on a Patroni cluster (a primary and a synchronous standby,
# etcd) whose leader crashes under a spend load (scripts/faults/run_ha.py). Bounded: the suite
# stops itself after TALLY_HA_TIMEOUT (240 s); `timeout` is the backstop.
# With TALLY_BINARY set, that binary is tested and nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
source scripts/ensure-ha-deps.sh
if [ -z "${TALLY_BINARY:-}" ]; then
  swift build --product tally
fi
exec timeout -k 10 300 python3 scripts/faults/run_ha.py
