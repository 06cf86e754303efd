//! The routes of the v2 API, built in a function (tests drive them through
//! poem's `TestClient`, without a socket). Each handler has one shape:
//! its extractors read the caller ([`crate::auth::Caller`], [`extract::Owner`])
//! and the answer's format ([`crate::answer::Format`]); it converts the rest
//! of the request (core parses and validates), calls [`crate::service`],
//! and returns an [`crate::answer::Answer`].

use myna_core::Problem;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, post};

use crate::access::AccessLog;
use crate::answer::{
    CHALLENGE_WITH_BASIC, Format, Unrouted, error_response, nosniff, ok_response, problem_response,
};
use crate::auth::{self, Credentials};
use crate::clock::Clock;
use crate::cors::Cors;
use crate::dashboard;
use crate::request::{AnswerRoom, Params};
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
            "/v2/experiment",
            get(experiment::search).post(experiment::create),
        )
        .at(
            "/v2/experiment/:uuid",
            get(experiment::read)
                .put(experiment::update)
                .delete(experiment::delete),
        )
        .at("/v2/experiment/:uuid/reset", post(experiment::reset))
        .at("/v2/experiment/:uuid/decision", get(experiment::decision))
        .at("/v2/experiment/:uuid/export", get(experiment::export))
        .at(
            "/v2/experiment/:uuid/record",
            get(record::record_get)
                .post(record::record_post)
                .head(record::record_head),
        )
        .at("/v2/user/login", post(user::login))
        .at("/v2/user/logout", post(user::logout))
        .at("/v2/apikey", get(apikey::list).post(apikey::create))
        .at("/v2/apikey/:uuid", poem::delete(apikey::delete))
        .at("/v2/webhook", get(webhook::list).post(webhook::create))
        .at("/v2/webhook/:uuid", poem::delete(webhook::delete))
        .at(
            "/v2/deployment/:key/myna.json",
            get(deployment::deployment_json),
        )
        .at(
            "/v2/deployment/:key/myna.js",
            get(deployment::deployment_js),
        )
        .at("/v2/sdk/:version/:file", get(deployment::sdk_file))
        .at("/v2/openapi.json", get(openapi::openapi_json));
    let clock = state.clock.clone();
    let metrics = state.metrics.clone();
    let errors = clock.clone();
    let panics = clock.clone();
    let busy = clock.clone();
    let clients = state.clone();
    let v2 = v2
        .catch_all_error(move |error| {
            let now = errors.now_ms();
            async move { error_response(&error, now) }
        })
        .with(Cors::new(state.origins.clone(), clock.clone()));
    let site = dashboard::routes(Route::new().at("/healthz", get(health::healthz)));
    V2Split {
        v2: v2.boxed(),
        site: site.boxed(),
        clock: clock.clone(),
    }
    .data(state)
    .catch_all_error(move |error| {
        let now = clock.now_ms();
        async move { error_response(&error, now) }
    })
    .with(CatchPanic::new().with_handler(move |_| {
        tracing::error!("a request handler panicked");
        problem_response(&Format::Json, &Problem::internal(), panics.now_ms())
    }))
    .around(move |endpoint, mut request| {
        let (busy, clients) = (busy.clone(), clients.clone());
        async move {
            // The query, parsed once for every layer and handler that reads it.
            Params::keep(&mut request);
            let uri = request.uri().clone();
            let (method, params) = (request.method().clone(), Params::of(&request));
            let room = request.extensions().get::<AnswerRoom>().cloned();
            let client = clients.guard.client(&request);
            let offer_basic = may_offer_basic(&request, &params);
            let mut response = endpoint.get_response(request).await;
            if offer_basic && response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE_WITH_BASIC),
                );
            }
            if let Some(room) = room
                && !room.make_room(&mut response, client).await
            {
                response = answer_busy(&method, &params, &response, busy.now_ms());
            }
            if response.status() == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = openapi::allowed_methods(uri.path())
                    .or_else(|| dashboard::allowed_methods(uri.path()))
            {
                // What a client may do here instead (RFC 9110: a 405 says).
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Ok(nosniff(response))
        }
    })
    .with(AccessLog::new(metrics))
}

/// Whether a 401 may offer Basic: only to a client that is no browser (a
/// browser would ask its user for a password, and then send it with other
/// sites' requests too) and only where Basic is taken (not a JSONP call or
/// a record GET). A browser's request carries Fetch Metadata
/// (`Sec-Fetch-Mode`), an `Origin` (every cross-origin call, every POST),
/// or, over plain HTTP where it sends no Fetch Metadata, a navigation's
/// `Accept: text/html` or `Upgrade-Insecure-Requests`; a page's call
/// carries an API key.
fn may_offer_basic(request: &Request, params: &Params) -> bool {
    let headers = request.headers();
    let api_key = matches!(
        auth::credentials(request, params.get("apikey")),
        Credentials::ApiKey(_)
    );
    let browser = headers.contains_key("sec-fetch-mode")
        || headers.contains_key(header::ORIGIN)
        || headers.contains_key("upgrade-insecure-requests")
        || crate::request::accepts_html(request);
    let basic_refused = params.get("callback").is_some() || extract::records(request);
    !api_key && !browser && !basic_refused
}

/// The 503 of an answer the answer budget has no room for
/// ([`AnswerRoom::make_room`]), in the request's format, with the CORS
/// headers `answer` had (so a page can read it).
fn answer_busy(method: &Method, params: &Params, answer: &Response, now_ms: i64) -> Response {
    let format = extract::asked_by(method, params).unwrap_or(Format::Json);
    let problem = Problem::new(
        myna_core::Code::Unavailable,
        "The server is writing too many large answers at once: retry shortly.",
    );
    let mut busy = problem_response(&format, &problem, now_ms);
    for (name, value) in answer.headers() {
        if name.as_str().starts_with("access-control-") || name == header::VARY {
            busy.headers_mut().append(name.clone(), value.clone());
        }
    }
    busy
}

/// The API under `/v2` (its own problems for unknown paths, and CORS) and
/// the rest (the dashboard, `/healthz`): told apart by the path's first
/// segment, so a request is matched against one route table, once, and its
/// URI is not rewritten (as poem's `nest` would). Each side is boxed: its
/// future is allocated once rather than moved, inline, through every layer
/// above (measured: unboxed, a record request copied 25 k instructions'
/// worth of future state).
struct V2Split<A, S> {
    v2: A,
    site: S,
    /// Stamps the problem of an invalid callback (`in_callback`).
    clock: Clock,
}

impl<A: Endpoint, S: Endpoint> Endpoint for V2Split<A, S> {
    type Output = Response;

    async fn call(&self, request: poem::Request) -> poem::Result<Response> {
        let path = request.uri().path();
        if path
            .strip_prefix("/v2")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            let jsonp = (request.method() == Method::GET).then(|| Params::of(&request));
            let response = self.v2.call(request).await?.into_response();
            match jsonp {
                Some(params) if response.extensions().get::<Unrouted>().is_some() => {
                    Ok(in_callback(response, &params, self.clock.now_ms()).await)
                }
                _ => Ok(response),
            }
        } else {
            self.site
                .call(request)
                .await
                .map(IntoResponse::into_response)
        }
    }
}

/// The problem of a GET no handler took (an unknown path, a method the
/// path does not serve), in the request's JSONP callback if it gives a
/// valid one (status 200, the would-be status in the problem), as every
/// handler's problem reaches a JSONP page.
async fn in_callback(response: Response, params: &Params, now_ms: i64) -> Response {
    match extract::asked_by(&Method::GET, params) {
        Ok(format @ Format::Jsonp(_)) => {
            let body = response.into_body().into_string().await.unwrap_or_default();
            ok_response(&format, body)
        }
        Ok(Format::Json) => response,
        // An invalid or repeated callback: its plain 400, as at any endpoint.
        Err(problem) => problem_response(&Format::Json, &problem, now_ms),
    }
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
