//! API key management (owner only): create, list, delete.

use myna_core::account::{api_key_answer, ok_answer, parse_api_key_create, results_answer};
use myna_core::{Code, Problem};
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use uuid::Uuid;

use super::caller;
use crate::answer::{Format, result_response};
use crate::request::read_body;
use crate::state::AppState;
use crate::storage::ApiKey;

fn answer(key: &ApiKey) -> serde_json::Value {
    api_key_answer(key.uuid, key.name.as_deref(), key.created_ms)
}

/// Deletes `account`'s API key and forgets it from the key cache, so it
/// stops working at once; false if the account has no such key. Shared by
/// the API and the dashboard.
pub(crate) async fn revoke_api_key(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
) -> Result<bool, Problem> {
    if !state.storage.delete_api_key(account, uuid).await? {
        return Ok(false);
    }
    state.keys.forget(uuid);
    Ok(true)
}

/// `POST /v2/apikey` (optional body `{ "name": "…" }`) →
/// `{ "typename": "apikey", "uuid", "name"?, "created" }`.
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let now = state.now_ms();
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let body = read_body(request, body).await?;
        let key = ApiKey {
            uuid: Uuid::new_v4(),
            account_id: account,
            name: parse_api_key_create(&body)?,
            created_ms: now,
        };
        state.storage.create_api_key(&key).await?;
        Ok(answer(&key).to_string())
    }
    .await;
    result_response(&Format::Json, result, now)
}

/// `GET /v2/apikey` → `{ "results": [ … ] }`, the account's keys, oldest first.
#[handler]
pub async fn list(request: &Request, Data(state): Data<&AppState>) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let keys = state.storage.api_keys(account).await?;
        Ok(results_answer(keys.iter().map(answer).collect()).to_string())
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}

/// `DELETE /v2/apikey/{uuid}` → `{ "typename": "ok" }`; another account's
/// key, or none, is 404 `not-found`.
#[handler]
pub async fn delete(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let result = async {
        let account = caller(state, request, None).await?.owner()?;
        let missing = || Problem::new(Code::NotFound, "There is no such API key.");
        let uuid = Uuid::parse_str(&uuid).map_err(|_| missing())?;
        if !revoke_api_key(state, account, uuid).await? {
            return Err(missing());
        }
        Ok(ok_answer().to_string())
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}
