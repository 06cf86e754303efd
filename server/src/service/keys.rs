//! API keys: creating, listing and revoking an account's keys (the API's
//! `/v2/apikey` and the dashboard's keys page).

use myna_core::Problem;
use myna_core::account::parse_api_key_create;
use myna_core::limits::{MAX_API_KEYS, account_full};
use uuid::Uuid;

use crate::state::AppState;
use crate::storage::ApiKey;

/// Creates an API key for `account` from a create body (`{ "name": … }`,
/// optional, checked by core's `parse_api_key_create`); a 409 problem when
/// the account has [`MAX_API_KEYS`] already.
pub async fn create_api_key(
    state: &AppState,
    account: Uuid,
    body: &[u8],
) -> Result<ApiKey, Problem> {
    let key = ApiKey {
        uuid: Uuid::new_v4(),
        account_id: account,
        name: parse_api_key_create(body)?,
        created_ms: state.now_ms(),
    };
    if !state.storage.create_api_key(&key, MAX_API_KEYS).await? {
        return Err(account_full("API keys", MAX_API_KEYS, "revoke one first"));
    }
    Ok(key)
}

/// The account's keys, oldest first.
pub async fn api_keys(state: &AppState, account: Uuid) -> Result<Vec<ApiKey>, Problem> {
    Ok(state.storage.api_keys(account).await?)
}

/// Deletes `account`'s API key and forgets it from the key cache, so it
/// stops working at once; false if the account has no such key.
pub async fn revoke_api_key(state: &AppState, account: Uuid, uuid: Uuid) -> Result<bool, Problem> {
    if !state.storage.delete_api_key(account, uuid).await? {
        return Ok(false);
    }
    state.keys.forget(uuid);
    Ok(true)
}
