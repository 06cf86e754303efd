//! `GET` and `POST /experiments/{uuid}`: an experiment's page, and its edit
//! form through the API's update (core's `apply_update` in the commit
//! writer); `GET /experiments/{uuid}/export.csv`, its hourly totals.

use std::sync::Arc;

use maud::Markup;
use myna_core::export::ExportFormat;
use myna_core::{Code, Experiment, Message, Problem};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use super::actions::Done;
use super::forms::{EditForm, definition_tag};
use super::{done_notice, owned, status_of};
use crate::answer::export_response;
use crate::auth::Caller;
use crate::cache::Snapshot;
use crate::dashboard::session::Session;
use crate::dashboard::views::Nav;
use crate::dashboard::views::experiment::{Extras, experiment_page};
use crate::dashboard::{html, posted, signed_in};
use crate::proxy::api_root;
use crate::request::Params;
use crate::service::decisions::decision_with_hourly;
use crate::service::experiments::{Precondition, export, reread, update_experiment_unless};
use crate::state::AppState;

/// `GET /experiments/{uuid}`: results, charts, snippet, edit form.
#[handler]
pub async fn show(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let snapshot = match owned(state, &session, &uuid).await {
        Ok(snapshot) => snapshot,
        Err(missing) => return *missing,
    };
    // "Reset to zero" only while it is true: a reload of `?done=reset`
    // after new events would say so of counts that are not zero.
    let counted = snapshot
        .experiment
        .variants
        .iter()
        .any(myna_core::Variant::has_counts);
    let params = Params::of(request);
    let notice = match Done::of(&params) {
        Some(Done::Reset) if counted => None,
        _ => done_notice(&params),
    };
    let form = EditForm::of(&snapshot.experiment);
    let page = render(state, request, &session, &snapshot, notice, None, &form).await;
    html::html(StatusCode::OK, page)
}

/// `GET /experiments/{uuid}/export.csv`: the hourly totals as a CSV
/// download (the API's export, for the session's account).
#[handler]
pub async fn export_csv(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let snapshot = match owned(state, &session, &uuid).await {
        Ok(snapshot) => snapshot,
        Err(missing) => return *missing,
    };
    let owner = Caller::Owner {
        account: session.account,
    };
    let uuid = snapshot.experiment.public_uuid();
    match export(state, owner, uuid).await {
        Ok((_, hours)) => export_response(ExportFormat::Csv, uuid, hours),
        Err(problem) => html::html(
            status_of(&problem),
            crate::dashboard::views::not_found(Nav::InExperiments, Some(&session.csrf), "history"),
        ),
    }
}

/// `POST /experiments/{uuid}`: the edit form, as an update body through the
/// API's update (core's `apply_update` in the commit writer).
#[handler]
pub async fn edit(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let mut snapshot = match owned(state, &session, &uuid).await {
        Ok(snapshot) => snapshot,
        Err(missing) => return *missing,
    };
    let uuid = snapshot.experiment.public_uuid();
    let mut values = EditForm::posted(&form);
    let now = definition_tag(&snapshot.experiment);
    let result = if values.was != now {
        // Changed since the page was loaded (the API, another page): saving
        // the whole form would undo that change unseen. The page shows the
        // experiment as it is now, the form with the owner's edits on top.
        let lost = values.edits_lost_on(&snapshot.experiment);
        values = values.merged_onto(&snapshot.experiment);
        Err(changed_elsewhere_losing(&lost))
    } else {
        match values.update_body(&snapshot.experiment) {
            Ok(body) => {
                // Checked again on the definition as stored, in the update:
                // on a shared database, another instance's change may not
                // have reached this one's cache yet.
                let was = values.was.clone();
                let unless = Precondition(Arc::new(move |stored: &Experiment| {
                    if definition_tag(stored) == was {
                        Ok(())
                    } else {
                        Err(changed_elsewhere())
                    }
                }));
                let body = body.to_string().into_bytes();
                let updated =
                    update_experiment_unless(state, session.account, uuid, body, Some(unless))
                        .await;
                if updated.as_ref().is_err_and(is_changed_elsewhere) {
                    // Shown as it is now (read from the database), tagged so.
                    let _ = reread(state, session.account, uuid).await;
                    if let Ok(fresh) = owned(state, &session, &uuid.to_string()).await {
                        snapshot = fresh;
                    }
                    let lost = values.edits_lost_on(&snapshot.experiment);
                    values = values.merged_onto(&snapshot.experiment);
                    updated.map_err(|_| changed_elsewhere_losing(&lost))
                } else {
                    updated
                }
            }
            Err(problem) => Err(problem),
        }
    };
    match result {
        Ok(()) => html::redirect(
            // `#main`: the notice on top, where the page starts.
            &format!("/experiments/{uuid}?done={}#main", Done::Saved.param()),
            &[],
        ),
        Err(problem) => {
            let page = render(
                state,
                request,
                &session,
                &snapshot,
                None,
                Some(&problem),
                &values,
            )
            .await;
            html::html(status_of(&problem), page)
        }
    }
}

/// The edit form's 409: the experiment changed since the page was loaded.
fn changed_elsewhere() -> Problem {
    Problem::one(Message::new(Code::Conflict, CHANGED_ELSEWHERE))
}

/// [`changed_elsewhere`], naming the variants deleted elsewhere whose
/// edits (`lost`) the form no longer holds.
fn changed_elsewhere_losing(lost: &[String]) -> Problem {
    let mut messages = vec![Message::new(Code::Conflict, CHANGED_ELSEWHERE)];
    messages.extend(lost.iter().map(|id| {
        Message::new(
            Code::Conflict,
            format!(
                "Variant \u{201c}{id}\u{201d} was deleted elsewhere: your changes to it \
                 are not in the form."
            ),
        )
    }));
    Problem::many(messages)
}

const CHANGED_ELSEWHERE: &str = "This experiment was changed elsewhere (through the API or \
    another page) since this page was loaded, so nothing was saved. The form below now shows it \
    as it is, with the fields you changed as you typed them: check them and save again, or \
    reload the page to drop your edits.";

fn is_changed_elsewhere(problem: &Problem) -> bool {
    problem
        .messages
        .iter()
        .any(|m| m.message == CHANGED_ELSEWHERE)
}

/// The experiment page, with what it shows besides the experiment: its
/// decision (verdict and health, first), its hourly totals, the account's
/// API keys (for the snippet), the API root.
async fn render(
    state: &AppState,
    request: &Request,
    session: &Session,
    snapshot: &Snapshot,
    notice: Option<Markup>,
    problem: Option<&Problem>,
    form: &EditForm,
) -> Markup {
    let uuid = snapshot.experiment.public_uuid();
    // The history read once for both (a year of 100 variants is 878,400
    // rows); the totals alone when the decision cannot be made.
    let (decided, hourly) = match decision_with_hourly(state, session.account, uuid).await {
        Ok((decision, hourly)) => (Ok(decision), Ok(hourly)),
        Err(problem) => (
            Err(problem),
            state.storage.hourly(snapshot.experiment.uuid).await,
        ),
    };
    let keys = state
        .storage
        .api_keys(session.account)
        .await
        .unwrap_or_default();
    let api_root = api_root(state.public_url.as_deref(), request);
    let extras = Extras {
        notice,
        hourly: hourly.as_deref().map_err(|_| ()),
        decision: decided.as_ref().map_err(|_| ()),
        keys: &keys,
        api_root: &api_root,
        form,
        problem,
    };
    experiment_page(&session.csrf, snapshot, &extras)
}
