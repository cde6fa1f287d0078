-- Limits on what a row may hold, so that no stored amount can take arithmetic anywhere near an
-- overflow: a bucket holds at most ten trillion credits (Credits.balanceMaximum, also the most an
-- organisation may hold), a ledger entry moves at most that much. NOT VALID: rows written before
-- the limits existed stay readable (the code reads any numeric(20,4) exactly); new rows are checked.
ALTER TABLE credit_buckets
    ADD CONSTRAINT credit_buckets_granted_limit CHECK (granted <= 10000000000000) NOT VALID;
ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_entries_credits_limit
        CHECK (abs(credits) <= 10000000000000 AND abs(overage_credits) <= 10000000000000) NOT VALID;
ALTER TABLE ledger_postings
    ADD CONSTRAINT ledger_postings_credits_limit CHECK (abs(credits) <= 10000000000000) NOT VALID;
