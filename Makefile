# The two commands of a fresh machine: `make run` serves Tally on its embedded database,
# `make test` runs the whole suite against a real PostgreSQL it starts itself.
.PHONY: run test test-faults test-failover test-pgbouncer test-ha test-contract test-portal build release bench bench-scenario clean

run:
	scripts/run.sh

test:
	scripts/test.sh

# Only the database fault suites (restart, outage, killed connections, timeouts, SIGTERM;
# failover to a promoted synchronous standby). `make test` runs them too.
test-faults:
	scripts/test-faults.sh scripts/faults/run_faults.py

test-failover:
	scripts/test-faults.sh scripts/faults/run_failover.py

# Two replicas behind PgBouncer in transaction pooling (TALLY_DATABASE_POOLER=transaction).
test-pgbouncer:
	scripts/test-faults.sh scripts/faults/run_pgbouncer.py

# High availability (not in `make test`; `.ci/run` runs it after): Patroni, etcd and HAProxy from
# Debian (installed when missing, as root), the leader crashes under a spend load, the same Tally
# carries on through HAProxy. Builds tally unless TALLY_BINARY names one.
test-ha:
	scripts/test-ha.sh

# The contract only: schemathesis against the served /openapi.json, and a generated client.
test-contract:
	scripts/test-faults.sh scripts/contract/run_schemathesis.py
	scripts/test-faults.sh scripts/contract/run_generated_client.py

# The credits portal in headless Chromium driven by Selenium; screenshots in .build/portal-screenshots/.
test-portal:
	scripts/test-faults.sh scripts/portal/run_browser.py

build:
	swift build

release:
	swift build -c release --product tally

bench:
	scripts/bench.sh

# One or a few scenarios with CPU per request (SCENARIOS="consume_many balance", PGSS=1): see the script.
bench-scenario:
	scripts/bench-scenario.sh

clean:
	rm -rf .build
