-- History, reports and events.

-- Usage per calendar month in the organisation's time zone, kept by every spend (and reduced by
-- reversals, in the month of the usage they reverse). A maintained rollup rather than an index:
-- the monthly summary reads a handful of rows whatever the size of the ledger, and each spend
-- pays one upsert in the statement it already runs.
CREATE TABLE usage_months (
    org_id       uuid NOT NULL REFERENCES orgs (org_id),
    -- The first day of the month, in the organisation's time zone.
    month        date NOT NULL,
    credits_used numeric(20,4) NOT NULL DEFAULT 0,
    transactions bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, month)
);

-- What the ledger already holds, summed once.
INSERT INTO usage_months (org_id, month, credits_used, transactions)
SELECT org_id, month, sum(credits_used), sum(transactions) FROM (
    SELECT u.org_id, date_trunc('month', u.created_at AT TIME ZONE o.timezone)::date AS month,
           -u.credits + u.overage_credits AS credits_used, 1 AS transactions
    FROM ledger_entries u JOIN orgs o ON o.org_id = u.org_id
    WHERE u.type = 'usage'
    UNION ALL
    SELECT r.org_id, date_trunc('month', u.created_at AT TIME ZONE o.timezone)::date,
           -(r.credits - r.overage_credits), 0
    FROM ledger_entries r
    JOIN ledger_entries u ON u.org_id = r.org_id AND u.entry_id = r.related_entry_id
    JOIN orgs o ON o.org_id = r.org_id
    WHERE r.type = 'reversal'
) AS usage GROUP BY org_id, month;

-- Usage in time order: exports and date-range history.
CREATE INDEX ledger_entries_usage_by_time ON ledger_entries (org_id, created_at, seq) WHERE type = 'usage';

-- balance.low fires when a spend leaves the balance below this.
ALTER TABLE orgs ADD COLUMN low_balance_credits numeric(20,4) CHECK (low_balance_credits >= 0);

-- Each alert threshold fires once per period.
CREATE TABLE alert_firings (
    org_id       uuid NOT NULL REFERENCES orgs (org_id),
    period_start timestamptz NOT NULL,
    percent      integer NOT NULL,
    event_id     uuid NOT NULL,
    fired_at     timestamptz NOT NULL,
    PRIMARY KEY (org_id, period_start, percent)
);

-- The outbox: written in the same transaction as the change that causes the event.
CREATE TABLE events (
    org_id     uuid NOT NULL REFERENCES orgs (org_id),
    event_id   uuid NOT NULL,
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    type       text NOT NULL CHECK (type IN ('usage.threshold_reached', 'balance.low', 'credits.expired', 'subscription.renewed',
                                             'subscription.changed', 'invoice.finalized', 'invoice.paid', 'auto_topup.failed')),
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
CREATE UNIQUE INDEX events_by_org ON events (org_id, seq);

-- Webhook endpoints: an organisation's own, or the platform's for every organisation (org_id NULL).
CREATE TABLE webhook_endpoints (
    endpoint_id uuid PRIMARY KEY,
    org_id      uuid REFERENCES orgs (org_id),
    url         text NOT NULL CHECK (url ~ '^https?://'),
    -- Event types to deliver; '*' means all.
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    -- Kept to sign deliveries; shown only when the endpoint is created.
    secret      text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id) WHERE active;

-- One delivery per event and endpoint, retried with back-off until delivered or given up.
CREATE TABLE webhook_deliveries (
    org_id           uuid NOT NULL,
    delivery_id      uuid NOT NULL,
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    event_id         uuid NOT NULL,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    -- NULL: due now.
    next_attempt_at  timestamptz,
    -- A worker holds the delivery until then; if it dies, the delivery is due again after.
    locked_until     timestamptz,
    first_attempt_at timestamptz,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, delivery_id),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, event_id),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at NULLS FIRST, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq DESC);

CREATE TABLE webhook_attempts (
    org_id       uuid NOT NULL,
    delivery_id  uuid NOT NULL,
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    PRIMARY KEY (org_id, delivery_id, attempt),
    FOREIGN KEY (org_id, delivery_id) REFERENCES webhook_deliveries (org_id, delivery_id)
);
