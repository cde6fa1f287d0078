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
