-- The ledger's hot rows are written without per-row foreign-key checks. Each check was a query
-- of its own per row (and the two to orgs a row lock on the organisation, a WAL record each):
-- four per spend, a fifth of PostgreSQL's CPU for a spend under load (measured with
-- pg_stat_statements and per-process CPU, `make bench`). What they guarded is guarded where
-- the rows are made, in the same statement and transaction:
-- - a posting's entry is an entry of the same write (`LedgerRows` refuses a write where it is not);
-- - a posting's bucket is a bucket of the same write or one the write moves, and the write
--   fails unless every planned move found its bucket (`LedgerWriteMismatch`);
-- - entries and idempotency keys are written only for an organisation whose context was just
--   read, and organisations are never deleted;
-- and `tally verify` reports any posting, entry or key whose row is missing.
-- The other references (holds, invoices, buckets to organisations) are written rarely and keep
-- their constraints.
ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_org_id_entry_id_fkey;
ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_org_id_bucket_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_org_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_org_id_fkey;
