//! The ONE place that turns an answer or a [`Problem`] into an HTTP response:
//! plain JSON with the problem's status, or JSONP (`callback`), where every
//! answer, error or not, is HTTP 200 with the would-be status inside, the body
//! starts with `/**/` and carries `X-Content-Type-Options: nosniff`. An invalid
//! callback gets a plain JSON 400 and is never echoed.

use std::fmt;

use myna_core::export::{ExportFormat, ExportRow};
use myna_core::{Code, Problem, jsonp};
use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Error, IntoResponse, Response};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::storage::{HourTotals, StorageError};

/// How the caller wants its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON.
    Json,
    /// JSONP: `/**/callback(json);`.
    Jsonp(String),
}

impl Format {
    /// The format asked by a `callback` parameter. An invalid callback is a
    /// problem to answer as plain JSON ([`Format::Json`]), never echoed.
    pub fn from_callback(callback: Option<&str>) -> Result<Format, Problem> {
        match callback {
            None => Ok(Format::Json),
            Some(callback) => {
                jsonp::validate_callback(callback)?;
                Ok(Format::Jsonp(callback.to_owned()))
            }
        }
    }
}

/// The `WWW-Authenticate` of a 401: the API's token and key schemes. Not
/// Basic: a browser would ask a page's visitor for a password.
pub const CHALLENGE: &str = "Bearer realm=\"myna\", ApiKey realm=\"myna\"";

/// The `WWW-Authenticate` of a 401 to a client that is no browser
/// (`routes::may_offer_basic`): Basic too, for the clients that send a
/// password only when asked for it (`curl --anyauth`, wget, Java's
/// `Authenticator`, Python's `HTTPBasicAuthHandler`).
pub const CHALLENGE_WITH_BASIC: &str =
    "Basic realm=\"myna\", Bearer realm=\"myna\", ApiKey realm=\"myna\"";

/// Seconds a client should wait before retrying a 503 (`Retry-After`).
pub const RETRY_AFTER_SECONDS: &str = "1";

fn respond(format: &Format, status: StatusCode, json: String) -> Response {
    let builder = Response::builder().header(header::CACHE_CONTROL, "no-store");
    match format {
        Format::Json => {
            let builder = match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    builder.header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
                }
                // The body never all came: the connection ends with this
                // answer, and says so.
                StatusCode::REQUEST_TIMEOUT => builder.header(header::CONNECTION, "close"),
                // The schemes to try (RFC 9110: a 401 names them). Not
                // Basic: browsers would ask a page's visitor for a password.
                StatusCode::UNAUTHORIZED => builder.header(header::WWW_AUTHENTICATE, CHALLENGE),
                _ => builder,
            };
            builder
                .status(status)
                .content_type("application/json")
                .body(json)
        }
        // A script any page may load.
        Format::Jsonp(callback) => any_page_may_load(builder.status(StatusCode::OK))
            .content_type("application/javascript; charset=utf-8")
            .body(jsonp::wrap(callback, &json)),
    }
}

/// A successful answer: 200 with `json` (already serialized).
pub fn ok_response(format: &Format, json: String) -> Response {
    respond(format, StatusCode::OK, json)
}

/// A problem: its status (JSON) or 200 (JSONP), stamped with `now_ms`. A
/// message whose data has `retryAfter` (seconds: a 429 of the credential
/// limits) sets `Retry-After` to it.
pub fn problem_response(format: &Format, problem: &Problem, now_ms: i64) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A JSONP 503 has no header to say when to retry (its HTTP status is
    // 200): its messages say it, as a 429's do.
    let told;
    let problem = match format {
        Format::Jsonp(_) if status == StatusCode::SERVICE_UNAVAILABLE => {
            told = retry_told(problem);
            &told
        }
        _ => problem,
    };
    let mut response = respond(format, status, problem.to_json(now_ms).to_string());
    let retry_after = problem
        .messages
        .iter()
        .find_map(|m| m.data.as_ref()?.get("retryAfter")?.as_u64());
    if let (Format::Json, Some(seconds)) = (format, retry_after) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `problem` with `data.retryAfter` (the seconds of `Retry-After`) on each
/// message that has no data.
fn retry_told(problem: &Problem) -> Problem {
    let mut told = problem.clone();
    let seconds: u64 = RETRY_AFTER_SECONDS.parse().unwrap_or(1);
    for message in &mut told.messages {
        if message.data.is_none() {
            message.data = Some(serde_json::json!({ "retryAfter": seconds }));
        }
    }
    told
}

/// A file of fixed content (the SDK this server hosts, the deployment's
/// script): 200 with its `Content-Type` and `Cache-Control`, `nosniff`, and
/// readable by pages of any origin (`Cross-Origin-Resource-Policy`; the
/// CORS headers come from [`crate::cors`]).
pub fn file_response(
    content_type: &'static str,
    body: impl Into<Body>,
    cache_control: &'static str,
) -> Response {
    file_builder(content_type, cache_control).body(body)
}

/// A file of fixed content that comes in two encodings: `gzipped` when the
/// client accepts gzip, else `plain` (`Vary: Accept-Encoding` either way,
/// so caches keep both); otherwise as [`file_response`].
pub fn encoded_file_response(
    content_type: &'static str,
    plain: &'static [u8],
    gzipped: &'static [u8],
    gzip: bool,
    cache_control: &'static str,
) -> Response {
    let builder = file_builder(content_type, cache_control).header(header::VARY, "Accept-Encoding");
    if gzip {
        builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(gzipped)
    } else {
        builder.body(plain)
    }
}

fn file_builder(content_type: &'static str, cache_control: &'static str) -> poem::ResponseBuilder {
    any_page_may_load(Response::builder().status(StatusCode::OK))
        .content_type(content_type)
        .header(header::CACHE_CONTROL, cache_control)
}

/// Marks what pages load as scripts or fetch from another origin: never
/// sniffed as another type, and loadable by pages that require
/// `Cross-Origin-Resource-Policy` of what they embed (COEP).
fn any_page_may_load(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        )
        .header(
            "cross-origin-resource-policy",
            HeaderValue::from_static("cross-origin"),
        )
}

/// An answer or a problem.
pub fn result_response(format: &Format, result: Result<String, Problem>, now_ms: i64) -> Response {
    match result {
        Ok(json) => ok_response(format, json),
        Err(problem) => problem_response(format, &problem, now_ms),
    }
}

/// An export (`myna_core::export`) of `hours` as a streamed body: a task
/// writes it through a 64 KiB pipe as the client reads, so the encoded
/// answer is never held whole; a client that goes away ends the task.
pub fn export_response(format: ExportFormat, experiment: Uuid, hours: Vec<HourTotals>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let (mut writer, reader) = tokio::io::duplex(CHUNK);
    tokio::spawn(async move {
        let mut out = format.start(experiment);
        for (index, hour) in hours.iter().enumerate() {
            let row = ExportRow {
                hour_ms: hour.hour_ms,
                variant: &hour.variant,
                views: hour.views,
                total_reward: hour.total_reward,
            };
            format.write_row(&mut out, index, &row);
            if out.len() >= CHUNK {
                if writer.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
                out.clear();
            }
        }
        out.push_str(format.end());
        let _ = writer.write_all(out.as_bytes()).await;
        let _ = writer.shutdown().await;
    });
    let mut response = Response::builder()
        .content_type(format.content_type())
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_async_read(reader));
    if format == ExportFormat::Csv {
        let name = format!("attachment; filename=\"myna-{experiment}-hourly.csv\"");
        if let Ok(value) = HeaderValue::from_str(&name) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// What an endpoint answers: its JSON (already serialized) or a problem, in
/// the format the request asked, as [`result_response`] makes it.
#[derive(Debug)]
pub struct Answer {
    format: Format,
    result: Result<String, Problem>,
    now_ms: i64,
}

impl Answer {
    /// The answer in `format`; a problem is stamped with `now_ms`.
    pub fn new(format: Format, result: Result<String, Problem>, now_ms: i64) -> Answer {
        Answer {
            format,
            result,
            now_ms,
        }
    }

    /// The answer as plain JSON.
    pub fn json(result: Result<String, Problem>, now_ms: i64) -> Answer {
        Answer::new(Format::Json, result, now_ms)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        result_response(&self.format, self.result, self.now_ms)
    }
}

/// A problem met while reading a request, before its handler ran (an
/// invalid callback, refused credentials), in the format its answer would
/// have had: the error of the API's extractors, answered by
/// [`error_response`] as [`problem_response`] makes it.
#[derive(Debug)]
pub struct Refusal {
    format: Format,
    problem: Problem,
    now_ms: i64,
}

impl Refusal {
    /// `problem`, to answer in `format`, stamped with `now_ms`.
    pub fn new(format: Format, problem: Problem, now_ms: i64) -> Refusal {
        Refusal {
            format,
            problem,
            now_ms,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.problem.status)
    }
}

impl std::error::Error for Refusal {}

impl ResponseError for Refusal {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        problem_response(&self.format, &self.problem, self.now_ms)
    }
}

/// Marks the answer to a request no handler took (an unknown path, a
/// method the path does not serve): a JSONP GET gets it in its callback
/// (`routes::in_callback`), as it would a handler's problem.
#[derive(Debug, Clone, Copy)]
pub struct Unrouted;

/// A routing or framework error (unknown route, wrong method, panic) as a
/// problem; a [`Refusal`] as its own answer.
pub fn error_response(error: &Error, now_ms: i64) -> Response {
    if let Some(refusal) = error.downcast_ref::<Refusal>() {
        return refusal.as_response();
    }
    let mut response = problem_response(&Format::Json, &routing_problem(error), now_ms);
    if matches!(
        error.status(),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        response.extensions_mut().insert(Unrouted);
    }
    response
}

/// The problem of a routing or framework error.
fn routing_problem(error: &Error) -> Problem {
    match error.status() {
        StatusCode::NOT_FOUND => Problem::new(Code::NotFound, "There is no such resource."),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            Code::MethodNotAllowed,
            "This resource does not answer this HTTP method.",
        ),
        status if status.is_server_error() => {
            tracing::error!(%error, "request failed");
            Problem::internal()
        }
        status => Problem::one(myna_core::Message::new(
            Code::InvalidValue,
            error.to_string(),
        ))
        .with_status(status.as_u16()),
    }
}

trait WithStatus {
    fn with_status(self, status: u16) -> Self;
}

impl WithStatus for Problem {
    fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

impl From<StorageError> for Problem {
    /// Unavailable databases answer 503 (retry); anything else is logged with
    /// its detail and answered with the generic 500 problem. An unavailable
    /// database is logged where its state changes, not once a call: by the
    /// commit writer (commits fail, and work again) and, on PostgreSQL, by
    /// the storage (down, busy, and back, with the calls refused meanwhile).
    fn from(error: StorageError) -> Problem {
        match error {
            StorageError::Conflict => Problem::new(Code::Conflict, "This already exists."),
            StorageError::Unavailable(detail) => {
                tracing::debug!(%detail, "database unavailable");
                Problem::new(
                    Code::Unavailable,
                    "The database is unavailable; retry later.",
                )
            }
            StorageError::Internal(detail) => {
                tracing::error!(%detail, "database failure");
                Problem::internal()
            }
        }
    }
}

/// Marks a response `X-Content-Type-Options: nosniff`, so no browser runs or
/// renders it as anything but its declared type (a JSON answer echoing a
/// variant name is never sniffed as HTML or script). The outermost middleware
/// of [`crate::routes::app`] applies it to every answer, errors and panics included; the
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
    use super::*;

    async fn body(response: Response) -> String {
        response.into_body().into_string().await.unwrap_or_default()
    }

    #[tokio::test]
    async fn jsonp_errors_are_200_with_status_inside() {
        let problem = Problem::unknown_experiment("x");
        let format = Format::Jsonp("cb.f".into());
        let response = problem_response(&format, &problem, 0);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(header::X_CONTENT_TYPE_OPTIONS),
            Some(&HeaderValue::from_static("nosniff"))
        );
        let text = body(response).await;
        assert!(text.starts_with("/**/cb.f({"), "{text}");
        assert!(text.contains(r#""status":404"#), "{text}");
    }

    #[tokio::test]
    async fn unavailable_says_when_to_retry_and_jsonp_loads_cross_origin() {
        let unavailable = Problem::from(StorageError::Unavailable("down".into()));
        let response = problem_response(&Format::Json, &unavailable, 0);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static(RETRY_AFTER_SECONDS))
        );
        let not_found = problem_response(&Format::Json, &Problem::unknown_experiment("x"), 0);
        assert!(not_found.headers().get(header::RETRY_AFTER).is_none());
        // JSONP has no header to say it: the messages do.
        let jsonp = problem_response(&Format::Jsonp("cb".into()), &unavailable, 0);
        let text = body(jsonp).await;
        assert!(text.contains(r#""data":{"retryAfter":1}"#), "{text}");
        let script = ok_response(&Format::Jsonp("cb".into()), "{}".to_owned());
        assert_eq!(
            script.headers().get("cross-origin-resource-policy"),
            Some(&HeaderValue::from_static("cross-origin"))
        );
    }

    #[tokio::test]
    async fn invalid_callback_is_plain_json_400_and_not_echoed() {
        let problem = Format::from_callback(Some("alert(1)//"))
            .err()
            .unwrap_or_else(Problem::internal);
        let response = problem_response(&Format::Json, &problem, 0);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = body(response).await;
        assert!(text.contains("invalid-callback"));
        assert!(!text.contains("alert"));
    }

    #[test]
    fn storage_failures_hide_their_detail() {
        let problem = Problem::from(StorageError::Internal("SELECT secret FROM /var/db".into()));
        let text = problem.to_json(0).to_string();
        assert_eq!(problem.status, 500);
        assert!(!text.contains("secret") && !text.contains("/var/db"));
        assert_eq!(
            Problem::from(StorageError::Unavailable("disk full".into())).status,
            503
        );
    }
}
