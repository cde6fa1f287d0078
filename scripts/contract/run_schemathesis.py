"""Contract tests: schemathesis against a real Tally and the openapi.json it serves.

Starts its own PostgreSQL and `tally serve` (scripts/faults/cluster.py), loads the demo catalog,
makes an organisation with credits, a subscription, a usage entry, a hold, an API key, a test clock
and a webhook endpoint, then runs every schemathesis phase (examples, coverage, fuzzing, stateful
walks over the document's links) with every check, positive and negative data, a fixed seed and a
fixed number of cases. Exits non-zero when schemathesis reports any failure.

    python3 scripts/contract/run_schemathesis.py            # about 2 minutes
    CONTRACT_MAX_TIME=600 python3 scripts/contract/run_schemathesis.py   # explore for ten minutes

Environment: TALLY_BINARY (default .build/debug/tally), PG_BINDIR, CONTRACT_SEED, CONTRACT_MAX_EXAMPLES (100),
CONTRACT_MAX_TIME (unset: a fixed number of cases, the same every run).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import ROOT, Stack, ensure_venv  # noqa: E402

SEED = int(os.environ.get("CONTRACT_SEED", "13"))
# A fixed number of cases per operation and phase, with the fixed seed: every run tries the same
# requests, so a failure in CI is one a second run reproduces. CONTRACT_MAX_TIME (seconds) turns it
# into a time budget instead, for longer exploratory runs.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "100"))
MAX_TIME = os.environ.get("CONTRACT_MAX_TIME")

# Operations whose answers depend on more than the shape of the request: a schema-valid request
# may still be refused with 422 because of state or references the document cannot express (a plan
# code that does not exist, a time in the past, a host that does not resolve, a params member the
# operation does not price, `to` before `from`, a currency other than the price's). For these, and
# only these, 422 (and 402 where credits run out) counts as an acceptable answer to positive data.
SEMANTIC_422 = {
    ("POST", "/v1/orgs"): "timezone must be a known IANA zone; test_clock_id must exist",
    ("POST", "/v1/orgs/{org}/grants"): "expires_at must be in the future and after effective_at",
    ("POST", "/v1/orgs/{org}/usage"): "params must be parameters of the operation; the cost must fit one request",
    ("POST", "/v1/orgs/{org}/reservations"): "as usage; a hold must cost something",
    ("POST", "/v1/orgs/{org}/reservations/{reservation}/commit"): "at most the held credits",
    ("POST", "/v1/orgs/{org}/quote"): "params must be parameters of the operation",
    ("POST", "/v1/orgs/{org}/purchases"): "the pack must exist; raw credits need a plan with credit_price",
    ("POST", "/v1/orgs/{org}/subscription"): "the plan must exist; start_at within the last year",
    ("POST", "/v1/orgs/{org}/subscription/change"): "the plan must exist",
    ("PATCH", "/v1/orgs/{org}/settings"): "auto_topup.pack must exist; enabling needs a threshold and a pack",
    ("POST", "/v1/plans"): "every amount in the plan's currency",
    ("PUT", "/v1/plans/{code}"): "code must match the path; one currency",
    ("POST", "/v1/operations"): "components must be existing operations; tier and multiplier rules",
    ("PUT", "/v1/operations/{code}"): "code must match the path; components must exist",
    ("POST", "/v1/webhook-endpoints"): "the url's host must resolve; org_id must exist",
    ("POST", "/v1/test-clocks/{clock}/advance"): "a test clock only moves forward",
    ("GET", "/v1/orgs/{org}/ledger"): "to must be after from",
    ("GET", "/v1/orgs/{org}/usage/export"): "to must be after from",
}


def toml_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config(ids, platform_key):
    lines = [
        f"seed = {SEED}",
        *([f"max-time = {int(MAX_TIME)}"] if MAX_TIME else []),
        "workers = 2",
        "[headers]",
        f"Authorization = {toml_string('Bearer ' + platform_key)}",
        "[parameters]",
        f'"path.org" = {toml_string(ids["org"])}',
    ]
    for (method, path), reason in SEMANTIC_422.items():
        # 402 only ever comes from spends; schemathesis 4.32 applies the first matching entry's
        # check settings to every operation, so every entry carries the same list.
        statuses = ["2XX", "401", "402", "403", "404", "409", "422"]
        path_regex = "^" + re.escape(path) + "$"
        lines += [
            "[[operations]]",
            f"# {reason}",
            f"include-method = {toml_string(method)}",
            f"include-path-regex = {toml_string(path_regex)}",
            "checks.positive_data_acceptance.expected-statuses = [" + ", ".join(toml_string(s) for s in statuses) + "]",
        ]
    return "\n".join(lines) + "\n"


def generator_crash_only(result):
    """True when schemathesis failed only because Hypothesis crashed inside its own code: runtime
    errors with a traceback in hypothesis' internals, and no failed check at all."""
    output = result.stdout
    return (result.returncode != 0 and "= FAILURES =" not in output and "Runtime Error" in output
            and "site-packages/hypothesis/" in output and "SystemError" in output)


def main():
    started = time.time()
    venv = ensure_venv()
    with Stack("contract") as stack:
        ids = stack.prepare()
        with tempfile.TemporaryDirectory(prefix="tally-schemathesis.") as work:
            path = os.path.join(work, "schemathesis.toml")
            with open(path, "w") as f:
                f.write(config(ids, stack.tally.platform_key))
            command = [os.path.join(venv, "bin", "schemathesis"), "--config-file", path, "run",
                       f"{stack.base_url}/openapi.json", "--checks", "all", "--mode", "all",
                       "--phases", "examples,coverage,fuzzing,stateful", "--no-color",
                       *([] if MAX_TIME else ["--max-examples", str(MAX_EXAMPLES)]),
                       "--report", "junit", "--report-junit-path", os.path.join(ROOT, ".build", "contract-schemathesis.xml")]
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            result = subprocess.run(command, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if generator_crash_only(result):
                # Hypothesis itself crashed while drawing a value (seen once: "SystemError: AST
                # constructor recursion depth mismatch" inside hypothesis' lambda_sources, reported as
                # a FlakyFailure): no request was judged. Run again once; a failure of a check on
                # Tally's answers is never retried.
                print(result.stdout)
                print("schemathesis: its data generator crashed (no check failed); running it once more")
                result = subprocess.run(command, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = result.stdout
    print(output)
    generated = re.search(r"(\d+) generated", output)
    elapsed = time.time() - started
    print(f"schemathesis: {generated.group(1) if generated else '?'} cases generated, seed {SEED}, "
          f"exit {result.returncode}, {elapsed:.0f} s in all (server log: {stack.tally.log_path})")
    if result.returncode != 0:
        # The server's own account of each 500: the log is gone with the CI machine.
        with open(stack.tally.log_path, errors="replace") as log:
            errors = [line.rstrip() for line in log if '"level":"error"' in line or " error " in line]
        if errors:
            print(f"server log, last {min(len(errors), 20)} of {len(errors)} error lines:")
            print("\n".join(errors[-20:]))
        print("0 passed, 1 failed: schemathesis contract suite")
        return 1
    print("1 passed, 0 failed: schemathesis contract suite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
