//! Recording events: `POST` a batch (JSON, or the same text as `text/plain`
//! from `sendBeacon`) or `GET` one event from URL parameters (JSONP).

use myna_core::Problem;
use myna_core::RecordBatch;
use myna_core::event::{parse_record_body, parse_record_params};
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use uuid::Uuid;

use super::caller;
use super::experiment::{read_form, visible};
use crate::answer::{Format, problem_response, result_response};
use crate::auth::Caller;
use crate::request::{Params, experiment_uuid, read_body};
use crate::state::AppState;
use crate::storage::Recording;

/// Commits a validated batch for the experiment the caller knows as `uuid`
/// (durably, exactly once per batch id) and answers the read form the
/// caller may see.
async fn commit(
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
        state.committer.record(recording).await?;
    }
    read_form(state, caller, uuid)
}

/// `POST /v2/experiment/{uuid}/record` (`apikey` parameter accepted).
#[handler]
pub async fn record_post(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    let now = state.now_ms();
    let result = async {
        let params = Params::of(request);
        let caller = caller(state, request, params.get("apikey")).await?;
        let uuid = experiment_uuid(&uuid)?;
        let experiment = visible(state, caller, uuid)?;
        let body = read_body(request, body).await?;
        let batch = parse_record_body(&body, &experiment, now)?;
        commit(state, caller, uuid, batch).await
    }
    .await;
    result_response(&Format::Json, result, now)
}

/// `GET /v2/experiment/{uuid}/record?typename=…&variant=…` (JSONP with `callback`).
#[handler]
pub async fn record_get(
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
        let uuid = experiment_uuid(&uuid)?;
        let experiment = visible(state, caller, uuid)?;
        let batch = parse_record_params(|name| params.get(name), &experiment, now)?;
        commit(state, caller, uuid, batch).await
    }
    .await;
    result_response(&format, result, now)
}
