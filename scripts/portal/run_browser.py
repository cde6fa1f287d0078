#!/usr/bin/env python3
"""The credits portal in a real browser: headless Chromium (Debian's chromium and chromium-driver,
installed here when run as root) driven by Selenium (PyPI, in .build/portal-venv), against a real
Tally and PostgreSQL (scripts/contract/stack.py, the demo catalog loaded).

Walks what a team admin does (every tab, a purchase, the plan change: preview shown, nothing
changed before Confirm, changed after; settings), then the member's view, a revoked and an
expired session, another organisation's pages, and the seed 000 shortfall. Every step saves a
screenshot under .build/portal-screenshots/ (look at them).
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "contract"))

VENV = os.path.join(ROOT, ".build", "portal-venv")
REQUIREMENTS = ["selenium==4.51.0"]
SHOTS = os.path.join(ROOT, ".build", "portal-screenshots")
failures = []


def ensure_browser():
    """Debian's Chromium and its driver; installed when missing and run as root."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    if os.geteuid() != 0:
        sys.exit("error: the browser tests need chromium and chromium-driver: sudo apt-get install -y chromium chromium-driver")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, stdin=subprocess.DEVNULL, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"],
                   check=True, stdin=subprocess.DEVNULL, env=env, stdout=subprocess.DEVNULL)


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, "requirements.txt")
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if not (os.path.exists(python) and os.path.exists(stamp) and open(stamp).read() == wanted):
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdin=subprocess.DEVNULL)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
                       check=True, stdin=subprocess.DEVNULL)
        with open(stamp, "w") as f:
            f.write(wanted)
    return python


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def main():
    ensure_browser()
    python = ensure_venv()
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        # Selenium lives in the virtual environment: run this file again with its Python.
        os.execv(python, [python, __file__, *sys.argv[1:]])
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from stack import Stack

    shutil.rmtree(SHOTS, ignore_errors=True)
    os.makedirs(SHOTS)
    started = time.time()
    with Stack("portal") as stack:
        call = stack.call
        # An organisation on its own test clock with four months of history (seed 003's cards).
        clock = call("POST", "/v1/test-clocks", {"frozen_time": "2026-08-10T09:00:00Z"}, expect=201)["id"]
        org = call("POST", "/v1/orgs", {"name": "Northwind Photo", "external_id": "portal-" + uuid.uuid4().hex[:8],
                                        "timezone": "Europe/Berlin", "test_clock_id": clock}, expect=201)["id"]
        call("POST", f"/v1/orgs/{org}/subscription", {"plan": "studio_250"}, idempotency=True, expect=201)
        call("POST", f"/v1/orgs/{org}/grants", {"credits": "25", "source": "free_credits", "reason": "trial"}, idempotency=True, expect=201)
        months = [("2026-08-10T09:00:00Z", 40), ("2026-09-12T09:00:00Z", 120), ("2026-10-14T09:00:00Z", 75), ("2026-11-16T09:00:00Z", 30)]
        for index, (moment, quantity) in enumerate(months):
            if index:
                call("POST", f"/v1/test-clocks/{clock}/advance", {"to": moment}, expect=200)
            for event, actor in [("Summer Wedding", "alice@example.com"), ("Gala Night", "system")]:
                call("POST", f"/v1/orgs/{org}/usage", {"operation": "smart_crop", "quantity": quantity, "event_id": f"{event[:4].lower()}-{index}",
                                                       "event_name": event, "actor": actor}, idempotency=True, expect=201)
        call("POST", f"/v1/orgs/{org}/purchases", {"pack": "standard"}, idempotency=True, expect=201)
        other = call("POST", "/v1/orgs", {"name": "Other Org", "external_id": "portal-" + uuid.uuid4().hex[:8]}, expect=201)["id"]
        call("POST", f"/v1/orgs/{other}/grants", {"credits": "10", "source": "free_credits", "reason": "trial"}, idempotency=True, expect=201)

        def session(org_id, role, **extra):
            return call("POST", f"/v1/orgs/{org_id}/portal-sessions", {"role": role, **extra}, expect=201)

        expiring = session(org, "admin", ttl_seconds=60)
        expiring_at = time.time() + 60

        options = Options()
        for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--force-prefers-reduced-motion", "--lang=en-GB"]:
            options.add_argument(argument)
        options.binary_location = shutil.which("chromium")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.set_page_load_timeout(30)
        shot_number = [0]

        def shot(name):
            shot_number[0] += 1
            # The whole page, not just the window: the height of the document.
            height = driver.execute_script("return document.documentElement.scrollHeight")
            width = driver.get_window_size()["width"]
            driver.set_window_size(width, max(600, min(height + 120, 4000)))
            path = os.path.join(SHOTS, f"{shot_number[0]:02d}-{name}.png")
            driver.save_screenshot(path)
            driver.set_window_size(width, 1000)

        def text(selector):
            return driver.find_element(By.CSS_SELECTOR, selector).text

        def exists(selector):
            return len(driver.find_elements(By.CSS_SELECTOR, selector)) > 0

        def link(label):
            return driver.find_element(By.LINK_TEXT, label)

        def api(path):
            return call("GET", path)

        def submit(element_id, lands_on):
            """Clicks a form's button and waits for the page it leads to: a click returns before a
            form's navigation has necessarily finished."""
            driver.find_element(By.ID, element_id).click()
            try:
                WebDriverWait(driver, 15).until(lambda d: lands_on in d.current_url)
            except Exception:
                check(False, f"the form led to {lands_on} (at {driver.current_url})")

        try:
            # --- The admin walk ---
            admin = session(org, "admin", user="alice@example.com", return_url="https://app.example.com/settings")
            driver.get(admin["url"])
            check(driver.current_url.endswith(f"/portal/{org}/credits"), "the link opens the Credits tab")
            balance = api(f"/v1/orgs/{org}/balance")["available"]
            check(text("#available").replace(",", "") == balance, f"Available Credits shows the balance ({balance})")
            check(text("#cost-per-credit") == "••••", "the cost per credit is hidden at first")
            link("Show").click()
            check(text("#cost-per-credit") == "$0.0547", "Show reveals the cost per credit ($250 / 4,570 = $0.0547)")
            shot("credits-admin")
            link("Hide").click()
            check(text("#cost-per-credit") == "••••", "Hide hides it again")
            cards = driver.find_elements(By.CSS_SELECTOR, ".months .month")
            check(len(cards) == 4, "the Monthly Usage Summary has four month cards")
            check("Current" in cards[0].text and "November 2026" in cards[0].text, "the current month comes first with its Current badge")
            check("Current" not in cards[1].text, "only the current month has the badge")
            check(cards[2].find_element(By.CSS_SELECTOR, ".used").text == "312", "September's card shows its 312 credits used (2 × 120 × 1.3)")
            check(driver.find_element(By.CSS_SELECTOR, ".months .used").value_of_css_property("color") in ("rgba(180, 35, 24, 1)", "rgb(180, 35, 24)"),
                  "credits used are red")
            check(len(driver.find_elements(By.CSS_SELECTOR, "svg.chart-svg rect")) == 4, "the bar chart has the four months")
            rows = driver.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")
            check(len(rows) == 8, f"Credit Usage lists the 8 spends (got {len(rows)})")
            first = rows[0].text
            check("Smart Crop" in first and "-39" in first and "System" in first, f"a usage row shows type, negative credits and the user ({first!r})")
            driver.find_element(By.ID, "event").send_keys("summ-2")
            driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
            WebDriverWait(driver, 15).until(lambda d: "event=summ-2" in d.current_url)
            rows = driver.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")
            check(len(rows) == 1 and "Summer Wedding" in rows[0].text and "alice@example.com" in rows[0].text,
                  "filtering by event ID keeps that event's spend")
            shot("credits-filtered")
            export_href = link("JSON").get_attribute("href")
            cookie = driver.get_cookie("tally_portal")
            check(cookie is not None and cookie["httpOnly"] and cookie.get("sameSite") == "Lax", "the session cookie is HttpOnly and SameSite=Lax")
            request = urllib.request.Request(export_href, headers={"Cookie": f"tally_portal={cookie['value']}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                exported = json.loads(response.read())
            check(len(exported) == 8 and all("operation" in entry for entry in exported), "Download usage as JSON gives every usage entry")
            link("Purchase History").click()
            history = text("#purchase-table")
            check("Free Credits" in history and "Purchase" in history and "Plan Allocation" in history and "+200" in history,
                  "Purchase History lists free credits, the pack and plan allocations with positive credits")
            shot("purchase-history")

            # Purchase: the price before anything is bought.
            link("Credits").click()
            link("Purchase Credits").click()
            shot("purchase-choose")
            driver.find_element(By.CSS_SELECTOR, "a[aria-label='Buy Basic Package']").click()
            check(text("#price") == "$9.90" and text("#credits-bought") == "100", "the review shows the pack's price and credits")
            before = api(f"/v1/orgs/{org}/balance")["available"]
            check(api(f"/v1/orgs/{org}/balance")["available"] == before, "nothing is bought before Confirm")
            shot("purchase-review")
            submit("confirm", "done=purchased")
            after = api(f"/v1/orgs/{org}/balance")["available"]
            check(float(after) == float(before) + 100, f"Confirm buys the 100 credits once ({before} -> {after})")
            check("the credits are in your balance" in text(".notice"), "the page confirms the purchase")
            driver.back()
            driver.back()
            check(api(f"/v1/orgs/{org}/balance")["available"] == after, "going back buys nothing more")

            # The plan change: preview, nothing changed, Confirm, changed.
            driver.get(admin["url"].split("/enter/")[0] + "/subscription")
            check(text("#current-plan") == "Studio", "the Subscription tab shows the current plan")
            shot("subscription-admin")
            driver.find_element(By.CSS_SELECTOR, "a[aria-label='Change to Basic now']").click()
            check(text("#charge") == "$100.00", "the preview shows the charge now ($100.00)")
            plan_credits = sum(float(b["remaining"]) for b in api(f"/v1/orgs/{org}/balance")["buckets"] if b["source"] in ("plan_allocation", "rollover"))
            check(float(text("#carried").replace(",", "")) == plan_credits, f"the preview carries the plan credits left ({plan_credits})")
            check(api(f"/v1/orgs/{org}/subscription")["plan"] == "studio_250", "nothing changed before Confirm")
            shot("change-preview")
            submit("confirm", "done=plan_changed")
            check(api(f"/v1/orgs/{org}/subscription")["plan"] == "basic_100", "Confirm changes the plan")
            check(text("#current-plan") == "Basic" and "Your plan has been changed." in text(".notice"), "the page shows the new plan")
            shot("subscription-changed")

            # Billing & Transactions: invoices, a printable one.
            link("Billing & Transactions").click()
            invoices = driver.find_elements(By.CSS_SELECTOR, "#invoice-table tbody tr")
            check(len(invoices) >= 4, f"the invoices are listed ({len(invoices)})")
            shot("billing")
            invoices[0].find_element(By.LINK_TEXT, "View").click()
            check(text("#invoice-total").startswith("$"), "an invoice opens as a printable page")
            shot("invoice")
            driver.back()

            # Settings.
            link("Settings").click()
            driver.find_element(By.ID, "overage_protection").click()
            cap = driver.find_element(By.ID, "overage_cap_credits")
            cap.clear()
            cap.send_keys("500")
            submit("save", "done=settings_saved")
            check("saved" in text(".notice"), "the page confirms the settings")
            saved = api(f"/v1/orgs/{org}/settings")
            check(saved["overage_protection"] is False and saved["overage_cap_credits"] == "500",
                  f"Settings saves overage protection and the cap ({saved['overage_protection']}, {saved['overage_cap_credits']})")
            shot("settings")

            # Cancel: preview then Confirm.
            link("Subscription").click()
            link("Cancel at period end").click()
            check(api(f"/v1/orgs/{org}/subscription")["cancel_at_period_end"] is False, "nothing is canceled before Confirm")
            shot("cancel-preview")
            submit("confirm", "done=cancel_scheduled")
            check(api(f"/v1/orgs/{org}/subscription")["cancel_at_period_end"] is True, "Confirm schedules the cancellation")

            # A phone-sized window.
            driver.set_window_size(390, 844)
            link("Credits").click()
            check(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"),
                  "the Credits tab fits a phone's width")
            shot("credits-phone")
            driver.set_window_size(1280, 1000)

            # --- Another organisation: nothing of it through this session ---
            driver.get(admin["url"].split("/portal/")[0] + f"/portal/{other}/credits")
            check("no longer valid" in driver.page_source and "Other Org" not in driver.page_source, "another organisation's page shows nothing")
            token = admin["url"].rsplit("/", 1)[1]
            driver.get(admin["url"].split("/portal/")[0] + f"/portal/{other}/enter/{token}")
            check("no longer valid" in driver.page_source, "this session's link does not open another organisation")
            shot("foreign-org")

            # --- The member ---
            driver.delete_all_cookies()
            member = session(org, "member", user="bob@example.com")
            driver.get(member["url"])
            check(not exists("a[href$='/purchase']") and "Purchase Credits" not in driver.page_source, "a member sees no Purchase Credits")
            check("Settings" not in text("nav.tabs"), "a member has no Settings tab")
            shot("credits-member")
            link("Subscription").click()
            check("Change Plan" not in driver.page_source and "Cancel now" not in driver.page_source, "a member sees no Change Plan or Cancel")
            driver.get(member["url"].split("/enter/")[0] + "/settings")
            check("Not available with your access" in driver.page_source, "a member's Settings is refused")
            shot("member-refused")

            # --- Revoked and expired sessions ---
            call("DELETE", f"/v1/orgs/{org}/portal-sessions/{member['id']}", expect=204)
            link("Credits").click() if exists("nav.tabs") else driver.get(member["url"].split("/enter/")[0] + "/credits")
            driver.get(member["url"].split("/enter/")[0] + "/credits")
            check("no longer valid" in driver.page_source, "a revoked session sees nothing")
            driver.delete_all_cookies()
            driver.get(expiring["url"])
            check(driver.current_url.endswith("/credits"), "a short session opens while it lasts")
            time.sleep(max(0, expiring_at - time.time() + 1))
            driver.get(expiring["url"].split("/enter/")[0] + "/billing")
            check("no longer valid" in driver.page_source, "an expired session sees nothing")
            shot("expired")

            # --- Seed 000: the confirmation with a shortfall ---
            driver.delete_all_cookies()
            short = session(other, "admin", return_url="https://app.example.com/process")
            driver.get(short["url"] + "?next=confirm%3Foperation%3Dlifestyle_crop%26quantity%3D3")
            check(text("#cost") == "12.3 credits" and text("#balance") == "10 credits", "the confirmation shows the exact cost and balance")
            shortfall = driver.find_element(By.ID, "shortfall")
            check("2.3" in shortfall.text, "the shortfall is named (2.3 credits)")
            check(shortfall.value_of_css_property("color") in ("rgba(180, 35, 24, 1)", "rgb(180, 35, 24)"), "the shortfall is red")
            check(not driver.find_element(By.ID, "process").is_enabled(), "Process is disabled")
            check(exists("#shortfall a[href$='/purchase']") and exists("#shortfall a[href$='/subscription']"),
                  "Purchase Credits and Change Plan are offered")
            shot("confirm-shortfall")
            driver.get(short["url"].split("/enter/")[0] + "/confirm?operation=full_pipeline&quantity=4")
            check(text("#cost") == "8 credits" and driver.find_element(By.ID, "process").get_attribute("href") == "https://app.example.com/process",
                  "with enough credits Process leads on")
            shot("confirm-enough")
        finally:
            driver.quit()
        result, _ = stack.tally.command("verify")
        check(result.returncode == 0, "tally verify is clean after the walk")
    print(f"portal browser tests: {len(failures)} failure(s) in {time.time() - started:.0f} s; screenshots in {SHOTS}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
