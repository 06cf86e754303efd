-- Myna's first schema (PostgreSQL): the same tables as SQLite's, with native
-- uuid columns. Settings stay JSON text (jsonb would reorder their keys).

CREATE TABLE accounts (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE tokens (
    token      UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX tokens_account ON tokens (account_id);
CREATE INDEX tokens_expires ON tokens (expires_ms);

CREATE TABLE api_keys (
    uuid       UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE experiments (
    uuid       UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('draft', 'published', 'archived')),
    settings   TEXT NOT NULL, -- a JSON object
    created_ms BIGINT NOT NULL
);

-- Variants in creation order (`position`), with their running counts,
-- incremented inside each group commit's transaction.
CREATE TABLE variants (
    experiment   UUID NOT NULL REFERENCES experiments (uuid) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    settings     TEXT NOT NULL, -- a JSON object
    views        BIGINT NOT NULL DEFAULT 0,
    total_reward DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment, id)
);

-- Per-variant per-hour totals, written in the same transaction as the counts.
CREATE TABLE variant_hours (
    experiment   UUID NOT NULL,
    variant      TEXT NOT NULL,
    hour_ms      BIGINT NOT NULL,
    views        BIGINT NOT NULL,
    total_reward DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (experiment, variant, hour_ms),
    FOREIGN KEY (experiment, variant) REFERENCES variants (experiment, id) ON DELETE CASCADE
);

-- Batch ids already counted, per experiment (exactly-once across every
-- instance: the primary key decides); pruned after 8 days.
CREATE TABLE batches (
    experiment UUID NOT NULL,
    batch      UUID NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (experiment, batch)
);
CREATE INDEX batches_created ON batches (created_ms);
