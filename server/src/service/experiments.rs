//! Experiments: what the API's and the dashboard's experiment endpoints do,
//! once their request is read. Which experiments a caller sees is decided
//! here only: those of its account ([`of_account`]), and among them those
//! its access may see, by the uuid it knows them by ([`snapshot`],
//! [`visible`]); another account's experiment is exactly a missing one.

use std::collections::HashMap;
use std::sync::Arc;

use myna_core::experiment::parse_create;
use myna_core::read_form::search_text;
use myna_core::search::SearchQuery;
use myna_core::{Access, Experiment, Problem, ReadForm, RecordBatch};
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::throttle::ClientKey;
use crate::cache::Snapshot;
use crate::commit::Change;
pub use crate::commit::Precondition;
use crate::state::AppState;
use crate::storage::{HourTotals, Recording};

/// Every experiment of `account`, as the cache has it now (with weights).
pub fn of_account(state: &AppState, account: Uuid) -> Vec<Snapshot> {
    state.cache.snapshots_of_account(account, state.now_ms())
}

/// The experiment `caller` knows as `uuid` (its alias, for one that has an
/// alias, as in every function here taking a uuid), with its weights, if
/// `caller` may see it.
pub fn snapshot(state: &AppState, caller: Caller, uuid: Uuid) -> Option<Snapshot> {
    state
        .cache
        .snapshot(state.cache.resolve(caller.account(), uuid), state.now_ms())
        .filter(|s| caller.sees(&s.experiment))
}

/// The experiment, if `caller` may see it (else the 404 problem).
pub fn visible(state: &AppState, caller: Caller, uuid: Uuid) -> Result<Arc<Experiment>, Problem> {
    state
        .cache
        .experiment(state.cache.resolve(caller.account(), uuid))
        .filter(|e| caller.sees(e))
        .ok_or_else(|| missing(state, caller, uuid))
}

/// [`visible`] for the account's owner, who may have just created it
/// through another instance on a shared database: on a miss, the
/// experiment is taken from the database before the answer is a 404 (one
/// query, for credentials of the account only; an API key's miss is
/// [`visible`]'s).
pub async fn visible_fresh(
    state: &AppState,
    caller: Caller,
    uuid: Uuid,
) -> Result<Arc<Experiment>, Problem> {
    match visible(state, caller, uuid) {
        Err(_) if state.storage.shared() && caller.access() == Access::Complete => {
            let account = caller.account();
            let fetch = Change::Fetch {
                uuid: state.cache.resolve(account, uuid),
                account,
            };
            state.committer.change(fetch).await?;
            visible(state, caller, uuid)
        }
        seen => seen,
    }
}

/// The read form of an experiment the caller may see (else 404): the cached
/// summary for an API key, the complete form for the owner.
pub fn read_form(state: &AppState, caller: Caller, uuid: Uuid) -> Result<String, Problem> {
    form(state, caller, uuid, Serve::Read)
}

/// The read form a page chooses a variant by (read, record): like
/// [`read_form`], and its weights counted as served this hour (the
/// decision's sample-ratio check compares the views with them).
pub fn served_form(state: &AppState, caller: Caller, uuid: Uuid) -> Result<String, Problem> {
    form(state, caller, uuid, Serve::Page)
}

/// What a read form answers.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    /// A read: not counted as served.
    Read,
    /// A page's read or record: its weights counted as served.
    Page,
    /// A record the writer stored: as [`Serve::Page`], whatever the
    /// experiment's visibility now (the writer checked it as it took the
    /// batch; set to draft since, it is still answered as recorded).
    Recorded,
}

fn form(state: &AppState, caller: Caller, uuid: Uuid, serve: Serve) -> Result<String, Problem> {
    let missing = || missing(state, caller, uuid);
    let now = state.now_ms();
    let key = state.cache.resolve(caller.account(), uuid);
    let shown = |e: &Experiment| {
        caller.sees(e) || (serve == Serve::Recorded && e.account_id == caller.account())
    };
    match caller.access() {
        Access::Summary => {
            let visible = state.cache.experiment(key).is_some_and(|e| shown(&e));
            let summary = visible
                .then(|| {
                    if serve == Serve::Read {
                        state.cache.summary(key, now)
                    } else {
                        state.cache.serve_summary(key, now)
                    }
                })
                .flatten();
            summary.map(|s| String::from(&*s)).ok_or_else(missing)
        }
        Access::Complete => {
            let snapshot = if serve == Serve::Read {
                state.cache.snapshot(key, now)
            } else {
                state.cache.serve_snapshot(key, now)
            };
            snapshot
                .filter(|s| shown(&s.experiment))
                .map(|s| s.read_form(Access::Complete))
                .ok_or_else(missing)
        }
    }
}

/// An experiment the caller owns (an API key gets the missing answer) and
/// its hourly totals in the export's order: hours oldest first, variants in
/// creation order within an hour.
pub async fn export(
    state: &AppState,
    caller: Caller,
    uuid: Uuid,
) -> Result<(Arc<Experiment>, Vec<HourTotals>), Problem> {
    if caller.access() != Access::Complete {
        return Err(missing(state, caller, uuid));
    }
    let experiment = visible_fresh(state, caller, uuid).await?;
    let mut hours = state.storage.hourly(experiment.uuid).await?;
    let position: HashMap<&str, usize> = experiment
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id.as_str(), i))
        .collect();
    hours.sort_by_key(|h| (h.hour_ms, position.get(h.variant.as_str()).copied()));
    Ok((experiment, hours))
}

/// The problem for an experiment the cache cannot answer: 404, or a 500 for
/// one that exists but cannot be read, to a caller who would see it.
fn missing(state: &AppState, caller: Caller, uuid: Uuid) -> Problem {
    let theirs = state.cache.unreadable(uuid).is_some_and(|u| {
        u.account_id == Some(caller.account())
            && (caller.access() == Access::Complete
                || u.visibility.is_some_and(|v| caller.access().may_see(v)))
    });
    if theirs {
        Problem::unreadable_experiment(&uuid.to_string())
    } else {
        Problem::unknown_experiment(&uuid.to_string())
    }
}

/// The search answer: the caller's experiments that `search` finds, in the
/// read form its access may see (each one's weights counted as served: a
/// page connecting chooses variants by them).
/// Built in a turn of [`AppState::large_answers`](crate::state::Shared::large_answers).
pub async fn search(state: &AppState, caller: Caller, search: &SearchQuery) -> String {
    let _turn = state.large_answers.take(caller.account()).await;
    let now = state.now_ms();
    // Every experiment of the account is read, but weights are taken (and
    // refreshed where due) only for those answered, at most `limit`; one
    // changed meanwhile is answered as it is now, if the caller still sees it.
    let mine = state.cache.of_account_named(caller.account());
    let named = mine.iter().map(|(e, name)| (e.as_ref(), Some(&name[..])));
    let found = search.apply_named(named, caller.access());
    let answered: Vec<Snapshot> = found
        .into_iter()
        .filter_map(|e| state.cache.snapshot(e.uuid, now))
        .filter(|s| caller.sees(&s.experiment))
        .collect();
    for snapshot in &answered {
        state.cache.served(snapshot, now);
    }
    let forms: Vec<ReadForm> = answered
        .iter()
        .map(|s| ReadForm::new(&s.experiment, caller.access(), &s.weights))
        .collect();
    search_text(&forms)
}

/// Creates an experiment from a create body (core's `parse_create`) for
/// `account`; its uuid (as its owner knows it). Without an `id` in the body
/// it gets the default from its name, unique among the account's
/// experiments (`hero`, `hero-2`, …).
pub async fn create_experiment(
    state: &AppState,
    account: Uuid,
    body: &[u8],
) -> Result<Uuid, Problem> {
    let new = parse_create(body)?;
    let id_chosen = new.id.is_some();
    let experiment = new.into_experiment(Uuid::new_v4(), account);
    let chosen = experiment.uuid;
    let change = Change::Create {
        experiment,
        id_chosen,
    };
    let created = state.committer.change(change).await?;
    Ok(created.map_or(chosen, |e| e.public_uuid()))
}

/// Applies an update body (core's `apply_update`, in the commit writer) to
/// `account`'s experiment.
pub async fn update_experiment(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
    body: Vec<u8>,
) -> Result<(), Problem> {
    update_experiment_unless(state, account, uuid, body, None).await
}

/// Takes `account`'s experiment as stored into the cache (on a database
/// other instances share, their changes may not have reached it yet).
pub async fn reread(state: &AppState, account: Uuid, uuid: Uuid) -> Result<(), Problem> {
    change_owned(state, account, uuid, |uuid| Change::Fetch { uuid, account }).await
}

/// Applies the change `made` for `account`'s experiment known as `uuid`
/// (resolved to the experiment it names for the account).
async fn change_owned(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
    made: impl FnOnce(Uuid) -> Change,
) -> Result<(), Problem> {
    let uuid = state.cache.resolve(account, uuid);
    state.committer.change(made(uuid)).await?;
    Ok(())
}

/// Applies an update body to `account`'s experiment if `unless` (checked on
/// the experiment as stored, in the update's transaction) passes.
pub async fn update_experiment_unless(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
    body: Vec<u8>,
    unless: Option<Precondition>,
) -> Result<(), Problem> {
    let update = |uuid| Change::Update {
        uuid,
        account,
        body,
        unless,
    };
    change_owned(state, account, uuid, update).await
}

/// Deletes `account`'s experiment.
pub async fn delete_experiment(state: &AppState, account: Uuid, uuid: Uuid) -> Result<(), Problem> {
    change_owned(state, account, uuid, |uuid| Change::Delete {
        uuid,
        account,
    })
    .await
}

/// Zeroes the counts of `account`'s experiment.
pub async fn reset_experiment(state: &AppState, account: Uuid, uuid: Uuid) -> Result<(), Problem> {
    change_owned(state, account, uuid, |uuid| Change::Reset { uuid, account }).await
}

/// Takes a parsed batch's events from the allowance of `caller`'s client
/// under `--record-limit` (API keys only; the client asked of `client`
/// only then), or refuses the batch whole (see
/// [`crate::auth::record_limit`]).
pub fn take_record(
    state: &AppState,
    caller: Caller,
    client: impl FnOnce() -> ClientKey,
    batch: &RecordBatch,
    now_ms: i64,
) -> Result<(), Problem> {
    let (Some(limit), Caller::Key { .. }) = (&state.record_limit, caller) else {
        return Ok(());
    };
    // Its one refusal is a 429 `rate-limited`: every one is counted.
    let taken = limit.take(client(), batch.events.len(), now_ms);
    if taken.is_err() {
        state.metrics.batches_limited.inc();
    }
    taken
}

/// Commits a validated batch for the experiment the caller knows as `uuid`
/// (durably, exactly once per batch id) and answers the read form the
/// caller may see (once stored, even if hidden from it since: [`Serve`]).
pub async fn record(
    state: &AppState,
    caller: Caller,
    uuid: Uuid,
    batch: RecordBatch,
) -> Result<String, Problem> {
    if !batch.events.is_empty() {
        let recording = Recording {
            experiment: state.cache.resolve(caller.account(), uuid),
            batch,
        };
        state.committer.record(recording, caller.access()).await?;
        return form(state, caller, uuid, Serve::Recorded);
    }
    served_form(state, caller, uuid)
}
