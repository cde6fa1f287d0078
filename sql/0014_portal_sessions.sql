-- Credits portal sessions (API.md "Credits portal"): a link the SaaS backend hands its user,
-- bound to one organisation and one role until it expires or is revoked. Only the token's
-- SHA-256 is kept; the token itself is in the link and then in the browser's cookie.
CREATE TABLE portal_sessions (
    org_id                uuid        NOT NULL REFERENCES orgs (org_id),
    session_id            uuid        NOT NULL,
    token_hash            bytea       NOT NULL CHECK (length(token_hash) = 32),
    role                  text        NOT NULL CHECK (role IN ('admin', 'member')),
    user_label            text        CHECK (length(user_label) <= 200),
    return_url            text        CHECK (length(return_url) <= 2000),
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL CHECK (expires_at > created_at),
    revoked_at            timestamptz,
    created_by_key_id     uuid,
    created_by_key_prefix text,
    PRIMARY KEY (org_id, session_id),
    -- A session is found by its organisation (in the link's path) and its token.
    UNIQUE (org_id, token_hash)
);
-- The retention job removes sessions long expired.
CREATE INDEX portal_sessions_by_expiry ON portal_sessions (expires_at);
