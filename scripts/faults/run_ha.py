#!/usr/bin/env python3
"""High availability with Debian's Patroni, etcd and HAProxy: the leader's node crashes under a spend load.

On loopback, in one temporary folder: a one-member etcd, two Patroni nodes (a primary and a synchronous
standby, `synchronous_mode: true`), HAProxy routing to whichever node Patroni's REST API calls the
primary, and one `tally serve` whose DATABASE_URL is HAProxy. With 8 clients spending on 6
organisations, the leader's Patroni and every process of its PostgreSQL are killed with SIGKILL: the
node crashes. The standby must be promoted, and the same Tally process (never restarted) must spend
again within RECOVERY_LIMIT, answering only 201 or 503 with Retry-After meanwhile. Then every spend it
acknowledged must be on the new leader once, replays must be identical and `tally verify` clean.

Why kill Patroni too: killing only the postmaster is a PostgreSQL crash, which the leader's Patroni
repairs by restarting PostgreSQL in place (it keeps the leader key); no failover happens. SIGKILL to
Patroni with its PostgreSQL is what a lost machine looks like to the cluster: nobody renews the leader
key, it expires after `ttl`, and the synchronous standby takes it.

Runs as root (every server as the unprivileged `postgres` user) or as any user when the packages are
there; whatever happens, everything it started is stopped and its folder removed.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from cluster import PG_BINDIR, Tally, check, failures, free_port, lost_and_doubled, organisations_with_credits, replays_that_differ  # noqa: E402
from load import Load  # noqa: E402

HARD_LIMIT = int(os.environ.get("TALLY_HA_TIMEOUT", "240"))  # the whole run, set-up and teardown included
PROMOTION_LIMIT = 30.0  # from the crash to the standby answering /primary (ttl 10 s + loop_wait 2 s + promote)
RECOVERY_LIMIT = 60.0   # from the crash to a 201 for every organisation, through the same Tally
FAST_ANSWER = 2.0       # every answer while there is no leader
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4  # Patroni requires loop_wait + 2 * retry_timeout <= ttl
SCOPE = "tally-ha"
PASSWORDS = {"postgres": "ha-superuser", "replicator": "ha-replication", "tally": "ha-tally"}
# PostgreSQL refuses to run as root: as root every server runs as `postgres`, with no extra groups.
AS_USER = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


class Timeout(Exception):
    pass


def on_signal(signum, _frame):
    raise Timeout(f"signal {signum}" if signum != signal.SIGALRM else f"the run took more than {HARD_LIMIT} s")


def http_get(port, path, timeout=2):
    """(status, parsed JSON or None); status 0 when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, None
    except OSError:
        return 0, None
    finally:
        connection.close()


def wait_for(what, condition, timeout, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def alive(pid):
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


class Servers:
    """The processes of the run, all in one folder owned by the user they run as."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="tally-ha.")
        os.chmod(self.base, 0o755)
        if AS_USER:
            shutil.chown(self.base, "postgres", "postgres")
        self.processes = []  # (name, Popen)

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def write(self, name, text, mode=0o644):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if AS_USER:
            shutil.chown(path, "postgres", "postgres")
        return path

    def spawn(self, name, args, env=None):
        log = open(self.path(f"{name}.log"), "ab")
        # A session of its own: the process and its helpers are one process group to kill.
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base,
                                   env=env, start_new_session=True, **AS_USER)
        log.close()
        self.processes.append((name, process))
        return process

    def tail(self, name, lines=15):
        try:
            with open(self.path(f"{name}.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace").splitlines()
            # Tally's access log would hide what went wrong.
            return "\n".join([line for line in text if '"message":"request"' not in line][-lines:])
        except FileNotFoundError:
            return "(no log)"


class Node:
    """One Patroni node: its configuration, process and PostgreSQL."""

    def __init__(self, servers, name, etcd_port):
        self.servers = servers
        self.name = name
        self.pg_port = free_port()
        self.rest_port = free_port()
        self.data = servers.path(name, "data")
        self.process = None
        os.makedirs(servers.path(name), mode=0o700)
        if AS_USER:
            shutil.chown(servers.path(name), "postgres", "postgres")
        self.config = servers.write(f"{name}.yml", patroni_config(servers, name, self.pg_port, self.rest_port, etcd_port))

    def start(self):
        env = dict(os.environ, HOME=self.servers.base, PATH=f"{PG_BINDIR}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.process = self.servers.spawn(self.name, ["patroni", self.config], env=env)

    def status(self, path):
        return http_get(self.rest_port, path)

    def postmaster(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (FileNotFoundError, ValueError, PermissionError):
            return None

    def crash(self):
        """SIGKILL to Patroni (its process group) and to every process of its PostgreSQL, as a lost machine."""
        postmaster = self.postmaster()
        doomed = ([postmaster] + children(postmaster)) if postmaster else []
        os.killpg(self.process.pid, signal.SIGKILL)
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        wait_for(f"{self.name}'s processes to die", lambda: not any(alive(pid) for pid in doomed), 10, 0.01)

    def sql(self, statement, user="tally", database="tally"):
        result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", user, "-d", database,
                                 "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
                                capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, PGPASSWORD=PASSWORDS[user], PGCONNECT_TIMEOUT="5"))
        if result.returncode != 0:
            raise RuntimeError(f"psql on {self.name} failed: {result.stderr.strip()}")
        return [line for line in result.stdout.splitlines() if line]

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.postmaster() and os.path.isdir(self.data):
            subprocess.run([os.path.join(PG_BINDIR, "pg_ctl"), "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "30"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL, **AS_USER)


def patroni_config(servers, name, pg_port, rest_port, etcd_port):
    """What deploy/patroni/patroni.yml describes, on loopback ports, with a short ttl."""
    bootstrap_script = servers.path("post-bootstrap.sh")
    return f"""scope: {SCOPE}
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{rest_port}
  connect_address: 127.0.0.1:{rest_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
watchdog:
  mode: off
bootstrap:
  dcs:
    ttl: {TTL}
    loop_wait: {LOOP_WAIT}
    retry_timeout: {RETRY_TIMEOUT}
    maximum_lag_on_failover: 1048576
    # A commit is acknowledged once the standby has it, and only that standby may be promoted.
    # Not strict: strict mode would stop every write of the lone survivor until a standby returns.
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        synchronous_commit: "on"
  initdb:
    - encoding: UTF8
    - locale: C
  post_bootstrap: {bootstrap_script}
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {servers.path(name, "data")}
  bin_dir: {PG_BINDIR}
  pgpass: {servers.path(name, "pgpass")}
  # A new standby's base backup starts at once, not after a spread checkpoint (minutes).
  basebackup:
    - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      password: {PASSWORDS["postgres"]}
    replication:
      username: replicator
      password: {PASSWORDS["replicator"]}
  parameters:
    unix_socket_directories: "{servers.path(name)}"
  pg_hba:
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
"""


def haproxy_config(servers, port, nodes):
    """Only the node whose Patroni says it is the primary, and whose PostgreSQL has left recovery."""
    lines = [f"""global
    maxconn 1000
    stats socket {servers.path("haproxy.sock")} mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
    # A refused connection (the old leader, before its checks fail) is closed at once rather than
    # retried after HAProxy's one-second turn-around: Tally answers 503 and probes again itself.
    retries 0

listen postgres
    bind 127.0.0.1:{port}
    option httpchk
    http-check send meth GET uri /primary
    http-check expect status 200
    # Patroni answers 200 as soon as it holds the leader key, before PostgreSQL has left recovery:
    # wait for the role too, or a write could reach a server still read-only.
    http-check expect rstring '"role": ?"(master|primary)"'
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
"""]
    for node in nodes:
        lines.append(f"    server {node.name} 127.0.0.1:{node.pg_port} check port {node.rest_port}\n")
    return "".join(lines)


def haproxy_up(servers):
    """The names of the servers HAProxy considers up."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(servers.path("haproxy.sock"))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
    return {row[1] for row in rows if row[0] == "postgres" and row[1] not in ("FRONTEND", "BACKEND")
            and row[17].startswith("UP")}


def run(servers, tallies):
    servers.write("post-bootstrap.sh", f"""#!/bin/sh
# Patroni runs this once, on the node that initialises the cluster, with the superuser's URL.
set -e
psql "$1" -X -v ON_ERROR_STOP=1 -c "CREATE ROLE tally LOGIN PASSWORD '{PASSWORDS["tally"]}'"
psql "$1" -X -v ON_ERROR_STOP=1 -c "CREATE DATABASE tally OWNER tally"
""", mode=0o755)

    etcd_port, etcd_peer_port = free_port(), free_port()
    started = time.time()
    servers.spawn("etcd", [
        "etcd", "--name", "etcd1", "--data-dir", servers.path("etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer_port}",
        "--initial-cluster", f"etcd1=http://127.0.0.1:{etcd_peer_port}", "--log-level", "warn"])
    wait_for("etcd to be healthy", lambda: http_get(etcd_port, "/health")[0] == 200, 30)

    nodes = [Node(servers, "node1", etcd_port), Node(servers, "node2", etcd_port)]
    servers.nodes = nodes
    for node in nodes:
        node.start()
    leader = wait_for("a leader", lambda: next((n for n in nodes if n.status("/primary")[0] == 200), None), 90)
    standby = next(n for n in nodes if n is not leader)
    wait_for("the synchronous standby", lambda: standby.status("/sync")[0] == 200, 90)
    wait_for("synchronous replication on the leader", lambda: leader.sql(
        "SELECT sync_state FROM pg_stat_replication", user="postgres", database="postgres") == ["sync"], 30)
    print(f"etcd, {leader.name} (leader) and {standby.name} (synchronous standby) up in {time.time() - started:.1f} s",
          flush=True)

    proxy_port = free_port()
    config = servers.write("haproxy.cfg", haproxy_config(servers, proxy_port, nodes))
    servers.spawn("haproxy", ["haproxy", "-db", "-f", config])
    # HAProxy counts a server up until its first checks fail: wait until only the leader is.
    wait_for("HAProxy to route to the leader only", lambda: haproxy_up(servers) == {leader.name}, 20, 0.05)

    tally = Tally(f"postgres://tally:{PASSWORDS['tally']}@127.0.0.1:{proxy_port}/tally",
                  log_path=servers.path("tally.log"))
    tallies.append(tally)
    tally.start()
    key = tally.platform_key
    orgs = organisations_with_credits(tally, 6, "ha")

    load = Load(tally.port, key, orgs)
    load.start()
    time.sleep(3)
    check(leader.sql("SELECT application_name, sync_state FROM pg_stat_replication", user="postgres",
                     database="postgres") == [f"{standby.name}|sync"],
          f"{standby.name} is still the synchronous standby when {leader.name} crashes")
    crashed = time.time()
    leader.crash()
    load.mark_recovery()  # every 201 from here on was committed by the new leader
    print(f"{leader.name} crashed (Patroni and PostgreSQL killed) under the load", flush=True)

    promoted = None
    try:
        wait_for("the standby's promotion", lambda: standby.status("/primary")[0] == 200, PROMOTION_LIMIT, 0.05)
        promoted = time.time() - crashed
    except RuntimeError:
        check(False, f"{standby.name} is promoted within {PROMOTION_LIMIT:.0f} s")
    deadline = crashed + RECOVERY_LIMIT
    while time.time() < deadline and not all(o in load.first_success_after for o in orgs):
        time.sleep(0.05)
    back = {o: load.first_success_after[o] - crashed for o in load.first_success_after}
    check(len(back) == len(orgs), f"every organisation spends again within {RECOVERY_LIMIT:.0f} s of the crash "
                                  f"({len(back)} of {len(orgs)} did)")
    outage_end = crashed + (max(back.values()) if back else RECOVERY_LIMIT)
    time.sleep(2)  # spends on the new leader
    load.stop()
    unsettled = load.settle()

    check(tally.alive(), "the same tally process served throughout (never restarted)")
    check(standby.sql("SELECT pg_is_in_recovery()") == ["f"], f"{standby.name} is the primary now")
    check(haproxy_up(servers) == {standby.name}, f"HAProxy routes to {standby.name} only")
    window = load.window(crashed - 2, outage_end)  # with the requests in flight at the crash
    bad = [s for s in window if s[2] not in (201, 503)]
    no_retry_after = [s for s in window if s[2] == 503 and not s[4]]
    slowest, slowest_at = max(((s[1], s[0] - crashed) for s in window), default=(0.0, 0.0))
    check(not bad, f"only 201 and 503 while there is no leader (got {sorted(set((s[2], s[3]) for s in bad))})")
    check(not no_retry_after, f"every 503 has Retry-After ({len(no_retry_after)} without)")
    check(slowest <= FAST_ANSWER, f"slowest answer while there is no leader {slowest:.2f} s <= {FAST_ANSWER} s")
    check(not load.unexpected, f"unexpected answers: {load.unexpected[:3]}")
    check(not unsettled, f"{len(unsettled)} spend(s) never acknowledged after the failover")

    acked, lost, doubled = lost_and_doubled(standby, load.spends)
    check(not lost, f"{len(lost)} acknowledged spend(s) lost in the failover")
    check(doubled == 0, f"{doubled} spend(s) stored twice")
    replay_bad = replays_that_differ(tally.port, key, [s for s in acked if s.failed_attempts] + acked[-100:])
    check(replay_bad == 0, f"{replay_bad} replay(s) differ after the failover")
    result, _ = tally.command("verify")
    check(result.returncode == 0, f"tally verify is clean on the new leader through HAProxy (rc {result.returncode}): "
                                  f"{result.stdout.strip()[-300:]} {result.stderr.strip()[-300:]}")

    # The crashed node comes back: Patroni rewinds it onto the new timeline and it becomes the
    # synchronous standby, so that a second crash would lose nothing either.
    restarted = time.time()
    leader.start()
    try:
        wait_for(f"{leader.name} to rejoin", lambda: leader.status("/sync")[0] == 200, 60, 0.1)
        rejoined = time.time() - restarted
        check(standby.sql("SELECT application_name, sync_state FROM pg_stat_replication", user="postgres",
                          database="postgres") == [f"{leader.name}|sync"],
              f"{leader.name} is the new leader's synchronous standby")
    except RuntimeError as error:
        rejoined = None
        check(False, str(error))

    before = sum(1 for s in acked if s.answer and s.failed_attempts == 0 and s.attempts == 1)
    retried = sum(1 for s in acked if s.failed_attempts)
    refused = sum(1 for s in window if s[2] in (0, 503))
    print(f"\nPatroni failover (ttl {TTL} s, loop_wait {LOOP_WAIT} s, retry_timeout {RETRY_TIMEOUT} s), Tally through HAProxy:")
    print(f"  standby promoted (REST /primary 200) {promoted:.1f} s after the crash" if promoted else
          "  standby not promoted")
    if back:
        print(f"  the same Tally spent again {min(back.values()):.1f} s after the crash, "
              f"every organisation by {max(back.values()):.1f} s")
    print(f"  spends acknowledged {len(acked)} ({retried} after a 503 or a broken connection, {before} at the first "
          f"attempt), lost {len(lost)}, doubled {doubled}; {refused} answers were 503 "
          f"(slowest {slowest:.2f} s, sent {slowest_at:+.1f} s from the crash)")
    if rejoined:
        print(f"  {leader.name} restarted: rewound and the synchronous standby again {rejoined:.1f} s later")


def main():
    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(HARD_LIMIT)
    started = time.time()
    servers = Servers()
    servers.nodes = []
    tallies = []
    try:
        run(servers, tallies)
    except Exception as error:  # noqa: BLE001 - reported as a failed check, after which everything is torn down
        check(False, f"{type(error).__name__}: {error}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.alarm(0)
        if failures:
            for name in ["etcd", "haproxy"] + [n.name for n in servers.nodes]:
                print(f"--- {name}.log (end)\n{servers.tail(name)}")
            print(f"--- tally.log (end)\n{servers.tail('tally')}")
        for tally in tallies:
            tally.kill()
        for node in servers.nodes:
            node.stop()
        for _, process in reversed(servers.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if os.environ.get("TALLY_HA_KEEP"):
            print(f"logs and data kept in {servers.base}")
        else:
            shutil.rmtree(servers.base, ignore_errors=True)
        for tally in tallies:
            shutil.rmtree(tally.workdir, ignore_errors=True)
    if failures:
        print(f"{len(failures)} HA check(s) failed ({time.time() - started:.0f} s)")
        sys.exit(1)
    print(f"all HA checks passed in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
