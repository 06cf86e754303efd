//! The writer itself: the one task (a thread on SQLite) that takes the
//! queue's jobs in turn, groups record batches into one commit, and applies
//! definition changes and refreshes to the database and the cache.

use std::sync::Arc;
use std::time::Instant;

use myna_core::experiment::{apply_update, id_clashes, id_taken, unique_id};
use myna_core::{Access, Experiment, Problem};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{
    Change, Job, KeysGone, MAX_GROUP_BATCHES, MAX_GROUP_EVENTS, Precondition, Reply, WriteHealth,
    log_unreadable,
};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::storage::{
    BlockingRecorder, ChangeMark, Created, DELETIONS_KEPT, Recording, Storage, StorageError,
    Updated,
};

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

/// Starts the writer on `jobs`: on a thread of its own where the backend
/// has a blocking group commit (SQLite), else as a task. Fails when that
/// thread cannot start (a process or thread limit): a server without its
/// writer would answer every change and record 503.
pub(super) fn start(
    storage: Arc<dyn Storage>,
    writes: Arc<WriteHealth>,
    cache: Arc<Cache>,
    clock: Clock,
    metrics: Arc<Metrics>,
    max_experiments: usize,
    jobs: mpsc::Receiver<Job>,
) -> Result<JoinHandle<()>, StorageError> {
    let writer = Writer {
        metrics,
        writes,
        shared: storage.shared(),
        storage,
        cache,
        clock,
        max_experiments,
        mark: None,
        recorder: None,
    };
    match writer.storage.blocking_recorder() {
        Some(recorder) => writer.spawn_thread(jobs, recorder),
        None => Ok(tokio::spawn(writer.run(jobs))),
    }
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
                Job::Record(recording, access, reply) => {
                    let mut events = recording.batch.events.len();
                    let mut group = vec![(recording, access, reply)];
                    while group.len() < MAX_GROUP_BATCHES && events < MAX_GROUP_EVENTS {
                        let taken = jobs.try_recv();
                        if taken.is_ok() {
                            self.metrics.queue_depth.dec();
                        }
                        match taken {
                            Ok(Job::Record(recording, access, reply)) => {
                                events += recording.batch.events.len();
                                group.push((recording, access, reply));
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
                    group.retain(|(_, _, reply)| !reply.is_closed());
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
    /// calls (driven from this thread). The handle ends when the thread
    /// does. A writer that panicked ends the process (exit code 70): nothing
    /// could be recorded or changed any more, while `/healthz` would still
    /// answer; a supervisor restarts it (everything acknowledged is stored).
    fn spawn_thread(
        mut self,
        jobs: mpsc::Receiver<Job>,
        recorder: BlockingRecorder,
    ) -> Result<JoinHandle<()>, StorageError> {
        self.recorder = Some(recorder);
        let runtime = tokio::runtime::Handle::current();
        let (done, finished) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("myna-writer".into())
            .spawn(move || {
                runtime.block_on(self.run(jobs));
                let _ = done.send(());
            })
            .map_err(|error| {
                StorageError::Unavailable(format!(
                    "the commit writer's thread did not start: {error} \
                     (a limit on processes or threads, such as ulimit -u?)"
                ))
            })?;
        Ok(tokio::spawn(async move {
            if finished.await.is_err() {
                tracing::error!("the commit writer's thread panicked: the server stops");
                crate::log_queue::flush_before_exit();
                std::process::exit(70);
            }
        }))
    }

    async fn commit(&mut self, group: Vec<(Recording, Access, Reply<bool>)>) {
        let (recordings, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .filter_map(|(recording, access, reply)| {
                // Deleted, or hidden from the caller (an API key's batch of
                // an experiment set to draft), since the request was
                // validated: refused as then, nothing stored. (The changes
                // before it in the queue are applied to the cache already.)
                let experiment = self.cache.experiment(recording.experiment);
                if experiment.is_some_and(|e| access.may_see(e.visibility)) {
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
        match &result {
            Ok(_) => {
                // The sizes of commits made (a failed one wrote nothing).
                self.metrics.commit_batches.observe(recordings.len() as f64);
                self.metrics.commit_events.observe(events as f64);
                self.writes.succeeded(self.clock.now_ms());
            }
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
            let gone = KeysGone::These {
                keys: changes.deleted_keys,
                accounts: changes.deleted_accounts,
            };
            (unreadable, gone)
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
        // The experiment the caller knows by the uuid (its own, or its
        // alias of another account's, made on another instance since this
        // cache heard), read again; Fetch answers it.
        let mut known = None;
        if self.shared {
            match &change {
                // Read, checked and written under the database's lock.
                Change::Create { .. } | Change::Update { .. } => {}
                Change::Delete { uuid, account }
                | Change::Reset { uuid, account }
                | Change::Fetch { uuid, account } => {
                    // One query whatever the uuid is: another account's
                    // rows are never read for this caller, so its uuid
                    // costs what an unknown one does (not even an answer's
                    // time tells one account what another holds).
                    known = self.storage.known_as(*account, *uuid).await?;
                    match known {
                        Some(known) => self.reload(known).await?,
                        // Gone elsewhere: not the caller's any more.
                        None if self
                            .cache
                            .experiment(*uuid)
                            .is_some_and(|e| e.account_id == *account) =>
                        {
                            self.cache.remove(*uuid);
                        }
                        None => {}
                    }
                }
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
                unless,
            } if self.shared => {
                // Applied to the definition as stored, under the lock, so a
                // change another instance made meanwhile is never undone.
                let apply = |current: &Experiment| {
                    if current.account_id != account {
                        return Err(Problem::unknown_experiment(&uuid.to_string()));
                    }
                    if let Some(Precondition(check)) = &unless {
                        check(current)?;
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
                unless,
            } => {
                let current = self.owned(uuid, account)?;
                if let Some(Precondition(check)) = &unless {
                    check(&current)?;
                }
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
            Change::Fetch { uuid, .. } => match known {
                Some(known) => Ok(self.cache.experiment(known)),
                None if self.shared => Ok(None),
                None => Ok(self.cache.experiment(uuid)),
            },
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
