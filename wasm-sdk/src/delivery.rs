//! A flush as a state machine (pure, tested natively): one run sends the
//! queue's batches one after another (with JSONP, event by event), each
//! answer's [`Verdict`] deciding the next step, until every batch was tried
//! or an attempt failed; then the backoff before the next automatic run.
//! Sealing and storing between steps are the caller's ([`crate::tab`]).

use alloc::vec::Vec;

use myna_core::Problem;
use myna_core::wire::Number;
use uuid::Uuid;

use crate::queue::{Batch, Queue};
use crate::retry::{self, Fate, Verdict};

/// What a flush did: events the server confirmed, refused for good, or
/// kept to retry (a `sync` event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Events the server confirmed.
    pub(crate) sent: usize,
    /// Events dropped: refused by the server, or pushed out of a full queue.
    pub(crate) dropped: usize,
    /// Events still queued after a failed attempt.
    pub(crate) requeued: usize,
}

impl Counts {
    /// Whether there is anything to tell.
    pub(crate) fn any(self) -> bool {
        self.sent + self.dropped + self.requeued > 0
    }
}

/// Why an attempt failed or a batch was refused, for the page's
/// `MynaError`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    /// The problem (`None` only if a verdict had none).
    pub(crate) problem: Option<Problem>,
    /// Whether the server said it (then the error has a `status`).
    pub(crate) from_server: bool,
}

/// The delay before the next automatic send, after failed attempts.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// Failed attempts in a row.
    attempt: u32,
    /// No automatic flush before this time (epoch ms).
    retry_at: f64,
    /// The end of the server's last `Retry-After` (epoch ms): `online`
    /// does not bring a retry before it.
    server_at: f64,
}

impl Backoff {
    /// Whether an automatic flush may send at `now`.
    pub(crate) fn due(&self, now: f64) -> bool {
        now >= self.retry_at
    }

    /// The network is back: retry now, unless the server asked to wait.
    pub(crate) fn online(&mut self) {
        self.retry_at = self.server_at;
    }

    /// An attempt failed at `now`: the next waits [`retry::delay_ms`]
    /// (jitter `u`), at least the server's `Retry-After`.
    fn failed(&mut self, now: f64, u: f64, retry_after: Option<f64>) {
        let delay = retry::delay_ms(self.attempt, u, retry_after);
        self.attempt = self.attempt.saturating_add(1);
        self.retry_at = now + delay;
        self.server_at = if retry_after.is_some() {
            self.retry_at
        } else {
            0.0
        };
    }
}

/// One flush, from its start to its end.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Batches tried in this run.
    tried: Vec<Uuid>,
    /// The batch being sent (as it was when it left) and, with JSONP, the
    /// index of its event being sent.
    current: Option<(Batch, usize)>,
    sent: usize,
    dropped: usize,
    /// The refused batches, told at the end.
    refusals: Vec<Failure>,
    /// The attempt that failed, and the server's `Retry-After`.
    failure: Option<(Failure, Option<f64>)>,
    /// Held back by the backoff: nothing was tried, the backoff stands.
    held: bool,
}

/// What comes after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the next event of the batch being sent ([`Run::current`]).
    Unit,
    /// The batch is settled (`sent`, or refused for good) and out of the
    /// queue: store the queue, then the next batch ([`Run::next`]).
    Settled {
        /// Confirmed (its answer is a read form with fresh weights).
        sent: bool,
    },
    /// The run is over: the attempt failed (or nothing was being sent).
    Over,
}

/// How a run ended.
#[derive(Debug, PartialEq)]
pub(crate) struct Finished {
    /// What it did.
    pub(crate) counts: Counts,
    /// The refused batches.
    pub(crate) refusals: Vec<Failure>,
    /// The attempt that failed.
    pub(crate) failure: Option<Failure>,
}

impl Run {
    /// A run held back by the backoff: it sends nothing.
    pub(crate) fn held() -> Run {
        Run {
            held: true,
            ..Run::default()
        }
    }

    /// The batch being sent and its event being sent.
    pub(crate) fn current(&self) -> Option<(&Batch, usize)> {
        self.current.as_ref().map(|(b, unit)| (b, *unit))
    }

    /// Takes the verdict on the answer to the current request: a batch
    /// confirmed or refused leaves `queue`; a failed attempt ends the run.
    pub(crate) fn answered<N: Number>(
        &mut self,
        queue: &mut Queue<N>,
        verdict: Verdict,
        jsonp: bool,
    ) -> Step {
        let Some((batch, unit)) = self.current.take() else {
            return Step::Over;
        };
        let failure = Failure {
            problem: verdict.problem,
            from_server: verdict.from_server,
        };
        match verdict.fate {
            Fate::Sent if jsonp && unit + 1 < batch.events().len() => {
                self.current = Some((batch, unit + 1));
                Step::Unit
            }
            Fate::Sent => {
                self.sent += queue.remove(batch.id);
                Step::Settled { sent: true }
            }
            Fate::Dropped => {
                self.dropped += queue.remove(batch.id);
                self.refusals.push(failure);
                Step::Settled { sent: false }
            }
            Fate::Retry => {
                self.failure = Some((failure, verdict.retry_after));
                Step::Over
            }
        }
    }

    /// Makes the next batch not tried in this run the current one, after
    /// `seal` sealed it (which may drop its events whose claims lost: a
    /// batch left with none is gone, and the next is taken); false when
    /// every batch was tried.
    pub(crate) fn next<N: Number>(
        &mut self,
        queue: &mut Queue<N>,
        mut seal: impl FnMut(&mut Queue<N>, Uuid),
    ) -> bool {
        loop {
            let tried = &self.tried;
            let Some(id) = queue
                .batches()
                .iter()
                .find(|b| !tried.contains(&b.id))
                .map(|b| b.id)
            else {
                return false;
            };
            seal(queue, id);
            self.tried.push(id);
            if let Some(b) = queue.get(id) {
                self.current = Some((b.clone(), 0));
                return true;
            }
        }
    }

    /// The end of the run at `now`: the backoff after a failed attempt
    /// (jitter `u`; `queued` events are kept to retry), reset after a run
    /// that failed nothing (unless it was held back).
    pub(crate) fn finish(self, backoff: &mut Backoff, queued: usize, now: f64, u: f64) -> Finished {
        let requeued = match &self.failure {
            _ if self.held => 0,
            Some((_, retry_after)) => {
                backoff.failed(now, u, *retry_after);
                queued
            }
            None => {
                *backoff = Backoff::default();
                0
            }
        };
        Finished {
            counts: Counts {
                sent: self.sent,
                dropped: self.dropped,
                requeued,
            },
            refusals: self.refusals,
            failure: self.failure.map(|(f, _)| f),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use myna_core::{Code, Event, EventType};

    fn num(x: f64) -> alloc::string::String {
        serde_json::to_string(&x).unwrap()
    }

    type Q = Queue<fn(f64) -> alloc::string::String>;

    /// Two batches: e's of two events (1), f's of one (2).
    fn queue() -> Q {
        let mut q: Q = Queue::new(10, num);
        for (expt, ts, id) in [("e", 1, 1), ("e", 2, 1), ("f", 3, 2)] {
            let event = Event {
                typename: EventType::View,
                variant: "a".into(),
                amount: None,
                timestamp: ts,
            };
            q.push(expt, event, Default::default(), || Uuid::from_u128(id));
        }
        q
    }

    fn sent() -> Verdict {
        retry::judge(200, None, true, None)
    }

    fn seal(q: &mut Q, id: Uuid) {
        q.seal_settled(Some(id), |_, _| true);
    }

    #[test]
    fn a_run_sends_each_batch_once_and_counts_what_the_server_said() {
        let mut q = queue();
        let mut run = Run::default();
        assert!(run.next(&mut q, seal));
        assert_eq!(
            run.current().map(|(b, u)| (b.id, u)),
            Some((Uuid::from_u128(1), 0))
        );
        assert!(q.batches()[0].sealed, "sealed before it leaves");
        assert_eq!(
            run.answered(&mut q, sent(), false),
            Step::Settled { sent: true }
        );
        assert!(run.next(&mut q, seal));
        let refused = retry::judge(
            400,
            Some(Problem::new(Code::UnknownVariant, "x")),
            false,
            None,
        );
        assert_eq!(
            run.answered(&mut q, refused.clone(), false),
            Step::Settled { sent: false }
        );
        assert!(!run.next(&mut q, seal), "every batch tried");
        assert!(q.is_empty());
        let mut backoff = Backoff::default();
        let done = run.finish(&mut backoff, q.len(), 0.0, 0.5);
        assert_eq!(
            done.counts,
            Counts {
                sent: 2,
                dropped: 1,
                requeued: 0
            }
        );
        assert_eq!(
            done.refusals,
            vec![Failure {
                problem: refused.problem,
                from_server: true
            }]
        );
        assert_eq!(done.failure, None);
    }

    #[test]
    fn with_jsonp_each_event_is_one_request_and_the_batch_goes_after_the_last() {
        let mut q = queue();
        let mut run = Run::default();
        assert!(run.next(&mut q, seal));
        assert_eq!(run.answered(&mut q, sent(), true), Step::Unit);
        assert_eq!(run.current().map(|(_, u)| u), Some(1));
        assert_eq!(
            q.len(),
            3,
            "nothing leaves before its last event is confirmed"
        );
        assert_eq!(
            run.answered(&mut q, sent(), true),
            Step::Settled { sent: true }
        );
        assert_eq!(q.len(), 1);
        assert_eq!(
            run.answered(&mut q, sent(), true),
            Step::Over,
            "nothing being sent"
        );
    }

    #[test]
    fn a_failed_attempt_ends_the_run_and_backs_off_at_least_the_servers_retry_after() {
        let mut q = queue();
        let mut run = Run::default();
        assert!(run.next(&mut q, seal));
        let busy = retry::judge(503, None, false, Some(30_000.0));
        assert_eq!(run.answered(&mut q, busy.clone(), false), Step::Over);
        let mut backoff = Backoff::default();
        let done = run.finish(&mut backoff, q.len(), 1_000.0, 0.0);
        assert_eq!(
            done.counts,
            Counts {
                sent: 0,
                dropped: 0,
                requeued: 3
            }
        );
        assert_eq!(
            done.failure,
            Some(Failure {
                problem: busy.problem,
                from_server: true
            })
        );
        assert!(!backoff.due(30_999.0) && backoff.due(31_000.0));
        backoff.online();
        assert!(
            !backoff.due(30_999.0),
            "online does not cut the server's Retry-After"
        );
        // A later run that fails nothing resets it.
        Run::default().finish(&mut backoff, 0, 2_000.0, 0.0);
        assert!(backoff.due(0.0));
        // Without Retry-After, online retries at once.
        let mut run = Run::default();
        assert!(run.next(&mut q, seal));
        run.answered(&mut q, retry::unanswered(false), false);
        run.finish(&mut backoff, q.len(), 0.0, 0.0);
        assert!(!backoff.due(100.0));
        backoff.online();
        assert!(backoff.due(0.0));
    }

    #[test]
    fn a_held_run_leaves_the_backoff_as_it_was() {
        let mut backoff = Backoff::default();
        let mut run = Run::default();
        let mut q = queue();
        assert!(run.next(&mut q, seal));
        run.answered(&mut q, retry::unanswered(true), false);
        run.finish(&mut backoff, 3, 0.0, 0.0);
        assert!(!backoff.due(400.0));
        let done = Run::held().finish(&mut backoff, 3, 0.0, 0.0);
        assert_eq!(done.counts, Counts::default());
        assert!(!backoff.due(400.0), "still waiting");
    }

    #[test]
    fn a_batch_whose_every_event_lost_its_claim_is_skipped() {
        let mut q = queue();
        let mut run = Run::default();
        let drop_e = |q: &mut Q, id| {
            q.seal_settled(Some(id), |expt, _| expt != "e");
        };
        assert!(run.next(&mut q, drop_e));
        assert_eq!(run.current().map(|(b, _)| b.id), Some(Uuid::from_u128(2)));
        assert_eq!(q.len(), 1);
    }
}
