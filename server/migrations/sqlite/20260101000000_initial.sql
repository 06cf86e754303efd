-- Myna's first schema (SQLite). Uuids are lower-case hyphenated text, except
-- batch ids (16-byte blobs: the one table that grows with traffic).

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE tokens (
    token      TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX tokens_account ON tokens (account_id);

CREATE TABLE api_keys (
    uuid       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE experiments (
    uuid       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('draft', 'published', 'archived')),
    settings   TEXT NOT NULL, -- a JSON object
    created_ms INTEGER NOT NULL
);

-- Variants in creation order (`position`), with their running counts.
CREATE TABLE variants (
    experiment   TEXT NOT NULL REFERENCES experiments (uuid) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    settings     TEXT NOT NULL, -- a JSON object
    views        INTEGER NOT NULL DEFAULT 0,
    total_reward REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment, id)
) WITHOUT ROWID;

-- Per-variant per-hour totals, written in the same transaction as the counts.
CREATE TABLE variant_hours (
    experiment   TEXT NOT NULL,
    variant      TEXT NOT NULL,
    hour_ms      INTEGER NOT NULL,
    views        INTEGER NOT NULL,
    total_reward REAL NOT NULL,
    PRIMARY KEY (experiment, variant, hour_ms),
    FOREIGN KEY (experiment, variant) REFERENCES variants (experiment, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Batch ids already counted, per experiment (exactly-once); pruned after 8 days.
CREATE TABLE batches (
    experiment TEXT NOT NULL,
    batch      BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (experiment, batch)
) WITHOUT ROWID;
CREATE INDEX batches_created ON batches (created_ms);
