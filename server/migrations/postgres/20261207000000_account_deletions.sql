-- Accounts deleted (`account delete`) are told to every instance through
-- `deletions` too (kind 'account'), so each forgets the passwords it
-- checked for them within a refresh, not a minute later.
CREATE FUNCTION myna_account_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO deletions (kind, uuid, changed_xid)
  SELECT 'account', gone.id, pg_current_xact_id()::text::bigint FROM gone;
  RETURN NULL;
END $$;
CREATE TRIGGER accounts_deleted AFTER DELETE ON accounts
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION myna_account_deleted();
