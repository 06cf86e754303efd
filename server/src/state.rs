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
use uuid::Uuid;

use crate::auth::record_limit::RecordLimit;
use crate::auth::secret::Secret;
use crate::auth::throttle::Guard;
use crate::auth::{Checker, Keys, Passwords};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::commit::{Committer, log_unreadable};
use crate::cors::Origins;
use crate::metrics::Metrics;
use crate::outbound::{self, Outbound};
use crate::storage::{Storage, StorageError};

mod background;
pub mod turns;

pub use background::{Abandoned, Background, FINISH_GRACE, SERVED_FLUSH, SHARED_REFRESH};

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
    /// Events a client address may record with API keys a minute
    /// (`--record-limit`); `None` (the default): no limit.
    pub record_limit: Option<u32>,
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
            record_limit: None,
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
    pub guard: Arc<Guard>,
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
    /// reads and health checks; one account at most half of those turns, so
    /// its flood waits behind itself ([`turns::Turns`]).
    pub large_answers: turns::Turns,
    /// Events a client address may record with API keys (`--record-limit`).
    pub record_limit: Option<RecordLimit>,
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
    /// Experiments whose decision took long to compute: not computed again
    /// before this time (ms), so a few huge ones cannot keep the watcher
    /// (and a core) busy all the time.
    pub not_before: HashMap<Uuid, i64>,
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
        )?;
        let keys = Arc::new(Keys::default());
        // One client address may hold at most half the hashing permits.
        let guard = Arc::new(Guard::new(
            options.client_ip_header,
            options.passwords.permits() / 2,
        ));
        let background = Background::spawn(
            writer,
            &storage,
            &cache,
            &committer,
            &keys,
            &guard,
            options.clock.clone(),
        );
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
            large_answers: turns::Turns::new(large_answer_turns()),
            record_limit: options.record_limit.map(RecordLimit::new),
        }));
        Ok((state, background))
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
        background::flush_served_now(&self.storage, &self.cache).await
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
