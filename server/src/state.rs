//! The application state every handler shares, and the background tasks
//! (commit writer, pruning, the served weights' flush, and on a shared
//! database the refresh) that come with it.
//!
//! The weights served (summed per hour in the cache as read forms are
//! answered) are added to storage every [`SERVED_FLUSH`] and at graceful
//! shutdown, by a task of their own: never on a record's path. A crash
//! loses at most that period of this bookkeeping, never an event.
//!
//! On a database other instances share (PostgreSQL), each instance refreshes
//! its cache from the database every [`SHARED_REFRESH`]: definitions created,
//! updated, reset or deleted elsewhere, and everyone's counts, arrive within
//! that (so weights come from counts under a second old), and the API keys
//! seen so far are read again (one deleted elsewhere stops working).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use myna_core::weights::WeightsConfig;
use poem::Request;
use poem::http::HeaderName;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::auth::secret::Secret;
use crate::auth::throttle::Guard;
use crate::auth::{Checker, Keys, Passwords};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::commit::{Committer, KeysGone, log_unreadable};
use crate::cors::Origins;
use crate::metrics::Metrics;
use crate::outbound::{self, Outbound};
use crate::storage::{BATCH_ID_RETENTION_MS, Storage, StorageError};

/// How often expired tokens and old batch ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the weights served are added to storage.
pub const SERVED_FLUSH: Duration = Duration::from_secs(60);
/// How often an instance on a shared database syncs its cache with it.
pub const SHARED_REFRESH: Duration = Duration::from_millis(500);

/// What a server is started with, besides its storage.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where "now" comes from.
    pub clock: Clock,
    /// Password hashing cost.
    pub passwords: Passwords,
    /// Origins browsers may call from.
    pub origins: Origins,
    /// Tuning of the weights.
    pub weights: WeightsConfig,
    /// Behind a reverse proxy: the header whose right-most address is the
    /// client's (`X-Forwarded-For`); `None` (the default) takes the TCP
    /// peer's address. Credential limits count per client address.
    pub client_ip_header: Option<HeaderName>,
    /// How long one webhook delivery attempt may take.
    pub webhook_timeout: Duration,
    /// What the server counts (served by `--metrics-listen`).
    pub metrics: Arc<Metrics>,
    /// The server's public root URL (`--public-url`, no trailing `/`):
    /// deployments' `apiRoot`; `None` derives it from each request.
    pub public_url: Option<String>,
    /// Most experiments an account may have (core's `MAX_EXPERIMENTS`;
    /// tests lower it).
    pub max_experiments: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Clock::system(),
            passwords: Passwords::new(),
            origins: Origins::Any,
            weights: WeightsConfig::default(),
            client_ip_header: None,
            webhook_timeout: outbound::TIMEOUT,
            metrics: Arc::default(),
            public_url: None,
            max_experiments: myna_core::limits::MAX_EXPERIMENTS,
        }
    }
}

/// Everything handlers share.
#[derive(Debug)]
pub struct Shared {
    /// The durable state.
    pub storage: Arc<dyn Storage>,
    /// Every experiment, in memory.
    pub cache: Arc<Cache>,
    /// The commit writer's queue.
    pub committer: Committer,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Password hashing.
    pub passwords: Passwords,
    /// API keys seen so far.
    pub keys: Arc<Keys>,
    /// Origins browsers may call from.
    pub origins: Origins,
    /// Limits on password checks, and the verified cache.
    pub guard: Guard,
    /// The server secret (in the database, shared by every instance): signs
    /// the dashboard's CSRF tokens and derives each webhook's secret.
    pub secret: Secret,
    /// The HTTP client of webhook deliveries.
    pub outbound: Outbound,
    /// What the webhook watcher keeps between its rounds.
    pub webhook_watch: Mutex<WebhookWatch>,
    /// What the server counts.
    pub metrics: Arc<Metrics>,
    /// The server's public root URL (`--public-url`), if configured.
    pub public_url: Option<String>,
    /// `/healthz`'s database probe, shared by the checks that come at once.
    pub health_probe: crate::health::Probe,
    /// Turns at the answers whose CPU grows with an account (searches,
    /// deployments): half the cores (at least one), so that a flood of them,
    /// which a public key can send, leaves the other half to records,
    /// reads and health checks. Waiting for a turn costs no CPU.
    pub large_answers: tokio::sync::Semaphore,
}

impl std::fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

/// How many searches and deployments are built at once: half the cores,
/// at least one.
pub fn large_answer_turns() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// What the webhook watcher keeps between its rounds (in memory: each
/// instance its own).
#[derive(Debug, Default)]
pub struct WebhookWatch {
    /// What each experiment's decision depended on when it was last looked
    /// at (a hash), so an unchanged one is not computed again.
    pub seen: HashMap<Uuid, u64>,
}

/// The shared state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// A handle on the shared state that does not keep it alive: what a
/// background task that runs `service` holds between its rounds, so the
/// state (and the commit writer's queue) can go at shutdown.
#[derive(Debug, Clone)]
pub struct WeakState(Weak<Shared>);

impl WeakState {
    /// The state, while it is still running.
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The background tasks of a running state.
#[derive(Debug)]
pub struct Background {
    writer: JoinHandle<()>,
    pruner: JoinHandle<()>,
    flusher: JoinHandle<()>,
    /// Stops the flusher between two flushes (never in the middle of one).
    stop_flushing: Arc<Notify>,
    refresher: Option<JoinHandle<()>>,
    served: Served,
}

/// What flushing the served weights needs (no handle on the commit writer,
/// which stops once every [`AppState`] is dropped).
#[derive(Debug, Clone)]
struct Served {
    storage: Arc<dyn Storage>,
    cache: Arc<Cache>,
}

impl Served {
    /// Adds what was served since the last flush to storage; on failure
    /// the rows go back to the cache for the next flush.
    async fn flush(&self) -> Result<(), StorageError> {
        let rows = self.cache.take_served();
        if rows.is_empty() {
            return Ok(());
        }
        match self.storage.add_served(&rows).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.cache.restore_served(rows);
                Err(error)
            }
        }
    }
}

/// How long a graceful shutdown waits, after the last request, for the
/// commit writer to drain its queue and for the weights served since the
/// last flush to be added to storage (together). Past it, whatever the
/// database does, the rest is abandoned and logged: commits still queued
/// (none acknowledged: a request is answered only after its commit) and
/// the weights served since the last flush.
pub const FINISH_GRACE: Duration = Duration::from_secs(10);

/// What a graceful shutdown left undone because the database failed or
/// did not answer in time (nothing acknowledged is ever among it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// Commits still queued or under way (never acknowledged).
    pub commits: bool,
    /// The weights served since the last flush (not added to storage).
    pub served: bool,
    /// Closing the database's connections.
    pub close: bool,
}

impl Background {
    /// Waits for the commit writer to finish every queued commit (it stops
    /// once every [`AppState`] clone is dropped), stops pruning, and adds
    /// the weights served since the last flush to storage, all within
    /// [`FINISH_GRACE`].
    pub async fn finish(self) -> Abandoned {
        self.finish_within(FINISH_GRACE).await
    }

    /// [`Background::finish`] within `grace`: what the database does not
    /// do by then is abandoned (the writer and the flush stopped), logged,
    /// and answered.
    pub async fn finish_within(self, grace: Duration) -> Abandoned {
        self.pruner.abort();
        if let Some(refresher) = self.refresher {
            // It holds a committer handle: gone before the writer can stop.
            refresher.abort();
            let _ = refresher.await;
        }
        let served = finish_served(self.flusher, &self.stop_flushing, &self.served, grace);
        let (served, commits) = tokio::join!(served, finish_writer(self.writer, grace));
        Abandoned {
            commits,
            served,
            close: false,
        }
    }
}

/// Stops the flusher (letting a flush under way end) and adds what was
/// served since to storage, all within `grace`; whether that was abandoned
/// (logged).
async fn finish_served(
    mut flusher: JoinHandle<()>,
    stop: &Notify,
    served: &Served,
    grace: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    stop.notify_one();
    let flushed = match tokio::time::timeout_at(deadline, &mut flusher).await {
        Ok(_) => tokio::time::timeout_at(deadline, served.flush()).await,
        Err(elapsed) => {
            flusher.abort();
            Err(elapsed)
        }
    };
    match flushed {
        Ok(Ok(())) => false,
        Ok(Err(error)) => {
            tracing::warn!(
                %error,
                "the weights served since the last flush were not added: the database failed"
            );
            true
        }
        Err(_) => {
            tracing::warn!(
                "the weights served since the last flush were not added: the database did not \
                 answer within {} s",
                grace.as_secs()
            );
            true
        }
    }
}

/// Waits up to `grace` for the commit writer to drain its queue, else
/// stops it; whether commits were abandoned (logged).
async fn finish_writer(mut writer: JoinHandle<()>, grace: Duration) -> bool {
    match tokio::time::timeout(grace, &mut writer).await {
        Ok(Ok(())) => false,
        Ok(Err(error)) => {
            tracing::error!(%error, "commit writer failed");
            false
        }
        Err(_) => {
            // On SQLite the writer's thread is not stopped: the process
            // exits around it (a commit under way is SQLite's atomic
            // transaction: in or out whole).
            writer.abort();
            tracing::warn!(
                "the commits still queued were not made: the database did not answer within {} s \
                 (none was acknowledged)",
                grace.as_secs()
            );
            true
        }
    }
}

impl AppState {
    /// Loads every experiment into memory and starts the commit writer and
    /// the pruning task. An experiment that cannot be read is logged and
    /// served as a 500 problem; it never stops the start.
    pub async fn start(
        storage: Arc<dyn Storage>,
        options: Options,
    ) -> Result<(AppState, Background), StorageError> {
        let now = options.clock.now_ms();
        let secret = Secret::load(storage.as_ref()).await?;
        let experiments = storage.experiments().await?;
        for unreadable in &experiments.unreadable {
            log_unreadable(unreadable);
        }
        tracing::info!(
            experiments = experiments.readable.len(),
            unreadable = experiments.unreadable.len(),
            "experiments loaded"
        );
        let cache = Cache::new(experiments, options.weights, now)
            .with_lag(options.metrics.weights_lag.clone());
        let cache = Arc::new(cache);
        let (committer, writer) = Committer::start(
            storage.clone(),
            cache.clone(),
            options.clock.clone(),
            options.metrics.clone(),
            options.max_experiments,
        );
        let pruner = tokio::spawn(prune(storage.clone(), options.clock.clone()));
        let served = Served {
            storage: storage.clone(),
            cache: cache.clone(),
        };
        let stop_flushing = Arc::new(Notify::new());
        let flusher = tokio::spawn(flush_served(served.clone(), stop_flushing.clone()));
        let keys = Arc::new(Keys::default());
        let refresher = storage
            .shared()
            .then(|| tokio::spawn(refresh(committer.clone(), keys.clone())));
        // One client address may hold at most half the hashing permits.
        let guard = Guard::new(options.client_ip_header, options.passwords.permits() / 2);
        let state = AppState(Arc::new(Shared {
            storage,
            cache,
            committer,
            clock: options.clock,
            passwords: options.passwords,
            keys,
            origins: options.origins,
            guard,
            secret,
            outbound: Outbound::new(options.webhook_timeout),
            webhook_watch: Mutex::default(),
            metrics: options.metrics,
            public_url: options.public_url,
            health_probe: crate::health::Probe::default(),
            large_answers: tokio::sync::Semaphore::new(large_answer_turns()),
        }));
        Ok((
            state,
            Background {
                writer,
                pruner,
                flusher,
                stop_flushing,
                refresher,
                served,
            },
        ))
    }

    /// A handle that does not keep the state alive.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.0))
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Adds the weights served so far to storage now (the background task
    /// does so every [`SERVED_FLUSH`]); on failure they are kept for the
    /// next flush.
    pub async fn flush_served(&self) -> Result<(), StorageError> {
        Served {
            storage: self.storage.clone(),
            cache: self.cache.clone(),
        }
        .flush()
        .await
    }

    /// What checks the credentials of `request`, now.
    pub fn checker(&self, request: &Request) -> Checker<'_> {
        Checker {
            storage: self.storage.as_ref(),
            passwords: &self.passwords,
            keys: &self.keys,
            guard: &self.guard,
            client: self.guard.client(request),
            now_ms: self.now_ms(),
            metrics: &self.metrics,
        }
    }
}

async fn prune(storage: Arc<dyn Storage>, clock: Clock) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        let now = clock.now_ms();
        match storage.prune_batches(now - BATCH_ID_RETENTION_MS).await {
            Ok(n) => tracing::debug!(pruned = n, "old batch ids pruned"),
            Err(error) => tracing::warn!(%error, "pruning batch ids failed"),
        }
        match storage.prune_tokens(now).await {
            Ok(n) => tracing::debug!(pruned = n, "expired tokens pruned"),
            Err(error) => tracing::warn!(%error, "pruning tokens failed"),
        }
        match storage.prune_deletions().await {
            Ok(n) => tracing::debug!(pruned = n, "old deletions pruned"),
            Err(error) => tracing::warn!(%error, "pruning deletions failed"),
        }
    }
}

/// Flushes the weights served every [`SERVED_FLUSH`] until `stop`; a
/// failure is logged once until a flush works again.
async fn flush_served(served: Served, stop: Arc<Notify>) {
    let mut every = tokio::time::interval(SERVED_FLUSH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.notified() => return,
        }
        match served.flush().await {
            Ok(()) if failing => {
                tracing::info!("adding the weights served to the database works again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) if !failing => {
                tracing::warn!(%error, "adding the weights served to the database failed; retrying");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "adding the weights served failed"),
        }
    }
}

/// Syncs the cache with a shared database every [`SHARED_REFRESH`], through
/// the commit writer (in turn with the commits, so it never goes back). A
/// failure is logged once until the database answers again.
async fn refresh(committer: Committer, keys: Arc<Keys>) {
    let mut every = tokio::time::interval(SHARED_REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        match committer.refresh().await {
            Ok(gone) => {
                if failing {
                    tracing::info!("refreshing from the database works again");
                    failing = false;
                }
                match gone {
                    KeysGone::All => keys.clear(),
                    KeysGone::These(gone) => gone.into_iter().for_each(|key| keys.forget(key)),
                }
            }
            Err(error) if !failing => {
                tracing::warn!(%error, "refreshing from the database failed; retrying");
                failing = true;
            }
            Err(error) => tracing::debug!(%error, "refreshing from the database failed"),
        }
    }
}
