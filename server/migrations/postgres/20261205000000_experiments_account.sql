-- An account's experiments, found without reading every experiment: the
-- count a create checks against the limit, and the ids it compares, under
-- the definitions lock.
CREATE INDEX experiments_account ON experiments (account_id, id);
