#!/usr/bin/env bash
# What only `make test-ha` needs, beside scripts/ensure-deps.sh: Debian's Patroni, etcd and HAProxy
# (installed when run as root; the normal test run never pays for them).
set -euo pipefail

ha_missing=()
command -v patroni >/dev/null 2>&1 || ha_missing+=(patroni)
command -v etcd >/dev/null 2>&1 || ha_missing+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || ha_missing+=(haproxy)

install_packages "${ha_missing[@]}"   # from scripts/ensure-deps.sh, sourced first
# /usr/sbin is not on every user's PATH.
export PATH="$PATH:/usr/sbin"
