//! Deployments: what `GET /v2/deployment/{key}/myna.json` answers, every
//! published experiment of the key's account with its current weights
//! (core's `deployment_text`).

use myna_core::deployment::deployment_text;
use myna_core::{Code, Experiment, Problem, Visibility};
use uuid::Uuid;

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
    let key = Uuid::parse_str(key).map_err(|_| unknown_key())?;
    let account = state
        .keys
        .account(state.storage.as_ref(), key)
        .await?
        .ok_or_else(unknown_key)?;
    let now = state.now_ms();
    let published: Vec<_> = super::experiments::of_account(state, account)
        .into_iter()
        .filter(|s| s.experiment.visibility == Visibility::Published)
        .collect();
    for snapshot in &published {
        state.cache.served(snapshot, now);
    }
    let experiments: Vec<(&Experiment, &[f64])> = published
        .iter()
        .map(|s| (s.experiment.as_ref(), &s.weights[..]))
        .collect();
    Ok(deployment_text(key, api_root, &experiments))
}
