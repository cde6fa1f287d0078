#!/bin/sh
# /etc/patroni/post-bootstrap.sh: Patroni runs it once, on the node that creates the cluster, with
# the superuser's connection URL. Tally needs no superuser: it owns its database and migrates it.
set -e
psql "$1" -X -v ON_ERROR_STOP=1 -c "CREATE ROLE tally LOGIN PASSWORD 'CHANGE_ME_TALLY'"
psql "$1" -X -v ON_ERROR_STOP=1 -c "CREATE DATABASE tally OWNER tally"
