//! Experiments: create, read, update, delete, reset, search.

use std::collections::HashMap;

use myna_core::account::ok_answer;
use myna_core::experiment::parse_create;
use myna_core::read_form::search_answer;
use myna_core::search::parse_search;
use myna_core::{Access, Problem, ReadForm};
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use uuid::Uuid;

use super::caller;
use crate::answer::{Format, problem_response, result_response};
use crate::auth::Caller;
use crate::commit::Change;
use crate::request::{Params, experiment_uuid, read_body};
use crate::state::AppState;

/// The read form of an experiment the caller may see (else 404): the cached
/// summary for an API key, the complete form for the owner.
///
/// `uuid` is the experiment's uuid as the caller knows it (its alias, for
/// one that has an alias), as in every function here taking a path uuid.
pub(super) fn read_form(state: &AppState, caller: Caller, uuid: Uuid) -> Result<String, Problem> {
    let missing = || missing(state, caller, uuid);
    let now = state.now_ms();
    let key = state.cache.resolve(caller.account(), uuid);
    let uuid = key;
    match caller.access() {
        Access::Summary => {
            let visible = state
                .cache
                .experiment(uuid)
                .is_some_and(|e| caller.sees(&e));
            let summary = visible.then(|| state.cache.summary(uuid, now)).flatten();
            summary.map(|s| s.to_string()).ok_or_else(missing)
        }
        Access::Complete => state
            .cache
            .snapshot(uuid, now)
            .filter(|s| caller.sees(&s.experiment))
            .map(|s| s.read_form(Access::Complete))
            .ok_or_else(missing),
    }
}

/// The experiment, if `caller` may see it (else the 404 problem).
pub(super) fn visible(
    state: &AppState,
    caller: Caller,
    uuid: Uuid,
) -> Result<std::sync::Arc<myna_core::Experiment>, Problem> {
    state
        .cache
        .experiment(state.cache.resolve(caller.account(), uuid))
        .filter(|e| caller.sees(e))
        .ok_or_else(|| missing(state, caller, uuid))
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

/// Creates an experiment from a create body (core's `parse_create`) for
/// `account`; its uuid (as its owner knows it). Shared by the API and the
/// dashboard.
pub(crate) async fn create_experiment(
    state: &AppState,
    account: Uuid,
    body: &[u8],
) -> Result<Uuid, Problem> {
    let experiment = parse_create(body)?.into_experiment(Uuid::new_v4(), account);
    let chosen = experiment.uuid;
    let created = state.committer.change(Change::Create(experiment)).await?;
    Ok(created.map_or(chosen, |e| e.public_uuid()))
}

/// Applies an update body (core's `apply_update`, in the commit writer) to
/// `account`'s experiment. Shared by the API and the dashboard.
pub(crate) async fn update_experiment(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
    body: Vec<u8>,
) -> Result<(), Problem> {
    let change = Change::Update {
        uuid: state.cache.resolve(account, uuid),
        account,
        body,
    };
    state.committer.change(change).await?;
    Ok(())
}

/// Deletes `account`'s experiment. Shared by the API and the dashboard.
pub(crate) async fn delete_experiment(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
) -> Result<(), Problem> {
    state
        .committer
        .change(Change::Delete {
            uuid: state.cache.resolve(account, uuid),
            account,
        })
        .await?;
    Ok(())
}

/// Zeroes the counts of `account`'s experiment. Shared by the API and the
/// dashboard.
pub(crate) async fn reset_experiment(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
) -> Result<(), Problem> {
    state
        .committer
        .change(Change::Reset {
            uuid: state.cache.resolve(account, uuid),
            account,
        })
        .await?;
    Ok(())
}

/// `GET /v2/experiment/{uuid}` (JSONP with `callback`, `apikey` accepted).
#[handler]
pub async fn read(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let now = state.now_ms();
    let params = Params::of(request);
    let format = match Format::from_callback(params.get("callback")) {
        Ok(format) => format,
        Err(refusal) => return problem_response(&Format::Json, &refusal, now),
    };
    let result = async {
        let caller = caller(state, request, params.get("apikey")).await?;
        read_form(state, caller, experiment_uuid(&uuid)?)
    }
    .await;
    result_response(&format, result, now)
}

/// `GET /v2/experiment`: search (`q`, `visibility`, `sort`, `limit`, `skip`).
#[handler]
pub async fn search(request: &Request, Data(state): Data<&AppState>) -> Response {
    let now = state.now_ms();
    let params = Params::of(request);
    let format = match Format::from_callback(params.get("callback")) {
        Ok(format) => format,
        Err(refusal) => return problem_response(&Format::Json, &refusal, now),
    };
    let result = async {
        let caller = caller(state, request, params.get("apikey")).await?;
        let query = parse_search(|name| params.get(name))?;
        let mine: Vec<_> = state
            .cache
            .all(now)
            .into_iter()
            .filter(|s| s.experiment.account_id == caller.account())
            .collect();
        let weights: HashMap<Uuid, &[f64]> = mine
            .iter()
            .map(|s| (s.experiment.uuid, &s.weights[..]))
            .collect();
        let found = query.apply(mine.iter().map(|s| s.experiment.as_ref()), caller.access());
        let forms: Vec<ReadForm> = found
            .into_iter()
            .map(|e| {
                ReadForm::new(
                    e,
                    caller.access(),
                    weights.get(&e.uuid).copied().unwrap_or(&[]),
                )
            })
            .collect();
        Ok(search_answer(&forms).to_string())
    }
    .await;
    result_response(&format, result, now)
}

/// `POST /v2/experiment`: create (owner).
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let body = read_body(request, body).await?;
        let uuid = create_experiment(state, account, &body).await?;
        read_form(state, Caller::Owner { account }, uuid)
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}

/// `PUT /v2/experiment/{uuid}`: update (owner).
#[handler]
pub async fn update(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let caller = Caller::Owner { account };
        let uuid = experiment_uuid(&uuid)?;
        visible(state, caller, uuid)?;
        let body = read_body(request, body).await?;
        update_experiment(state, account, uuid, body).await?;
        read_form(state, caller, uuid)
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}

/// `DELETE /v2/experiment/{uuid}` (owner) → `{ "typename": "ok" }`.
#[handler]
pub async fn delete(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        delete_experiment(state, account, experiment_uuid(&uuid)?).await?;
        Ok(ok_answer().to_string())
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}

/// `POST /v2/experiment/{uuid}/reset` (owner): zero every count; body ignored.
#[handler]
pub async fn reset(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let uuid = experiment_uuid(&uuid)?;
        reset_experiment(state, account, uuid).await?;
        read_form(state, Caller::Owner { account }, uuid)
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}
