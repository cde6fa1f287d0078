-- (psql -v subs=N) N organisations, each with a monthly subscription whose period ended an hour
-- ago and its allocation, written the way Tally writes them: what `tally jobs run` renews.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO plans (code, name, price, currency, billing_interval, credits_per_period, credit_expiry, rollover, rollover_max_credits,
                   overage_allowed, operation_rates, created_at, updated_at)
VALUES ('bench_monthly', 'Bench monthly', 10, 'USD', 'month', 1000, 'period_end', 'capped', 100, false, '{}', now(), now());
CREATE TABLE bench_subs AS
    SELECT n, gen_random_uuid() AS org_id, gen_random_uuid() AS subscription_id, gen_random_uuid() AS bucket_id,
           gen_random_uuid() AS entry_id, date_trunc('second', now()) - interval '1 month' - interval '1 hour' AS anchor
    FROM generate_series(1, :subs) AS n;
INSERT INTO orgs (org_id, name, timezone, created_at) SELECT org_id, 'renew ' || n, 'UTC', anchor FROM bench_subs;
INSERT INTO subscriptions (org_id, subscription_id, plan_code, status, anchor_at, period_index, current_period_start, current_period_end, created_at)
    SELECT org_id, subscription_id, 'bench_monthly', 'active', anchor, 0, anchor, anchor + interval '1 month', anchor FROM bench_subs;
INSERT INTO ledger_entries (org_id, entry_id, type, credits, actor, created_at)
    SELECT org_id, entry_id, 'plan_allocation', 1000, 'system', anchor FROM bench_subs;
INSERT INTO credit_buckets (org_id, bucket_id, source, granted, remaining, priority, effective_at, expires_at, granted_at, grant_entry_id,
                            subscription_id, period_start)
    SELECT org_id, bucket_id, 'plan_allocation', 1000, 1000 - (n % 7) * 100, 20, anchor, anchor + interval '1 month', anchor, entry_id,
           subscription_id, anchor FROM bench_subs;
INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits) SELECT org_id, entry_id, bucket_id, 1000 FROM bench_subs;
-- What was spent of each allocation, as one usage entry (so that the ledger stays exact).
INSERT INTO ledger_entries (org_id, entry_id, type, credits, actor, created_at)
    SELECT org_id, gen_random_uuid(), 'usage', -((n % 7) * 100), 'system', anchor + interval '1 day' FROM bench_subs WHERE n % 7 > 0;
INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits)
    SELECT e.org_id, e.entry_id, s.bucket_id, e.credits FROM ledger_entries e JOIN bench_subs s ON s.org_id = e.org_id WHERE e.type = 'usage';
-- The first period's invoice, number 1 of each organisation (lines go in with their invoice).
WITH first_invoices AS (
    INSERT INTO invoices (org_id, invoice_id, number, kind, status, currency, total, subscription_id, period_start, period_end,
                          issued_at, created_at)
    SELECT org_id, entry_id, 1, 'subscription', 'open', 'USD', 10, subscription_id, anchor, anchor + interval '1 month', anchor, anchor
    FROM bench_subs
)
INSERT INTO invoice_lines (org_id, invoice_id, position, description, quantity, unit_price, amount)
    SELECT org_id, entry_id, 1, 'Bench monthly plan', 1, 10, 10 FROM bench_subs;
INSERT INTO invoice_sequences (org_id, last_number) SELECT org_id, 1 FROM bench_subs;
INSERT INTO usage_periods (org_id, period_start, period_end, subscription_id, allocation, used_credits)
    SELECT org_id, anchor, anchor + interval '1 month', subscription_id, 1000, (n % 7) * 100 FROM bench_subs;
COMMIT;
ANALYZE;
