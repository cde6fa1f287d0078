-- Subscriptions, their invoices, and test clocks.

-- A test clock is a frozen "now" that organisations created on it live by; advancing it runs
-- every job that falls due for them. Reference data of the platform, like the catalog.
CREATE TABLE test_clocks (
    test_clock_id uuid PRIMARY KEY,
    frozen_time   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL
);

ALTER TABLE orgs ADD COLUMN test_clock_id uuid REFERENCES test_clocks (test_clock_id);
CREATE INDEX orgs_by_test_clock ON orgs (test_clock_id) WHERE test_clock_id IS NOT NULL;

CREATE TABLE subscriptions (
    org_id               uuid NOT NULL REFERENCES orgs (org_id),
    subscription_id      uuid NOT NULL,
    plan_code            text NOT NULL REFERENCES plans (code),
    status               text NOT NULL CHECK (status IN ('active', 'canceled')),
    -- Periods count from the anchor: the start, or the last immediate plan change.
    anchor_at            timestamptz NOT NULL,
    period_index         integer NOT NULL CHECK (period_index >= 0),
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    scheduled_plan_code  text REFERENCES plans (code),
    created_at           timestamptz NOT NULL,
    canceled_at          timestamptz,
    PRIMARY KEY (org_id, subscription_id),
    CHECK (current_period_end > current_period_start),
    CHECK ((status = 'canceled') = (canceled_at IS NOT NULL))
);

-- At most one live subscription per organisation.
CREATE UNIQUE INDEX subscriptions_one_live_per_org ON subscriptions (org_id) WHERE status = 'active';
-- What the renewal job scans.
CREATE INDEX subscriptions_due ON subscriptions (current_period_end) WHERE status = 'active';

-- Plan credits (allocations and rollovers) belong to a subscription and a period.
ALTER TABLE credit_buckets ADD COLUMN subscription_id uuid, ADD COLUMN period_start timestamptz;
ALTER TABLE credit_buckets ADD CHECK ((source IN ('plan_allocation', 'rollover')) = (subscription_id IS NOT NULL));
-- Exactly one allocation and one rollover per subscription period, however often renewal runs.
CREATE UNIQUE INDEX credit_buckets_one_allocation_per_period ON credit_buckets (org_id, subscription_id, period_start, source)
    WHERE source IN ('plan_allocation', 'rollover');
CREATE INDEX credit_buckets_plan_credits ON credit_buckets (org_id, subscription_id) WHERE remaining > 0 AND subscription_id IS NOT NULL;

-- Invoice numbers: sequential per organisation with no gaps. The counter row is locked by the
-- transaction that issues a number, so a rolled-back invoice gives its number back.
CREATE TABLE invoice_sequences (
    org_id      uuid PRIMARY KEY REFERENCES orgs (org_id),
    last_number bigint NOT NULL CHECK (last_number > 0)
);

CREATE TABLE invoices (
    org_id            uuid NOT NULL REFERENCES orgs (org_id),
    invoice_id        uuid NOT NULL,
    -- Given when the invoice leaves draft (open), so that drafts never leave gaps.
    number            bigint,
    kind              text NOT NULL CHECK (kind IN ('subscription', 'purchase', 'overage')),
    status            text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total             numeric(20,6) NOT NULL,
    subscription_id   uuid,
    period_start      timestamptz,
    period_end        timestamptz,
    issued_at         timestamptz,
    paid_at           timestamptz,
    payment_reference text,
    voided_at         timestamptz,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, invoice_id),
    UNIQUE (org_id, number),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK ((status = 'draft') = (issued_at IS NULL))
);

-- Exactly one subscription charge per subscription period.
CREATE UNIQUE INDEX invoices_one_charge_per_period ON invoices (org_id, subscription_id, period_start) WHERE kind = 'subscription';
CREATE INDEX invoices_by_org ON invoices (org_id, created_at DESC, invoice_id);

CREATE TABLE invoice_lines (
    org_id      uuid NOT NULL,
    invoice_id  uuid NOT NULL,
    position    integer NOT NULL CHECK (position >= 1),
    description text NOT NULL,
    quantity    numeric(20,4) NOT NULL,
    unit_price  numeric(20,6) NOT NULL,
    amount      numeric(20,6) NOT NULL,
    PRIMARY KEY (org_id, invoice_id, position),
    FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, invoice_id)
);
