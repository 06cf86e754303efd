//! API key management (owner only): create, list, delete.

use myna_core::account::{api_key_answer, ok_answer, results_answer};
use myna_core::{Code, Problem};
use poem::web::{Data, Path};
use poem::{Body, Request, handler};

use super::extract::Owner;
use crate::answer::Answer;
use crate::request::read_body;
use crate::service::keys;
use crate::state::AppState;
use crate::storage::ApiKey;

fn answer(key: &ApiKey) -> serde_json::Value {
    api_key_answer(key.uuid, key.name.as_deref(), key.created_ms)
}

/// `POST /v2/apikey` (optional body `{ "name": "…" }`) →
/// `{ "typename": "apikey", "uuid", "name"?, "created" }`.
#[utoipa::path(post, path = "/v2/apikey", operation_id = "createApiKey", tag = "account", request_body(content = Option<crate::routes::openapi::ApiKeyBody>), responses((status = 200, description = "The new API key", body = crate::routes::openapi::ApiKeyForm), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn create(
    request: &Request,
    owner: Owner,
    Data(state): Data<&AppState>,
    body: Body,
) -> Answer {
    let result = async {
        let body = read_body(request, body).await?;
        let key = keys::create_api_key(state, owner.account, &body).await?;
        Ok(answer(&key).to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `GET /v2/apikey` → `{ "results": [ … ] }`, the account's keys, oldest first.
#[utoipa::path(get, path = "/v2/apikey", operation_id = "listApiKeys", tag = "account", responses((status = 200, description = "The API keys of the account", body = crate::routes::openapi::ApiKeyList), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn list(owner: Owner, Data(state): Data<&AppState>) -> Answer {
    let keys = keys::api_keys(state, owner.account).await;
    let result = keys.map(|keys| results_answer(keys.iter().map(answer).collect()).to_string());
    Answer::json(result, state.now_ms())
}

/// `DELETE /v2/apikey/{uuid}` → `{ "typename": "ok" }`; another account's
/// key, or none, is 404 `not-found`.
#[utoipa::path(delete, path = "/v2/apikey/{uuid}", operation_id = "deleteApiKey", tag = "account", params(("uuid" = uuid::Uuid, Path, description = "The API key")), responses((status = 200, description = "Revoked", body = crate::routes::openapi::Ok), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn delete(
    owner: Owner,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let result = async {
        let missing = || Problem::new(Code::NotFound, "There is no such API key.");
        let uuid = crate::request::path_uuid(&uuid).ok_or_else(missing)?;
        if !keys::revoke_api_key(state, owner.account, uuid).await? {
            return Err(missing());
        }
        Ok(ok_answer().to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}
