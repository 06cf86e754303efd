//! `GET` and `POST /experiments/new`: the form, and creating through the
//! API's create (core's `parse_create`).

use myna_core::{Code, Problem};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::actions::Done;
use super::forms::NewForm;
use super::status_of;
use crate::dashboard::views::edit::new_page;
use crate::dashboard::{html, posted, signed_in};
use crate::request::Params;
use crate::service::experiments::create_experiment;
use crate::state::AppState;

/// `GET /experiments/new?uuid=…`: the form for the experiment that will
/// get that uuid. Without one (the "New experiment" link), a redirect to
/// a new uuid's form, so that the browser's history holds the uuid: the
/// form shown again after Back sends the same uuid, and creates nothing
/// twice.
#[handler]
pub async fn new_form(request: &Request, Data(state): Data<&AppState>) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = Params::of(request);
    match params.get("uuid").map(uuid::Uuid::parse_str) {
        Some(Ok(uuid)) => {
            let uuid = uuid.to_string();
            let form = NewForm {
                uuid: &uuid,
                ..NewForm::default()
            };
            html::html(StatusCode::OK, new_page(&session.csrf, &form, None))
        }
        _ => html::redirect(
            &format!("/experiments/new?uuid={}", uuid::Uuid::new_v4()),
            &[],
        ),
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
