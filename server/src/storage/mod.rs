//! Storage: the durable state behind the API, behind one backend-agnostic
//! trait. SQLite ([`sqlite`]) is the default; PostgreSQL ([`postgres`], for
//! several instances on one database) implements the same trait and passes
//! the same test suite (`server/tests/storage.rs`). What both run alike is
//! written once: the SQL of accounts, tokens, secrets and API keys
//! ([`credentials`]) and of experiments ([`experiments`]), run through
//! [`sql::Statement`] (the one place uuids differ), and the row readers with
//! each table's columns ([`rows`]). The records the trait takes and gives
//! are in `records.rs`.
//!
//! Storage holds data and enforces durability; it applies no API rule. The
//! rules (validation, read forms, access) stay in `myna-core` and the routes.

use std::future::Future;
use std::pin::Pin;

use myna_core::Experiment;
use uuid::Uuid;

pub mod copy;
mod credentials;
mod experiments;
pub mod postgres;
mod records;
pub mod rows;
mod served;
pub mod sql;
pub mod sqlite;
mod webhooks;

pub use records::*;

/// The future every storage call returns (boxed, so `dyn Storage` works).
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// [`Storage::record`] as a blocking call (`Storage::blocking_recorder`).
pub type BlockingRecorder =
    Box<dyn FnMut(&[Recording], i64) -> Result<Vec<bool>, StorageError> + Send + Sync>;

/// How long batch ids are kept for exactly-once, in milliseconds (8 days:
/// the contract promises at least 7).
pub const BATCH_ID_RETENTION_MS: i64 = 8 * 24 * 3_600_000;

/// The experiment and batch id of the row a health check writes in the
/// batches table (`Storage::ping`). Not a version 4 uuid, the only kind the
/// server and the SDK make: a client would have to choose this very uuid
/// for an experiment and for one of its batches to meet it.
pub const HEALTH_PROBE: Uuid = Uuid::from_u128(0x6d79_6e61_6865_616c_7468_7a00_0000_0000);

/// The storage interface: every backend implements it, and the shared suite
/// in `server/tests/storage.rs` checks each one the same way.
///
/// Every write is durable when its future resolves.
pub trait Storage: Send + Sync + 'static {
    /// Succeeds when the database can be read and written: a real write
    /// (the [`HEALTH_PROBE`] row), committed durably.
    fn ping(&self) -> Fut<'_, ()>;
    /// Closes the connections once their work is done; later calls fail
    /// with [`StorageError::Unavailable`].
    fn close(&self) -> Fut<'_, ()>;
    /// Whether other server processes may change the same database
    /// (PostgreSQL): the cache then refreshes from it (see `state.rs`).
    /// False for a database only this process writes (SQLite).
    fn shared(&self) -> bool {
        false
    }

    /// What changed since `since` (every experiment when `None`), for an
    /// instance keeping its cache equal to a shared database's (see
    /// `state.rs`). A database only this process writes answers everything.
    fn changes(&self, _since: Option<ChangeMark>) -> Fut<'_, Changes> {
        Box::pin(async move {
            Ok(Changes {
                mark: None,
                complete: true,
                experiments: self.experiments().await?,
                ..Changes::default()
            })
        })
    }

    /// Forgets the deletions older than [`DELETIONS_KEPT`] that
    /// [`Storage::changes`] answers; how many. Nothing to do for a database
    /// only this process writes.
    fn prune_deletions(&self) -> Fut<'_, u64> {
        Box::pin(async { Ok(0) })
    }

    /// How many accounts exist (the first start creates one when there are none).
    fn account_count(&self) -> Fut<'_, u64>;
    /// Creates an account; [`StorageError::Conflict`] if the email is taken.
    fn create_account<'a>(&'a self, account: &'a Account) -> Fut<'a, ()>;
    /// The account with this (lower-case) email.
    fn account_by_email<'a>(&'a self, email: &'a str) -> Fut<'a, Option<Account>>;
    /// Every account with what it holds, oldest first.
    fn accounts(&self) -> Fut<'_, Vec<AccountListing>>;
    /// The uuids of an account's experiments.
    fn account_experiments(&self, account_id: Uuid) -> Fut<'_, Vec<Uuid>>;
    /// Deletes an account that has no experiment left (delete those first,
    /// with [`Storage::delete_experiment`]), with its login tokens, API keys
    /// and webhooks; false if there is no such account or it still has
    /// experiments.
    fn delete_account(&self, account_id: Uuid) -> Fut<'_, bool>;
    /// Replaces an account's password hash; false if there is no such account.
    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool>;

    /// Stores a new login token (by its hash); past `max` tokens of its
    /// kind for its account, those that would expire first are deleted.
    fn create_token(&self, token: Token, max: usize) -> Fut<'_, ()>;
    /// The token with this hash, if it exists (expired or not, of either
    /// kind: the caller checks `expires_ms` and `kind`).
    fn token(&self, hash: TokenHash) -> Fut<'_, Option<Token>>;
    /// Moves a token's expiry (sliding expiry on use).
    fn extend_token(&self, hash: TokenHash, expires_ms: i64) -> Fut<'_, ()>;
    /// Deletes one token (logout); false if it did not exist.
    fn delete_token(&self, hash: TokenHash) -> Fut<'_, bool>;
    /// Deletes every token of an account, of both kinds; how many there were.
    fn delete_account_tokens(&self, account_id: Uuid) -> Fut<'_, u64>;
    /// Deletes tokens that expired at or before `now_ms`; how many.
    fn prune_tokens(&self, now_ms: i64) -> Fut<'_, u64>;
    /// The server's secret named `name`, storing `fresh` first when there is
    /// none yet: it survives restarts, and every instance on one database
    /// gets the same (whichever stored it first).
    fn secret<'a>(&'a self, name: &'a str, fresh: &'a str) -> Fut<'a, String>;

    /// Stores a new API key.
    /// Stores a new API key unless its account has `max` already (false).
    fn create_api_key<'a>(&'a self, key: &'a ApiKey, max: usize) -> Fut<'a, bool>;
    /// The API key with this uuid.
    fn api_key(&self, uuid: Uuid) -> Fut<'_, Option<ApiKey>>;
    /// An account's API keys, oldest first.
    fn api_keys(&self, account_id: Uuid) -> Fut<'_, Vec<ApiKey>>;
    /// Deletes an account's API key; false if that account has no such key.
    fn delete_api_key(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool>;

    /// Every experiment with its variants (in creation order) and counts;
    /// an experiment that cannot be read is reported in
    /// [`Experiments::unreadable`], never fails the call.
    fn experiments(&self) -> Fut<'_, Experiments>;
    /// One experiment with its variants and counts (`Err` if it is stored
    /// but cannot be read).
    fn experiment(&self, uuid: Uuid) -> Fut<'_, Option<Result<Experiment, Unreadable>>>;
    /// The experiment the account knows as `uuid`: its own of that uuid,
    /// or the one that has it as its alias (a uuid another account's
    /// experiment has: its pages and owner use the alias). Another
    /// account's uuid is `None`, as an unknown one is, in one query.
    fn known_as(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, Option<Uuid>>;
    /// Stores a new experiment (counts as given, normally zero);
    /// [`StorageError::Conflict`] if the uuid exists.
    fn create_experiment<'a>(&'a self, experiment: &'a Experiment, now_ms: i64) -> Fut<'a, ()>;
    /// Replaces an experiment's definition (name, visibility, settings, the
    /// variant list and order, variant names and settings). Counts of kept
    /// variants are untouched, new variants start at zero, removed variants
    /// lose their counts and hourly totals. False if it does not exist.
    fn update_experiment<'a>(&'a self, experiment: &'a Experiment) -> Fut<'a, bool>;
    /// For a database other instances share: stores a new experiment,
    /// deciding under the lock definition changes take what this process's
    /// memory may not know yet: a uuid the account has (an experiment or an
    /// alias) is [`Created::UuidTaken`], one another account has becomes the
    /// new experiment's alias under a fresh uuid; a chosen id of a published
    /// experiment must be no other published experiment's of the account
    /// ([`Created::IdTaken`]); a default id (`experiment.id` the slug of its
    /// name) gets the first free suffix (`-2`, `-3`…) among all of them;
    /// an account with `max` experiments already is [`Created::Full`].
    /// The default (a backend only this process writes, whose caller
    /// decided all that from its memory) stores it as given.
    fn create_experiment_checked(
        &self,
        experiment: Experiment,
        now_ms: i64,
        id_chosen: bool,
        max: usize,
    ) -> Fut<'_, Created> {
        let _ = (id_chosen, max);
        Box::pin(async move {
            self.create_experiment(&experiment, now_ms).await?;
            Ok(Created::Done(experiment))
        })
    }
    /// For a database other instances share: reads the experiment, applies
    /// `apply` to it and stores the result, all under the lock definition
    /// changes take, so a change another instance made meanwhile is never
    /// undone; a result publishing an id (or a new one) that another
    /// published experiment of its account has is [`Created::IdTaken`].
    /// The default reads, applies and writes without a lock.
    fn update_experiment_with<'a>(&'a self, uuid: Uuid, apply: Apply<'a>) -> Fut<'a, Updated> {
        Box::pin(async move {
            let current = match self.experiment(uuid).await? {
                None => return Ok(Updated::Missing),
                Some(Err(_)) => return Ok(Updated::Unreadable),
                Some(Ok(current)) => current,
            };
            let next = match apply(&current) {
                Ok(next) => next,
                Err(problem) => return Ok(Updated::Refused(problem)),
            };
            Ok(if self.update_experiment(&next).await? {
                Updated::Done(next)
            } else {
                Updated::Missing
            })
        })
    }
    /// Deletes an experiment with everything recorded for it; false if absent.
    fn delete_experiment(&self, uuid: Uuid) -> Fut<'_, bool>;
    /// Sets every variant's counts to zero and forgets its hourly totals
    /// and served weights;
    /// batch ids are kept, so a retried batch is still not counted. False if absent.
    fn reset_experiment(&self, uuid: Uuid) -> Fut<'_, bool>;

    /// Commits record batches in ONE transaction: batch ids, variant counters
    /// and hourly totals. Answers, for each batch, whether it was counted: a
    /// batch whose id is already stored for its experiment (or appears earlier
    /// in `batches`) is not. Batches without an id are always counted. Events
    /// for variants or experiments that no longer exist are dropped.
    fn record<'a>(&'a self, batches: &'a [Recording], now_ms: i64) -> Fut<'a, Vec<bool>>;
    /// The same group commit as a blocking call, where the backend has one
    /// (SQLite): the commit writer then runs on a thread of its own and
    /// calls it directly. `None`: the writer is a task awaiting `record`.
    fn blocking_recorder(&self) -> Option<BlockingRecorder> {
        None
    }
    /// Forgets batch ids stored before `before_ms`; how many.
    fn prune_batches(&self, before_ms: i64) -> Fut<'_, u64>;
    /// An experiment's hourly totals, by variant (creation order) then hour.
    fn hourly(&self, experiment: Uuid) -> Fut<'_, Vec<HourTotals>>;
    /// Adds served weights to the stored sums per experiment, variant and
    /// hour (additive: what several instances add up); rows of experiments
    /// or variants that no longer exist are dropped. Removing a variant
    /// forgets its served weights, as reset and delete forget the
    /// experiment's.
    fn add_served<'a>(&'a self, rows: &'a [Served]) -> Fut<'a, ()>;
    /// An experiment's served weights, by variant (creation order) then hour.
    fn served(&self, experiment: Uuid) -> Fut<'_, Vec<Served>>;

    /// Stores a new webhook unless its account has `max` already, or one
    /// with its URL (false).
    fn create_webhook<'a>(&'a self, webhook: &'a Webhook, max: usize) -> Fut<'a, bool>;
    /// An account's webhooks, oldest first.
    fn webhooks(&self, account_id: Uuid) -> Fut<'_, Vec<Webhook>>;
    /// Deletes an account's webhook with its deliveries; false if that
    /// account has no such webhook.
    fn delete_webhook(&self, account_id: Uuid, uuid: Uuid) -> Fut<'_, bool>;
    /// The accounts that have webhooks.
    fn webhook_accounts(&self) -> Fut<'_, Vec<Uuid>>;
    /// The observation last notified of every experiment observed so far.
    fn observations(&self) -> Fut<'_, Vec<Observed>>;
    /// Stores `notice.observation` if the stored one is still
    /// `notice.previous`, and, in the same transaction, one delivery of each
    /// event for each webhook the account has: false (nothing stored) if
    /// another writer changed it first, so a change is notified at most once.
    /// With events, `notice.now_ms` is stored as the time told.
    fn observe<'a>(&'a self, notice: &'a Notice<'a>) -> Fut<'a, bool>;
    /// Up to `limit` deliveries due at `now_ms`, the longest due first, at
    /// most `per_webhook` of each webhook.
    fn due_deliveries(
        &self,
        now_ms: i64,
        per_webhook: usize,
        limit: usize,
    ) -> Fut<'_, Vec<Delivery>>;
    /// Claims a due delivery for one attempt: counts the attempt and moves
    /// it to `until_ms`, if it is still due at `due_ms` (false: another
    /// sender took it).
    fn claim_delivery(&self, id: i64, due_ms: i64, until_ms: i64, now_ms: i64) -> Fut<'_, bool>;
    /// Records how a claimed attempt came out: the delivery's state and,
    /// in the same transaction, the attempt in its log.
    fn finish_attempt<'a>(&'a self, attempt: &'a Attempt) -> Fut<'a, ()>;
    /// The attempts of an account's latest `limit` deliveries, by delivery
    /// then time.
    fn attempts(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<AttemptLog>>;
    /// An account's latest `limit` deliveries, newest first.
    fn deliveries(&self, account_id: Uuid, limit: usize) -> Fut<'_, Vec<Delivery>>;
    /// Deletes the finished deliveries (delivered or given up) of each
    /// webhook beyond its latest `keep`; how many. Pending ones stay.
    fn prune_deliveries(&self, keep: usize) -> Fut<'_, u64>;
    /// Deletes the oldest pending deliveries of each webhook beyond its
    /// latest `max` pending: each webhook that lost some, and how many.
    fn drop_pending(&self, max: usize) -> Fut<'_, Vec<(Uuid, u64)>>;
}
