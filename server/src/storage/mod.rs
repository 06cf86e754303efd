//! Storage: the durable state behind the API, behind one backend-agnostic
//! trait. SQLite ([`sqlite`]) is the default; PostgreSQL ([`postgres`], for
//! several instances on one database) implements the same trait and passes
//! the same test suite (`server/tests/storage.rs`). What both run alike is
//! written once: the SQL of accounts, tokens, secrets and API keys
//! ([`credentials`]) and of experiments ([`experiments`]), run through
//! [`sql::Statement`] (the one place uuids differ), and the row readers with
//! each table's columns ([`rows`]).
//!
//! Storage holds data and enforces durability; it applies no API rule. The
//! rules (validation, read forms, access) stay in `myna-core` and the routes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use myna_core::timestamp::chart_hour;
use myna_core::webhook::{Event, Observation};
use myna_core::{EventType, Experiment, Problem, RecordBatch, Visibility};
use uuid::Uuid;

mod credentials;
mod experiments;
pub mod postgres;
pub mod rows;
mod served;
pub mod sql;
pub mod sqlite;
mod webhooks;

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

/// An account: owns experiments and API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its identity (the `accountId` of its experiments).
    pub id: Uuid,
    /// Its login, stored lower-case.
    pub email: String,
    /// The argon2id PHC string of its password.
    pub password_hash: String,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
}

/// The SHA-256 of a login token: what storage keeps instead of the token,
/// which only ever is in its holder's hands (a copy of the database yields
/// no live session).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Lower-case hex, as stored.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads the stored hex form back.
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(bytes))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", self.hex())
    }
}

/// What a login token opens: the API or the dashboard. Neither kind is
/// accepted as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `Authorization: Bearer <token>` (from `POST /v2/user/login`).
    Api,
    /// The dashboard's session cookie.
    Dashboard,
}

impl TokenKind {
    /// The stored form (`api`, `dashboard`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Dashboard => "dashboard",
        }
    }

    /// Reads the stored form back.
    pub fn parse(text: &str) -> Option<TokenKind> {
        match text {
            "api" => Some(TokenKind::Api),
            "dashboard" => Some(TokenKind::Dashboard),
            _ => None,
        }
    }
}

/// A login token as stored: its hash, never the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The SHA-256 of the token.
    pub hash: TokenHash,
    /// What it opens.
    pub kind: TokenKind,
    /// Whose it is.
    pub account_id: Uuid,
    /// When it stops working unless used again, epoch milliseconds.
    pub expires_ms: i64,
}

/// An API key (`Authorization: ApiKey <uuid>` or `?apikey=`): public by design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key itself.
    pub uuid: Uuid,
    /// Whose it is.
    pub account_id: Uuid,
    /// A label chosen by the owner.
    pub name: Option<String>,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
}

/// A webhook: where an account's changes of decision are posted. Its
/// secret is derived from the server secret and its uuid, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its identity (and what its secret is derived from).
    pub uuid: Uuid,
    /// Whose it is.
    pub account_id: Uuid,
    /// Where deliveries are posted (checked by core's `check_url`).
    pub url: String,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
}

/// A new observation of an experiment to store, with the events it makes
/// (see [`Storage::observe`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice<'a> {
    /// The experiment (its stored uuid).
    pub experiment: Uuid,
    /// Its owner, whose webhooks get the events.
    pub account_id: Uuid,
    /// The observation stored now, as read (`None`: none is stored).
    pub previous: Option<&'a Observation>,
    /// The observation to store.
    pub observation: &'a Observation,
    /// Each event with the exact body its deliveries post.
    pub events: Vec<(Event, String)>,
    /// Now, epoch milliseconds: the deliveries are due at once.
    pub now_ms: i64,
}

/// What was last notified of an experiment (see [`Storage::observations`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The experiment (its stored uuid).
    pub experiment: Uuid,
    /// Its observation last stored.
    pub observation: Observation,
    /// When a change of it was last told (events stored), if ever: the
    /// hold that follows is kept here, for restarts and other instances.
    pub told_ms: Option<i64>,
}

/// One event for one webhook, and how its delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its identity (increasing).
    pub id: i64,
    /// The webhook.
    pub webhook: Uuid,
    /// The webhook's URL.
    pub url: String,
    /// The experiment the event is about.
    pub experiment: Uuid,
    /// The event's wire name.
    pub event: String,
    /// The exact body posted (and signed).
    pub body: String,
    /// When the event was seen, epoch milliseconds.
    pub created_ms: i64,
    /// Attempts begun so far.
    pub attempts: u64,
    /// When it is due (or when the attempt that claimed it ends); `None`
    /// once delivered or given up.
    pub next_ms: Option<i64>,
    /// When the last attempt began.
    pub last_attempt_ms: Option<i64>,
    /// The HTTP status the last attempt got, if it got one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (no answer, or not a 2xx).
    pub last_error: Option<String>,
    /// When it was delivered (a 2xx answer).
    pub delivered_ms: Option<i64>,
}

/// How one attempt of a delivery came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub id: i64,
    /// When the attempt began.
    pub at_ms: i64,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Why it failed; `None` when delivered.
    pub error: Option<String>,
    /// When it was delivered (`None`: not delivered).
    pub delivered_ms: Option<i64>,
    /// When to try again (`None`: delivered or given up).
    pub next_ms: Option<i64>,
}

/// One attempt of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    /// The delivery.
    pub delivery: i64,
    /// When it began.
    pub at_ms: i64,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One validated record batch to commit, with the experiment it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The experiment.
    pub experiment: Uuid,
    /// The validated batch (its `batch` id makes it exactly-once).
    pub batch: RecordBatch,
}

/// Views and reward of one variant in one hour (the dashboard's chart data).
#[derive(Debug, Clone, PartialEq)]
pub struct HourTotals {
    /// The variant id.
    pub variant: String,
    /// Start of the hour, epoch milliseconds.
    pub hour_ms: i64,
    /// Views recorded with a timestamp in this hour.
    pub views: u64,
    /// Reward recorded with a timestamp in this hour.
    pub total_reward: f64,
}

/// The weights served for one variant in one hour: the sum of the weight
/// each answer gave it, and how many answers (their average is what the
/// variant was served at).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The experiment (its stored uuid).
    pub experiment: Uuid,
    /// The variant id.
    pub variant: String,
    /// Start of the hour, epoch milliseconds.
    pub hour_ms: i64,
    /// The sum of the variant's weight over the answers.
    pub weight_sum: f64,
    /// How many answers.
    pub answers: u64,
}

/// A stored experiment that cannot be read back (corrupt, or written by a
/// version with laxer rules): what could be read of it, and why not the rest.
/// The server serves it as a 500 problem until it is fixed or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its uuid column as stored (normally the uuid, lower-case hyphenated).
    pub uuid: String,
    /// The owner, if that column could be read.
    pub account_id: Option<Uuid>,
    /// Its visibility, if that column could be read.
    pub visibility: Option<Visibility>,
    /// Why it cannot be read, for the log (never for an answer).
    pub reason: String,
}

/// Every stored experiment: those read, and those that could not be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Experiments {
    /// Read, with their variants (in creation order) and counts.
    pub readable: Vec<Experiment>,
    /// Present but unreadable; one bad experiment never hides the others.
    pub unreadable: Vec<Unreadable>,
}

impl From<Vec<Experiment>> for Experiments {
    fn from(readable: Vec<Experiment>) -> Self {
        Experiments {
            readable,
            unreadable: Vec::new(),
        }
    }
}

/// Where a shared database's history of changes stands, as of one
/// [`Storage::changes`] answer: the next call with it answers what changed
/// since (PostgreSQL: the oldest transaction running when it was read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeMark(pub i64);

/// How long a shared database remembers a deletion for [`Storage::changes`]:
/// a mark older than half of it is not used (everything is read again).
pub const DELETIONS_KEPT: std::time::Duration = std::time::Duration::from_secs(3600);

/// What changed in a shared database since a [`ChangeMark`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Where the next call starts.
    pub mark: Option<ChangeMark>,
    /// Whether `experiments` is every experiment (no mark was given, or it
    /// could not be used): what is not in it is gone.
    pub complete: bool,
    /// The current state of every experiment that changed (possibly of some
    /// that did not).
    pub experiments: Experiments,
    /// Experiments deleted (or asked for and not found).
    pub deleted_experiments: Vec<Uuid>,
    /// API keys deleted.
    pub deleted_keys: Vec<Uuid>,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The row already exists (an account email, an experiment uuid).
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached or written now (I/O, disk full, busy).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    #[error("database failure: {0}")]
    Internal(String),
}

/// How [`Storage::update_experiment_with`] changes the stored definition:
/// the experiment as it will be stored, or the problem refusing the change.
pub type Apply<'a> = &'a (dyn Fn(&Experiment) -> Result<Experiment, Problem> + Send + Sync);

/// What [`Storage::create_experiment_checked`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Stored: the experiment as it is now (its uuid, alias and id decided).
    Done(Experiment),
    /// This id is another published experiment's of the account.
    IdTaken(String),
    /// The account has an experiment (or alias) with this uuid.
    UuidTaken,
    /// The account has the most experiments it may have.
    Full,
}

/// What [`Storage::update_experiment_with`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Updated {
    /// Stored: the experiment as it is now.
    Done(Experiment),
    /// The experiment is not stored (any more).
    Missing,
    /// It is stored but cannot be read: nothing was written.
    Unreadable,
    /// The change was refused as it applied to the stored definition.
    Refused(Problem),
    /// This id is another published experiment's of the account.
    IdTaken(String),
}

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
    /// Replaces an account's password hash; false if there is no such account.
    fn set_password<'a>(&'a self, account_id: Uuid, password_hash: &'a str) -> Fut<'a, bool>;

    /// Stores a new login token (by its hash).
    fn create_token(&self, token: Token) -> Fut<'_, ()>;
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
    /// The uuid of the account's experiment known by `alias` (a uuid
    /// another account's experiment has: its pages and owner use the alias).
    fn aliased(&self, account_id: Uuid, alias: Uuid) -> Fut<'_, Option<Uuid>>;
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

/// What a group of counted batches adds to the counters, aggregated so that a
/// commit writes each variant and each variant-hour once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deltas {
    /// `(experiment, variant, views, reward)`, in first-seen order.
    pub variants: Vec<(Uuid, String, u64, f64)>,
    /// `(experiment, variant, hour_ms, views, reward)`, in first-seen order.
    pub hours: Vec<(Uuid, String, i64, u64, f64)>,
}

impl Deltas {
    /// Sums the events of `batches`, committed at `now_ms`, per variant and
    /// per variant-hour (core's `chart_hour`: the hour of each event's
    /// timestamp, or the arrival hour for one older than a week).
    pub fn of<'a>(batches: impl IntoIterator<Item = &'a Recording>, now_ms: i64) -> Deltas {
        // Per batch first, by linear search (a batch names few variants and
        // hours), then per group through maps: hashing per event would cost
        // more than the search.
        let mut out = Deltas::default();
        let mut variant_at: HashMap<(Uuid, &str), usize> = HashMap::new();
        let mut hour_at: HashMap<(Uuid, &str, i64), usize> = HashMap::new();
        let mut local: Vec<(&str, i64, u64, f64)> = Vec::new();
        for recording in batches {
            let uuid = recording.experiment;
            local.clear();
            for event in &recording.batch.events {
                let (views, reward) = match event.typename {
                    EventType::View => (1, 0.0),
                    EventType::Reward => (0, event.reward()),
                };
                let variant = event.variant.as_str();
                let hour = chart_hour(event.timestamp, now_ms);
                match local
                    .iter_mut()
                    .find(|(v, h, _, _)| *h == hour && *v == variant)
                {
                    Some(entry) => {
                        entry.2 += views;
                        entry.3 += reward;
                    }
                    None => local.push((variant, hour, views, reward)),
                }
            }
            for &(variant, hour, views, reward) in &local {
                let i = *variant_at.entry((uuid, variant)).or_insert_with(|| {
                    out.variants.push((uuid, variant.to_owned(), 0, 0.0));
                    out.variants.len() - 1
                });
                out.variants[i].2 += views;
                out.variants[i].3 += reward;
                let j = *hour_at.entry((uuid, variant, hour)).or_insert_with(|| {
                    out.hours.push((uuid, variant.to_owned(), hour, 0, 0.0));
                    out.hours.len() - 1
                });
                out.hours[j].3 += views;
                out.hours[j].4 += reward;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_core::Event;

    fn event(typename: EventType, variant: &str, amount: Option<f64>, timestamp: i64) -> Event {
        Event {
            typename,
            variant: variant.into(),
            amount,
            timestamp,
        }
    }

    #[test]
    fn deltas_sum_per_variant_and_hour() {
        let a = Uuid::from_u128(1);
        let hour = 3_600_000;
        let recordings = [
            Recording {
                experiment: a,
                batch: RecordBatch {
                    batch: None,
                    events: vec![
                        event(EventType::View, "v1", None, 10),
                        event(EventType::Reward, "v1", Some(0.5), hour + 1),
                        event(EventType::View, "v2", None, 20),
                    ],
                },
            },
            Recording {
                experiment: a,
                batch: RecordBatch {
                    batch: None,
                    events: vec![event(EventType::View, "v1", None, hour + 2)],
                },
            },
        ];
        let deltas = Deltas::of(&recordings, 10 * hour);
        assert_eq!(
            deltas.variants,
            vec![(a, "v1".into(), 2, 0.5), (a, "v2".into(), 1, 0.0)]
        );
        assert_eq!(
            deltas.hours,
            vec![
                (a, "v1".into(), 0, 1, 0.0),
                (a, "v1".into(), hour, 1, 0.5),
                (a, "v2".into(), 0, 1, 0.0),
            ]
        );
    }
}
