"""PostgreSQL clusters and a Tally process for the fault-injection suites.

Only the standard library: the suites run in CI before any virtual environment exists.
As root, every PostgreSQL program runs as the unprivileged `postgres` user (PostgreSQL refuses root).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BINDIR = os.environ.get("PG_BINDIR") or subprocess.run(
    ["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One PostgreSQL server in a temporary folder, on a free loopback port."""

    def __init__(self, name, settings="", base=None):
        self.name = name
        self.base = base or tempfile.mkdtemp(prefix=f"tally-{name}.")
        os.chmod(self.base, 0o755)
        if AS_PG:
            shutil.chown(self.base, "postgres", "postgres")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "postgres.log")
        self.port = free_port()
        self.settings = settings

    @property
    def url(self):
        return f"postgres://tally@127.0.0.1:{self.port}/postgres"

    def pg(self, program, *args, check=True, timeout=120):
        return subprocess.run(AS_PG + [os.path.join(PG_BINDIR, program), *args], cwd=self.base,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def init(self):
        self.pg("initdb", "-D", self.data, "-U", "tally", "--auth=trust", "--encoding=UTF8", "--locale=C")
        self.configure(self.settings)

    def configure(self, settings):
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                       f"max_connections = 200\n{settings}\n")

    def start(self):
        self.pg("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60")

    def stop(self, mode="immediate"):
        self.pg("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "60", check=False)

    def sql(self, statement, database="postgres"):
        result = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "tally", "-d", database,
                                 "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return [line for line in result.stdout.splitlines() if line]

    def remove(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Tally:
    """`tally serve` on a free port, its log in a file."""

    def __init__(self, database_url, platform_key="pk_faults_platform", log_path=None, extra_env=None):
        self.port = free_port()
        self.platform_key = platform_key
        self.database_url = database_url
        self.binary = os.environ.get("TALLY_BINARY") or os.path.join(ROOT, ".build", "debug", "tally")
        self.log_path = log_path or tempfile.mktemp(prefix="tally-serve.", suffix=".log")
        self.extra_env = extra_env or {}
        self.process = None
        self.workdir = tempfile.mkdtemp(prefix="tally-cwd.")

    def env(self, **overrides):
        env = dict(os.environ, DATABASE_URL=self.database_url, TALLY_PLATFORM_KEY=self.platform_key,
                   TALLY_PORT=str(self.port), TALLY_LOG_LEVEL="info")
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start(self, timeout=90):
        self.log = open(self.log_path, "ab")
        # From a folder of its own: the binary carries its migrations and openapi.json.
        self.process = subprocess.Popen([self.binary, "serve"], env=self.env(), stdout=self.log, cwd=self.workdir,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tally serve exited with {self.process.returncode}; log: {self.log_path}")
            try:
                if request(self.port, "GET", "/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("tally serve did not become ready")

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout=40):
        """SIGTERM; returns (exit status, seconds to exit)."""
        start = time.time()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        return code, time.time() - start

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()

    def command(self, *args, timeout=120, **env):
        start = time.time()
        result = subprocess.run([self.binary, *args], env=self.env(**env), capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.workdir)
        return result, time.time() - start

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


failures = []


def check(condition, message):
    """Records a failed check (the suite exits 1 at its end) and says so at once."""
    if not condition:
        failures.append(message)
        print(f"  FAIL: {message}", flush=True)


def lost_and_doubled(cluster, spends):
    """(acknowledged spends, ids acknowledged but not stored, usage entries stored that nobody was answered)."""
    acked = [s for s in spends if s.entry_id]
    stored = set(cluster.sql("SELECT entry_id FROM ledger_entries WHERE type = 'usage'"))
    acked_ids = set(s.entry_id for s in acked)
    return acked, acked_ids - stored, len(stored) - len(stored & acked_ids)


def replays_that_differ(port, key, spends):
    """Sends each spend again with its key; how many answers differ from the first (or fail)."""
    differ = 0
    for spend in spends:
        try:
            status, _, body, _ = request(port, "POST", f"/v1/orgs/{spend.org}/usage", body=spend.body, key=key,
                                         headers={"Idempotency-Key": spend.key})
        except OSError:
            status, body = 0, None
        differ += status != 201 or body != spend.answer
    return differ


def organisations_with_credits(tally, count, label):
    """`count` organisations, each granted ten million credits; their ids."""
    orgs = []
    for n in range(count):
        status, _, org, _ = request(tally.port, "POST", "/v1/orgs", body={"name": f"{label} {n}"}, key=tally.platform_key)
        assert status == 201, (status, org)
        status, _, grant, _ = request(tally.port, "POST", f"/v1/orgs/{org['id']}/grants", key=tally.platform_key,
                                      body={"credits": "10000000", "source": "admin_grant", "reason": label},
                                      headers={"Idempotency-Key": f"grant-{n}"})
        assert status == 201, (status, grant)
        orgs.append(org["id"])
    return orgs


def request(port, method, path, body=None, key=None, headers=None, timeout=10):
    """One request on a fresh connection: (status, headers dict, parsed JSON or None, seconds)."""
    start = time.time()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        parsed = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed, time.time() - start
    finally:
        connection.close()
