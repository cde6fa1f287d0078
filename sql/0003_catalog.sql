-- The catalog: plans, operations and credit packs. These are reference data shared by every
-- organisation (the platform key manages them), so they carry no org_id; when the schema is
-- sharded by organisation they are copied to every shard. Decimal values inside JSON columns
-- are strings, never JSON numbers, so that they stay exact.

CREATE TABLE plans (
    code                  text PRIMARY KEY CHECK (code ~ '^[a-z0-9_-]{1,64}$'),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price                 numeric(20,6) NOT NULL CHECK (price >= 0),
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    billing_interval      text NOT NULL CHECK (billing_interval IN ('month', 'year')),
    credits_per_period    numeric(20,4) NOT NULL CHECK (credits_per_period >= 0),
    credit_expiry         text NOT NULL CHECK (credit_expiry IN ('period_end', 'days', 'never')),
    credit_expiry_days    integer CHECK (credit_expiry_days > 0),
    rollover              text NOT NULL CHECK (rollover IN ('none', 'all', 'capped')),
    rollover_max_credits  numeric(20,4) CHECK (rollover_max_credits > 0),
    overage_allowed       boolean NOT NULL,
    overage_rate          numeric(20,6) CHECK (overage_rate > 0),
    min_purchase_credits  numeric(20,4) CHECK (min_purchase_credits > 0),
    credit_price          numeric(20,6) CHECK (credit_price > 0),
    purchased_credits_expire_after_days integer CHECK (purchased_credits_expire_after_days > 0),
    -- {"smart_crop": "1.1"}: per-plan credits of an operation, replacing its base cost.
    operation_rates       jsonb NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CHECK ((credit_expiry = 'days') = (credit_expiry_days IS NOT NULL)),
    CHECK ((rollover = 'capped') = (rollover_max_credits IS NOT NULL)),
    CHECK (NOT overage_allowed OR overage_rate IS NOT NULL)
);

CREATE TABLE operations (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z0-9_-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The base cost of one unit; NULL for a pipeline, which costs the sum of its components.
    credits     numeric(20,4) CHECK (credits >= 0),
    -- [{"param": "resolution", "value": "1024x1024", "credits": "4"}]
    tiers       jsonb NOT NULL DEFAULT '[]',
    -- [{"param": "model", "value": "advanced", "factor": "1.5"}]
    multipliers jsonb NOT NULL DEFAULT '[]',
    -- [{"param": "transparent_background", "credits": "1"}]
    addons      jsonb NOT NULL DEFAULT '[]',
    components  text[] NOT NULL DEFAULT '{}',
    free_quantity_per_request integer NOT NULL DEFAULT 0 CHECK (free_quantity_per_request >= 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CHECK ((credits IS NULL) = (cardinality(components) > 0))
);

CREATE TABLE credit_packs (
    code               text PRIMARY KEY CHECK (code ~ '^[a-z0-9_-]{1,64}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    credits            numeric(20,4) NOT NULL CHECK (credits > 0),
    price              numeric(20,6) NOT NULL CHECK (price >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    expires_after_days integer CHECK (expires_after_days > 0),
    created_at         timestamptz NOT NULL
);
