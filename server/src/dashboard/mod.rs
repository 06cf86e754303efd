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
//! `/webhooks` (and `/webhooks/{uuid}/delete`), `/assets/…`; any other path
//! is the "Not found" page when signed in or asked for by a browser's
//! navigation, else the API's 404 problem.

use myna_core::{Code, Problem};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, Route, get, handler, post};

use crate::request::{Params, accepts_html, read_body_up_to};
use crate::state::AppState;

mod charts;
mod experiments;
pub mod html;
mod keys;
pub mod session;
mod views;
mod webhooks;

use crate::dashboard::views::Nav;
use session::Session;

/// Adds the dashboard's routes to `route`, then its "Not found" page for
/// every other path.
pub fn routes(route: Route) -> Route {
    let pages = route
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
        .at("/assets/icon.svg", get(icon));
    unknown_paths(pages)
}

/// Adds the paths of no page: any one not matched above
/// (`/*path` alone would take `/` too). Their metrics label is `other`, as
/// for any unknown path (they are no route of their own).
fn unknown_paths(route: Route) -> Route {
    ["/:first", "/:first/*rest"]
        .into_iter()
        .fold(route, |route, path| route.at(path, unknown_path))
}

/// The methods each route of [`routes`] answers, for the `Allow` header of
/// a 405 (RFC 9110); `:uuid` stands for any one segment. A test holds it to
/// the routes.
pub const METHODS: &[(&str, &str)] = &[
    ("/", "GET, HEAD"),
    ("/signin", "GET, HEAD, POST"),
    ("/signout", "POST"),
    ("/experiments/new", "GET, HEAD, POST"),
    ("/experiments/:uuid", "GET, HEAD, POST"),
    ("/experiments/:uuid/export.csv", "GET, HEAD"),
    ("/experiments/:uuid/reset", "GET, HEAD, POST"),
    ("/experiments/:uuid/delete", "GET, HEAD, POST"),
    ("/keys", "GET, HEAD, POST"),
    ("/keys/:uuid/revoke", "POST"),
    ("/webhooks", "GET, HEAD, POST"),
    ("/webhooks/:uuid/delete", "POST"),
    ("/assets/dashboard.css", "GET, HEAD"),
    ("/assets/icon.svg", "GET, HEAD"),
];

/// The methods the dashboard answers at `path` (`"GET, POST"`), if it is
/// one of its routes.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .find(|(route, _)| {
            let mut route = route.split('/');
            let mut given = path.split('/');
            loop {
                match (route.next(), given.next()) {
                    (None, None) => return true,
                    (Some(":uuid"), Some(segment)) if !segment.is_empty() => {}
                    (Some(r), Some(g)) if r == g => {}
                    _ => return false,
                }
            }
        })
        .map(|(_, methods)| *methods)
}

/// The signed-in session, or the redirect to the sign-in page.
async fn signed_in(state: &AppState, request: &Request) -> Result<Session, Response> {
    match session::session(state, request).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(session::to_signin(request)),
        Err(problem) => Err(unavailable(&problem)),
    }
}

/// The page of a database outage (503, `Retry-After`): the session could
/// not be checked, so nothing is shown and nobody is sent to sign in.
fn unavailable(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = html::html(status, views::unavailable(problem));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            poem::http::header::RETRY_AFTER,
            poem::http::HeaderValue::from_static(crate::answer::RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// The most a dashboard form may weigh as sent: an experiment the API
/// accepts (its definition up to 1 MiB as compact JSON) is shown with its
/// settings indented, and the browser percent-encodes every quote, bracket,
/// line break and space of them, several times their size.
const MAX_FORM_BYTES: usize = 16 * 1024 * 1024;

/// A POST from a signed-in page: the session and the form, its CSRF token
/// checked and not sent from another origin (else the refusal to answer: a form too large, too slow or not
/// UTF-8 is said as such).
async fn posted(
    state: &AppState,
    request: &Request,
    body: Body,
) -> Result<(Session, Params), Response> {
    // Refused before the session is looked at: a page elsewhere posts
    // without the session cookie (SameSite=Strict), and "your session
    // ended" would be untrue.
    if session::sent_from_elsewhere(request) {
        return Err(session::csrf_refused());
    }
    let session = signed_in(state, request).await?;
    let refused = |problem: Problem| {
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        html::html(status, views::form_refused(&session.csrf, &problem))
    };
    let body = read_body_up_to(request, body, MAX_FORM_BYTES)
        .await
        .map_err(refused)?;
    let form = std::str::from_utf8(&body)
        .ok()
        .and_then(Params::parse_exact)
        .ok_or_else(|| {
            refused(Problem::new(
                Code::InvalidValue,
                "The form was not sent as UTF-8 text: nothing in it was read.",
            ))
        })?;
    if !session::csrf_ok(&session, &form) || session::sent_from_elsewhere(request) {
        return Err(session::csrf_refused());
    }
    Ok((session, form))
}

/// The page for something that is not there (or is another account's),
/// the navigation at `nav`.
fn not_found(session: &Session, nav: Nav, what: &str) -> Response {
    html::html(
        StatusCode::NOT_FOUND,
        views::not_found(nav, Some(&session.csrf), what),
    )
}

/// Any path outside `/v2` that is no page: the "Not found" page (404) for
/// a session, and for a browser's navigation without one (`Accept:
/// text/html`; the page names nothing of an account); else the API's 404
/// problem (a script probing the server gets JSON).
#[handler]
async fn unknown_path(request: &Request, Data(state): Data<&AppState>) -> poem::Result<Response> {
    match session::session(state, request).await {
        Ok(Some(session)) => Ok(not_found(&session, Nav::Elsewhere, "page")),
        Ok(None) if accepts_html(request) => Ok(html::html(
            StatusCode::NOT_FOUND,
            views::not_found(Nav::None, None, "page"),
        )),
        Ok(None) => Err(poem::error::NotFoundError.into()),
        Err(problem) => Ok(unavailable(&problem)),
    }
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
