//! The database probe of `/healthz`: a small durable write that anyone may
//! ask for, made by one check at a time and shared.

use std::fmt::Display;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// How long a probe that succeeded answers the checks that come after it.
const PROBE_FRESH: Duration = Duration::from_millis(250);

/// The database probe of `/healthz` (a small durable write), run by one
/// check at a time: checks that come while it runs wait for it, and a
/// success answers those that come within [`PROBE_FRESH`] after it (a
/// failure is asked again, so health is back as soon as the database is).
/// Anyone may ask `/healthz`: the writes it costs (and the connections they
/// wait for) are at most one at a time, and at most about four a second
/// while the database works, whatever the rate of checks.
#[derive(Debug, Default)]
pub struct Probe {
    /// When the last probe that succeeded finished.
    succeeded: Mutex<Option<Instant>>,
}

impl Probe {
    /// Whether the database takes a small durable write, asked now or
    /// (successfully) at most [`PROBE_FRESH`] ago.
    pub async fn writable<E: Display>(&self, ping: impl AsyncFnOnce() -> Result<(), E>) -> bool {
        let mut succeeded = self.succeeded.lock().await;
        if succeeded.is_some_and(|at| at.elapsed() < PROBE_FRESH) {
            return true;
        }
        match ping().await {
            Ok(()) => {
                *succeeded = Some(Instant::now());
                true
            }
            Err(error) => {
                tracing::debug!(%error, "health check failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A flood of checks costs one probe while it runs and one per
    /// [`PROBE_FRESH`] after (anyone may ask `/healthz`, and each probe is
    /// a durable write); a failure is asked again by the next check.
    #[tokio::test]
    async fn checks_at_once_share_one_probe_and_a_failure_is_asked_again() {
        let probe = Arc::new(Probe::default());
        let pings = Arc::new(AtomicUsize::new(0));
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (probe, pings) = (probe.clone(), pings.clone());
            checks.spawn(async move {
                let ping = async || {
                    pings.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<(), String>(())
                };
                probe.writable(ping).await
            });
        }
        while let Some(answer) = checks.join_next().await {
            assert!(answer.unwrap_or(false));
        }
        assert_eq!(pings.load(Ordering::SeqCst), 1, "one write for 50 checks");
        let ping = async || Ok::<(), String>(());

        let failing = Probe::default();
        let fails = AtomicUsize::new(0);
        let fail = async || {
            fails.fetch_add(1, Ordering::SeqCst);
            Err::<(), String>("down".into())
        };
        assert!(!failing.writable(fail).await);
        assert!(!failing.writable(fail).await);
        assert_eq!(fails.load(Ordering::SeqCst), 2, "a failure is not kept");
        assert!(
            failing.writable(ping).await,
            "back as soon as a write works"
        );
    }
}
