-- Webhooks: the URLs an account's changes of decision are posted to (their
-- secrets are derived from the server secret, never stored), the last
-- observation notified per experiment, and the deliveries.

CREATE TABLE webhooks (
    uuid       UUID PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, created_ms);

-- What was last notified of an experiment: its verdict and its failing
-- checks (typenames, sorted, comma-separated).
CREATE TABLE webhook_observations (
    experiment UUID PRIMARY KEY REFERENCES experiments (uuid) ON DELETE CASCADE,
    verdict    TEXT NOT NULL,
    failing    TEXT NOT NULL,
    changed_ms BIGINT NOT NULL
);

-- One event for one webhook. `next_ms` is when it is due (an attempt
-- claims it by moving `next_ms` past the attempt's end); NULL once
-- delivered or given up.
CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook         UUID NOT NULL REFERENCES webhooks (uuid) ON DELETE CASCADE,
    experiment      UUID NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_ms         BIGINT,
    last_attempt_ms BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_ms    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE next_ms IS NOT NULL;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);

-- Each attempt of a delivery: when it began and how it came out (the HTTP
-- status, or why there was none). At most six a delivery; they go with it.
CREATE TABLE webhook_attempts (
    delivery BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at_ms    BIGINT NOT NULL,
    status   BIGINT,
    error    TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery, at_ms);
