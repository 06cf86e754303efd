-- Experiment uuids are per account: a uuid chosen at creation that another
-- account's experiment already has is kept as the new experiment's alias
-- (what its owner and pages know it by), under a uuid the server makes.
ALTER TABLE experiments ADD COLUMN alias UUID;
CREATE UNIQUE INDEX experiments_alias ON experiments (account_id, alias) WHERE alias IS NOT NULL;
