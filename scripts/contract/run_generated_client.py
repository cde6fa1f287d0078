"""Contract test: a Python client generated from the served /openapi.json drives seed 001.

Generates the client with openapi-python-client into .build/contract-client (it must generate
without a single warning), then, through that client only, plays seed 001 ("Understand how our
billing works"): the $250 / 4,570-credit Studio plan, smart crops at 1.3 credits, the 500-credit
worked example (100 smart crops, 83 background removals, 137.6 left), the balance and the monthly
summary, and a change of plan with its preview. Exits non-zero on any failed assertion.

    python3 scripts/contract/run_generated_client.py      # about 20 seconds
"""
import importlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import ROOT, Stack, ensure_venv, request  # noqa: E402

OUT = os.path.join(ROOT, ".build", "contract-client")
PACKAGE = "tally_client"
failures = []


def check(label, actual, expected):
    ok = actual == expected
    print(f"{'ok  ' if ok else 'FAIL'} {label}: {actual!r}" + ("" if ok else f" (expected {expected!r})"))
    if not ok:
        failures.append(label)


def generate(venv, port):
    """The client, from the document the server serves; any warning fails the run."""
    status, _, document, _ = request(port, "GET", "/openapi.json")
    if status != 200:
        raise RuntimeError(f"GET /openapi.json answered {status}")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    spec = os.path.join(OUT, "openapi.json")
    with open(spec, "w") as f:
        import json
        json.dump(document, f)
    env = dict(os.environ, PATH=os.path.join(venv, "bin") + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run([os.path.join(venv, "bin", "openapi-python-client"), "generate", "--path", spec,
                             "--output-path", os.path.join(OUT, PACKAGE), "--meta", "none", "--overwrite"],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "Warning" in output or "Unable to" in output:
        print(output)
        raise RuntimeError("openapi-python-client did not generate the client cleanly")
    print(f"generated {PACKAGE} from /openapi.json without warnings")
    sys.path.insert(0, OUT)
    return importlib.import_module(PACKAGE)


def main():
    started = time.time()
    venv = ensure_venv()
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        # The generated client needs httpx and attrs: run again inside the virtual environment.
        os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])
    with Stack("contract-client") as stack:
        tc = generate(venv, stack.tally.port)
        api = lambda module: importlib.import_module(f"{PACKAGE}.api.{module}")  # noqa: E731
        m = importlib.import_module(f"{PACKAGE}.models")
        client = tc.AuthenticatedClient(base_url=stack.base_url, token=stack.tally.platform_key, raise_on_unexpected_status=True)

        def ok(response, status):
            if response.status_code != status:
                raise RuntimeError(f"expected {status}, got {response.status_code}: {response.content[:500]!r}")
            return response.parsed

        key = lambda: uuid.uuid4().hex  # noqa: E731
        # The catalog: the demo catalog holds seed 001's plans and operations.
        studio = ok(api("catalog.get_plans_by_code").sync_detailed("studio_250", client=client), 200)
        check("Studio price", (studio.price.amount, studio.price.currency), ("250.00", "USD"))
        check("Studio credits per month", studio.credits_per_period, "4570")
        check("Studio cost per credit ($250 / 4,570)", studio.cost_per_credit.amount, "0.0547")
        check("Studio overage rate", studio.overage.rate_per_credit, "0.10")
        smart_crop = ok(api("catalog.get_operations_by_code").sync_detailed("smart_crop", client=client), 200)
        check("Smart crop credits", smart_crop.credits_, "1.3")

        # An organisation subscribes to the $250 plan.
        org = ok(api("organisations.post_orgs").sync_detailed(client=client, body=m.OrganisationCreate(
            name="Seed 001 studio", external_id="seed001-" + key()[:8], timezone="Europe/Berlin")), 201)
        sub = ok(api("subscription.post_orgs_by_org_subscription").sync_detailed(org.id, client=client,
                                                                             body=m.SubscriptionCreate(plan="studio_250")), 201)
        check("subscription plan", sub.plan, "studio_250")
        check("subscription cost per credit", sub.cost_per_credit.amount, "0.0547")
        quote = ok(api("credits_.post_orgs_by_org_quote").sync_detailed(org.id, client=client,
                                                                       body=m.QuoteRequest(operation="smart_crop", quantity=1)), 200)
        check("smart crops the plan's credits cover (seed: up to 3,515)", quote.max_quantity, 3515)
        quote = ok(api("credits_.post_orgs_by_org_quote").sync_detailed(org.id, client=client,
                                                                       body=m.QuoteRequest(operation="lifestyle_crop", quantity=1)), 200)
        check("a 4.1-credit operation", quote.credits_, "4.1")
        per_credit = Decimal(sub.cost_per_credit.amount)
        expected_cost = (Decimal(quote.credits_) * per_credit).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        check("4.1 credits x $0.0547", str(expected_cost), "0.2243")
        check("quote cost (the server's own)", quote.cost.amount if quote.cost else None, "0.2243")

        # Spend smart crops on the plan's credits.
        spend = ok(api("credits_.post_orgs_by_org_usage").sync_detailed(
            org.id, client=client, idempotency_key=key(), body=m.UsageByOperation(operation="smart_crop", quantity=100)), 201)
        check("100 smart crops", spend.credits_, "130")
        check("available after", spend.available_after, "4440")

        # The worked example of seed 001: a balance of 500 credits.
        small = ok(api("organisations.post_orgs").sync_detailed(client=client, body=m.OrganisationCreate(name="Seed 001 example")), 201)
        ok(api("credits_.post_orgs_by_org_grants").sync_detailed(small.id, client=client, idempotency_key=key(), body=m.GrantCreate(
            credits_="500", source=m.GrantCreateSource.ADMIN_GRANT, reason="seed 001 example")), 201)
        q = ok(api("credits_.post_orgs_by_org_quote").sync_detailed(small.id, client=client,
                                                                   body=m.QuoteRequest(operation="smart_crop", quantity=100)), 200)
        check("quote 100 smart crops", (q.credits_, q.sufficient, q.shortfall), ("130", True, "0"))
        check("whole smart crops in 500 credits (500 / 1.3 = 384.6)", q.max_quantity, 384)
        q = ok(api("credits_.post_orgs_by_org_quote").sync_detailed(small.id, client=client,
                                                                   body=m.QuoteRequest(operation="background_removal", quantity=1)), 200)
        check("whole background removals in 500 credits (500 / 2.8 = 178.6)", q.max_quantity, 178)
        s1 = ok(api("credits_.post_orgs_by_org_usage").sync_detailed(
            small.id, client=client, idempotency_key=key(), body=m.UsageByOperation(operation="smart_crop", quantity=100)), 201)
        check("500 - 130", s1.available_after, "370")
        s2 = ok(api("credits_.post_orgs_by_org_usage").sync_detailed(
            small.id, client=client, idempotency_key=key(), body=m.UsageByOperation(operation="background_removal", quantity=83)), 201)
        check("83 x 2.8", s2.credits_, "232.4")
        check("370 - 232.4", s2.available_after, "137.6")
        balance = ok(api("credits_.get_orgs_by_org_balance").sync_detailed(small.id, client=client), 200)
        check("balance", balance.available, "137.6")
        summary = ok(api("history.get_orgs_by_org_usage_summary").sync_detailed(small.id, client=client, months=4), 200)
        check("monthly summary rows", len(summary.data), 4)
        current = summary.data[0]
        check("this month", (current.current, current.credits_used, current.transactions), (True, "362.4", 2))

        # Change plan: the preview first (it writes nothing), then the change itself.
        balance = ok(api("credits_.get_orgs_by_org_balance").sync_detailed(org.id, client=client), 200)
        check("Studio balance before the change", balance.available, "4440")
        preview = ok(api("subscription.post_orgs_by_org_subscription_change").sync_detailed(org.id, client=client, body=m.SubscriptionChange(
            plan="basic_100", effective=m.SubscriptionChangeEffective.IMMEDIATE, preview=True)), 200)
        check("preview", preview.preview, True)
        check("preview charge", (preview.charge.amount, preview.charge.currency), ("100.00", "USD"))
        check("preview credits carried", preview.credits_carried, "4440")
        check("preview credits granted", preview.credits_granted, "1700")
        after_preview = ok(api("subscription.get_orgs_by_org_subscription").sync_detailed(org.id, client=client), 200)
        check("the preview changed nothing", after_preview.plan, "studio_250")
        change = ok(api("subscription.post_orgs_by_org_subscription_change").sync_detailed(org.id, client=client, body=m.SubscriptionChange(
            plan="basic_100", effective=m.SubscriptionChangeEffective.IMMEDIATE, preview=False)), 200)
        check("changed", (change.preview, change.subscription.plan, change.charge.amount), (False, "basic_100", "100.00"))
        balance = ok(api("credits_.get_orgs_by_org_balance").sync_detailed(org.id, client=client), 200)
        check("credits carried into the new term (4440 + 1700)", balance.available, "6140")
        invoices = ok(api("invoices.get_orgs_by_org_invoices").sync_detailed(org.id, client=client), 200)
        totals = sorted(Decimal(i.total.amount) for i in invoices.data if i.kind.value == "subscription")
        check("two charges this month ($250 + $100 = $350)", (totals, sum(totals)), ([Decimal("100.00"), Decimal("250.00")], Decimal("350.00")))
    elapsed = time.time() - started
    print(f"generated client, seed 001: {len(failures)} failed checks, {elapsed:.0f} s")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed: generated client seed 001")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
