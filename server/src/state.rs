//! The application state every handler shares, and the background tasks
//! (commit writer, pruning) that come with it.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use myna_core::weights::WeightsConfig;
use tokio::task::JoinHandle;

use crate::auth::{Keys, Passwords};
use crate::cache::Cache;
use crate::clock::Clock;
use crate::commit::Committer;
use crate::cors::Origins;
use crate::storage::{BATCH_ID_RETENTION_MS, Storage, StorageError};

/// How often expired tokens and old batch ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Clock::system(),
            passwords: Passwords::new(),
            origins: Origins::Any,
            weights: WeightsConfig::default(),
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
    pub keys: Keys,
    /// Origins browsers may call from.
    pub origins: Origins,
}

impl std::fmt::Debug for dyn Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

/// The shared state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

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
}

impl Background {
    /// Waits for the commit writer to finish every queued commit (it stops
    /// once every [`AppState`] clone is dropped) and stops pruning.
    pub async fn finish(self) {
        self.pruner.abort();
        if let Err(error) = self.writer.await {
            tracing::error!(%error, "commit writer failed");
        }
    }
}

impl AppState {
    /// Loads every experiment into memory and starts the commit writer and
    /// the pruning task.
    pub async fn start(
        storage: Arc<dyn Storage>,
        options: Options,
    ) -> Result<(AppState, Background), StorageError> {
        let now = options.clock.now_ms();
        let experiments = storage.experiments().await?;
        tracing::info!(experiments = experiments.len(), "experiments loaded");
        let cache = Arc::new(Cache::new(experiments, options.weights, now));
        let (committer, writer) =
            Committer::start(storage.clone(), cache.clone(), options.clock.clone());
        let pruner = tokio::spawn(prune(storage.clone(), options.clock.clone()));
        let state = AppState(Arc::new(Shared {
            storage,
            cache,
            committer,
            clock: options.clock,
            passwords: options.passwords,
            keys: Keys::default(),
            origins: options.origins,
        }));
        Ok((state, Background { writer, pruner }))
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
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
    }
}
