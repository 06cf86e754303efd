//! What storage reads and writes, as the server holds it: accounts,
//! tokens, API keys, webhooks and their deliveries, record batches and
//! their counts ([`Deltas`]), hourly totals, served weights, and the
//! outcomes of its calls ([`StorageError`], [`Created`], [`Updated`]).

use std::collections::HashMap;

use myna_core::timestamp::chart_hour;
use myna_core::webhook::{Event, Observation};
use myna_core::{EventType, Experiment, Problem, RecordBatch, Visibility};
use uuid::Uuid;

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

/// An account as `account list` shows it: what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountListing {
    /// Its login.
    pub email: String,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
    /// How many experiments it has.
    pub experiments: u64,
    /// How many API keys.
    pub api_keys: u64,
    /// How many webhooks.
    pub webhooks: u64,
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
    /// Accounts deleted.
    pub deleted_accounts: Vec<Uuid>,
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
