-- Counts committed but not yet added to `variants` and `variant_hours`.
-- A group commit only INSERTs rows here (and its batch ids), so the group
-- commits of several instances share no row: they never wait for one
-- another, let alone deadlock. Every second one instance at a time folds
-- the rows into the counters (under an advisory lock that definition
-- changes take too); reads add the rows not folded yet. No foreign key:
-- rows of a variant removed meanwhile are dropped by the fold.
CREATE TABLE pending_counts (
    experiment   UUID NOT NULL,
    variant      TEXT NOT NULL,
    hour_ms      BIGINT NOT NULL,
    views        BIGINT NOT NULL,
    total_reward DOUBLE PRECISION NOT NULL
);
