//! Experiments: create, read, update, delete, reset, search, export.

use myna_core::account::ok_answer;
use myna_core::export::ExportFormat;
use myna_core::query::check_given_once;
use myna_core::search::{SEARCH_PARAMS, parse_search};
use myna_core::{Access, Problem};
use poem::handler;
use poem::web::{Data, Path};
use poem::{Body, IntoResponse, Request, Response};

use super::extract::Owner;
use crate::answer::{Answer, Format, export_response};
use crate::auth::Caller;
use crate::request::{Params, experiment_uuid, read_body};
use crate::service::{decisions, experiments};
use crate::state::AppState;

/// `GET /v2/experiment/{uuid}` (JSONP with `callback`, `apikey` accepted).
#[utoipa::path(get, path = "/v2/experiment/{uuid}", operation_id = "readExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200; an identifier path (`cb`, `app.on_load`), no reserved word", max_length = 128, pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$"), ("apikey" = Option<String>, Query, description = "An API key, where a header cannot be set")), responses((status = 200, description = "The read form", content((crate::routes::openapi::Experiment = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("apiKey" = []), ("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn read(
    format: Format,
    caller: Caller,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let form = async {
        let uuid = experiment_uuid(&uuid)?;
        if caller.access() == Access::Complete {
            experiments::visible_fresh(state, caller, uuid).await?;
        }
        experiments::served_form(state, caller, uuid)
    }
    .await;
    Answer::new(format, form, state.now_ms())
}

/// `GET /v2/experiment/{uuid}/decision` (owner; JSONP with `callback`): the
/// decision form. An API key gets the answer of a missing experiment.
#[utoipa::path(get, path = "/v2/experiment/{uuid}/decision", operation_id = "decideExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200; an identifier path (`cb`, `app.on_load`), no reserved word", max_length = 128, pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")), responses((status = 200, description = "The decision form (owner only: an API key gets the 404 of a missing experiment)", content((crate::routes::openapi::Decision = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn decision(
    format: Format,
    caller: Caller,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let result = async {
        let uuid = experiment_uuid(&uuid)?;
        let Caller::Owner { account } = caller else {
            return Err(Problem::unknown_experiment(&uuid.to_string()));
        };
        let decision = decisions::decision(state, account, uuid).await?;
        Ok(decision.to_json().to_string())
    }
    .await;
    Answer::new(format, result, state.now_ms())
}

/// `GET /v2/experiment`: search (`q`, `visibility`, `sort`, `limit`, `skip`).
#[utoipa::path(get, path = "/v2/experiment", operation_id = "searchExperiments", tag = "experiments", params(("q" = Option<String>, Query, description = "Text in the name or the id, or the exact uuid"), ("visibility" = Option<String>, Query, description = "Comma list of draft, published, archived (default published)"), ("sort" = Option<String>, Query, description = "uuid-asc, uuid-desc, name-asc or name-desc"), ("limit" = Option<u32>, Query, description = "Default 25, at most 1000", maximum = 1000), ("skip" = Option<u64>, Query, description = "Default 0"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200; an identifier path (`cb`, `app.on_load`), no reserved word", max_length = 128, pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$"), ("apikey" = Option<String>, Query, description = "An API key, where a header cannot be set")), responses((status = 200, description = "The experiments found", content((crate::routes::openapi::ExperimentList = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("apiKey" = []), ("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn search(
    request: &Request,
    format: Format,
    caller: Caller,
    Data(state): Data<&AppState>,
) -> Answer {
    let params = Params::of(request);
    let query = check_given_once(params.names(), &SEARCH_PARAMS, &[])
        .and_then(|()| parse_search(|name| params.get(name)));
    let found = match query {
        Ok(query) => Ok(experiments::search(state, caller, &query).await),
        Err(problem) => Err(problem),
    };
    Answer::new(format, found, state.now_ms())
}

/// `POST /v2/experiment`: create (owner).
#[utoipa::path(post, path = "/v2/experiment", operation_id = "createExperiment", tag = "experiments", request_body = crate::routes::openapi::CreateBody, responses((status = 200, description = "The read form of the new experiment", body = crate::routes::openapi::Experiment), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn create(
    request: &Request,
    owner: Owner,
    Data(state): Data<&AppState>,
    body: Body,
) -> Answer {
    let result = async {
        let body = read_body(request, body).await?;
        let uuid = experiments::create_experiment(state, owner.account, &body).await?;
        experiments::read_form(state, owner.caller(), uuid)
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `PUT /v2/experiment/{uuid}`: update (owner).
#[utoipa::path(put, path = "/v2/experiment/{uuid}", operation_id = "updateExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid")), request_body = crate::routes::openapi::UpdateBody, responses((status = 200, description = "The read form after the update", body = crate::routes::openapi::Experiment), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn update(
    request: &Request,
    owner: Owner,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Answer {
    let result = async {
        let uuid = experiment_uuid(&uuid)?;
        experiments::visible_fresh(state, owner.caller(), uuid).await?;
        let body = read_body(request, body).await?;
        experiments::update_experiment(state, owner.account, uuid, body.into_bytes()).await?;
        experiments::read_form(state, owner.caller(), uuid)
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `DELETE /v2/experiment/{uuid}` (owner) → `{ "typename": "ok" }`.
#[utoipa::path(delete, path = "/v2/experiment/{uuid}", operation_id = "deleteExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid")), responses((status = 200, description = "Deleted", body = crate::routes::openapi::Ok), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn delete(
    owner: Owner,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let result = async {
        experiments::delete_experiment(state, owner.account, experiment_uuid(&uuid)?).await?;
        Ok(ok_answer().to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `POST /v2/experiment/{uuid}/reset` (owner): zero every count; body ignored.
#[utoipa::path(post, path = "/v2/experiment/{uuid}/reset", operation_id = "resetExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid")), responses((status = 200, description = "The read form, every count zero", body = crate::routes::openapi::Experiment), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn reset(owner: Owner, Data(state): Data<&AppState>, Path(uuid): Path<String>) -> Answer {
    let result = async {
        let uuid = experiment_uuid(&uuid)?;
        experiments::reset_experiment(state, owner.account, uuid).await?;
        experiments::read_form(state, owner.caller(), uuid)
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `GET /v2/experiment/{uuid}/export?format=csv|json` (owner; an API key
/// gets the missing answer): the hourly totals, streamed.
#[utoipa::path(get, path = "/v2/experiment/{uuid}/export", operation_id = "exportExperiment", tag = "experiments", params(("uuid" = uuid::Uuid, Path, description = "The experiment uuid"), ("format" = Option<String>, Query, description = "csv or json (default)")), responses((status = 200, description = "The hourly totals per variant, streamed", content((crate::routes::openapi::Export = "application/json"), (String = "text/csv"))), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn export(
    request: &Request,
    caller: Caller,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let params = Params::of(request);
    let exported = async {
        check_given_once(params.names(), &["format"], &[])?;
        let format = ExportFormat::parse(params.get("format"))?;
        let uuid = experiment_uuid(&uuid)?;
        let (experiment, hours) = experiments::export(state, caller, uuid).await?;
        Ok((format, experiment.public_uuid(), hours))
    }
    .await;
    match exported {
        Ok((format, uuid, hours)) => export_response(format, uuid, hours),
        Err(problem) => Answer::json(Err(problem), state.now_ms()).into_response(),
    }
}
