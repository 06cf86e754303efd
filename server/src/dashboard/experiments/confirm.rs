//! Reset and delete: `GET /experiments/{uuid}/reset` (and `/delete`) ask
//! first; the `POST` of that page does it through the API's own functions.

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use super::actions::{Action, Done};
use super::{owned, status_of};
use crate::dashboard::views::edit::{confirm_page, problem_page};
use crate::dashboard::{html, posted, signed_in};
use crate::service::experiments::{delete_experiment, reset_experiment};
use crate::state::AppState;

/// `GET /experiments/{uuid}/reset`: the confirmation.
#[handler]
pub async fn reset_form(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    confirm(state, request, &uuid, Action::Reset).await
}

/// `POST /experiments/{uuid}/reset`: the API's reset.
#[handler]
pub async fn reset(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    confirmed(state, request, &uuid, body, Action::Reset).await
}

/// `GET /experiments/{uuid}/delete`: the confirmation.
#[handler]
pub async fn delete_form(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    confirm(state, request, &uuid, Action::Delete).await
}

/// `POST /experiments/{uuid}/delete`: the API's delete.
#[handler]
pub async fn delete(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    confirmed(state, request, &uuid, body, Action::Delete).await
}

/// The confirmation page of `action` on the session's experiment `uuid`.
async fn confirm(state: &AppState, request: &Request, uuid: &str, action: Action) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match owned(state, &session, uuid).await {
        Ok(snapshot) => html::html(
            StatusCode::OK,
            confirm_page(&session.csrf, &snapshot.experiment, action),
        ),
        Err(missing) => *missing,
    }
}

/// A confirmed reset or delete (session, CSRF token and ownership checked),
/// through the API's own functions; then back to the experiment or the list.
async fn confirmed(
    state: &AppState,
    request: &Request,
    uuid: &str,
    body: Body,
    action: Action,
) -> Response {
    let (session, _) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let uuid = match owned(state, &session, uuid).await {
        Ok(snapshot) => snapshot.experiment.public_uuid(),
        Err(missing) => return *missing,
    };
    let (done, next) = match action {
        Action::Reset => (
            reset_experiment(state, session.account, uuid).await,
            format!("/experiments/{uuid}?done={}", Done::Reset.param()),
        ),
        Action::Delete => (
            delete_experiment(state, session.account, uuid).await,
            format!("/?done={}", Done::Deleted.param()),
        ),
    };
    match done {
        Ok(()) => html::redirect(&next, &[]),
        Err(problem) => html::html(status_of(&problem), problem_page(&session.csrf, &problem)),
    }
}
