//! `GET` and `POST /experiments/new`: the form, and creating through the
//! API's create (core's `parse_create`).

use myna_core::{Code, Problem};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::forms::{Done, NewForm};
use super::status_of;
use crate::dashboard::views::edit::new_page;
use crate::dashboard::{html, posted, signed_in};
use crate::service::experiments::create_experiment;
use crate::state::AppState;

/// `GET /experiments/new`.
#[handler]
pub async fn new_form(request: &Request, Data(state): Data<&AppState>) -> Response {
    match signed_in(state, request).await {
        Ok(session) => html::html(
            StatusCode::OK,
            new_page(&session.csrf, &NewForm::default(), None),
        ),
        Err(redirect) => redirect,
    }
}

/// `POST /experiments/new`: core's `parse_create` through the API's create.
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let values = NewForm::of(&form);
    let result = match values.create_body() {
        Ok(body) => create_experiment(state, session.account, body.to_string().as_bytes()).await,
        Err(problem) => Err(problem),
    };
    match result {
        Ok(uuid) => html::redirect(
            &format!("/experiments/{uuid}?done={}", Done::Created.param()),
            &[],
        ),
        Err(problem) => match sent_before(&values, &problem) {
            // The form's uuid is taken: this form created it before.
            Some(uuid) => html::redirect(
                &format!("/experiments/{uuid}?done={}", Done::SentBefore.param()),
                &[],
            ),
            None => html::html(
                status_of(&problem),
                new_page(&session.csrf, &values, Some(&problem)),
            ),
        },
    }
}

/// The experiment a new-experiment form created when it was sent before:
/// its uuid, when the only problem is that the account has it already.
fn sent_before(values: &NewForm<'_>, problem: &Problem) -> Option<uuid::Uuid> {
    let taken = problem.code() == Code::Conflict
        && problem
            .messages
            .iter()
            .all(|m| m.path.as_deref() == Some("uuid"));
    taken
        .then(|| uuid::Uuid::parse_str(values.uuid).ok())
        .flatten()
}
