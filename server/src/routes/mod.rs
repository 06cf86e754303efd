//! The routes of the v2 API, built in a function (tests drive them through
//! poem's `TestClient`, without a socket). Each handler reads the request,
//! asks core to parse and validate, asks the commit writer or storage to
//! commit, asks core for the answer, and hands it to [`crate::answer`].

use myna_core::Problem;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Request, Route, get, post};

use crate::answer::{Format, error_response, problem_response};
use crate::auth::{self, Caller, Credentials};
use crate::cors::Cors;
use crate::dashboard;
use crate::state::AppState;

pub(crate) mod apikey;
pub(crate) mod experiment;
mod health;
mod record;
mod user;

/// The whole API as one endpoint.
pub fn app(state: AppState) -> impl Endpoint {
    let v2 = Route::new()
        .at(
            "/experiment",
            get(experiment::search).post(experiment::create),
        )
        .at(
            "/experiment/:uuid",
            get(experiment::read)
                .put(experiment::update)
                .delete(experiment::delete),
        )
        .at("/experiment/:uuid/reset", post(experiment::reset))
        .at(
            "/experiment/:uuid/record",
            get(record::record_get).post(record::record_post),
        )
        .at("/user/login", post(user::login))
        .at("/user/logout", post(user::logout))
        .at("/apikey", get(apikey::list).post(apikey::create))
        .at("/apikey/:uuid", poem::delete(apikey::delete));
    let clock = state.clock.clone();
    let errors = clock.clone();
    let panics = clock.clone();
    let v2 = v2
        .catch_all_error(move |error| {
            let now = errors.now_ms();
            async move { error_response(&error, now) }
        })
        .with(Cors::new(state.origins.clone(), clock.clone()));
    let api = Route::new()
        .nest("/v2", v2)
        .at("/healthz", get(health::healthz));
    dashboard::routes(api)
        .data(state)
        .catch_all_error(move |error| {
            let now = clock.now_ms();
            async move { error_response(&error, now) }
        })
        .with(CatchPanic::new().with_handler(move |_| {
            tracing::error!("a request handler panicked");
            problem_response(&Format::Json, &Problem::internal(), panics.now_ms())
        }))
}

/// Authenticates a request; `apikey` is the parameter where it is accepted.
async fn caller(
    state: &AppState,
    request: &Request,
    apikey: Option<&str>,
) -> Result<Caller, Problem> {
    let credentials = auth::credentials(request, apikey);
    authenticate(state, request, credentials).await
}

/// Checks `request`'s credentials against this state (its client address
/// counts for the limits on password checks).
async fn authenticate(
    state: &AppState,
    request: &Request,
    credentials: Credentials,
) -> Result<Caller, Problem> {
    state.checker(request).authenticate(credentials).await
}
