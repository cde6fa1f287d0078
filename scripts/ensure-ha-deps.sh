#!/usr/bin/env bash
# What only `make test-ha` needs, beside scripts/ensure-deps.sh: Debian's Patroni, etcd and HAProxy
# (installed when run as root; the normal test run never pays for them).
set -euo pipefail

ha_missing=()
command -v patroni >/dev/null 2>&1 || ha_missing+=(patroni)
command -v etcd >/dev/null 2>&1 || ha_missing+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || ha_missing+=(haproxy)

if [ ${#ha_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages: ${ha_missing[*]}; run as root or: sudo apt-get install -y ${ha_missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${ha_missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${ha_missing[@]}" </dev/null
fi
# /usr/sbin is not on every user's PATH.
export PATH="$PATH:/usr/sbin"
