//! Deployments: `GET /v2/deployment/{key}/myna.json`, what a page needs to
//! run every published experiment of the key's account; `myna.js`, the
//! one-tag script that runs them from the page's markup; and the files of
//! the SDK that script loads (`GET /v2/sdk/{version}/{file}`).

use poem::http::{HeaderValue, header};
use poem::web::{Data, Path};
use poem::{IntoResponse, Request, Response, handler};

use myna_core::{Code, Problem};

use crate::answer::{Answer, Format, encoded_file_response, file_response, problem_response};
use crate::proxy::api_root;
use crate::sdk;
use crate::service::deployments;
use crate::state::AppState;

/// How long a deployment may be cached: short, since its weights change as
/// events arrive (and a cached copy is served again without being counted
/// as served); by shared caches only with `--public-url`
/// ([`cache_by_the_root`]).
pub const DEPLOYMENT_CACHE_CONTROL: &str = "public, max-age=10";

/// The same without `--public-url`: by the browser only.
pub const DEPLOYMENT_CACHE_CONTROL_PRIVATE: &str = "private, max-age=10";

/// `GET /v2/deployment/{key}/myna.json` (JSONP with `callback`; public: the
/// key in the path is the credential): the deployment form. An unknown or
/// revoked key is a 404 problem.
#[utoipa::path(get, path = "/v2/deployment/{key}/myna.json", operation_id = "deploymentJson", tag = "deployments", params(("key" = uuid::Uuid, Path, description = "An API key of the account"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200; an identifier path (`cb`, `app.on_load`), no reserved word", max_length = 128, pattern = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")), responses((status = 200, description = "The deployment form: every published experiment of the key's account, by id, with its variants and current weights (cached 10 s at most)", content((crate::routes::openapi::Deployment = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem (404 for an unknown or revoked key)", body = crate::routes::openapi::Problem)))]
#[handler]
pub async fn deployment_json(
    request: &Request,
    format: Format,
    Data(state): Data<&AppState>,
    Path(key): Path<String>,
) -> Response {
    let root = api_root(state.public_url.as_deref(), request);
    let form = deployments::deployment(state, &key, &root).await;
    let found = form.is_ok();
    let mut response = Answer::new(format, form, state.now_ms()).into_response();
    if found {
        cache_by_the_root(state, &mut response);
    }
    response
}

/// The request headers an API root made from the request depends on: a
/// shared cache must not serve to one host the deployment another host's
/// (or a client's made-up `X-Forwarded-Host`'s) request got. Nothing with
/// `--public-url`.
const ROOT_HEADERS: &str = "Host, X-Forwarded-Host, X-Forwarded-Proto";

/// How a deployment may be cached: by shared caches with `--public-url`;
/// else (its root came from the request) by the browser only, with `Vary`
/// for the headers the root came from. A shared cache that ignores `Vary`
/// (many CDNs do) could otherwise keep a script whose URLs a client's
/// made-up `X-Forwarded-Host` chose, for every visitor.
fn cache_by_the_root(state: &AppState, response: &mut Response) {
    let headers = response.headers_mut();
    if state.public_url.is_some() {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(DEPLOYMENT_CACHE_CONTROL),
        );
    } else {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(DEPLOYMENT_CACHE_CONTROL_PRIVATE),
        );
        headers.insert(header::VARY, HeaderValue::from_static(ROOT_HEADERS));
    }
}

/// How long the SDK's files may be cached: for good, as their URL names
/// their content's hash.
pub const SDK_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `GET /v2/deployment/{key}/myna.js` (public: the key in the path is the
/// credential): the deployment's classic script, the SDK's boot script with
/// the deployment form and the URL of the SDK (under this server's
/// `apiRoot`) inlined, cached as the deployment is. An unknown or revoked
/// key is a 404 problem.
#[utoipa::path(get, path = "/v2/deployment/{key}/myna.js", operation_id = "deploymentScript", tag = "deployments", params(("key" = uuid::Uuid, Path, description = "An API key of the account")), responses((status = 200, description = "A classic script for a page's `<script src>`: hides the experiments' elements, loads this server's SDK, connects it with the deployment inlined and binds the page's `myna-{id}` markup (cached 10 s at most)", content((String = "text/javascript"))), (status = "default", description = "A problem (404 for an unknown or revoked key)", body = crate::routes::openapi::Problem)))]
#[handler]
pub async fn deployment_js(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(key): Path<String>,
) -> Response {
    let root = api_root(state.public_url.as_deref(), request);
    match deployments::deployment(state, &key, &root).await {
        Ok(form) => {
            let entry = format!("{root}{}", sdk::entry_path());
            let mut response = file_response(
                "text/javascript; charset=utf-8",
                sdk::boot_script(&form, &entry),
                DEPLOYMENT_CACHE_CONTROL,
            );
            cache_by_the_root(state, &mut response);
            response
        }
        Err(problem) => problem_response(&Format::Json, &problem, state.now_ms()),
    }
}

/// `GET /v2/sdk/{version}/{file}` (public): a file of the SDK this server
/// hosts (`index.js`, the ES module, and the wasm it fetches beside it),
/// cached for good, gzipped for clients that accept it. Another version
/// than this server's is a 404 problem.
#[utoipa::path(get, path = "/v2/sdk/{version}/{file}", operation_id = "sdkFile", tag = "deployments", params(("version" = String, Path, description = "The SDK's version: the hash of its files, as `myna.js` names it"), ("file" = String, Path, description = "`index.js` or `myna_sdk_bg.wasm`")), responses((status = 200, description = "The file (immutable)", content((String = "text/javascript"), (Vec<u8> = "application/wasm"))), (status = "default", description = "A problem (404 for another version or file)", body = crate::routes::openapi::Problem)))]
#[handler]
pub async fn sdk_file(
    request: &Request,
    Data(state): Data<&AppState>,
    Path((version, name)): Path<(String, String)>,
) -> Response {
    let gzip = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(sdk::accepts_gzip);
    match sdk::file(&version, &name) {
        Some(file) => encoded_file_response(
            file.content_type,
            file.bytes,
            file.gzip,
            gzip,
            SDK_CACHE_CONTROL,
        ),
        None => problem_response(
            &Format::Json,
            &Problem::new(
                Code::NotFound,
                "There is no such file of the SDK (its version changes with each build: load myna.js again).",
            ),
            state.now_ms(),
        ),
    }
}
