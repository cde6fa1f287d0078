-- Organisations (tenants) and their API keys.
--
-- Every table carries org_id as the leading key column so that the schema can later be sharded
-- by organisation. Timestamps come from Tally's clock (test clocks included), never from now().

CREATE TABLE orgs (
    org_id      uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    external_id text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    timezone    text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    created_at  timestamptz NOT NULL
);

-- Keys are shown once and stored only as a SHA-256 hash; `prefix` is the visible start of the
-- key so people can tell their keys apart. Platform keys (the operator's) have no organisation.
CREATE TABLE api_keys (
    key_id     uuid PRIMARY KEY,
    org_id     uuid REFERENCES orgs (org_id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role       text NOT NULL CHECK (role IN ('platform', 'admin', 'member')),
    prefix     text NOT NULL,
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK ((role = 'platform') = (org_id IS NULL))
);

CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at, key_id);
