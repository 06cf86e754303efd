//! The experiment pages' handlers: the list (search, filter), creating one,
//! an experiment's page and its edit form, reset and delete. Each reads the
//! request (forms in [`forms`]), calls the service (the API's own operations), and hands
//! what it got to a view (`dashboard::views`).

use maud::Markup;
use poem::Response;
use poem::http::StatusCode;
use uuid::Uuid;

use super::not_found;
use super::session::Session;
use super::views;
use crate::auth::Caller;
use crate::cache::Snapshot;
use crate::request::Params;
use crate::service::experiments::{snapshot, visible_fresh};
use crate::state::AppState;

pub mod actions;
mod confirm;
pub mod forms;
pub mod labels;
mod listing;
mod merge;
mod new;
mod page;

pub use confirm::{delete, delete_form, reset, reset_form};
pub use listing::list;
pub use new::{create, new_form};
pub use page::{edit, export_csv, show};

use crate::dashboard::views::Nav;
use actions::Done;

/// The notice a request's `done` parameter asks for, if any.
fn done_notice(params: &Params) -> Option<Markup> {
    Done::of(params).map(|done| views::notice(done.notice()))
}

/// A problem's HTTP status (400 when it has none that fits).
fn status_of(problem: &myna_core::Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The session's experiment `uuid` from the cache (with the weights the read
/// endpoint serves; one another instance on a shared database created a
/// moment ago is fetched), or the not-found page.
async fn owned(state: &AppState, session: &Session, uuid: &str) -> Result<Snapshot, Box<Response>> {
    let owner = Caller::Owner {
        account: session.account,
    };
    let not_found = || Box::new(not_found(session, Nav::InExperiments, "experiment"));
    let uuid = Uuid::parse_str(uuid).map_err(|_| not_found())?;
    visible_fresh(state, owner, uuid)
        .await
        .map_err(|_| not_found())?;
    snapshot(state, owner, uuid).ok_or_else(not_found)
}
