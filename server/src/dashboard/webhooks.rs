//! The webhooks page: add (the secret shown on the page that answers the
//! add, never again), delete, and the latest deliveries (the same service
//! calls as `/v2/webhook`).

use std::collections::HashMap;

use maud::Markup;
use myna_core::Problem;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde_json::json;
use uuid::Uuid;

use super::html;
use super::session::Session;
use super::views::notice as notice_box;
use super::views::webhooks::{Added, webhooks_page};
use super::{not_found, posted, signed_in};
use crate::dashboard::views::Nav;
use crate::request::Params;
use crate::service::experiments::of_account;
use crate::service::webhooks::{self, create_webhook, delete_webhook};
use crate::state::AppState;
use crate::storage::{AttemptLog, Delivery, Webhook};

/// Deliveries the page lists.
const LISTED_DELIVERIES: usize = 50;

/// The notice a `done` parameter asks for (never the parameter's text).
fn notice(params: &Params) -> Option<Markup> {
    match params.get("done") {
        Some("deleted") => Some(notice_box("The webhook was deleted.")),
        _ => None,
    }
}

/// The account's webhooks and latest deliveries.
async fn listed(
    state: &AppState,
    session: &Session,
) -> Result<(Vec<Webhook>, Vec<(Delivery, Vec<AttemptLog>)>), Problem> {
    let hooks = webhooks::webhooks(state, session.account).await?;
    let deliveries = webhooks::deliveries(state, session.account, LISTED_DELIVERIES).await?;
    Ok((hooks, deliveries))
}

/// The page with what `listed` found, or its problem.
async fn page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    notice: Option<Markup>,
    added: Option<Added<'_>>,
    problem: Option<(&Problem, &str)>,
) -> Response {
    let names: HashMap<Uuid, (Uuid, String)> = of_account(state, session.account)
        .into_iter()
        .map(|s| {
            let public = s.experiment.public_uuid();
            (s.experiment.uuid, (public, s.experiment.name.clone()))
        })
        .collect();
    match listed(state, session).await {
        Ok((hooks, deliveries)) => html::html(
            status,
            webhooks_page(
                &session.csrf,
                &hooks,
                &deliveries,
                &names,
                notice,
                added,
                problem,
            ),
        ),
        Err(error) => html::html(
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            webhooks_page(
                &session.csrf,
                &[],
                &[],
                &names,
                None,
                None,
                Some((&error, "")),
            ),
        ),
    }
}

fn status_of(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `GET /webhooks`.
#[handler]
pub async fn list(request: &Request, Data(state): Data<&AppState>) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = Params::of(request);
    page(state, &session, StatusCode::OK, notice(&params), None, None).await
}

/// `POST /webhooks`: a new webhook (URL checked by core, as `POST
/// /v2/webhook`), answered by the page with its secret (not a redirect: the
/// secret must not sit in a URL).
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let url = form.get("url").map(str::trim).unwrap_or_default();
    let body = json!({ "url": url }).to_string();
    match create_webhook(state, session.account, body.as_bytes()).await {
        Ok((webhook, secret)) => {
            let added = Added {
                webhook: &webhook,
                secret: &secret,
            };
            page(state, &session, StatusCode::OK, None, Some(added), None).await
        }
        Err(problem) => {
            page(
                state,
                &session,
                status_of(&problem),
                None,
                None,
                Some((&problem, url)),
            )
            .await
        }
    }
}

/// `POST /webhooks/{uuid}/delete`.
#[handler]
pub async fn delete(
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
        return not_found(&session, Nav::Elsewhere, "webhook");
    };
    match delete_webhook(state, session.account, uuid).await {
        Ok(true) => html::redirect("/webhooks?done=deleted", &[]),
        Ok(false) => not_found(&session, Nav::Elsewhere, "webhook"),
        Err(problem) => {
            page(
                state,
                &session,
                status_of(&problem),
                None,
                None,
                Some((&problem, "")),
            )
            .await
        }
    }
}
