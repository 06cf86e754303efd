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
use std::time::{Duration, Instant};

use myna_core::experiment::{apply_update, id_clashes, id_taken, unique_id};
use myna_core::{Experiment, Problem};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::storage::{
    BlockingRecorder, ChangeMark, Created, DELETIONS_KEPT, Recording, Storage, StorageError,
    Unreadable, Updated,
};

/// Most batches one group commit takes.
pub const MAX_GROUP_BATCHES: usize = 4096;
/// Most events one group commit takes (it may exceed this by one batch).
pub const MAX_GROUP_EVENTS: usize = 200_000;
/// Jobs waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE: usize = 16_384;

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
    Record(Recording, Reply<bool>),
    Change(Change, Reply<Option<Arc<Experiment>>>),
    Refresh(oneshot::Sender<Result<KeysGone, StorageError>>),
}

/// The API keys a refresh found deleted, which the key cache must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysGone {
    /// Any key may have been (the refresh read everything).
    All,
    /// These.
    These(Vec<Uuid>),
}

/// The handle through which requests reach the writer.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
    writes: Arc<WriteHealth>,
    clock: Clock,
    metrics: Arc<Metrics>,
}

/// How long `/healthz` keeps failing after a commit failed for the
/// database's own sake (it took the probe's small write right after, see
/// [`WriteHealth`]), even if its own small write succeeds (a full disk may
/// still take a tiny write but not the next group commit).
pub const WRITE_FAILURE_HOLD_MS: i64 = 30_000;

/// How promptly the database must take the probe's small write after a
/// failed commit for the failure to count as its own (a full disk, I/O
/// errors) rather than the database being away: one that answers only
/// later was frozen or cut off.
pub const REACHABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether commits have been failing for the database's sake (I/O, a full
/// disk, the database away): `/healthz` fails meanwhile, so a load balancer
/// sends the traffic elsewhere. It also logs when commits begin to fail
/// and when they work again (with how many failed meanwhile), rather than
/// each failed call.
///
/// After a failed commit it asks the database for the health probe's small
/// write ([`Storage::ping`], one at a time): if the database does not take
/// it within [`REACHABLE_WITHIN`], it was away (stopped, frozen, cut off)
/// and the failure holds `/healthz` at 503 only while the probe fails, so
/// a short outage ends for the load balancer as soon as the database
/// answers again. If it does take it, the database refuses writes of its
/// own: `/healthz` fails for [`WRITE_FAILURE_HOLD_MS`] after the failure
/// (or until a commit succeeds) whatever the probe says.
#[derive(Debug, Default)]
pub struct WriteHealth {
    state: std::sync::Mutex<WriteState>,
    /// Counts the failed commits (`myna_storage_errors_total`).
    errors: prometheus_client::metrics::counter::Counter,
    /// Where a failed commit is followed by the probe's small write;
    /// `None`: every failure holds.
    storage: Option<Arc<dyn Storage>>,
    /// A small write after a failed commit is under way.
    checking: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct WriteState {
    /// When the last failed commit failed, while no commit has succeeded
    /// since (epoch milliseconds), unless the database was found away then.
    failed_at: Option<i64>,
    /// Since when commits fail, and how many did, until one succeeds.
    outage: Option<(i64, u64)>,
}

impl WriteHealth {
    /// Health that checks, after each failed commit, whether `storage`
    /// takes a small write (see [`WriteHealth`]).
    pub fn new(
        storage: Arc<dyn Storage>,
        errors: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        WriteHealth {
            errors,
            storage: Some(storage),
            ..WriteHealth::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A commit (a group of batches, or a definition change) failed for
    /// the database's sake; the first of a run is logged with its cause.
    /// Then checks whether the database was away.
    fn failed(self: &Arc<Self>, now_ms: i64, cause: &dyn std::fmt::Display) {
        self.errors.inc();
        let mut state = self.state();
        state.failed_at = Some(now_ms);
        match &mut state.outage {
            Some((_, failures)) => *failures += 1,
            None => {
                tracing::warn!(
                    %cause,
                    "commits fail: record calls and changes answer 503 (the SDK retries \
                     them) until one succeeds"
                );
                state.outage = Some((now_ms, 1));
            }
        }
        drop(state);
        self.check_reachable();
    }

    /// Asks the database for the probe's small write (unless one is under
    /// way): not taken within [`REACHABLE_WITHIN`], the database was away,
    /// and the failures so far hold `/healthz` no longer than its probe
    /// fails.
    fn check_reachable(self: &Arc<Self>) {
        let Some(storage) = self.storage.clone() else {
            return;
        };
        if self
            .checking
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let health = Arc::clone(self);
        tokio::spawn(async move {
            let written = tokio::time::timeout(REACHABLE_WITHIN, storage.ping()).await;
            health
                .checking
                .store(false, std::sync::atomic::Ordering::Release);
            if !matches!(written, Ok(Ok(()))) {
                tracing::debug!("commits failed while the database was away");
                health.state().failed_at = None;
            }
        });
    }

    /// A commit succeeded: if commits were failing, they work again.
    fn succeeded(&self, now_ms: i64) {
        let mut state = self.state();
        state.failed_at = None;
        if let Some((since, failures)) = state.outage.take() {
            let seconds = (now_ms - since).max(0) / 1000;
            tracing::info!(
                failures,
                seconds,
                "commits succeed again after {seconds}s; {failures} failed meanwhile"
            );
        }
    }

    fn observe<T>(self: &Arc<Self>, result: &Result<T, Problem>, now_ms: i64) {
        match result {
            Ok(_) => self.succeeded(now_ms),
            Err(problem) if problem.status >= 500 => self.failed(now_ms, problem),
            Err(_) => {}
        }
    }

    /// Whether writes work, given the outcome of a probe write just made:
    /// the probe succeeded, and no commit failed for the database's own
    /// sake in the last [`WRITE_FAILURE_HOLD_MS`] without one succeeding
    /// since (a failure while the database was away holds no longer than
    /// the probe fails).
    pub fn healthy(&self, probe_ok: bool, now_ms: i64) -> bool {
        let mut state = self.state();
        match state.failed_at {
            _ if !probe_ok => false,
            Some(at) if now_ms - at < WRITE_FAILURE_HOLD_MS => false,
            _ => {
                state.failed_at = None;
                true
            }
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Record(r, _) => write!(f, "Record({})", r.experiment),
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
    /// the queue is drained.
    pub fn start(
        storage: Arc<dyn Storage>,
        cache: Arc<Cache>,
        clock: Clock,
        metrics: Arc<Metrics>,
        max_experiments: usize,
    ) -> (Committer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let writes = WriteHealth::new(storage.clone(), metrics.storage_errors.clone());
        let committer = Committer {
            queue,
            writes: Arc::new(writes),
            clock: clock.clone(),
            metrics: metrics.clone(),
        };
        let writer = Writer {
            metrics,
            writes: committer.writes.clone(),
            shared: storage.shared(),
            storage,
            cache,
            clock,
            max_experiments,
            mark: None,
            recorder: None,
        };
        let handle = match writer.storage.blocking_recorder() {
            Some(recorder) => writer.spawn_thread(jobs, recorder),
            None => tokio::spawn(writer.run(jobs)),
        };
        (committer, handle)
    }

    /// Records a validated batch durably; answers whether it was counted
    /// (false: its batch id was already recorded for this experiment).
    /// A call waits at most [`RECORD_DEADLINE`] in all, however long the
    /// commits before its own take: then it answers 503, and its batch is
    /// not committed unless the writer had taken it already (a retry with
    /// the same batch id counts once either way).
    pub async fn record(&self, recording: Recording) -> Result<bool, Problem> {
        let (reply, answer) = oneshot::channel();
        let waited = tokio::time::timeout(RECORD_DEADLINE, async {
            self.enqueue(Job::Record(recording, reply))
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

struct Writer {
    metrics: Arc<Metrics>,
    /// Whether commits work (observed once a group commit).
    writes: Arc<WriteHealth>,
    /// Whether other instances write the same database.
    shared: bool,
    storage: Arc<dyn Storage>,
    cache: Arc<Cache>,
    clock: Clock,
    /// Most experiments an account may have.
    max_experiments: usize,
    /// Where the last refresh left the database's changes, and when.
    mark: Option<(ChangeMark, Instant)>,
    /// The backend's blocking group commit, when the writer runs on a
    /// thread of its own; `None`: it awaits [`Storage::record`].
    recorder: Option<BlockingRecorder>,
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut next = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => {
                        self.metrics.queue_depth.dec();
                        job
                    }
                    None => break,
                },
            };
            match job {
                Job::Change(change, reply) => {
                    let _ = reply.send(self.change(change).await);
                }
                Job::Refresh(reply) => {
                    let _ = reply.send(self.refresh().await);
                }
                Job::Record(recording, reply) => {
                    let mut events = recording.batch.events.len();
                    let mut group = vec![(recording, reply)];
                    while group.len() < MAX_GROUP_BATCHES && events < MAX_GROUP_EVENTS {
                        let taken = jobs.try_recv();
                        if taken.is_ok() {
                            self.metrics.queue_depth.dec();
                        }
                        match taken {
                            Ok(Job::Record(recording, reply)) => {
                                events += recording.batch.events.len();
                                group.push((recording, reply));
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // Calls that gave up (past their deadline, answered
                    // 503) are not committed now: nothing of theirs was
                    // acknowledged.
                    group.retain(|(_, reply)| !reply.is_closed());
                    if !group.is_empty() {
                        self.commit(group).await;
                    }
                }
            }
        }
        tracing::debug!("commit writer stopped");
    }

    /// Runs the writer on a thread of its own, committing groups with the
    /// backend's blocking group commit: a group costs one wake-up of this
    /// thread and one of each waiting request, with no hop to a driver's
    /// thread inside it. Its other jobs still await the async storage
    /// calls (driven from this thread). The handle ends when the thread does.
    fn spawn_thread(
        mut self,
        jobs: mpsc::Receiver<Job>,
        recorder: BlockingRecorder,
    ) -> JoinHandle<()> {
        self.recorder = Some(recorder);
        let runtime = tokio::runtime::Handle::current();
        let (done, finished) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("myna-writer".into())
            .spawn(move || {
                runtime.block_on(self.run(jobs));
                let _ = done.send(());
            });
        tokio::spawn(async move {
            match spawned {
                Ok(_) if finished.await.is_ok() => {}
                Ok(_) => tracing::error!("the commit writer's thread panicked"),
                Err(error) => tracing::error!(%error, "the commit writer's thread did not start"),
            }
        })
    }

    async fn commit(&mut self, group: Vec<(Recording, Reply<bool>)>) {
        let (recordings, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .filter_map(|(recording, reply)| {
                // Deleted since the request was validated: as if recorded, then deleted.
                if self.cache.experiment(recording.experiment).is_some() {
                    Some((recording, reply))
                } else {
                    let uuid = recording.experiment.to_string();
                    let _ = reply.send(Err(Problem::unknown_experiment(&uuid)));
                    None
                }
            })
            .unzip();
        if recordings.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let now = self.clock.now_ms();
        let result = match &mut self.recorder {
            Some(record) => record(&recordings, now),
            None => self.storage.record(&recordings, now).await,
        };
        let took = started.elapsed();
        tracing::debug!(
            batches = recordings.len(),
            micros = took.as_micros(),
            "group committed"
        );
        let events: usize = recordings.iter().map(|r| r.batch.events.len()).sum();
        self.metrics.commit_duration.observe_duration(took);
        self.metrics.commit_batches.observe(recordings.len() as f64);
        self.metrics.commit_events.observe(events as f64);
        match &result {
            Ok(_) => self.writes.succeeded(self.clock.now_ms()),
            Err(StorageError::Conflict) => {}
            Err(error) => self.writes.failed(self.clock.now_ms(), error),
        }
        match result {
            Ok(counted) => {
                let now = self.clock.now_ms();
                for ((recording, reply), counted) in recordings.iter().zip(replies).zip(counted) {
                    if counted {
                        self.cache.add(recording.experiment, &recording.batch, now);
                        self.metrics.batches_recorded.inc();
                        let events = recording.batch.events.len() as u64;
                        self.metrics.events_recorded.inc_by(events);
                    } else {
                        self.metrics.batches_deduplicated.inc();
                    }
                    let _ = reply.send(Ok(counted));
                }
            }
            Err(error) => {
                let problem = Problem::from(error);
                for reply in replies {
                    let _ = reply.send(Err(problem.clone()));
                }
            }
        }
    }

    /// Takes what changed in the database into the cache (everything the
    /// first time, or when the last mark is too old for the deletions the
    /// database keeps); an experiment that cannot be read is logged (once,
    /// until it changes) and the others followed as usual.
    async fn refresh(&mut self) -> Result<KeysGone, StorageError> {
        let started = Instant::now();
        let since = self
            .mark
            .filter(|(_, at)| at.elapsed() < DELETIONS_KEPT / 2)
            .map(|(mark, _)| mark);
        let changes = self.storage.changes(since).await?;
        self.mark = changes.mark.map(|mark| (mark, started));
        let read = changes.experiments.readable.len() + changes.experiments.unreadable.len();
        let now_ms = self.clock.now_ms();
        let (unreadable, keys) = if changes.complete {
            (self.cache.sync(changes.experiments, now_ms), KeysGone::All)
        } else {
            let unreadable =
                self.cache
                    .apply(changes.experiments, &changes.deleted_experiments, now_ms);
            (unreadable, KeysGone::These(changes.deleted_keys))
        };
        for unreadable in unreadable {
            log_unreadable(&unreadable);
        }
        self.metrics.refresh_experiments.inc_by(read as u64);
        self.metrics
            .refresh_duration
            .observe_duration(started.elapsed());
        Ok(keys)
    }

    /// Takes one experiment's state from the database into the cache.
    async fn reload(&self, uuid: Uuid) -> Result<(), StorageError> {
        match self.storage.experiment(uuid).await? {
            Some(Ok(experiment)) => self.cache.put(experiment, self.clock.now_ms()),
            Some(Err(unreadable)) => {
                if self.cache.put_unreadable(unreadable.clone()) {
                    log_unreadable(&unreadable);
                }
            }
            None => self.cache.remove(uuid),
        }
        Ok(())
    }

    /// The experiment, if `account` owns it; else the 404 problem (or the 500
    /// one if it is theirs but cannot be read).
    fn owned(&self, uuid: Uuid, account: Uuid) -> Result<Arc<Experiment>, Problem> {
        if let Some(experiment) = self.cache.experiment(uuid) {
            if experiment.account_id == account {
                return Ok(experiment);
            }
        } else if self.owns_unreadable(uuid, account) {
            return Err(Problem::unreadable_experiment(&uuid.to_string()));
        }
        Err(Problem::unknown_experiment(&uuid.to_string()))
    }

    /// Whether `uuid` is an experiment of `account` that cannot be read.
    fn owns_unreadable(&self, uuid: Uuid, account: Uuid) -> bool {
        self.cache
            .unreadable(uuid)
            .is_some_and(|u| u.account_id == Some(account))
    }

    async fn change(&self, change: Change) -> Result<Option<Arc<Experiment>>, Problem> {
        let now = self.clock.now_ms();
        if self.shared {
            match &change {
                // Read, checked and written under the database's lock.
                Change::Create { .. } | Change::Update { .. } => {}
                Change::Delete { uuid, .. }
                | Change::Reset { uuid, .. }
                | Change::Fetch { uuid, .. } => self.reload(*uuid).await?,
            }
        }
        match change {
            Change::Create {
                experiment,
                id_chosen,
            } if self.shared => {
                // Other instances may have taken the uuid or the id since
                // this cache heard: storage decides both under its lock.
                match self
                    .storage
                    .create_experiment_checked(experiment, now, id_chosen, self.max_experiments)
                    .await?
                {
                    Created::Done(experiment) => {
                        let uuid = experiment.uuid;
                        self.cache.put(experiment, now);
                        Ok(self.cache.experiment(uuid))
                    }
                    Created::IdTaken(id) => Err(Problem::one(id_taken(&id))),
                    Created::UuidTaken => Err(uuid_taken()),
                    Created::Full => Err(too_many_experiments(self.max_experiments)),
                }
            }
            Change::Create {
                mut experiment,
                id_chosen,
            } => {
                let (chosen, account) = (experiment.uuid, experiment.account_id);
                let mine = self.cache.of_account(account);
                if mine.len() >= self.max_experiments {
                    return Err(too_many_experiments(self.max_experiments));
                }
                if id_chosen {
                    check_id_free(&experiment, &mine)?;
                } else {
                    experiment.id = unique_id(&experiment.id, |id| mine.iter().any(|e| e.id == id));
                }
                // Uuids are per account: the account's own experiment (or
                // alias) with this uuid is a conflict; another account's is
                // not even noticed (the new one keeps the uuid as its alias,
                // under a uuid of the server's).
                let own = self.cache.resolve(account, chosen);
                let taken_here = self
                    .cache
                    .experiment(own)
                    .is_some_and(|e| e.account_id == account)
                    || self
                        .cache
                        .unreadable(chosen)
                        .is_some_and(|u| u.account_id == Some(account));
                if taken_here {
                    return Err(uuid_taken());
                }
                if self.cache.experiment(chosen).is_some()
                    || self.cache.unreadable(chosen).is_some()
                {
                    experiment.alias = Some(chosen);
                    experiment.uuid = Uuid::new_v4();
                }
                let uuid = experiment.uuid;
                self.storage.create_experiment(&experiment, now).await?;
                self.cache.put(experiment, now);
                Ok(self.cache.experiment(uuid))
            }
            Change::Update {
                uuid,
                account,
                body,
            } if self.shared => {
                // Applied to the definition as stored, under the lock, so a
                // change another instance made meanwhile is never undone.
                let apply = |current: &Experiment| {
                    if current.account_id != account {
                        return Err(Problem::unknown_experiment(&uuid.to_string()));
                    }
                    apply_update(current, &body)
                };
                match self.storage.update_experiment_with(uuid, &apply).await? {
                    Updated::Done(next) => {
                        self.cache.put(next, now);
                        Ok(self.cache.experiment(uuid))
                    }
                    Updated::Missing => Err(Problem::unknown_experiment(&uuid.to_string())),
                    Updated::Unreadable => {
                        // Whose it is: the owner's 500, anyone else's 404.
                        self.reload(uuid).await?;
                        self.owned(uuid, account)?;
                        Err(Problem::unreadable_experiment(&uuid.to_string()))
                    }
                    Updated::Refused(problem) => Err(problem),
                    Updated::IdTaken(id) => Err(Problem::one(id_taken(&id))),
                }
            }
            Change::Update {
                uuid,
                account,
                body,
            } => {
                let current = self.owned(uuid, account)?;
                let next = apply_update(&current, &body)?;
                // Only a change that makes the duplicate is refused (a new id,
                // or publishing), so an update of something else goes through.
                if next.id != current.id || next.visibility != current.visibility {
                    check_id_free(&next, &self.cache.of_account(account))?;
                }
                if !self.storage.update_experiment(&next).await? {
                    return Err(Problem::unknown_experiment(&uuid.to_string()));
                }
                self.cache.put(next, now);
                Ok(self.cache.experiment(uuid))
            }
            Change::Delete { uuid, account } => {
                // One that cannot be read can still be deleted by its owner.
                if !self.owns_unreadable(uuid, account) {
                    self.owned(uuid, account)?;
                }
                self.storage.delete_experiment(uuid).await?;
                self.cache.remove(uuid);
                Ok(None)
            }
            Change::Fetch { uuid, account } => {
                // A uuid another account's experiment has may be the
                // account's alias, created on another instance a moment ago.
                let theirs = self.cache.experiment(uuid);
                if self.shared
                    && theirs.is_some_and(|e| e.account_id != account)
                    && let Some(aliased) = self.storage.aliased(account, uuid).await?
                {
                    self.reload(aliased).await?;
                    return Ok(self.cache.experiment(aliased));
                }
                Ok(self.cache.experiment(uuid))
            }
            Change::Reset { uuid, account } => {
                let current = self.owned(uuid, account)?;
                if !self.storage.reset_experiment(uuid).await? {
                    return Err(Problem::unknown_experiment(&uuid.to_string()));
                }
                let mut next = (*current).clone();
                next.reset();
                // Storage forgot its served weights: so does the cache.
                self.cache.forget_served(uuid);
                self.cache.put(next, now);
                Ok(self.cache.experiment(uuid))
            }
        }
    }
}

/// Refuses (409) a new experiment of an account that has `max` already.
fn too_many_experiments(max: usize) -> Problem {
    myna_core::limits::account_full("experiments", max, "delete one first")
}

/// 409 at `uuid`: the account has an experiment (or alias) with it.
fn uuid_taken() -> Problem {
    Problem::one(myna_core::Message::at(
        myna_core::Code::Conflict,
        "uuid",
        "This account has an experiment with this uuid already.",
    ))
}

/// Refuses (409, path `id`) a published `experiment` whose id another
/// published experiment of `mine` (its account's) has (core's rule).
fn check_id_free(experiment: &Experiment, mine: &[Arc<Experiment>]) -> Result<(), Problem> {
    if id_clashes(experiment, mine.iter().map(|e| e.as_ref())) {
        Err(Problem::one(id_taken(&experiment.id)))
    } else {
        Ok(())
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
