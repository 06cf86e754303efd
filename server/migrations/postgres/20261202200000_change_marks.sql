-- Incremental refreshes (instances sharing this database): an instance
-- reads only what changed since its previous refresh, not every experiment.
--
-- `experiments.changed_xid` is the id of the last transaction that changed
-- the experiment or any of its variants (definitions, counts folded, a
-- reset), set by the triggers below whatever statement made the change.
-- A deletion of an experiment or an API key leaves a row in `deletions`
-- for an hour. A refresh reads, in one snapshot, the experiments with
-- `changed_xid` at or above the oldest transaction still running at its
-- previous refresh (every change that refresh could not see has such an
-- id; some it saw may too, and are read again), those with counts still
-- pending (folded every second, so rows of about the last second), and
-- the deletions likewise. Ids are pg_current_xact_id() as a bigint (xid8:
-- 64 bits, never wraps).
ALTER TABLE experiments ADD COLUMN changed_xid BIGINT NOT NULL DEFAULT 0;
CREATE INDEX experiments_changed ON experiments (changed_xid);

CREATE FUNCTION myna_experiment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.changed_xid := pg_current_xact_id()::text::bigint;
  RETURN NEW;
END $$;
CREATE TRIGGER experiments_changed BEFORE INSERT OR UPDATE ON experiments
  FOR EACH ROW EXECUTE FUNCTION myna_experiment_changed();

-- Any statement on `variants` marks the experiments of the rows it touched
-- (once per statement: a fold of many rows is one update per experiment).
CREATE FUNCTION myna_variants_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE experiments SET changed_xid = pg_current_xact_id()::text::bigint
  WHERE uuid IN (SELECT DISTINCT experiment FROM touched);
  RETURN NULL;
END $$;
CREATE TRIGGER variants_inserted AFTER INSERT ON variants
  REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION myna_variants_changed();
CREATE TRIGGER variants_updated AFTER UPDATE ON variants
  REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION myna_variants_changed();
CREATE TRIGGER variants_deleted AFTER DELETE ON variants
  REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION myna_variants_changed();

-- What was deleted (`kind`: 'experiment' or 'api_key'), kept an hour: an
-- instance that has not refreshed for half that reads everything again.
CREATE TABLE deletions (
    kind        TEXT NOT NULL,
    uuid        UUID NOT NULL,
    changed_xid BIGINT NOT NULL,
    deleted_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX deletions_changed ON deletions (changed_xid);
CREATE INDEX deletions_at ON deletions (deleted_at);

CREATE FUNCTION myna_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO deletions (kind, uuid, changed_xid)
  SELECT TG_ARGV[0], gone.uuid, pg_current_xact_id()::text::bigint FROM gone;
  RETURN NULL;
END $$;
CREATE TRIGGER experiments_deleted AFTER DELETE ON experiments
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION myna_deleted('experiment');
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION myna_deleted('api_key');
