//! The dashboard: web pages for site owners, served by the server itself.
//!
//! Pages are maud templates (`views`; every value spliced in is escaped by
//! construction), styled by one embedded stylesheet, with charts as SVG:
//! no script at all, so reading works without JavaScript, and changes are
//! plain POST forms answered by a redirect (POST-redirect-GET). Handlers
//! (`experiments`, `keys`, `webhooks`, `session`) read the request, call the API's
//! functions and hand the results to a view; `html` makes the responses.
//!
//! Access is by the session cookie only (see [`session`]); an API key,
//! Basic or Bearer header, or `?apikey=` gives none. Every change goes
//! through the same functions as the API's ([`crate::service`]), so the
//! commit writer, core's rules and the cache are the same; which
//! experiments a session sees is the service's rule too; every number
//! shown comes from the cache the read endpoint answers from.
//!
//! Routes (none under `/v2/` or `/healthz`): `/` (the experiments),
//! `/signin`, `/signout`, `/experiments/new`, `/experiments/{uuid}` (and
//! `/reset`, `/delete`, `/export.csv`), `/keys` (and `/keys/{uuid}/revoke`),
//! `/webhooks` (and `/webhooks/{uuid}/delete`), `/assets/…`.

use poem::http::StatusCode;
use poem::{Body, Request, Response, Route, get, handler, post};

use crate::request::{Params, read_body};
use crate::state::AppState;

mod charts;
mod experiments;
pub mod html;
mod keys;
pub mod session;
mod views;
mod webhooks;

use session::Session;

/// Adds the dashboard's routes to `route`.
pub fn routes(route: Route) -> Route {
    route
        .at("/", get(experiments::list))
        .at("/signin", get(session::signin_form).post(session::signin))
        .at("/signout", post(session::signout))
        .at(
            "/experiments/new",
            get(experiments::new_form).post(experiments::create),
        )
        .at(
            "/experiments/:uuid",
            get(experiments::show).post(experiments::edit),
        )
        .at(
            "/experiments/:uuid/export.csv",
            get(experiments::export_csv),
        )
        .at(
            "/experiments/:uuid/reset",
            get(experiments::reset_form).post(experiments::reset),
        )
        .at(
            "/experiments/:uuid/delete",
            get(experiments::delete_form).post(experiments::delete),
        )
        .at("/keys", get(keys::list).post(keys::create))
        .at("/keys/:uuid/revoke", post(keys::revoke))
        .at("/webhooks", get(webhooks::list).post(webhooks::create))
        .at("/webhooks/:uuid/delete", post(webhooks::delete))
        .at("/assets/dashboard.css", get(stylesheet))
        .at("/assets/icon.svg", get(icon))
}

/// The signed-in session, or the redirect to the sign-in page.
async fn signed_in(state: &AppState, request: &Request) -> Result<Session, Response> {
    session::session(state, request)
        .await
        .ok_or_else(|| session::to_signin(request))
}

/// A POST from a signed-in page: the session and the form, its CSRF token
/// checked (else the refusal to answer).
async fn posted(
    state: &AppState,
    request: &Request,
    body: Body,
) -> Result<(Session, Params), Response> {
    let session = signed_in(state, request).await?;
    let body = read_body(request, body)
        .await
        .map_err(|_| session::csrf_refused())?;
    let form = Params::parse(&String::from_utf8_lossy(&body));
    if !session::csrf_ok(&session, &form) {
        return Err(session::csrf_refused());
    }
    Ok((session, form))
}

/// The page for something that is not there (or is another account's).
fn not_found(session: &Session, what: &str) -> Response {
    html::html(StatusCode::NOT_FOUND, views::not_found(&session.csrf, what))
}

/// `GET /assets/dashboard.css`.
#[handler]
fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .header("x-content-type-options", "nosniff")
        .body(html::CSS)
}

/// `GET /assets/icon.svg`.
#[handler]
fn icon() -> Response {
    Response::builder()
        .content_type("image/svg+xml")
        .header("cache-control", "public, max-age=86400")
        .header("x-content-type-options", "nosniff")
        .body(html::ICON)
}
