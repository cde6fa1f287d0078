-- Foreign-key checks look a row up by (org_id, id) with a plan made once per session, without
-- the values. Any other index that starts with org_id is, for such a plan, as good a way there:
-- while organisations held a few rows each, PostgreSQL took ledger_entries_by_seq for the check
-- of each new posting and then filtered the organisation's entries one by one. For one busy
-- organisation every spend read its whole ledger (20,000 entries per posting, measured).
-- These indexes are partial with a predicate only the queries that want them state, so a
-- primary-key lookup can only take the primary key.

-- Cursors over an organisation's ledger and events (seq starts at 1).
DROP INDEX ledger_entries_by_seq;
CREATE UNIQUE INDEX ledger_entries_by_seq ON ledger_entries (org_id, seq) WHERE seq > 0;
DROP INDEX events_by_org;
CREATE UNIQUE INDEX events_by_org ON events (org_id, seq) WHERE seq > 0;

-- Invoice numbers are unique per organisation once given (drafts have none).
ALTER TABLE invoices DROP CONSTRAINT invoices_org_id_number_key;
CREATE UNIQUE INDEX invoices_number ON invoices (org_id, number) WHERE number IS NOT NULL;
-- No query reads invoices in this order (lists page by invoice id).
DROP INDEX invoices_by_org;
