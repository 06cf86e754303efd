//! Webhooks: an account's URLs (the API's `/v2/webhook` and the dashboard's
//! webhooks page), the watcher that turns changes of decision into
//! deliveries ([`check_now`]), and the sender ([`deliver_now`], in
//! `sender`). Both run as background tasks ([`watch`], [`send`]), never on
//! the record path: a receiver that is slow or down costs its own
//! deliveries time, never a request.
//!
//! A change is notified at most once: the observation and its deliveries
//! are stored in one guarded transaction (`Storage::observe`), so a check
//! repeated, run by several instances or after a restart finds it done.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use myna_core::limits::{MAX_EXPERIMENTS, MAX_WEBHOOKS, account_full};
use myna_core::webhook::{Observation, event_body, events, parse_webhook_create};
use myna_core::{Code, Experiment, Problem, Visibility};
use uuid::Uuid;

pub use super::sender::{
    CLAIM_MS, MAX_ATTEMPTS, PER_WEBHOOK, SEND_EVERY, SENDING_AT_ONCE, deliver_now, retry_after_ms,
    send,
};
use crate::service::decisions::decision_of;
use crate::state::{AppState, WeakState};
use crate::storage::{AttemptLog, Delivery, Notice, Observed, StorageError, Webhook};

/// How often the watcher looks at the decisions.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Deliveries kept per webhook (the latest); older ones are deleted once
/// finished (delivered or given up), never while pending.
pub const KEEP_DELIVERIES: usize = 100;
/// Pending deliveries kept per webhook, far beyond real use (an account
/// holds [`MAX_EXPERIMENTS`], each told at most once per hold). Beyond it
/// the oldest pending are dropped, logged.
pub const MAX_PENDING: usize = MAX_EXPERIMENTS;
/// After a change of an experiment is told, its next is held this long (10
/// minutes): changes meanwhile are told once at its end, against what was
/// told (one undone meanwhile, not at all). A public key can move counts,
/// so flip a health check (a reward without a view, then a view): each
/// flip told would flood the owner's webhooks. The time told is stored
/// with the observation, so the hold outlasts restarts and binds every
/// instance.
pub const HOLD_MS: i64 = 600_000;

/// An experiment whose decision took `t` to compute is computed again at
/// the earliest `PACE × t` later (when `t` is over [`PACED_FROM`]): the
/// watcher spends at most about 1/PACE of its time on any one experiment.
pub const PACE: u32 = 20;

/// Decisions quicker than this are computed every round they changed.
pub const PACED_FROM: Duration = Duration::from_millis(100);

/// The longest an experiment's decision waits for its turn.
pub const MAX_PACED: Duration = Duration::from_secs(600);

/// The secret of webhook `uuid`: the HMAC of its uuid under the server
/// secret, as lower-case hex. Derived again whenever needed, never stored.
pub fn webhook_secret(state: &AppState, uuid: Uuid) -> String {
    state.secret.sign_hex("webhook", &[uuid.as_bytes()])
}

/// Registers a webhook for `account` from a create body (`{ "url": … }`,
/// checked by core): the webhook and its secret (shown this once). 409 if
/// the account has [`MAX_WEBHOOKS`] already, or one with this URL.
pub async fn create_webhook(
    state: &AppState,
    account: Uuid,
    body: &[u8],
) -> Result<(Webhook, String), Problem> {
    let webhook = Webhook {
        uuid: Uuid::new_v4(),
        account_id: account,
        url: parse_webhook_create(body)?,
        created_ms: state.now_ms(),
    };
    if !state.storage.create_webhook(&webhook, MAX_WEBHOOKS).await? {
        let hooks = state.storage.webhooks(account).await?;
        return Err(if hooks.iter().any(|w| w.url == webhook.url) {
            // A form posted twice (a reload) must not deliver every event twice.
            Problem::new(
                Code::Conflict,
                "This URL is a webhook of the account already: its secret was shown once, \
                 when it was added (for a new one, delete the webhook and add it again).",
            )
        } else {
            account_full("webhooks", MAX_WEBHOOKS, "delete one first")
        });
    }
    let secret = webhook_secret(state, webhook.uuid);
    Ok((webhook, secret))
}

/// The account's webhooks, oldest first.
pub async fn webhooks(state: &AppState, account: Uuid) -> Result<Vec<Webhook>, Problem> {
    Ok(state.storage.webhooks(account).await?)
}

/// Deletes `account`'s webhook and its deliveries; false if the account
/// has no such webhook.
pub async fn delete_webhook(state: &AppState, account: Uuid, uuid: Uuid) -> Result<bool, Problem> {
    Ok(state.storage.delete_webhook(account, uuid).await?)
}

/// The account's latest deliveries (at most `limit`), newest first, each
/// with its attempts (oldest first).
pub async fn deliveries(
    state: &AppState,
    account: Uuid,
    limit: usize,
) -> Result<Vec<(Delivery, Vec<AttemptLog>)>, Problem> {
    let deliveries = state.storage.deliveries(account, limit).await?;
    let mut attempts: HashMap<i64, Vec<AttemptLog>> = HashMap::new();
    for attempt in state.storage.attempts(account, limit).await? {
        attempts.entry(attempt.delivery).or_default().push(attempt);
    }
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let tried = attempts.remove(&d.id).unwrap_or_default();
            (d, tried)
        })
        .collect())
}

/// What an experiment's decision depends on, hashed: its settings (the
/// thresholds), visibility, variants and counts, and the hour of `now_ms`
/// (the checks that depend on time move by whole hours).
fn fingerprint(experiment: &Experiment, now_ms: i64) -> u64 {
    let mut hasher = DefaultHasher::new();
    experiment.settings.to_string().hash(&mut hasher);
    experiment.visibility.as_str().hash(&mut hasher);
    for variant in &experiment.variants {
        variant.id.hash(&mut hasher);
        variant.views.hash(&mut hasher);
        variant.total_reward.to_bits().hash(&mut hasher);
    }
    now_ms.div_euclid(3_600_000).hash(&mut hasher);
    hasher.finish()
}

/// One round of the watcher: for every experiment (not archived) of the
/// accounts that have webhooks, the decision now against the observation
/// last notified; a change is stored with one delivery per event and
/// webhook. Answers how many events were stored. An experiment whose
/// decision cannot be computed now is skipped (logged) until next round;
/// one whose counts, definition and hour are as at its last look is not
/// computed again.
pub async fn check_now(state: &AppState) -> Result<usize, StorageError> {
    let accounts: HashSet<Uuid> = state
        .storage
        .webhook_accounts()
        .await?
        .into_iter()
        .collect();
    if accounts.is_empty() {
        return Ok(0);
    }
    let observed: HashMap<Uuid, Observed> = state
        .storage
        .observations()
        .await?
        .into_iter()
        .map(|o| (o.experiment, o))
        .collect();
    // Only those accounts' experiments, not every account's.
    let now_ms = state.now_ms();
    let mut experiments: Vec<_> = accounts
        .iter()
        .flat_map(|account| state.cache.snapshots_of_account(*account, now_ms))
        .map(|s| s.experiment)
        .filter(|e| e.visibility != Visibility::Archived)
        .collect();
    experiments.sort_by_key(|e| e.uuid);
    let watch = || {
        state
            .webhook_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    let seen = std::mem::take(&mut watch().seen);
    let mut not_before = std::mem::take(&mut watch().not_before);
    let mut looked = HashMap::with_capacity(experiments.len());
    let mut told = 0;
    for experiment in experiments {
        let now_ms = state.now_ms();
        let print = fingerprint(&experiment, now_ms);
        if seen.get(&experiment.uuid) == Some(&print) {
            looked.insert(experiment.uuid, print);
            continue;
        }
        if not_before
            .get(&experiment.uuid)
            .is_some_and(|at| now_ms < *at)
        {
            // Computed again when its turn comes (not in `looked`).
            continue;
        }
        let computing = Instant::now();
        let decided = decision_of(state, &experiment, now_ms).await;
        let took = computing.elapsed();
        match paced_until(now_ms, took) {
            Some(at) => not_before.insert(experiment.uuid, at),
            None => not_before.remove(&experiment.uuid),
        };
        let decision = match decided {
            Ok(decision) => decision,
            Err(error) => {
                tracing::warn!(%error, experiment = %experiment.uuid, "no decision for webhooks");
                continue;
            }
        };
        let observation = Observation::of(&decision);
        let stored = observed.get(&experiment.uuid);
        let previous = stored.map(|o| &o.observation);
        if previous == Some(&observation) {
            looked.insert(experiment.uuid, print);
            continue;
        }
        let known_as = experiment.alias.unwrap_or(experiment.uuid);
        let events: Vec<_> = events(previous, &observation)
            .into_iter()
            .map(|event| (event, event_body(event, known_as, now_ms, &decision)))
            .collect();
        let held = stored
            .and_then(|o| o.told_ms)
            .is_some_and(|told| now_ms - told < HOLD_MS);
        if held && !events.is_empty() {
            // Looked at again next round (not in `looked`), told at the
            // hold's end if it still differs from what was told.
            continue;
        }
        let notice = Notice {
            experiment: experiment.uuid,
            account_id: experiment.account_id,
            previous,
            observation: &observation,
            events,
            now_ms,
        };
        match state.storage.observe(&notice).await {
            Ok(true) => {
                told += notice.events.len();
                looked.insert(experiment.uuid, print);
            }
            // Another instance stored a change first: looked at again next
            // round, against what it stored.
            Ok(false) => {}
            // The database is away: the round stops (and is logged once).
            Err(error @ StorageError::Unavailable(_)) => return Err(error),
            // This experiment only (deleted meanwhile, say): the others go on.
            Err(error) => {
                tracing::warn!(%error, experiment = %experiment.uuid, "storing a webhook change failed");
            }
        }
    }
    not_before.retain(|_, at| *at > state.now_ms());
    {
        let mut watch = watch();
        watch.seen = looked;
        watch.not_before = not_before;
    }
    if told > 0 {
        state.storage.prune_deliveries(KEEP_DELIVERIES).await?;
        for (webhook, dropped) in state.storage.drop_pending(MAX_PENDING).await? {
            tracing::warn!(
                %webhook,
                dropped,
                "webhook deliveries dropped unsent: over {MAX_PENDING} pending, the oldest go"
            );
        }
    }
    Ok(told)
}

/// When an experiment whose decision took `took` at `now_ms` is computed
/// again at the earliest (`None`: the next round it changed).
fn paced_until(now_ms: i64, took: Duration) -> Option<i64> {
    (took > PACED_FROM).then(|| now_ms + (took * PACE).min(MAX_PACED).as_millis() as i64)
}

/// The watcher task: [`check_now`] every [`CHECK_EVERY`] while the state
/// runs; a failing round is logged once until one works again.
pub async fn watch(state: WeakState) {
    every(
        state,
        CHECK_EVERY,
        "checking decisions for webhooks",
        |state| Box::pin(async move { check_now(&state).await.map(|_| ()) }),
    )
    .await;
}

type Round = std::pin::Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

async fn every(state: WeakState, period: Duration, what: &str, round: fn(AppState) -> Round) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        report(&mut failing, what, round(state).await);
    }
}

/// Logs how a background round went: a failure once (a warning) until one
/// works again (then that, once).
pub(super) fn report(failing: &mut bool, what: &str, outcome: Result<(), StorageError>) {
    match outcome {
        Ok(()) if *failing => {
            tracing::info!("{what} works again");
            *failing = false;
        }
        Ok(()) => {}
        Err(error) if !*failing => {
            tracing::warn!(%error, "{what} failed; retrying");
            *failing = true;
        }
        Err(error) => tracing::debug!(%error, "{what} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_decision_waits_twenty_times_as_long_at_most_ten_minutes() {
        let ms = Duration::from_millis;
        assert_eq!(paced_until(1_000, ms(40)), None, "quick: every round");
        assert_eq!(paced_until(1_000, ms(100)), None);
        assert_eq!(
            paced_until(1_000, ms(500)),
            Some(11_000),
            "0.5 s: 10 s later"
        );
        assert_eq!(
            paced_until(1_000, ms(5_000)),
            Some(101_000),
            "5 s: 100 s later"
        );
        assert_eq!(
            paced_until(1_000, ms(60_000)),
            Some(601_000),
            "at most 10 minutes"
        );
    }
}
