//! Deployments: `GET /v2/deployment/{key}/myna.json`, what a page needs to
//! run every published experiment of the key's account.

use poem::http::{HeaderValue, header};
use poem::web::{Data, Path};
use poem::{IntoResponse, Request, Response, handler};

use crate::answer::{Answer, Format};
use crate::proxy::api_root;
use crate::service::deployments;
use crate::state::AppState;

/// How long a deployment may be cached: short, since its weights change as
/// events arrive (and a cached copy is served again without being counted
/// as served).
pub const DEPLOYMENT_CACHE_CONTROL: &str = "public, max-age=10";

/// `GET /v2/deployment/{key}/myna.json` (JSONP with `callback`; public: the
/// key in the path is the credential): the deployment form. An unknown or
/// revoked key is a 404 problem.
#[utoipa::path(get, path = "/v2/deployment/{key}/myna.json", tag = "deployments", params(("key" = uuid::Uuid, Path, description = "An API key of the account"), ("callback" = Option<String>, Query, description = "JSONP: answer `callback(<json>);`, always HTTP 200")), responses((status = 200, description = "The deployment form: every published experiment of the key's account, by id, with its variants and current weights (cached 10 s at most)", content((crate::routes::openapi::Deployment = "application/json"), (String = "application/javascript"))), (status = "default", description = "A problem (404 for an unknown or revoked key)", body = crate::routes::openapi::Problem)))]
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
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(DEPLOYMENT_CACHE_CONTROL),
        );
    }
    response
}
