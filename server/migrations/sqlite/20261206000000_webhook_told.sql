-- When a change of an experiment was last told (its events stored): the
-- 10-minute hold that follows it is kept in the database, so it survives
-- restarts. NULL: none told yet.
ALTER TABLE webhook_observations ADD COLUMN told_ms INTEGER;
