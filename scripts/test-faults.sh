#!/usr/bin/env bash
# Runs one fault-injection suite (scripts/faults/*.py) against the debug build; each suite starts
# and removes its own PostgreSQL servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
swift build --product tally
python3 "$@"
