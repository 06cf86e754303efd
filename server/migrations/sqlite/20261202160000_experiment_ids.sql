-- Each experiment's id: the short name pages know it by (the deployment's
-- `id`, the CSS class `myna-{id}`). NULL for an experiment stored before
-- ids existed: it is read as the default from its name (a slug, see
-- myna_core::experiment::id) and stored at its next update. Uniqueness among
-- an account's published experiments is kept by the server, not by an index:
-- experiments stored before may share the default of a shared name.
ALTER TABLE experiments ADD COLUMN id TEXT;
