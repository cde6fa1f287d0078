#!/usr/bin/env bash
# Runs Tally on its embedded PostgreSQL (data under .tally/), building it first. Set DATABASE_URL
# to use another database. Without TALLY_PLATFORM_KEY a platform key is made once, kept in
# .tally/platform-key and printed here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
swift build --product tally
if [ -z "${TALLY_PLATFORM_KEY:-}" ]; then
  mkdir -p .tally
  if [ ! -s .tally/platform-key ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/tly_platform_/' > .tally/platform-key)
  fi
  TALLY_PLATFORM_KEY=$(cat .tally/platform-key)
  export TALLY_PLATFORM_KEY
  echo "platform key (from .tally/platform-key): $TALLY_PLATFORM_KEY" >&2
fi
# An empty catalog gets the demo catalog of the seed documents, so there is something to call.
exec "$(swift build --show-bin-path)/tally" serve --load-catalog catalog/demo.json "$@"
