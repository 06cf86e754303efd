//! `myna-server copy`: every row of an SQLite database into a new, empty
//! PostgreSQL database, to move from one server to several. The file is
//! read in one transaction (one consistent state; IMMEDIATE, so a command
//! that would change it meanwhile waits) and PostgreSQL written in one
//! transaction: all of it, or nothing. Accounts, password
//! hashes, sessions, the server secret, API keys, experiments with their
//! counts and hourly history, the batch ids that keep a retry from counting
//! twice, served weights and webhooks (their pending deliveries included)
//! carry over as they are.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::postgres::{PostgresStorage, base_options, connect_hint};
use super::{Storage, sqlite};

/// Why a copy failed, in words for the person who ran it.
pub type CopyError = String;

/// A table copied: its name, and its columns as SQLite has them, each with
/// the PostgreSQL type its text is cast to.
#[derive(Debug)]
pub struct Table {
    /// The table's name (the same on both).
    pub name: &'static str,
    /// `(column, PostgreSQL type)`, every column of the SQLite table.
    pub columns: &'static [(&'static str, &'static str)],
}

const UUID: &str = "uuid";
const TEXT: &str = "text";
const BIGINT: &str = "bigint";
const INTEGER: &str = "integer";
const DOUBLE: &str = "double precision";

/// Every table, in an order that inserts rows after those they refer to.
/// (A migration adding a table or a column adds it here: a test compares
/// this with the SQLite schema.)
pub const TABLES: &[Table] = &[
    Table {
        name: "accounts",
        columns: &[
            ("id", UUID),
            ("email", TEXT),
            ("password_hash", TEXT),
            ("created_ms", BIGINT),
        ],
    },
    Table {
        name: "secrets",
        columns: &[("name", TEXT), ("value", TEXT)],
    },
    Table {
        name: "tokens",
        columns: &[
            ("hash", TEXT),
            ("kind", TEXT),
            ("account_id", UUID),
            ("expires_ms", BIGINT),
        ],
    },
    Table {
        name: "api_keys",
        columns: &[
            ("uuid", UUID),
            ("account_id", UUID),
            ("name", TEXT),
            ("created_ms", BIGINT),
        ],
    },
    Table {
        name: "experiments",
        columns: &[
            ("uuid", UUID),
            ("account_id", UUID),
            ("name", TEXT),
            ("visibility", TEXT),
            ("settings", TEXT),
            ("created_ms", BIGINT),
            ("alias", UUID),
            ("id", TEXT),
        ],
    },
    Table {
        name: "variants",
        columns: &[
            ("experiment", UUID),
            ("id", TEXT),
            ("position", INTEGER),
            ("name", TEXT),
            ("settings", TEXT),
            ("views", BIGINT),
            ("total_reward", DOUBLE),
        ],
    },
    Table {
        name: "variant_hours",
        columns: &[
            ("experiment", UUID),
            ("variant", TEXT),
            ("hour_ms", BIGINT),
            ("views", BIGINT),
            ("total_reward", DOUBLE),
        ],
    },
    Table {
        name: "batches",
        columns: &[
            ("experiment", UUID),
            ("batch", UUID),
            ("created_ms", BIGINT),
        ],
    },
    Table {
        name: "served_weights",
        columns: &[
            ("experiment", UUID),
            ("variant", TEXT),
            ("hour_ms", BIGINT),
            ("weight_sum", DOUBLE),
            ("answers", BIGINT),
        ],
    },
    Table {
        name: "webhooks",
        columns: &[
            ("uuid", UUID),
            ("account_id", UUID),
            ("url", TEXT),
            ("created_ms", BIGINT),
        ],
    },
    Table {
        name: "webhook_observations",
        columns: &[
            ("experiment", UUID),
            ("verdict", TEXT),
            ("failing", TEXT),
            ("changed_ms", BIGINT),
            ("told_ms", BIGINT),
        ],
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            ("id", BIGINT),
            ("webhook", UUID),
            ("experiment", UUID),
            ("event", TEXT),
            ("body", TEXT),
            ("created_ms", BIGINT),
            ("attempts", BIGINT),
            ("next_ms", BIGINT),
            ("last_attempt_ms", BIGINT),
            ("last_status", BIGINT),
            ("last_error", TEXT),
            ("delivered_ms", BIGINT),
        ],
    },
    Table {
        name: "webhook_attempts",
        columns: &[
            ("delivery", BIGINT),
            ("at_ms", BIGINT),
            ("status", BIGINT),
            ("error", TEXT),
        ],
    },
];

/// Rows sent to PostgreSQL in one statement.
const CHUNK: u64 = 2_000;

/// Rows copied, per table, in [`TABLES`]' order.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies the SQLite database `source` (an existing Myna file with an
/// account, not damaged, brought up to date first as a start of this
/// version would) into the PostgreSQL database `target` names (refused
/// when it holds tables not Myna's or rows in Myna's; migrated). The
/// caller keeps servers off the file meanwhile.
pub async fn sqlite_to_postgres(
    source: SqliteConnectOptions,
    target: &str,
) -> Result<Copied, CopyError> {
    let source = source.create_if_missing(false).disable_statement_logging();
    let mut from = SqliteConnection::connect_with(&source)
        .await
        .map_err(sqlite_error)?;
    check_source(&mut from).await?;
    sqlite::migrate(&mut from)
        .await
        .map_err(|e| format!("the SQLite database: {e}"))?;
    let options = PgConnectOptions::from_str(target).map_err(pg_error)?;
    if options.get_database().is_none() {
        return Err("name the PostgreSQL database in the URL (postgres://…/myna)".to_owned());
    }
    let options = base_options(options, target).disable_statement_logging();
    let mut to = PgConnection::connect_with(&options)
        .await
        .map_err(|e| format!("{}{}", pg_error(&e), connect_hint(&e.to_string(), target)))?;
    check_target(&mut to).await?;
    // The schema as a start of this version makes it.
    let storage = PostgresStorage::open(target)
        .await
        .map_err(|e| format!("cannot open the PostgreSQL database: {e}"))?;
    let _ = storage.close().await;
    let copied = copy_all(&mut from, &mut to).await;
    let _ = from.close().await;
    let _ = to.close().await;
    copied
}

/// Refuses a file that is not a Myna database (an empty file, another
/// program's: nothing is written to it), or is damaged.
async fn check_source(from: &mut SqliteConnection) -> Result<(), CopyError> {
    let myna: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
         AND name = 'accounts')",
    )
    .fetch_one(&mut *from)
    .await
    .map_err(sqlite_error)?;
    if !myna {
        return Err("it is not a Myna database (it has none of Myna's tables)".to_owned());
    }
    let accounts: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts)")
        .fetch_one(&mut *from)
        .await
        .map_err(sqlite_error)?;
    if !accounts {
        return Err(
            "the SQLite database holds no account: is it the right file? (A copy \
             of myna.db made without its -wal file while a server ran lacks what the \
             server recorded last: copy with myna-server backup)"
                .to_owned(),
        );
    }
    let check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *from)
        .await
        .map_err(sqlite_error)?;
    if check.first().is_none_or(|first| first != "ok") {
        return Err(format!(
            "the SQLite file is damaged (PRAGMA quick_check: {}): copy from a backup",
            check.join("; ")
        ));
    }
    Ok(())
}

/// Refuses a PostgreSQL database that holds tables other than Myna's (the
/// maintenance database `postgres`, another application's): Myna's go
/// into a database of their own.
async fn check_target(to: &mut PgConnection) -> Result<(), CopyError> {
    let mut ours: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    ours.extend(["pending_counts", "deletions", "_sqlx_migrations"]);
    let other: Option<String> = sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
         AND table_schema NOT LIKE 'pg\\_%' \
         AND NOT (table_schema = current_schema() AND table_name = ANY($1)) \
         ORDER BY 1 LIMIT 1",
    )
    .bind(ours)
    .fetch_optional(&mut *to)
    .await
    .map_err(pg_error)?;
    match other {
        Some(table) => Err(format!(
            "the PostgreSQL database holds tables that are not Myna's ({table}): copy into \
             a new database of Myna's own (createdb myna)"
        )),
        None => Ok(()),
    }
}

async fn copy_all(from: &mut SqliteConnection, to: &mut PgConnection) -> Result<Copied, CopyError> {
    // One transaction, every table as of one moment; IMMEDIATE, so that
    // a change made meanwhile (account password, apikey create) waits for
    // the copy rather than being left behind in the file.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *from)
        .await
        .map_err(sqlite_error)?;
    let reading = from;
    let mut writing = to.begin().await.map_err(pg_error)?;
    // An instance starting on the database meanwhile waits, then finds
    // the accounts (it would otherwise create a first account of its own).
    sqlx::query("LOCK TABLE accounts, secrets IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *writing)
        .await
        .map_err(pg_error)?;
    for table in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
        let taken: bool = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *writing)
            .await
            .map_err(pg_error)?;
        if taken {
            return Err(format!(
                "the PostgreSQL database is not empty (its table {} has rows): copy into a \
                 new database (createdb), on which no server has started",
                table.name
            ));
        }
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        let select = format!("SELECT {} FROM {}", names.join(", "), table.name);
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
        let mut rows = 0u64;
        let mut read = sqlx::query(AssertSqlSafe(select)).fetch(&mut *reading);
        while let Some(row) = std::future::poll_fn(|cx| read.as_mut().poll_next(cx)).await {
            let row = row.map_err(sqlite_error)?;
            for (i, column) in columns.iter_mut().enumerate() {
                column.push(text_of(&row, i, table)?);
            }
            rows += 1;
            if rows.is_multiple_of(CHUNK) {
                insert(&mut writing, table, &mut columns).await?;
            }
        }
        insert(&mut writing, table, &mut columns).await?;
        copied.push((table.name, rows));
    }
    // Deliveries made later number on from the copied ones.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), max(id)) \
         FROM webhook_deliveries",
    )
    .execute(&mut *writing)
    .await
    .map_err(pg_error)?;
    writing.commit().await.map_err(pg_error)?;
    sqlx::query("COMMIT")
        .execute(&mut *reading)
        .await
        .map_err(sqlite_error)?;
    Ok(copied)
}

/// Inserts the rows gathered in `columns` (each column's values as text,
/// cast by PostgreSQL to the column's type), then empties them.
async fn insert(
    to: &mut PgConnection,
    table: &Table,
    columns: &mut [Vec<Option<String>>],
) -> Result<(), CopyError> {
    if columns.first().is_none_or(Vec::is_empty) {
        return Ok(());
    }
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = (1..=names.len()).map(|i| format!("${i}::text[]")).collect();
    let casts: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| format!("u.{name}::{kind}"))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE SELECT {casts} \
         FROM UNNEST({arrays}) AS u({names})",
        table = table.name,
        names = names.join(", "),
        casts = casts.join(", "),
        arrays = arrays.join(", "),
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for column in columns.iter_mut() {
        query = query.bind(std::mem::take(column));
    }
    query
        .execute(&mut *to)
        .await
        .map_err(|e| format!("copying the table {} into PostgreSQL: {e}", table.name))?;
    Ok(())
}

/// The value of column `i` as text PostgreSQL reads back exactly (`None`
/// for NULL): integers and text as they are, a double in its shortest
/// exact form, a 16-byte blob (SQLite's batch ids) as a uuid.
fn text_of(row: &SqliteRow, i: usize, table: &Table) -> Result<Option<String>, CopyError> {
    let raw = row.try_get_raw(i).map_err(sqlite_error)?;
    if raw.is_null() {
        return Ok(None);
    }
    let kind = raw.type_info().name().to_owned();
    let text = match kind.as_str() {
        "INTEGER" => row.try_get_unchecked::<i64, _>(i).map(|n| n.to_string()),
        "REAL" => row.try_get_unchecked::<f64, _>(i).map(|x| x.to_string()),
        "TEXT" => row.try_get_unchecked::<String, _>(i),
        _ => match row.try_get_unchecked::<Vec<u8>, _>(i) {
            Ok(bytes) => match Uuid::from_slice(&bytes) {
                Ok(uuid) => Ok(uuid.to_string()),
                Err(_) => {
                    let column = table.columns.get(i).map_or("?", |(name, _)| name);
                    return Err(format!(
                        "the table {}'s column {column} holds {} bytes where a uuid (16) \
                         was expected",
                        table.name,
                        bytes.len()
                    ));
                }
            },
            Err(e) => Err(e),
        },
    };
    text.map(Some).map_err(sqlite_error)
}

fn sqlite_error(error: sqlx::Error) -> CopyError {
    format!("the SQLite database: {error}")
}

fn pg_error(error: impl std::fmt::Display) -> CopyError {
    format!("PostgreSQL: {error}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every table and column of the SQLite schema (as migrated) is in
    /// [`TABLES`], in its order: a migration that adds one fails here until
    /// the copy takes it.
    #[tokio::test]
    async fn the_tables_copied_are_every_table_of_the_sqlite_schema() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("schema.db"))
            .create_if_missing(true);
        let mut db = SqliteConnection::connect_with(&options).await.unwrap();
        sqlite::migrate(&mut db).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        let mut copied: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        copied.sort_unstable();
        assert_eq!(tables, copied);
        for table in TABLES {
            let sql = format!("SELECT name FROM pragma_table_info('{}')", table.name);
            let columns: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
                .fetch_all(&mut db)
                .await
                .unwrap();
            let ours: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            assert_eq!(columns, ours, "{}", table.name);
        }
    }
}
