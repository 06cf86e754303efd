//! The commit writer: the one task that changes experiments, so the database
//! and the cache change in the same order.
//!
//! Record batches are committed in groups: when the writer takes a batch it
//! also takes every batch already waiting (up to [`MAX_GROUP_BATCHES`] or
//! [`MAX_GROUP_EVENTS`]) and commits them all in ONE transaction, with one
//! fsync; batches that arrive meanwhile form the next group. Each waiter is
//! answered only after the commit, so an answer means the events are durable.
//! Definition changes (create, update, delete, reset) go through the same
//! queue, one at a time.
//!
//! Where the backend has a blocking group commit (SQLite), the writer runs
//! on a thread of its own and calls it directly, so a group costs one
//! wake-up of the writer and one of each waiting request; otherwise
//! (PostgreSQL) it is a task awaiting `Storage::record`.
//!
//! When other instances share the database (PostgreSQL), the writer also
//! takes refresh jobs (the cache synced with the database, see
//! `state.rs`), and reads an experiment afresh from the database before
//! changing its definition, so a change made elsewhere moments ago is not
//! undone.

use std::sync::Arc;
use std::time::Duration;

use myna_core::{Access, Experiment, Problem};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::storage::{Recording, Storage, StorageError, Unreadable};

mod health;
mod writer;

pub use health::{REACHABLE_WITHIN, WRITE_FAILURE_HOLD_MS, WriteHealth};

/// Most batches one group commit takes.
pub const MAX_GROUP_BATCHES: usize = 4096;
/// Most events one group commit takes (it may exceed this by one batch).
pub const MAX_GROUP_EVENTS: usize = 200_000;
/// Jobs waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE: usize = 16_384;

/// What a [`Precondition`] runs: the experiment's problem, if any.
pub type Check = dyn Fn(&Experiment) -> Result<(), Problem> + Send + Sync;

/// A check an update makes of the experiment it applies to, first.
#[derive(Clone)]
pub struct Precondition(pub Arc<Check>);

impl std::fmt::Debug for Precondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Precondition")
    }
}

/// A change to an experiment's definition or counts (other than recording).
#[derive(Debug)]
pub enum Change {
    /// Store a new experiment.
    Create {
        /// The experiment.
        experiment: Experiment,
        /// Whether its creator chose its id (refused if another published
        /// experiment of the account has it); else the id is the default
        /// from its name, made unique among the account's experiments.
        id_chosen: bool,
    },
    /// Apply an update body to the experiment, if `account` owns it.
    Update {
        /// The experiment.
        uuid: Uuid,
        /// Who asks.
        account: Uuid,
        /// The update body (`myna_core::experiment::apply_update` parses it).
        body: Vec<u8>,
        /// A check of the definition the body applies to, as stored (on a
        /// shared database, inside the update's transaction): its problem
        /// refuses the update (the dashboard's form: not changed since it
        /// was loaded).
        unless: Option<Precondition>,
    },
    /// Delete the experiment, if `account` owns it.
    Delete {
        /// The experiment.
        uuid: Uuid,
        /// Who asks.
        account: Uuid,
    },
    /// Zero the experiment's counts, if `account` owns it.
    Reset {
        /// The experiment.
        uuid: Uuid,
        /// Who asks.
        account: Uuid,
    },
    /// Take the experiment as stored into the cache, on a database other
    /// instances share (one another instance created a moment ago, that
    /// the refresh has not brought yet); answers it as cached.
    Fetch {
        /// The experiment (or its alias: the caller's account's experiment
        /// known by it is taken too).
        uuid: Uuid,
        /// The caller's account.
        account: Uuid,
    },
}

type Reply<T> = oneshot::Sender<Result<T, Problem>>;

enum Job {
    Record(Recording, Access, Reply<bool>),
    Change(Change, Reply<Option<Arc<Experiment>>>),
    Refresh(oneshot::Sender<Result<KeysGone, StorageError>>),
}

/// The API keys and accounts a refresh found deleted (by another process):
/// the key cache forgets those keys, the password guard those accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysGone {
    /// Any key or account may have been (the refresh read everything).
    All,
    /// These API keys and these accounts.
    These {
        /// API keys deleted.
        keys: Vec<Uuid>,
        /// Accounts deleted.
        accounts: Vec<Uuid>,
    },
}

/// The handle through which requests reach the writer.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
    writes: Arc<WriteHealth>,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Record(r, _, _) => write!(f, "Record({})", r.experiment),
            Job::Change(c, _) => write!(f, "Change({c:?})"),
            Job::Refresh(_) => f.write_str("Refresh"),
        }
    }
}

/// The most a record call waits for its commit, queue included (README:
/// "a whole call at most 5 s").
pub const RECORD_DEADLINE: Duration = Duration::from_secs(5);

/// The answer of a record call past [`RECORD_DEADLINE`].
fn not_confirmed() -> Problem {
    Problem::new(
        myna_core::Code::Unavailable,
        "The database did not confirm the events within 5 s; retry with the same batch id \
         (it is counted once).",
    )
}

fn gone() -> Problem {
    Problem::new(
        myna_core::Code::Unavailable,
        "The server is shutting down; retry.",
    )
}

impl Committer {
    /// Starts the writer; it ends once every `Committer` clone is dropped and
    /// the queue is drained. Fails when its thread cannot start.
    pub fn start(
        storage: Arc<dyn Storage>,
        cache: Arc<Cache>,
        clock: Clock,
        metrics: Arc<Metrics>,
        max_experiments: usize,
    ) -> Result<(Committer, JoinHandle<()>), StorageError> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let writes = WriteHealth::new(storage.clone(), metrics.storage_errors.clone());
        let committer = Committer {
            queue,
            writes: Arc::new(writes),
            clock: clock.clone(),
            metrics: metrics.clone(),
        };
        let writes = committer.writes.clone();
        let handle = writer::start(
            storage,
            writes,
            cache,
            clock,
            metrics,
            max_experiments,
            jobs,
        )?;
        Ok((committer, handle))
    }

    /// Records a validated batch durably; answers whether it was counted
    /// (false: its batch id was already recorded for this experiment).
    /// A call waits at most [`RECORD_DEADLINE`] in all, however long the
    /// commits before its own take: then it answers 503, and its batch is
    /// not committed unless the writer had taken it already (a retry with
    /// the same batch id counts once either way). `access`: what the
    /// caller may see of the experiment; as the writer takes the batch, one
    /// it may no longer see (an API key's, of an experiment set to draft
    /// since) is refused, 404, and not stored.
    pub async fn record(&self, recording: Recording, access: Access) -> Result<bool, Problem> {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(RECORD_DEADLINE, async {
            self.enqueue(Job::Record(recording, access, reply))
                .await
                .map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        });
        waited.await.unwrap_or_else(|_| Err(not_confirmed()))
    }

    /// Applies a change; answers the experiment as it is afterwards (`None`
    /// after a delete).
    pub async fn change(&self, change: Change) -> Result<Option<Arc<Experiment>>, Problem> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Change(change, reply))
            .await
            .map_err(|_| gone())?;
        let result = answer.await.map_err(|_| gone())?;
        self.writes.observe(&result, self.clock.now_ms());
        result
    }

    /// Puts a job in the writer's queue (waiting while it is full),
    /// counted in the queue depth until the writer takes it.
    async fn enqueue(&self, job: Job) -> Result<(), ()> {
        self.metrics.queue_depth.inc();
        let sent = self.queue.send(job).await.map_err(|_| ());
        if sent.is_err() {
            self.metrics.queue_depth.dec();
        }
        sent
    }

    /// Whether commits have been failing (see [`WriteHealth`]).
    pub fn write_health(&self) -> &WriteHealth {
        &self.writes
    }

    /// Syncs the cache with the database (definitions and counts of what
    /// changed since the previous refresh; everything the first time), in
    /// turn with the commits; for databases other instances share. Answers
    /// the API keys deleted meanwhile.
    pub async fn refresh(&self) -> Result<KeysGone, StorageError> {
        let unavailable = || StorageError::Unavailable("the commit writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.enqueue(Job::Refresh(reply))
            .await
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }
}

/// Logs an experiment storage cannot read: what is known of it and why.
pub fn log_unreadable(unreadable: &Unreadable) {
    tracing::error!(
        uuid = %unreadable.uuid,
        account = ?unreadable.account_id,
        reason = %unreadable.reason,
        "a stored experiment cannot be read; it answers 500 until it is fixed or deleted"
    );
}
