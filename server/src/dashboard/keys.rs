//! The API keys page: create, list, revoke (the same storage calls and key
//! cache eviction as `/v2/apikey`).

use maud::Markup;
use myna_core::Problem;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde_json::json;
use uuid::Uuid;

use super::html;
use super::session::Session;
use super::views::{keys::keys_page, notice as notice_box};
use super::{not_found, posted, signed_in};
use crate::dashboard::views::Nav;
use crate::proxy::api_root;
use crate::request::Params;
use crate::service::keys::{create_api_key, revoke_api_key};
use crate::state::AppState;

/// The notice a `done` parameter asks for (never the parameter's text).
fn notice(params: &Params) -> Option<Markup> {
    match params.get("done") {
        Some("created") => Some(notice_box("The API key was created.")),
        Some("revoked") => Some(notice_box("The API key was revoked.")),
        _ => None,
    }
}

/// `GET /keys`.
#[handler]
pub async fn list(request: &Request, Data(state): Data<&AppState>) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = Params::of(request);
    let root = api_root(state.public_url.as_deref(), request);
    match state.storage.api_keys(session.account).await {
        Ok(keys) => html::html(
            StatusCode::OK,
            keys_page(&session.csrf, &root, &keys, notice(&params), None, ""),
        ),
        Err(error) => {
            let problem = Problem::from(error);
            html::html(
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                keys_page(&session.csrf, &root, &[], None, Some(&problem), ""),
            )
        }
    }
}

/// `POST /keys`: a new key (name checked by core, as `POST /v2/apikey`).
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let name = form.get("name").map(str::trim).filter(|n| !n.is_empty());
    let body = json!({ "name": name }).to_string();
    match create_api_key(state, session.account, body.as_bytes()).await {
        Ok(_) => html::redirect("/keys?done=created", &[]),
        Err(problem) => {
            let typed = form.get("name").unwrap_or("");
            keys_problem(state, request, &session, &problem, typed).await
        }
    }
}

/// `POST /keys/{uuid}/revoke`.
#[handler]
pub async fn revoke(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    let (session, _) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let Ok(uuid) = Uuid::parse_str(&uuid) else {
        return not_found(&session, Nav::Elsewhere, "API key");
    };
    match revoke_api_key(state, session.account, uuid).await {
        Ok(true) => html::redirect("/keys?done=revoked", &[]),
        Ok(false) => not_found(&session, Nav::Elsewhere, "API key"),
        Err(problem) => keys_problem(state, request, &session, &problem, "").await,
    }
}

/// The keys page again, with the problem of a create or revoke on top
/// (and the name a refused create typed).
async fn keys_problem(
    state: &AppState,
    request: &Request,
    session: &Session,
    problem: &Problem,
    typed: &str,
) -> Response {
    let keys = state
        .storage
        .api_keys(session.account)
        .await
        .unwrap_or_default();
    html::html(
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        keys_page(
            &session.csrf,
            &api_root(state.public_url.as_deref(), request),
            &keys,
            None,
            Some(problem),
            typed,
        ),
    )
}
