-- PostgreSQL's own ceiling for a spend: lock the first spendable bucket, update it, insert a
-- ledger row, commit. (pgbench -D first=1 -D last=N: over N organisations; -D first=0 -D last=0:
-- the hot organisation, n = 0.)
\set n random(:first, :last)
BEGIN;
SELECT bucket_id FROM credit_buckets
WHERE org_id = (SELECT org_id FROM bench_orgs WHERE n = :n) AND remaining > 0
ORDER BY priority, expires_at NULLS LAST, granted_at, bucket_id LIMIT 1 FOR UPDATE;
UPDATE credit_buckets SET remaining = remaining - 0.0001
WHERE org_id = (SELECT org_id FROM bench_orgs WHERE n = :n) AND bucket_id = (SELECT bucket_id FROM bench_orgs WHERE n = :n);
INSERT INTO ledger_entries (org_id, entry_id, type, credits, actor, created_at)
VALUES ((SELECT org_id FROM bench_orgs WHERE n = :n), gen_random_uuid(), 'usage', -0.0001, 'bench', now());
COMMIT;
