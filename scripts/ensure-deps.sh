#!/usr/bin/env bash
# Makes sure this machine has what Tally needs: a Swift 6 toolchain (not installable here) and
# PostgreSQL's server, client and libpq-dev from Debian's packages (installed when run as root).
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
  echo "error: the Swift 6.3 toolchain is required (swift is not on PATH)" >&2
  exit 1
fi

pg_bindir() {
  local dir
  dir=$(pg_config --bindir 2>/dev/null || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  done
}

missing=()
[ -n "$(pg_bindir)" ] || missing+=(postgresql postgresql-contrib)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
# The pooler suite runs Tally behind Debian's PgBouncer.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)

# Installs Debian packages when run as root (non-interactively); otherwise says which to install.
install_packages() {
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages: $*; run as root or: sudo apt-get install -y $*" >&2
    exit 1
  fi
  echo "installing: $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

install_packages "${missing[@]}"

PG_BINDIR=$(pg_bindir)
export PG_BINDIR
if [ -z "$PG_BINDIR" ]; then
  echo "error: PostgreSQL server binaries not found after installation" >&2
  exit 1
fi
