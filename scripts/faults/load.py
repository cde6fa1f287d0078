"""A spend load on several organisations that never gives up on a key.

Every spend has its own Idempotency-Key. A spend answered 503 (or not answered at all) is sent
again with the same key and body until it gets its 201: that is what a careful client does, and
what lets the suite count acknowledged, lost and doubled spends at the end.
"""
import random
import threading
import time
import uuid

from cluster import request


class Spend:
    def __init__(self, org, credits):
        self.key = str(uuid.uuid4())
        self.org = org
        self.body = {"credits": credits}
        self.entry_id = None      # set by the first 201
        self.answer = None        # the first 201's body
        self.attempts = 0
        self.failed_attempts = 0  # 503s and transport errors


class Load:
    def __init__(self, port, key, orgs, clients=8):
        self.port = port
        self.key = key
        self.orgs = orgs
        self.clients = clients
        self.spends = []
        self.samples = []  # (start, seconds, status, code, retry_after)
        self.lock = threading.Lock()
        self.running = False
        self.threads = []
        self.first_success_after = {}  # org -> time of its first 201 since `mark_recovery`
        self.recovery_mark = None
        self.unexpected = []  # statuses other than 201/503, with bodies

    def send(self, spend):
        start = time.time()
        spend.attempts += 1
        try:
            status, headers, body, seconds = request(
                self.port, "POST", f"/v1/orgs/{spend.org}/usage", body=spend.body, key=self.key,
                headers={"Idempotency-Key": spend.key}, timeout=30)
        except OSError as error:
            status, headers, body, seconds = 0, {}, {"code": f"transport: {error}"}, time.time() - start
        code = (body or {}).get("code") if isinstance(body, dict) else None
        with self.lock:
            self.samples.append((start, seconds, status, code, headers.get("retry-after")))
            if status == 201:
                if spend.entry_id is None:
                    spend.entry_id = body["entry_id"]
                    spend.answer = body
                if self.recovery_mark is not None and start >= self.recovery_mark:
                    self.first_success_after.setdefault(spend.org, time.time())
            elif status in (0, 503):
                spend.failed_attempts += 1
            else:
                self.unexpected.append((status, body))
        return status

    def worker(self):
        pending = None
        while self.running:
            if pending is None:
                pending = Spend(random.choice(self.orgs), random.choice(["1.3", "4.1", "0.5", "2"]))
                with self.lock:
                    self.spends.append(pending)
            status = self.send(pending)
            if status == 201 or status not in (0, 503):
                pending = None
            else:
                time.sleep(0.05)
        # Leave nothing unanswered: the last pending spend is finished by `settle`.

    def start(self):
        self.running = True
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.join()

    def mark_recovery(self):
        with self.lock:
            self.recovery_mark = time.time()
            self.first_success_after = {}

    def settle(self, timeout=60):
        """Sends every unacknowledged spend again until it is acknowledged."""
        deadline = time.time() + timeout
        for spend in self.spends:
            while spend.entry_id is None and time.time() < deadline:
                if self.send(spend) not in (0, 503):
                    break
                time.sleep(0.1)
        return [s for s in self.spends if s.entry_id is None]

    def window(self, start, end):
        with self.lock:
            return [s for s in self.samples if start <= s[0] <= end]
