-- Webhooks: the URLs an account's changes of decision are posted to (their
-- secrets are derived from the server secret, never stored), the last
-- observation notified per experiment, and the deliveries.

CREATE TABLE webhooks (
    uuid       TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, created_ms);

-- What was last notified of an experiment: its verdict and its failing
-- checks (typenames, sorted, comma-separated).
CREATE TABLE webhook_observations (
    experiment TEXT PRIMARY KEY REFERENCES experiments (uuid) ON DELETE CASCADE,
    verdict    TEXT NOT NULL,
    failing    TEXT NOT NULL,
    changed_ms INTEGER NOT NULL
);

-- One event for one webhook. `next_ms` is when it is due (an attempt
-- claims it by moving `next_ms` past the attempt's end); NULL once
-- delivered or given up.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         TEXT NOT NULL REFERENCES webhooks (uuid) ON DELETE CASCADE,
    experiment      TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_ms         INTEGER,
    last_attempt_ms INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_ms    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE next_ms IS NOT NULL;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);

-- Each attempt of a delivery: when it began and how it came out (the HTTP
-- status, or why there was none). At most six a delivery; they go with it.
CREATE TABLE webhook_attempts (
    delivery INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at_ms    INTEGER NOT NULL,
    status   INTEGER,
    error    TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery, at_ms);
