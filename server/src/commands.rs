//! The CLI's commands other than `serve`: accounts (`account create`,
//! `account password`, `account list`, `account delete`), API keys
//! (`apikey create`, `apikey list`), `backup`, each on the database the
//! server uses, and `copy` (from SQLite into a new PostgreSQL database).

use std::io::Write;
use std::str::FromStr;

use myna_core::account::normalize_email;
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

use crate::auth::Passwords;
use crate::clock::Clock;
use crate::config::Database;
use crate::serve::{Failure, open, stdout_discarded};

use crate::service::accounts::{create_account, delete_account, generated_password, set_password};
use crate::storage::{ApiKey, Storage};
use crate::storage::{copy, sqlite};

/// The refusal of a password to generate when standard output is discarded:
/// it would be set, and lost.
const DISCARDED: &str = "standard output is discarded (closed, or /dev/null): a generated \
     password would be lost; give --password (or MYNA_PASSWORD), or let standard output \
     reach a terminal or a file";

/// The password given, or one generated (then `true`), which is refused
/// while standard output is discarded: it would be set, and lost.
fn given_or_generated(password: Option<String>) -> Result<(String, bool), Failure> {
    match password {
        Some(password) => Ok((password, false)),
        None if stdout_discarded() => Err(DISCARDED.to_owned()),
        None => Ok((generated_password(), true)),
    }
}

/// Prints `line` on standard output; a failure (a full disk, a closed
/// pipe) is an error saying what was done all the same (`done`), rather
/// than a panic.
fn say(line: &str, done: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|error| format!("{done}, but this could not be printed ({error})"))
}

/// `myna-server account create`.
pub async fn account_create(
    database: &str,
    email: &str,
    password: Option<String>,
) -> Result<(), Failure> {
    let storage = open(database).await?;
    let (password, generated) = given_or_generated(password)?;
    let account = create_account(
        storage.as_ref(),
        &Passwords::new(),
        email,
        &password,
        Clock::system().now_ms(),
    )
    .await
    .map_err(|p| format!("cannot create the account: {p}"))?;
    let done = format!("created account {}", account.email);
    if generated {
        let lost = format!("{done} (its password is lost: set one with account password)");
        say(
            &format!("Created account {} with password {password}", account.email),
            &lost,
        )
    } else {
        say(&format!("Created account {}", account.email), &done)
    }
}

/// `myna-server account password`: sets an account's password (generated
/// and printed when not given) and ends its sessions.
pub async fn account_password(
    database: &str,
    email: &str,
    password: Option<String>,
) -> Result<(), Failure> {
    existing(database)?;
    let storage = open(database).await?;
    let (password, generated) = given_or_generated(password)?;
    let account = set_password(storage.as_ref(), &Passwords::new(), email, &password)
        .await
        .map_err(|p| format!("cannot set the password: {p}"))?;
    let done = format!(
        "set the password of {} and ended its sessions",
        account.email
    );
    if generated {
        let lost = format!("{done} (the password is lost: run again with --password)");
        say(
            &format!(
                "Set the password of {} to {password}; its sessions are ended",
                account.email
            ),
            &lost,
        )
    } else {
        say(
            &format!(
                "Set the password of {}; its sessions are ended",
                account.email
            ),
            &done,
        )
    }
}

/// `myna-server account list`: one account a line: email, when created
/// (UTC), and how many experiments, API keys and webhooks it has.
pub async fn account_list(database: &str) -> Result<(), Failure> {
    existing(database)?;
    let storage = open(database).await?;
    let accounts = storage
        .accounts()
        .await
        .map_err(|e| format!("cannot read accounts: {e}"))?;
    let mut out = std::io::stdout().lock();
    let header = "email\tcreated\texperiments\tapi_keys\twebhooks";
    // A reader that went away (`| head -1`) ends the list, no panic.
    if writeln!(out, "{header}").is_err() {
        return Ok(());
    }
    for a in accounts {
        let created = myna_core::timestamp::format_iso(a.created_ms);
        let line = format!(
            "{}\t{created}\t{}\t{}\t{}",
            a.email, a.experiments, a.api_keys, a.webhooks
        );
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

/// `myna-server account delete`: without `yes`, says what would be deleted
/// and deletes nothing. On SQLite it holds the file's server lock while it
/// deletes: the deletion is refused while a server runs on it (that server would go on
/// answering the account's experiments from its memory), and no server
/// starts meanwhile.
pub async fn account_delete(database: &str, email: &str, yes: bool) -> Result<(), Failure> {
    existing(database)?;
    let storage = open(database).await?;
    let email = normalize_email(email);
    let listing = storage
        .accounts()
        .await
        .map_err(|e| format!("cannot read accounts: {e}"))?;
    let Some(account) = listing.into_iter().find(|a| a.email == email) else {
        return Err(format!("there is no account {email}"));
    };
    let holds = format!(
        "{} experiments (with their counts and history), {} API keys, {} webhooks",
        account.experiments, account.api_keys, account.webhooks
    );
    if !yes {
        return Err(format!(
            "would delete account {email} with {holds} and end its sessions: \
             run again with --yes to delete (it cannot be undone: back up first)"
        ));
    }
    let _held = hold_against_servers(
        database,
        "it would go on answering from its memory what this deletes",
    )?;
    let deleted = delete_account(storage.as_ref(), &email)
        .await
        .map_err(|p| format!("cannot delete the account: {p}"))?;
    let what = format!(
        "account {email} with {} experiments, its API keys, webhooks and sessions",
        deleted.experiments
    );
    say(&format!("Deleted {what}"), &format!("deleted {what}"))
}

/// For a command that must not run beside a server on an SQLite file: the
/// lock a server holds on it (see `serve::hold_sqlite`), held until the
/// returned handle drops; refused while a server holds it, saying `why`.
/// PostgreSQL (servers share it by design): nothing to hold.
fn hold_against_servers(database: &str, why: &str) -> Result<Option<std::fs::File>, Failure> {
    let Some(path) = Database::parse(database).sqlite_file() else {
        return Ok(None);
    };
    let file = sqlite::open_private(&path)
        .map_err(|e| format!("cannot open the database {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "a myna-server is serving {} (or a copy or account delete runs on it): stop it \
             first ({why}), then run this again",
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

async fn account_id(storage: &dyn Storage, email: &str) -> Result<Uuid, Failure> {
    let email = normalize_email(email);
    match storage.account_by_email(&email).await {
        Ok(Some(account)) => Ok(account.id),
        Ok(None) => Err(format!("there is no account {email}")),
        Err(e) => Err(format!("cannot read accounts: {e}")),
    }
}

/// Refuses a SQLite database file that does not exist: opening it would
/// leave a new empty database behind (a command run in the wrong directory).
fn existing(database: &str) -> Result<(), Failure> {
    match Database::parse(database).sqlite_file() {
        Some(path) if !path.exists() => Err(format!("there is no database {}", path.display())),
        _ => Ok(()),
    }
}

/// `myna-server apikey create`: prints the new key.
pub async fn apikey_create(
    database: &str,
    email: &str,
    name: Option<String>,
) -> Result<(), Failure> {
    existing(database)?;
    let storage = open(database).await?;
    let key = ApiKey {
        uuid: Uuid::new_v4(),
        account_id: account_id(storage.as_ref(), email).await?,
        name,
        created_ms: Clock::system().now_ms(),
    };
    let max = myna_core::limits::MAX_API_KEYS;
    let created = storage
        .create_api_key(&key, max)
        .await
        .map_err(|e| format!("cannot create the API key: {e}"))?;
    if !created {
        return Err(format!(
            "cannot create the API key: the account has {max} already (revoke one first)"
        ));
    }
    println!("{}", key.uuid);
    Ok(())
}

/// `myna-server apikey list`: one key a line, with its name.
pub async fn apikey_list(database: &str, email: &str) -> Result<(), Failure> {
    existing(database)?;
    let storage = open(database).await?;
    let account = account_id(storage.as_ref(), email).await?;
    let keys = storage
        .api_keys(account)
        .await
        .map_err(|e| format!("cannot read API keys: {e}"))?;
    let mut out = std::io::stdout().lock();
    for key in keys {
        // A reader that went away (`| head -1`) ends the list, no panic.
        if writeln!(out, "{}\t{}", key.uuid, key.name.unwrap_or_default()).is_err() {
            break;
        }
    }
    Ok(())
}

/// `myna-server backup FILE`: a consistent copy of the SQLite database in
/// `file`, safe while a server runs on it and records. PostgreSQL has its
/// own tools (`pg_dump`).
pub async fn backup(database: &str, file: &std::path::Path) -> Result<(), Failure> {
    if file.exists() {
        return Err(format!("{} exists: choose a new file", file.display()));
    }
    // Opening would create a missing file: an empty copy is no backup.
    existing(database)?;
    // Opened only to copy it, as it is: no migration (a copy before an
    // upgrade stays the older server's, and that server goes on).
    let source = sqlite_source(
        database,
        "backup copies SQLite databases; for PostgreSQL use pg_dump (see the README)",
    )?;
    sqlite::backup(source, file)
        .await
        .map_err(|e| format!("cannot back up {database} into {}: {e}", file.display()))?;
    println!("Backed up {database} into {}", file.display());
    Ok(())
}

/// The connection options of the SQLite database `database` names, for a
/// command that reads the file as it is; `postgres` says why a PostgreSQL
/// URL is refused.
fn sqlite_source(database: &str, postgres: &str) -> Result<SqliteConnectOptions, Failure> {
    match Database::parse(database) {
        Database::SqliteFile(path) => Ok(SqliteConnectOptions::new().filename(path)),
        Database::SqliteUrl(url) => SqliteConnectOptions::from_str(&url)
            .map_err(|e| format!("cannot open the database {database}: {e}")),
        Database::Postgres(_) => Err(postgres.to_owned()),
    }
}

/// `myna-server copy --to URL`: every row of the SQLite database into a
/// new, empty PostgreSQL database (moving to several servers), all or
/// nothing; refused while a server runs on the file, and no server starts
/// on it meanwhile (events recorded after the copy would stay behind).
pub async fn copy(database: &str, to: &str) -> Result<(), Failure> {
    existing(database)?;
    let source = sqlite_source(
        database,
        "copy reads an SQLite database (--database); to copy a PostgreSQL database use \
         pg_dump and pg_restore (see the README)",
    )?;
    let Database::Postgres(url) = Database::parse(to) else {
        return Err(format!(
            "--to is the PostgreSQL database to copy into, a postgres:// URL (not {to}); \
             to copy an SQLite database into a file, use backup"
        ));
    };
    let _held = hold_against_servers(
        database,
        "what it records after the copy would not be in PostgreSQL",
    )?;
    let copied = copy::sqlite_to_postgres(source, &url)
        .await
        .map_err(|e| format!("nothing was copied: {e}"))?;
    let rows: Vec<String> = copied
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    let what = format!("{database} into PostgreSQL (rows: {})", rows.join(", "));
    say(
        &format!("Copied {what}. Start the servers on PostgreSQL now."),
        &format!("copied {what}"),
    )
}
