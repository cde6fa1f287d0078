"""A PostgreSQL cluster and a Tally server prepared for the contract suites.

Reuses scripts/faults/cluster.py: a temporary cluster, `tally catalog load catalog/demo.json`,
then `tally serve` on a free port. `prepare()` makes an organisation with credits and a
subscription so that generated requests reach the billing code, not just the 404 paths.
"""
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "faults"))

from cluster import Cluster, Tally, request  # noqa: E402

VENV = os.path.join(ROOT, ".build", "contract-venv")
# Versions verified together; bump them together.
REQUIREMENTS = ["schemathesis==4.32.5", "openapi-python-client==0.29.1"]


def ensure_venv():
    """The virtual environment of the contract suites, made (quietly) when missing or stale."""
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, "requirements.txt")
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if os.path.exists(python) and os.path.exists(stamp) and open(stamp).read() == wanted:
        return VENV
    import subprocess
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdin=subprocess.DEVNULL)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
                   check=True, stdin=subprocess.DEVNULL)
    with open(stamp, "w") as f:
        f.write(wanted)
    return VENV


class Stack:
    """PostgreSQL + Tally with the demo catalog loaded. Use as a context manager."""

    def __init__(self, name="contract"):
        self.cluster = Cluster(name, settings="fsync = off\nsynchronous_commit = off\nfull_page_writes = off")
        self.tally = None

    def __enter__(self):
        self.cluster.init()
        self.cluster.start()
        self.tally = Tally(self.cluster.url, platform_key="pk_contract_platform_" + uuid.uuid4().hex)
        result, _ = self.tally.command("catalog", "load", os.path.join(ROOT, "catalog", "demo.json"))
        if result.returncode != 0:
            raise RuntimeError(f"tally catalog load failed: {result.stdout}{result.stderr}")
        self.tally.start()
        return self

    def __exit__(self, *exc):
        if self.tally:
            self.tally.kill()
        self.cluster.remove()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.tally.port}"

    def call(self, method, path, body=None, key=None, idempotency=False, expect=None):
        headers = {"Idempotency-Key": uuid.uuid4().hex} if idempotency else None
        status, _, parsed, _ = request(self.tally.port, method, path, body=body,
                                       key=key or self.tally.platform_key, headers=headers)
        if expect is not None and status != expect:
            raise RuntimeError(f"{method} {path} answered {status}, expected {expect}: {parsed}")
        return parsed

    def prepare(self):
        """An organisation on the $250 Studio plan with a large admin grant; returns its ids."""
        org = self.call("POST", "/v1/orgs", {"name": "Contract Org", "external_id": "contract-" + uuid.uuid4().hex[:12],
                                             "timezone": "Europe/Berlin"}, expect=201)
        org_id = org["id"]
        self.call("POST", f"/v1/orgs/{org_id}/subscription", {"plan": "studio_250"}, expect=201)
        grant = self.call("POST", f"/v1/orgs/{org_id}/grants",
                          {"credits": "1000000", "source": "admin_grant", "reason": "contract tests"},
                          idempotency=True, expect=201)
        usage = self.call("POST", f"/v1/orgs/{org_id}/usage", {"operation": "smart_crop", "quantity": 3},
                          idempotency=True, expect=201)
        reservation = self.call("POST", f"/v1/orgs/{org_id}/reservations", {"credits": "5", "ttl_seconds": 3600},
                                idempotency=True, expect=201)
        invoices = self.call("GET", f"/v1/orgs/{org_id}/invoices", expect=200)
        key = self.call("POST", f"/v1/orgs/{org_id}/api-keys", {"name": "contract member", "role": "member"}, expect=201)
        clock = self.call("POST", "/v1/test-clocks", {"frozen_time": "2026-01-31T00:00:00Z"}, expect=201)
        endpoint = self.call("POST", "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "events": ["*"], "org_id": org_id},
                             expect=201)
        return {
            "org": org_id,
            "bucket": grant["bucket_id"],
            "entry": usage["entry_id"],
            "reservation": reservation["id"],
            "invoice": invoices["data"][0]["id"] if invoices["data"] else None,
            "key": key["id"],
            "member_key": key["key"],
            "clock": clock["id"],
            "endpoint": endpoint["id"],
        }


if __name__ == "__main__":
    # A development stack that stays up: prints the URL, key and ids, then waits for Ctrl-C or SIGTERM.
    import signal
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with Stack("contract-dev") as stack:
        ids = stack.prepare()
        print(f"url={stack.base_url} key={stack.tally.platform_key} pg={stack.cluster.url}", flush=True)
        print(ids, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
