-- The credit ledger: buckets of credits, the append-only ledger of every movement, idempotency
-- records and holds. Every balance change is a ledger entry whose postings say what it did to
-- each bucket, so that a bucket's remaining always equals the sum of its postings (its grant
-- posting included). Credits are numeric(20,4): exact, four decimal places.

CREATE TABLE credit_buckets (
    org_id         uuid NOT NULL REFERENCES orgs (org_id),
    bucket_id      uuid NOT NULL,
    source         text NOT NULL CHECK (source IN ('plan_allocation', 'rollover', 'purchase', 'free_credits',
                                                   'promotional', 'admin_grant', 'refund')),
    granted        numeric(20,4) NOT NULL CHECK (granted > 0),
    remaining      numeric(20,4) NOT NULL,
    priority       integer NOT NULL CHECK (priority BETWEEN 0 AND 1000),
    effective_at   timestamptz NOT NULL,
    expires_at     timestamptz,
    granted_at     timestamptz NOT NULL,
    -- The ledger entry that created the bucket (its grant posting).
    grant_entry_id uuid NOT NULL,
    PRIMARY KEY (org_id, bucket_id),
    CHECK (remaining >= 0 AND remaining <= granted),
    CHECK (expires_at IS NULL OR expires_at > effective_at)
);

-- Spendable buckets in burn-down order: what every consumption locks.
CREATE INDEX credit_buckets_burn_order ON credit_buckets (org_id, priority, expires_at, granted_at, bucket_id)
    WHERE remaining > 0;
-- Buckets with credits left that expire: what the expiry job scans.
CREATE INDEX credit_buckets_expiring ON credit_buckets (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

CREATE TABLE ledger_entries (
    org_id           uuid NOT NULL REFERENCES orgs (org_id),
    entry_id         uuid NOT NULL,
    -- Insertion order: stable cursors while new entries arrive.
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    type             text NOT NULL CHECK (type IN ('usage', 'reversal', 'expiry', 'hold', 'hold_release',
                                                   'plan_allocation', 'rollover', 'purchase', 'free_credits',
                                                   'promotional', 'admin_grant', 'refund')),
    -- The net change to the organisation's bucket credits: the sum of the entry's postings.
    credits          numeric(20,4) NOT NULL,
    -- Credits of a spend that no bucket covered (billed as overage); negative on a reversal of it.
    overage_credits  numeric(20,4) NOT NULL DEFAULT 0,
    operation        text,
    quantity         integer,
    params           jsonb,
    event_id         text,
    event_name       text,
    actor            text NOT NULL DEFAULT 'system',
    metadata         jsonb,
    reason           text,
    -- A reversal's usage entry; a hold settlement's hold entry.
    related_entry_id uuid,
    reservation_id   uuid,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, entry_id)
);

CREATE UNIQUE INDEX ledger_entries_by_seq ON ledger_entries (org_id, seq);
CREATE INDEX ledger_entries_related ON ledger_entries (org_id, related_entry_id) WHERE related_entry_id IS NOT NULL;

CREATE TABLE ledger_postings (
    org_id    uuid NOT NULL,
    entry_id  uuid NOT NULL,
    bucket_id uuid NOT NULL,
    credits   numeric(20,4) NOT NULL CHECK (credits <> 0),
    PRIMARY KEY (org_id, entry_id, bucket_id),
    FOREIGN KEY (org_id, entry_id) REFERENCES ledger_entries (org_id, entry_id),
    FOREIGN KEY (org_id, bucket_id) REFERENCES credit_buckets (org_id, bucket_id)
);

CREATE INDEX ledger_postings_by_bucket ON ledger_postings (org_id, bucket_id);

-- The ledger is append-only: corrections are new entries, never edits.
CREATE FUNCTION tally_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION tally_append_only();
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION tally_append_only();

-- One record per Idempotency-Key and organisation: the request's hash and the first response,
-- replayed byte for byte. Written in the same transaction as the effect it records.
CREATE TABLE idempotency_keys (
    org_id          uuid NOT NULL REFERENCES orgs (org_id),
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    bytea NOT NULL,
    status_code     integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, idempotency_key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Holds: credits taken out of buckets by a `hold` entry until committed, released or expired.
CREATE TABLE reservations (
    org_id          uuid NOT NULL REFERENCES orgs (org_id),
    reservation_id  uuid NOT NULL,
    credits         numeric(20,4) NOT NULL CHECK (credits > 0),
    status          text NOT NULL CHECK (status IN ('active', 'committed', 'released', 'expired')),
    hold_entry_id   uuid NOT NULL,
    settle_entry_id uuid,
    committed_credits numeric(20,4) CHECK (committed_credits >= 0 AND committed_credits <= credits),
    operation       text,
    quantity        integer,
    params          jsonb,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    settled_at      timestamptz,
    PRIMARY KEY (org_id, reservation_id),
    CHECK (expires_at > created_at),
    CHECK ((status = 'active') = (settled_at IS NULL))
);

CREATE INDEX reservations_active_by_expiry ON reservations (expires_at) WHERE status = 'active';
CREATE INDEX reservations_active_by_org ON reservations (org_id, expires_at) WHERE status = 'active';
