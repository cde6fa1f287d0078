-- Benchmark data (psql -v orgs=N): N organisations plus one hot one (n = 0), each with one big
-- bucket written the way Tally writes grants (entry, bucket, posting), the smart_crop operation,
-- and bench_orgs: the map from a number to an organisation that pgbench and wrk use.
\set ON_ERROR_STOP 1
BEGIN;
CREATE TABLE bench_orgs (n integer PRIMARY KEY, org_id uuid NOT NULL, bucket_id uuid NOT NULL, entry_id uuid NOT NULL);
INSERT INTO bench_orgs SELECT n, gen_random_uuid(), gen_random_uuid(), gen_random_uuid() FROM generate_series(0, :orgs) AS n;
INSERT INTO orgs (org_id, name, timezone, created_at) SELECT org_id, 'bench ' || n, 'UTC', now() - interval '1 day' FROM bench_orgs;
INSERT INTO ledger_entries (org_id, entry_id, type, credits, actor, created_at)
    SELECT org_id, entry_id, 'admin_grant', 1000000000, 'bench', now() - interval '1 day' FROM bench_orgs;
INSERT INTO credit_buckets (org_id, bucket_id, source, granted, remaining, priority, effective_at, expires_at, granted_at, grant_entry_id)
    SELECT org_id, bucket_id, 'admin_grant', 1000000000, 1000000000, 10, now() - interval '1 day', NULL, now() - interval '1 day', entry_id
    FROM bench_orgs;
INSERT INTO ledger_postings (org_id, entry_id, bucket_id, credits) SELECT org_id, entry_id, bucket_id, 1000000000 FROM bench_orgs;
-- A service in use has answered requests before: three stored answers per organisation. (On
-- an empty table the planner's first plans scan it whole, and keep doing so as it grows until
-- autovacuum analyses it; a benchmark of 15 s would measure that minute, not the service.)
INSERT INTO idempotency_keys (org_id, idempotency_key, request_hash, status_code, response_body, created_at)
    SELECT org_id, 'seed-' || k, '\x00', 200, '\x7b7d', now() - interval '1 day' FROM bench_orgs CROSS JOIN generate_series(1, 3) AS k;
INSERT INTO operations (code, name, credits, created_at, updated_at) VALUES ('smart_crop', 'Smart crop', 1.3, now(), now());
COMMIT;
ANALYZE;
