//! Recording events: `POST` a batch (JSON, or the same text as `text/plain`
//! from `sendBeacon`) or `GET` one event from URL parameters (JSONP); a
//! `HEAD` there records nothing (405).

use myna_core::event::{
    check_post_query, check_record_param_names, parse_record_body, parse_record_params,
};
use myna_core::{Code, Problem};
use poem::web::{Data, Path};
use poem::{Body, Request, handler};

use crate::answer::{Answer, Format};
use crate::auth::Caller;
use crate::request::{Params, experiment_uuid, read_body};
use crate::service::experiments;
use crate::state::AppState;

/// `POST /v2/experiment/{uuid}/record` (`apikey` parameter accepted).
#[utoipa::path(post, path = "/v2/experiment/{uuid}/record", operation_id = "recordEvents", tag = "record", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid"), ("apikey" = Option<String>, Query, description = "An API key, where a header cannot be set")), request_body = crate::routes::openapi::RecordBody, responses((status = 200, description = "The read form of the caller, once the events are durable", body = crate::routes::openapi::Experiment), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("apiKey" = []), ("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn record_post(
    request: &Request,
    caller: Caller,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Answer {
    let now = state.now_ms();
    let result = async {
        let uuid = experiment_uuid(&uuid)?;
        let experiment = experiments::visible(state, caller, uuid)?;
        check_post_query(Params::of(request).names())?;
        // The body (and its share of the body budget) goes once parsed,
        // not after the commit.
        let batch = parse_record_body(&read_body(request, body).await?, &experiment, now)?;
        experiments::take_record(state, caller, || state.guard.client(request), &batch, now)?;
        experiments::record(state, caller, uuid, batch).await
    }
    .await;
    Answer::json(result, now)
}

/// `GET /v2/experiment/{uuid}/record?typename=…&variant=…` (JSONP with
/// `callback`; Basic credentials are ignored, see [`crate::routes::extract`]).
#[utoipa::path(get, path = "/v2/experiment/{uuid}/record", operation_id = "recordEvent", tag = "record", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid"), ("typename" = String, Query, description = "view or reward"), ("variant" = String, Query, description = "A variant id"), ("amount" = Option<f64>, Query, description = "A reward amount in [0, 1] (also `reward`)"), ("timestamp" = Option<String>, Query, description = "Epoch milliseconds or RFC 3339"), ("batch" = Option<String>, Query, description = "A batch uuid: recorded once"), ("sentAt" = Option<f64>, Query, description = "When the sender sent it, in epoch milliseconds on its own clock: the timestamp is read on that clock"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200; an identifier path (`cb`, `app.on_load`), no reserved word", max_length = 128, pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$"), ("apikey" = Option<String>, Query, description = "An API key, where a header cannot be set")), responses((status = 200, description = "The read form of the caller", content((crate::routes::openapi::Experiment = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("apiKey" = []), ("bearer" = [])))]
#[handler]
pub async fn record_get(
    request: &Request,
    format: Format,
    caller: Caller,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let now = state.now_ms();
    let result = async {
        let uuid = experiment_uuid(&uuid)?;
        let experiment = experiments::visible(state, caller, uuid)?;
        let params = Params::of(request);
        check_record_param_names(params.names())?;
        let batch = parse_record_params(|name| params.get(name), &experiment, now)?;
        experiments::take_record(state, caller, || state.guard.client(request), &batch, now)?;
        experiments::record(state, caller, uuid, batch).await
    }
    .await;
    Answer::new(format, result, now)
}

/// `HEAD /v2/experiment/{uuid}/record`: 405. A link checker's or monitor's
/// HEAD records nothing (poem would otherwise answer it with the GET
/// handler, which records).
#[handler]
pub async fn record_head(format: Format, Data(state): Data<&AppState>) -> Answer {
    let problem = Problem::new(
        Code::MethodNotAllowed,
        "Record events with GET (JSONP) or POST; HEAD records nothing.",
    );
    Answer::new(format, Err(problem), state.now_ms())
}
