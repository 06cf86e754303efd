//! The background tasks of a running state: the commit writer's handle,
//! pruning, the flush of the weights served and, on a shared database, the
//! refresh; and how a graceful shutdown finishes them within a grace.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::Keys;
use crate::auth::throttle::Guard;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::commit::{Committer, KeysGone};
use crate::storage::{BATCH_ID_RETENTION_MS, Storage, StorageError};

/// How often expired tokens and old batch ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the weights served are added to storage.
pub const SERVED_FLUSH: Duration = Duration::from_secs(60);
/// How often an instance on a shared database syncs its cache with it.
pub const SHARED_REFRESH: Duration = Duration::from_millis(500);

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
/// which stops once every [`AppState`](super::AppState) is dropped).
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
    /// once every [`super::AppState`] clone is dropped), stops pruning, and adds
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

impl Background {
    /// Starts pruning, the flush of the weights served and, on a shared
    /// database, the refresh, beside the commit `writer` already running.
    pub(super) fn spawn(
        writer: JoinHandle<()>,
        storage: &Arc<dyn Storage>,
        cache: &Arc<Cache>,
        committer: &Committer,
        keys: &Arc<Keys>,
        guard: &Arc<Guard>,
        clock: Clock,
    ) -> Background {
        let pruner = tokio::spawn(prune(storage.clone(), clock));
        let served = Served {
            storage: storage.clone(),
            cache: cache.clone(),
        };
        let stop_flushing = Arc::new(Notify::new());
        let flusher = tokio::spawn(flush_served(served.clone(), stop_flushing.clone()));
        let refresher = storage
            .shared()
            .then(|| tokio::spawn(refresh(committer.clone(), keys.clone(), guard.clone())));
        Background {
            writer,
            pruner,
            flusher,
            stop_flushing,
            refresher,
            served,
        }
    }
}

/// Adds the weights served so far to storage now; on failure they are kept
/// for the next flush.
pub(super) async fn flush_served_now(
    storage: &Arc<dyn Storage>,
    cache: &Arc<Cache>,
) -> Result<(), StorageError> {
    Served {
        storage: storage.clone(),
        cache: cache.clone(),
    }
    .flush()
    .await
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
async fn refresh(committer: Committer, keys: Arc<Keys>, guard: Arc<Guard>) {
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
                    KeysGone::All => {
                        keys.clear();
                        guard.forget_every_account();
                    }
                    KeysGone::These {
                        keys: gone,
                        accounts,
                    } => {
                        gone.into_iter().for_each(|key| keys.forget(key));
                        guard.forget_accounts(&accounts);
                    }
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
