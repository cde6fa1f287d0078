#!/usr/bin/env python3
"""Tally behind PgBouncer (Debian's, transaction pooling, default settings) with two replicas.

The concurrency suite's case, through the pooler: an organisation with 500 credits, 1,000
concurrent spends of 3 split over two `tally serve` replicas (TALLY_DATABASE_POOLER=transaction,
migrations over TALLY_MIGRATION_DATABASE_URL). Exactly 166 succeed, 834 get 402, 2 credits are
left, a key sent to both replicas gets one answer, and `tally verify` is clean. The same case
straight to PostgreSQL runs first, for the cost of the pooler.
"""
import os
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
from cluster import AS_PG, Cluster, Tally, check, failures, free_port, request  # noqa: E402



def start_pgbouncer(cluster):
    port = free_port()
    base = cluster.base
    ini = os.path.join(base, "pgbouncer.ini")
    users = os.path.join(base, "userlist.txt")
    with open(users, "w") as f:
        f.write('"tally" ""\n')
    with open(ini, "w") as f:
        f.write(f"""[databases]
postgres = host=127.0.0.1 port={cluster.port} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
logfile = {os.path.join(base, "pgbouncer.log")}
pidfile = {os.path.join(base, "pgbouncer.pid")}
""")
    if AS_PG:
        for path in (ini, users):
            shutil.chown(path, "postgres", "postgres")
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    process = subprocess.Popen(AS_PG + [binary, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            cluster_url = f"postgres://tally@127.0.0.1:{port}/postgres"
            result = subprocess.run(["psql", cluster_url, "-Atc", "SELECT 1"], capture_output=True, text=True, timeout=5)
            if result.returncode == 0:
                return process, cluster_url
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)
    raise RuntimeError("pgbouncer did not start")


def concurrent_spends(replicas, label):
    key = replicas[0].platform_key
    status, _, org, _ = request(replicas[0].port, "POST", "/v1/orgs", body={"name": label}, key=key)
    assert status == 201, (status, org)
    org = org["id"]
    status, _, _, _ = request(replicas[1].port, "POST", f"/v1/orgs/{org}/grants", key=key,
                              body={"credits": "500", "source": "admin_grant", "reason": label},
                              headers={"Idempotency-Key": f"{label}-grant"})
    assert status == 201
    keys = [str(uuid.uuid4()) for _ in range(1000)]

    def spend(index, replica):
        return request(replica.port, "POST", f"/v1/orgs/{org}/usage", body={"credits": "3"}, key=key,
                       headers={"Idempotency-Key": keys[index]}, timeout=60)

    started = time.time()
    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(lambda i: spend(i, replicas[i % 2]), range(1000)))
        # The first 50 keys again, at the other replica: the same answers.
        again = list(pool.map(lambda i: spend(i, replicas[(i + 1) % 2]), range(50)))
    elapsed = time.time() - started
    statuses = [a[0] for a in answers]
    check(statuses.count(201) == 166 and statuses.count(402) == 834,
          f"{label}: 166 spends succeed and 834 get 402 (got {statuses.count(201)} and {statuses.count(402)}, others {sorted(set(statuses) - {201, 402})})")
    same = sum(1 for i in range(50) if again[i][0] == answers[i][0] and again[i][2] == answers[i][2])
    check(same == 50, f"{label}: a key sent to both replicas gets one answer ({same} of 50)")
    status, _, balance, _ = request(replicas[0].port, "GET", f"/v1/orgs/{org}/balance", key=key)
    check(status == 200 and balance["available"] == "2", f"{label}: 2 credits left (got {balance})")
    return elapsed


def main():
    cluster = Cluster("pgbouncer", settings="fsync = off\nsynchronous_commit = off")
    cluster.init()
    cluster.start()
    bouncer = None
    replicas = []
    try:
        direct = [Tally(cluster.url), Tally(cluster.url)]
        replicas += direct
        for tally in direct:
            tally.start()
        direct_seconds = concurrent_spends(direct, "direct")
        for tally in direct:
            tally.kill()

        bouncer, pooled_url = start_pgbouncer(cluster)
        env = {"TALLY_DATABASE_POOLER": "transaction", "TALLY_MIGRATION_DATABASE_URL": cluster.url}
        pooled = [Tally(pooled_url, extra_env=env), Tally(pooled_url, extra_env=env)]
        replicas += pooled
        for tally in pooled:
            tally.start()
        pooled_seconds = concurrent_spends(pooled, "pgbouncer")
        result, _ = pooled[0].command("verify", DATABASE_URL=cluster.url)
        check(result.returncode == 0, f"tally verify is clean (rc {result.returncode})")
        print(f"\n1,000 concurrent spends over two replicas: {direct_seconds:.2f} s straight to PostgreSQL, "
              f"{pooled_seconds:.2f} s through PgBouncer (transaction pooling)")
    finally:
        for tally in replicas:
            tally.kill()
        if bouncer:
            bouncer.terminate()
            bouncer.wait()
        cluster.remove()
    if failures:
        print(f"{len(failures)} pgbouncer check(s) failed")
        sys.exit(1)
    print("all pgbouncer checks passed")


if __name__ == "__main__":
    main()
