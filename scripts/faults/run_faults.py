#!/usr/bin/env python3
"""Database faults under a concurrent spend load: Tally must not crash or wedge, must answer fast
while the database is away, recover by itself, lose nothing and double nothing.

Starts its own PostgreSQL (durable settings: fsync on) and `tally serve`, then, with 8 clients
spending on 12 organisations: restarts PostgreSQL, stops it for OUTAGE_SECONDS, kills Tally's
connections, cancels its statements (SQLSTATE 57014, what statement_timeout raises), and finally
sends SIGTERM while the database is down. Prints one table and exits 1 on any failed check.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from cluster import Cluster, Tally, check, failures, lost_and_doubled, organisations_with_credits, replays_that_differ, request  # noqa: E402
from load import Load  # noqa: E402

OUTAGE_SECONDS = float(os.environ.get("TALLY_FAULTS_OUTAGE_SECONDS", "10"))
FAST_ANSWER = 2.0     # every answer while the database is away
RECOVERY_LIMIT = 5.0  # from the database's return to a 201 for every organisation
SHUTDOWN_LIMIT = 22.0 # SIGTERM drains for at most 20 s

rows = []


def probe(*args, **kwargs):
    """A request whose transport failure (Tally gone) is a status 0, not an exception."""
    try:
        return request(*args, **kwargs)
    except OSError as error:
        return 0, {}, {"error": str(error)}, 0.0


def wait_for_recovery(load, orgs, limit):
    start = time.time()
    while time.time() - start < limit + 5:
        with load.lock:
            done = all(org in load.first_success_after for org in orgs)
        if done:
            return max(load.first_success_after[o] for o in orgs) - load.recovery_mark
        time.sleep(0.05)
    return None


def scenario(name, load, orgs, tally, inject):
    """Runs `inject` (which returns the time the fault ended) under the load; records a row."""
    print(f"- {name}", flush=True)
    time.sleep(1.0)
    began = time.time()
    ended = inject()
    load.mark_recovery()
    recovery = wait_for_recovery(load, orgs, RECOVERY_LIMIT)
    time.sleep(0.5)
    window = load.window(began, ended + (recovery or RECOVERY_LIMIT))
    statuses = {}
    for sample in window:
        statuses[sample[2]] = statuses.get(sample[2], 0) + 1
    slowest = max((s[1] for s in window), default=0.0)
    bad = [s for s in window if s[2] not in (201, 503)]
    no_retry_after = [s for s in window if s[2] == 503 and not s[4]]
    check(tally.alive(), f"{name}: tally is alive")
    check(not bad, f"{name}: only 201 and 503 while the fault lasts (got {sorted(set(s[2] for s in bad))})")
    check(not no_retry_after, f"{name}: every 503 has Retry-After ({len(no_retry_after)} without)")
    check(slowest <= FAST_ANSWER, f"{name}: slowest answer {slowest:.2f} s <= {FAST_ANSWER} s")
    check(recovery is not None and recovery <= RECOVERY_LIMIT,
          f"{name}: every organisation spends again within {RECOVERY_LIMIT} s (took {recovery})")
    rows.append((name, len(window), statuses.get(503, 0) + statuses.get(0, 0), slowest, recovery))


def main():
    cluster = Cluster("faults", settings="fsync = on\nsynchronous_commit = on")
    cluster.init()
    cluster.start()
    tally = Tally(cluster.url)
    try:
        run(cluster, tally)
    finally:
        tally.kill()
        cluster.remove()
    print_table()
    if failures:
        print(f"\n{len(failures)} check(s) failed; the Tally log is {tally.log_path}")
        sys.exit(1)
    print("\nall fault checks passed")


def run(cluster, tally):
    started = time.time()
    tally.start()
    key = tally.platform_key
    orgs = organisations_with_credits(tally, 12, "faults")
    print(f"tally up with {len(orgs)} organisations in {time.time() - started:.1f} s", flush=True)

    load = Load(tally.port, key, orgs)
    load.start()

    def restart():
        cluster.stop("immediate")
        cluster.start()
        return time.time()

    def outage():
        cluster.stop("immediate")
        down_at = time.time()
        time.sleep(0.5)
        # The liveness probe stays up; the readiness probe says 503 at once.
        status, _, _, seconds = probe(tally.port, "GET", "/healthz", timeout=5)
        check(status == 200 and seconds < 1, f"outage: /healthz 200 at once (got {status} in {seconds:.2f} s)")
        status, headers, body, seconds = probe(tally.port, "GET", "/readyz", timeout=15)
        check(status == 503 and seconds < 1, f"outage: /readyz 503 at once (got {status} in {seconds:.2f} s)")
        status, headers, body, seconds = probe(tally.port, "GET", f"/v1/orgs/{orgs[0]}/balance", key=key, timeout=15)
        check(status == 503 and (body or {}).get("code") == "database_unavailable" and "retry-after" in headers,
              f"outage: a balance read is 503 database_unavailable with Retry-After (got {status} {body})")
        # The cron's command fails within seconds, with one line.
        result, seconds = tally.command("jobs", "run", timeout=120)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        check(result.returncode != 0 and seconds < 10 and len(lines) == 1,
              f"outage: `tally jobs run` fails in seconds with one line (rc {result.returncode}, {seconds:.1f} s, {lines})")
        print(f"  tally jobs run during the outage: rc {result.returncode} in {seconds:.1f} s: {lines[:1]}", flush=True)
        time.sleep(max(0, OUTAGE_SECONDS - (time.time() - down_at)))
        cluster.start()
        return time.time()

    def kill_connections():
        for _ in range(6):
            cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tally'")
            time.sleep(0.5)
        return time.time()

    def cancel_statements():
        for _ in range(15):
            cluster.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'tally' AND state = 'active'")
            time.sleep(0.2)
        return time.time()

    scenario("restart (pg_ctl -m immediate, start)", load, orgs, tally, restart)
    scenario(f"outage ({OUTAGE_SECONDS:.0f} s)", load, orgs, tally, outage)
    scenario("pg_terminate_backend x6", load, orgs, tally, kill_connections)
    scenario("statement cancelled (57014) x15", load, orgs, tally, cancel_statements)
    time.sleep(1)
    load.stop()

    unsettled = load.settle()
    check(not unsettled, f"{len(unsettled)} spend(s) never acknowledged after the faults")
    check(not load.unexpected, f"unexpected answers: {load.unexpected[:3]}")
    acked, lost, doubled = lost_and_doubled(cluster, load.spends)
    retried = [s for s in acked if s.failed_attempts > 0]

    # Every acknowledged spend replays its first answer; one whose first try failed is done once.
    replay_bad = replays_that_differ(tally.port, key, retried + acked[:200])
    check(replay_bad == 0, f"{replay_bad} replay(s) differ from the first answer")
    check(not lost, f"{len(lost)} acknowledged spend(s) lost")
    check(doubled == 0, f"{doubled} spend(s) stored that no client was answered (doubled)")

    result, _ = tally.command("verify")
    check(result.returncode == 0, f"tally verify is clean (rc {result.returncode}: {result.stdout[-500:]})")

    # SIGTERM while the database is away: exits 0 within the drain deadline.
    print("- SIGTERM during an outage", flush=True)
    cluster.stop("immediate")
    sigterm_load = Load(tally.port, key, orgs, clients=4)
    sigterm_load.start()
    time.sleep(1)
    code, seconds = tally.terminate() if tally.alive() else (tally.process.returncode, 0.0)
    sigterm_load.stop()
    check(code == 0 and seconds <= SHUTDOWN_LIMIT, f"SIGTERM: exit 0 within {SHUTDOWN_LIMIT} s (got {code} in {seconds:.1f} s)")
    cluster.start()
    result, _ = tally.command("verify")
    check(result.returncode == 0, f"tally verify is clean after the SIGTERM (rc {result.returncode})")

    log = tally.log_text()
    messages = []
    for line in log.splitlines():
        try:
            messages.append(json.loads(line).get("message", ""))
        except ValueError:
            messages.append(line)
    first_listen = next((i for i, m in enumerate(messages) if m == "listening"), len(messages))
    early_job_errors = [m for m in messages[:first_listen] if "background jobs failed" in m]
    check(not early_job_errors, "no background job runs before the migrations")
    job_errors = sum(1 for m in messages if "background jobs failed" in m)
    check(job_errors <= 6, f"background job failures logged once per outage, not per attempt ({job_errors} lines)")
    unreachable = sum(1 for m in messages if m.startswith("database unreachable"))
    check(unreachable <= 4, f"'database unreachable' logged once per outage ({unreachable} lines)")

    rows.append(("total", len(load.samples), sum(1 for s in load.samples if s[2] in (0, 503)),
                 max(s[1] for s in load.samples), None))
    summary.update(acked=len(acked), retried=len(retried), lost=len(lost), doubled=doubled,
                   sigterm=f"exit {code} in {seconds:.1f} s")


summary = {}


def print_table():
    print("\nfault                                   requests   503s  slowest  recovery")
    for name, count, unavailable, slowest, recovery in rows:
        rec = "-" if recovery is None else f"{recovery:.2f} s"
        print(f"{name:<38} {count:>9} {unavailable:>6} {slowest:>6.2f} s {rec:>9}")
    if summary:
        print(f"\nacknowledged {summary['acked']} (of which retried after a 503: {summary['retried']}), "
              f"lost {summary['lost']}, doubled {summary['doubled']}; SIGTERM during the outage: {summary['sigterm']}")


if __name__ == "__main__":
    main()
