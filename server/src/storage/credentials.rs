//! Accounts, login tokens, the server's secrets and API keys: the calls
//! written once for both backends, each run by [`Run`] (the backend picks
//! the connection; on PostgreSQL the caller bounds the call).

use uuid::Uuid;

use super::rows::{
    ACCOUNT_COLUMNS, API_KEY_COLUMNS, Columns, TOKEN_COLUMNS, account_row, api_key_row, count_col,
    token_row, uuid_col,
};
use super::sql::{Run, Statement, insert_for_account};
use super::{Account, AccountListing, ApiKey, StorageError, Token, TokenHash};

/// The first row of `rows`, if any.
fn first<R>(rows: Vec<R>) -> Option<R> {
    rows.into_iter().next()
}

/// See [`Storage::account_count`](super::Storage::account_count).
pub async fn account_count(db: &impl Run) -> Result<u64, StorageError> {
    let rows = db
        .fetch(Statement::new("SELECT COUNT(*) AS n FROM accounts"))
        .await?;
    let row = first(rows).ok_or_else(|| StorageError::Internal("no count".into()))?;
    count_col(&row, "n")
}

/// See [`Storage::create_account`](super::Storage::create_account).
pub async fn create_account(db: &impl Run, account: &Account) -> Result<(), StorageError> {
    let sql = format!("INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4)");
    db.execute(
        Statement::new(sql)
            .uuid(account.id)
            .text(account.email.as_str())
            .text(account.password_hash.as_str())
            .integer(account.created_ms),
    )
    .await?;
    Ok(())
}

/// See [`Storage::accounts`](super::Storage::accounts).
pub async fn accounts(db: &impl Run) -> Result<Vec<AccountListing>, StorageError> {
    let sql = "SELECT a.email, a.created_ms, \
         (SELECT COUNT(*) FROM experiments e WHERE e.account_id = a.id) AS experiments, \
         (SELECT COUNT(*) FROM api_keys k WHERE k.account_id = a.id) AS api_keys, \
         (SELECT COUNT(*) FROM webhooks w WHERE w.account_id = a.id) AS webhooks \
         FROM accounts a ORDER BY a.created_ms, a.email";
    let rows = db.fetch(Statement::new(sql)).await?;
    rows.iter()
        .map(|row| {
            Ok(AccountListing {
                email: row.text("email")?,
                created_ms: row.integer("created_ms")?,
                experiments: count_col(row, "experiments")?,
                api_keys: count_col(row, "api_keys")?,
                webhooks: count_col(row, "webhooks")?,
            })
        })
        .collect()
}

/// See [`Storage::account_experiments`](super::Storage::account_experiments).
pub async fn account_experiments(
    db: &impl Run,
    account_id: Uuid,
) -> Result<Vec<Uuid>, StorageError> {
    let sql = "SELECT uuid FROM experiments WHERE account_id = $1 ORDER BY uuid";
    let rows = db.fetch(Statement::new(sql).uuid(account_id)).await?;
    rows.iter().map(|row| uuid_col(row, "uuid")).collect()
}

/// See [`Storage::delete_account`](super::Storage::delete_account).
pub async fn delete_account(db: &impl Run, account_id: Uuid) -> Result<bool, StorageError> {
    let sql = "DELETE FROM accounts WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM experiments WHERE account_id = $1)";
    let deleted = db.execute(Statement::new(sql).uuid(account_id)).await?;
    Ok(deleted > 0)
}

/// See [`Storage::account_by_email`](super::Storage::account_by_email).
pub async fn account_by_email(db: &impl Run, email: &str) -> Result<Option<Account>, StorageError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1");
    let rows = db.fetch(Statement::new(sql).text(email)).await?;
    first(rows).as_ref().map(account_row).transpose()
}

/// See [`Storage::set_password`](super::Storage::set_password).
pub async fn set_password(
    db: &impl Run,
    account_id: Uuid,
    password_hash: &str,
) -> Result<bool, StorageError> {
    let sql = "UPDATE accounts SET password_hash = $1 WHERE id = $2";
    let changed = db
        .execute(Statement::new(sql).text(password_hash).uuid(account_id))
        .await?;
    Ok(changed > 0)
}

/// See [`Storage::create_token`](super::Storage::create_token).
pub async fn create_token(db: &impl Run, token: Token, max: usize) -> Result<(), StorageError> {
    let sql = format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4)");
    db.execute(
        Statement::new(sql)
            .text(token.hash.hex())
            .text(token.kind.as_str())
            .uuid(token.account_id)
            .integer(token.expires_ms),
    )
    .await?;
    // Past `max`: those expiring before the `max`-th latest (ties kept).
    let prune = "DELETE FROM tokens WHERE account_id = $1 AND kind = $2 AND expires_ms < \
         (SELECT expires_ms FROM tokens WHERE account_id = $1 AND kind = $2 \
         ORDER BY expires_ms DESC LIMIT 1 OFFSET $3)";
    db.execute(
        Statement::new(prune)
            .uuid(token.account_id)
            .text(token.kind.as_str())
            .count(max.saturating_sub(1)),
    )
    .await?;
    Ok(())
}

/// See [`Storage::token`](super::Storage::token).
pub async fn token(db: &impl Run, hash: TokenHash) -> Result<Option<Token>, StorageError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1");
    let rows = db.fetch(Statement::new(sql).text(hash.hex())).await?;
    first(rows).as_ref().map(token_row).transpose()
}

/// See [`Storage::extend_token`](super::Storage::extend_token).
pub async fn extend_token(
    db: &impl Run,
    hash: TokenHash,
    expires_ms: i64,
) -> Result<(), StorageError> {
    db.execute(
        Statement::new("UPDATE tokens SET expires_ms = $1 WHERE hash = $2")
            .integer(expires_ms)
            .text(hash.hex()),
    )
    .await?;
    Ok(())
}

/// See [`Storage::delete_token`](super::Storage::delete_token).
pub async fn delete_token(db: &impl Run, hash: TokenHash) -> Result<bool, StorageError> {
    let deleted = db
        .execute(Statement::new("DELETE FROM tokens WHERE hash = $1").text(hash.hex()))
        .await?;
    Ok(deleted > 0)
}

/// See [`Storage::delete_account_tokens`](super::Storage::delete_account_tokens).
pub async fn delete_account_tokens(db: &impl Run, account_id: Uuid) -> Result<u64, StorageError> {
    db.execute(Statement::new("DELETE FROM tokens WHERE account_id = $1").uuid(account_id))
        .await
}

/// See [`Storage::prune_tokens`](super::Storage::prune_tokens).
pub async fn prune_tokens(db: &impl Run, now_ms: i64) -> Result<u64, StorageError> {
    db.execute(Statement::new("DELETE FROM tokens WHERE expires_ms <= $1").integer(now_ms))
        .await
}

/// See [`Storage::secret`](super::Storage::secret). The read follows the
/// insert's commit, so it sees the row stored first: this one, or that of
/// an instance inserting at the same moment (whose commit the insert
/// waited for, then did nothing).
pub async fn secret(db: &impl Run, name: &str, fresh: &str) -> Result<String, StorageError> {
    // Read first: a database that takes no writes (a standby) has it.
    let select = || Statement::new("SELECT value FROM secrets WHERE name = $1").text(name);
    if let Some(row) = first(db.fetch(select()).await?) {
        return row.text("value");
    }
    db.execute(
        Statement::new(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .text(name)
        .text(fresh),
    )
    .await?;
    let rows = db.fetch(select()).await?;
    let row = first(rows).ok_or_else(|| StorageError::Internal(format!("no secret {name}")))?;
    row.text("value")
}

/// See [`Storage::create_api_key`](super::Storage::create_api_key).
pub async fn create_api_key(db: &impl Run, key: &ApiKey, max: usize) -> Result<bool, StorageError> {
    let sql = format!(
        "INSERT INTO api_keys ({API_KEY_COLUMNS}) SELECT $1, $2, $3, $4 \
         WHERE (SELECT COUNT(*) FROM api_keys WHERE account_id = $2) < $5"
    );
    let insert = Statement::new(sql)
        .uuid(key.uuid)
        .uuid(key.account_id)
        .optional_text(key.name.as_deref())
        .integer(key.created_ms)
        .count(max);
    insert_for_account(db, key.account_id, insert).await
}

/// See [`Storage::api_key`](super::Storage::api_key).
pub async fn api_key(db: &impl Run, uuid: Uuid) -> Result<Option<ApiKey>, StorageError> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE uuid = $1");
    let rows = db.fetch(Statement::new(sql).uuid(uuid)).await?;
    first(rows).as_ref().map(api_key_row).transpose()
}

/// See [`Storage::api_keys`](super::Storage::api_keys).
pub async fn api_keys(db: &impl Run, account_id: Uuid) -> Result<Vec<ApiKey>, StorageError> {
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_ms, uuid"
    );
    let rows = db.fetch(Statement::new(sql).uuid(account_id)).await?;
    rows.iter().map(api_key_row).collect()
}

/// See [`Storage::delete_api_key`](super::Storage::delete_api_key).
pub async fn delete_api_key(
    db: &impl Run,
    account_id: Uuid,
    uuid: Uuid,
) -> Result<bool, StorageError> {
    let deleted = db
        .execute(
            Statement::new("DELETE FROM api_keys WHERE uuid = $1 AND account_id = $2")
                .uuid(uuid)
                .uuid(account_id),
        )
        .await?;
    Ok(deleted > 0)
}
