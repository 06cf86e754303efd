//! Deployments: what `GET /v2/deployment/{key}/myna.json` answers, every
//! published experiment of the key's account with its current weights
//! (core's `deployment_text_of`, from the parts the cache keeps).

use myna_core::deployment::{deployment_order, deployment_text_of};
use myna_core::{Code, Problem};

use crate::state::AppState;

/// The problem of an unknown or revoked key (404).
fn unknown_key() -> Problem {
    Problem::new(Code::NotFound, "There is no such API key.")
}

/// The deployment form of API key `key` (text, as `key` may be anything a
/// path holds), answered at `api_root`: the published experiments of its
/// account with the cache's current weights, each counted as served (a page
/// chooses its variants by them, and the decision's sample-ratio check
/// compares the views with them). An unknown or revoked key is 404.
pub async fn deployment(state: &AppState, key: &str, api_root: &str) -> Result<String, Problem> {
    let key = crate::request::path_uuid(key).ok_or_else(unknown_key)?;
    let account = state
        .keys
        .account(state.storage.as_ref(), key)
        .await?
        .ok_or_else(unknown_key)?;
    // Built in a turn of `large_answers`, as a search.
    let _turn = state.large_answers.take(account).await;
    // Each experiment's part is kept in the cache until its weights or
    // definition change: a deployment asked again is mostly joined, not
    // written (a large account's is megabytes).
    let mut published = state.cache.serve_deployed(account, state.now_ms());
    published.sort_by(|(a, _), (b, _)| deployment_order(a).cmp(&deployment_order(b)));
    let parts = published.iter().map(|(_, text)| &text[..]);
    Ok(deployment_text_of(key, api_root, parts))
}
