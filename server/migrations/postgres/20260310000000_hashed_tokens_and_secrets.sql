-- Login tokens are kept as the SHA-256 of the token (hex), never the token
-- itself: a copy of the database yields no live session. Each has a kind: an
-- API token (`Authorization: Bearer`) or a dashboard session (the cookie);
-- neither is accepted as the other. The tokens stored so far were plain text
-- and are deleted: everyone signs in (or logs in) again once.
DROP TABLE tokens;
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY, -- hex SHA-256 of the token
    kind       TEXT NOT NULL CHECK (kind IN ('api', 'dashboard')),
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX tokens_account ON tokens (account_id);
CREATE INDEX tokens_expires ON tokens (expires_ms);

-- The server's secrets (the key that signs dashboard CSRF tokens), created
-- at first start and shared by every instance on the database.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
