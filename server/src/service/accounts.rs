//! Accounts: creating one (CLI, first start), the first-start bootstrap,
//! logging in and out (`/v2/user/login`, `/v2/user/logout`), and deleting
//! one with everything it holds (CLI).

use myna_core::account::{check_new_account, normalize_email};
use myna_core::{Code, Problem};
use uuid::Uuid;

use crate::auth::{Checker, IssuedToken, Passwords, issue_token, token_hash};
use crate::state::AppState;
use crate::storage::{Account, Storage};

/// The first account's email when `MYNA_ADMIN_EMAIL` is unset.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// Creates an account; 400 with every problem (paths `email`, `password`)
/// when the email or password breaks core's rules (a password of at least 8
/// characters, not the email, not one repeated character, not a common
/// one); 409 `conflict` if the email is taken.
pub async fn create_account(
    storage: &dyn Storage,
    passwords: &Passwords,
    email: &str,
    password: &str,
    now_ms: i64,
) -> Result<Account, Problem> {
    let email = normalize_email(email);
    check_new_account(&email, password)?;
    let account = Account {
        id: Uuid::new_v4(),
        email,
        password_hash: passwords.hash(password).await?,
        created_ms: now_ms,
    };
    storage.create_account(&account).await?;
    Ok(account)
}

/// Sets the password of the account `email` (a lost one: `myna-server
/// account password`) and ends its sessions and API tokens everywhere;
/// 400 when the password breaks core's rules (path `password`), 404 when
/// there is no such account.
pub async fn set_password(
    storage: &dyn Storage,
    passwords: &Passwords,
    email: &str,
    password: &str,
) -> Result<Account, Problem> {
    let email = normalize_email(email);
    check_new_account(&email, password)?;
    let missing = || Problem::new(Code::NotFound, format!("There is no account {email}."));
    let mut account = storage
        .account_by_email(&email)
        .await?
        .ok_or_else(missing)?;
    account.password_hash = passwords.hash(password).await?;
    // Gone meanwhile (`account delete`).
    if !storage
        .set_password(account.id, &account.password_hash)
        .await?
    {
        return Err(missing());
    }
    storage.delete_account_tokens(account.id).await?;
    Ok(account)
}

/// What [`delete_account`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Experiments, with their counts, hourly totals and batch ids.
    pub experiments: usize,
}

/// How many times [`delete_account`] deletes experiments made while it
/// runs (another server on the same PostgreSQL, still serving the account
/// for the second its cache may lag) before it gives up.
const DELETE_ROUNDS: usize = 5;

/// Deletes the account `email` with everything it holds: its experiments
/// (counts, hourly totals, batch ids, served weights), API keys, webhooks
/// with their deliveries, dashboard sessions and tokens. 404 when there is
/// no such account. Not one transaction: the experiments go one by one,
/// then the account with the rest, so an interrupted run leaves an account
/// with fewer experiments that a second run finishes.
pub async fn delete_account(storage: &dyn Storage, email: &str) -> Result<Deleted, Problem> {
    let email = normalize_email(email);
    let missing = || Problem::new(Code::NotFound, format!("There is no account {email}."));
    let account = storage
        .account_by_email(&email)
        .await?
        .ok_or_else(missing)?;
    let mut deleted = Deleted { experiments: 0 };
    for _ in 0..DELETE_ROUNDS {
        for uuid in storage.account_experiments(account.id).await? {
            if storage.delete_experiment(uuid).await? {
                deleted.experiments += 1;
            }
        }
        if storage.delete_account(account.id).await? {
            return Ok(deleted);
        }
        if storage.account_by_email(&email).await?.is_none() {
            return Err(missing());
        }
    }
    Err(Problem::new(
        Code::Conflict,
        format!("{email} kept getting new experiments while they were deleted: run again."),
    ))
}

/// A password for an account when none is given (the first start,
/// `account create`, `account password`): 32 hex digits, 122 random bits.
pub fn generated_password() -> String {
    Uuid::new_v4().simple().to_string()
}

/// What the first start created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAccount {
    /// Its email.
    pub email: String,
    /// Its password when it was generated (to print once); `None` when it
    /// came from the environment.
    pub generated_password: Option<String>,
}

/// On an empty database, creates the first account from `email` and
/// `password` (`MYNA_ADMIN_EMAIL`, `MYNA_ADMIN_PASSWORD`), generating what is
/// missing; `None` when accounts already exist (or another instance on the
/// same database has just created the first).
pub async fn bootstrap(
    storage: &dyn Storage,
    passwords: &Passwords,
    email: Option<String>,
    password: Option<String>,
    now_ms: i64,
) -> Result<Option<FirstAccount>, Problem> {
    if storage.account_count().await? > 0 {
        return Ok(None);
    }
    let email = email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_owned());
    let (password, generated_password) = match password.filter(|p| !p.is_empty()) {
        Some(password) => (password, None),
        None => {
            let password = generated_password();
            (password.clone(), Some(password))
        }
    };
    let account = match create_account(storage, passwords, &email, &password, now_ms).await {
        Ok(account) => account,
        // Several instances started at once on one empty database: another
        // created the first account a moment ago.
        Err(problem) if problem.code() == Code::Conflict => return Ok(None),
        Err(problem) => return Err(problem),
    };
    Ok(Some(FirstAccount {
        email: account.email,
        generated_password,
    }))
}

/// Logs in with an email (normalized) and password, checked by `checker`
/// (the limits on password checks, then argon2): a new API token.
pub async fn login(
    checker: &Checker<'_>,
    email: &str,
    password: &str,
) -> Result<IssuedToken, Problem> {
    let account = checker.password(email, password).await?;
    issue_token(checker.storage, account, checker.now_ms).await
}

/// Logs out `account`: ends the Bearer token the call came with, or, for
/// other credentials (Basic), every API token of the account.
pub async fn logout(state: &AppState, account: Uuid, bearer: Option<Uuid>) -> Result<(), Problem> {
    match bearer {
        Some(token) => {
            let hash = token_hash(&token.to_string());
            state.storage.delete_token(hash).await?;
        }
        None => {
            state.storage.delete_account_tokens(account).await?;
        }
    }
    Ok(())
}
