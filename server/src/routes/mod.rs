//! The routes of the v2 API, built in a function (tests drive them through
//! poem's `TestClient`, without a socket). Each handler has one shape:
//! its extractors read the caller ([`crate::auth::Caller`], [`extract::Owner`])
//! and the answer's format ([`crate::answer::Format`]); it converts the rest
//! of the request (core parses and validates), calls [`crate::service`],
//! and returns an [`crate::answer::Answer`].

use myna_core::Problem;
use poem::http::{HeaderValue, StatusCode, header};
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Response, Route, get, post};

use crate::access::AccessLog;
use crate::answer::{Format, error_response, problem_response};
use crate::cors::Cors;
use crate::dashboard;
use crate::request::Params;
use crate::state::AppState;

pub(crate) mod apikey;
pub(crate) mod deployment;
pub(crate) mod experiment;
pub mod extract;
pub(crate) mod health;
pub mod openapi;
pub(crate) mod record;
pub(crate) mod user;
pub(crate) mod webhook;

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
        .at("/experiment/:uuid/decision", get(experiment::decision))
        .at("/experiment/:uuid/export", get(experiment::export))
        .at(
            "/experiment/:uuid/record",
            get(record::record_get)
                .post(record::record_post)
                .head(record::record_head),
        )
        .at("/user/login", post(user::login))
        .at("/user/logout", post(user::logout))
        .at("/apikey", get(apikey::list).post(apikey::create))
        .at("/apikey/:uuid", poem::delete(apikey::delete))
        .at("/webhook", get(webhook::list).post(webhook::create))
        .at("/webhook/:uuid", poem::delete(webhook::delete))
        .at(
            "/deployment/:key/myna.json",
            get(deployment::deployment_json),
        )
        .at("/deployment/:key/myna.js", get(deployment::deployment_js))
        .at("/sdk/:version/:file", get(deployment::sdk_file))
        .at("/openapi.json", get(openapi::openapi_json));
    let clock = state.clock.clone();
    let metrics = state.metrics.clone();
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
        .around(|endpoint, mut request| async move {
            // The query, parsed once for every layer and handler that reads it.
            Params::keep(&mut request);
            let uri = request.uri().clone();
            let mut response = endpoint.get_response(request).await;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = openapi::allowed_methods(uri.path())
            {
                // What a client may do here instead (RFC 9110: a 405 says).
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Ok(nosniff(response))
        })
        .with(AccessLog::new(metrics))
}

/// Marks a response `X-Content-Type-Options: nosniff`, so no browser runs or
/// renders it as anything but its declared type (a JSON answer echoing a
/// variant name is never sniffed as HTML or script). The outermost middleware
/// of [`app`] applies it to every answer, errors and panics included; the
/// serve loop applies it to the answers it writes itself.
pub fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use poem::http::{Method, StatusCode};
    use poem::test::TestClient;

    use super::*;
    use crate::auth::Passwords;
    use crate::clock::Clock;
    use crate::service::accounts::create_account;
    use crate::state::Options;
    use crate::storage::Storage;
    use crate::storage::sqlite::SqliteStorage;

    #[tokio::test]
    async fn every_answer_says_nosniff() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite = SqliteStorage::open(&dir.path().join("myna.db"))
            .await
            .expect("open sqlite");
        let storage: Arc<dyn Storage> = Arc::new(sqlite);
        let passwords = Passwords::fast_for_tests();
        let clock = Clock::manual(1_795_708_773_232);
        create_account(
            storage.as_ref(),
            &passwords,
            "me@example.com",
            "s3cret-password",
            clock.now_ms(),
        )
        .await
        .expect("an account");
        let options = Options {
            clock,
            passwords,
            ..Options::default()
        };
        let (state, _background) = AppState::start(storage, options).await.expect("start");
        let client = TestClient::new(app(state));
        // me@example.com:s3cret-password
        let basic = "Basic bWVAZXhhbXBsZS5jb206czNjcmV0LXBhc3N3b3Jk";
        let sample = [
            (Method::GET, "/v2/experiment", Some(basic), StatusCode::OK),
            (
                Method::GET,
                "/v2/experiment",
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (Method::POST, "/v2/user/login", Some(basic), StatusCode::OK),
            (
                Method::PATCH,
                "/v2/experiment",
                Some(basic),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::GET, "/no/such/page", None, StatusCode::NOT_FOUND),
            (Method::GET, "/signin", None, StatusCode::OK),
            (Method::GET, "/assets/dashboard.css", None, StatusCode::OK),
            (Method::GET, "/healthz", None, StatusCode::OK),
        ];
        for (method, path, auth, status) in sample {
            let mut request = client.request(method.clone(), path);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let response = request.send().await;
            response.assert_status(status);
            response.assert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        }
    }
}
