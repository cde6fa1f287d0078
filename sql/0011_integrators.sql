-- What integrators and team admins expect (issue 16).

-- credits.expiring: days before a bucket with credits left expires that the organisation is told
-- (0: never). Once per bucket: the warnings sent are kept, keyed like the bucket.
ALTER TABLE orgs ADD COLUMN expiry_warning_days integer NOT NULL DEFAULT 7
    CHECK (expiry_warning_days BETWEEN 0 AND 365);

CREATE TABLE bucket_expiry_warnings (
    org_id    uuid NOT NULL,
    bucket_id uuid NOT NULL,
    warned_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, bucket_id),
    FOREIGN KEY (org_id, bucket_id) REFERENCES credit_buckets (org_id, bucket_id)
);

-- credits.expiring joins the event types (existing rows are checked once, as the constraint is added).
ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type IN (
    'usage.threshold_reached', 'balance.low', 'credits.expired', 'credits.expiring', 'subscription.renewed',
    'subscription.changed', 'invoice.finalized', 'invoice.paid', 'auto_topup.failed'));

-- Who did it: the key a movement, a plan change or a settings change was made with (its id and
-- prefix, never the secret; the platform key has no id and the prefix 'platform'), beside the
-- free-text actor. NULL for what jobs do on their own (renewals, expiry).
ALTER TABLE ledger_entries ADD COLUMN api_key_id uuid, ADD COLUMN api_key_prefix text;
ALTER TABLE subscriptions ADD COLUMN changed_at timestamptz, ADD COLUMN changed_by_key_id uuid, ADD COLUMN changed_by_key_prefix text;
ALTER TABLE orgs ADD COLUMN settings_changed_at timestamptz, ADD COLUMN settings_changed_by_key_id uuid,
    ADD COLUMN settings_changed_by_key_prefix text;
