//! The API keys page: create, list, revoke (the same storage calls and key
//! cache eviction as `/v2/apikey`).

use std::fmt::Write as _;

use myna_core::Problem;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde_json::json;
use uuid::Uuid;

use super::html::{self, Nav, csrf_field, esc};
use super::session::Session;
use super::{not_found, posted, signed_in};
use crate::request::Params;
use crate::service::keys::{create_api_key, revoke_api_key};
use crate::state::AppState;
use crate::storage::ApiKey;

fn keys_page(
    session: &Session,
    keys: &[ApiKey],
    notice: &str,
    problem: Option<&myna_core::Problem>,
) -> String {
    let mut body = String::from(notice);
    body.push_str("<h1>API keys</h1><p class=\"lead\">Pages use an API key to read published experiments and record events \
        (see each experiment's <q>Use it on your page</q>). Keys are public by design: they sit in page source and can do nothing else. \
        Revoking a key stops it at once.</p>");
    if let Some(problem) = problem {
        body.push_str(&html::problem_box(problem));
    }
    let _ = write!(
        body,
        "<form class=\"card inline\" method=\"post\" action=\"/keys\">{}\
         <p class=\"field grow\"><label for=\"key-name\">Name <span class=\"muted\">(where it is used, optional)</span></label>\
         <input id=\"key-name\" name=\"name\" maxlength=\"256\" placeholder=\"landing page\"></p>\
         <p class=\"field\"><button type=\"submit\" class=\"primary\">Create API key</button></p></form>",
        csrf_field(&session.csrf)
    );
    if keys.is_empty() {
        body.push_str("<p class=\"empty\">No API keys yet.</p>");
    } else {
        body.push_str(
            "<div class=\"table-wrap\"><table class=\"list\" id=\"keys\"><caption class=\"sr-only\">Your API keys, oldest first</caption>\
             <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Key</th><th scope=\"col\">Created</th>\
             <th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>",
        );
        for key in keys {
            let name = key.name.as_deref().unwrap_or("");
            let _ = write!(
                body,
                "<tr data-key=\"{uuid}\"><th scope=\"row\" data-label=\"Name\">{name}</th>\
                 <td data-label=\"Key\" class=\"mono\">{uuid}</td><td data-label=\"Created\">{created}</td>\
                 <td data-label=\"\"><form method=\"post\" action=\"/keys/{uuid}/revoke\">{csrf}\
                 <button type=\"submit\" class=\"danger small\" aria-label=\"Revoke the key {label}\">Revoke</button></form></td></tr>",
                uuid = key.uuid,
                name = if name.is_empty() {
                    "<span class=\"muted\">unnamed</span>".to_owned()
                } else {
                    esc(name)
                },
                label = esc(if name.is_empty() { "unnamed" } else { name }),
                created = esc(&html::time(key.created_ms)),
                csrf = csrf_field(&session.csrf),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    html::page("API keys", Nav::Keys, Some(&session.csrf), &body)
}

fn notice(params: &Params) -> String {
    match params.get("done") {
        Some("created") => html::notice("The API key was created."),
        Some("revoked") => html::notice("The API key was revoked."),
        _ => String::new(),
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
    match state.storage.api_keys(session.account).await {
        Ok(keys) => html::html(
            StatusCode::OK,
            keys_page(&session, &keys, &notice(&params), None),
        ),
        Err(error) => {
            let problem = myna_core::Problem::from(error);
            html::html(
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                keys_page(&session, &[], "", Some(&problem)),
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
        Err(problem) => keys_problem(state, &session, &problem).await,
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
        return not_found(&session, "API key");
    };
    match revoke_api_key(state, session.account, uuid).await {
        Ok(true) => html::redirect("/keys?done=revoked", &[]),
        Ok(false) => not_found(&session, "API key"),
        Err(problem) => keys_problem(state, &session, &problem).await,
    }
}

/// The keys page again, with the problem of a create or revoke on top.
async fn keys_problem(state: &AppState, session: &Session, problem: &Problem) -> Response {
    let keys = state
        .storage
        .api_keys(session.account)
        .await
        .unwrap_or_default();
    html::html(
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        keys_page(session, &keys, "", Some(problem)),
    )
}
