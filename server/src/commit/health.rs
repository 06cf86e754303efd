//! Whether commits work, as `/healthz` tells a load balancer ([`WriteHealth`]).

use std::sync::Arc;

use myna_core::Problem;

use crate::storage::Storage;

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
    pub(super) fn failed(self: &Arc<Self>, now_ms: i64, cause: &dyn std::fmt::Display) {
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
    pub(super) fn succeeded(&self, now_ms: i64) {
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

    /// A change's outcome: a 5xx problem is a failed commit, any other
    /// answer a commit that worked (a refusal is the change's own).
    pub(super) fn observe<T>(self: &Arc<Self>, result: &Result<T, Problem>, now_ms: i64) {
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
