//! Decisions: whether an experiment is done and its data healthy (core's
//! `decide`), from its counts (the cache), its hourly totals and the weights
//! served each hour (storage). Owner only: to anyone else the experiment is
//! missing.

use std::collections::BTreeMap;

use myna_core::decision::{Decision, Hour, decide};
use myna_core::{Experiment, Problem};
use uuid::Uuid;

use crate::auth::Caller;
use crate::service::experiments;
use crate::state::AppState;
use crate::storage::{HourTotals, Served, StorageError};

/// The decision on `account`'s experiment it knows as `uuid`, now (the 404
/// problem if it has none such).
pub async fn decision(state: &AppState, account: Uuid, uuid: Uuid) -> Result<Decision, Problem> {
    let experiment = experiments::visible_fresh(state, Caller::Owner { account }, uuid).await?;
    Ok(decision_of(state, &experiment, state.now_ms()).await?)
}

/// The decision on `experiment` (as stored) at `now_ms`: the endpoint's and
/// the webhooks' watcher's.
pub async fn decision_of(
    state: &AppState,
    experiment: &Experiment,
    now_ms: i64,
) -> Result<Decision, StorageError> {
    let hourly = state.storage.hourly(experiment.uuid).await?;
    decided(state, experiment, &hourly, now_ms).await
}

/// The decision on `account`'s experiment `uuid` now and the hourly totals
/// it was made from (the dashboard's page shows both): the history read
/// once, not once for each.
pub async fn decision_with_hourly(
    state: &AppState,
    account: Uuid,
    uuid: Uuid,
) -> Result<(Decision, Vec<HourTotals>), Problem> {
    let experiment = experiments::visible_fresh(state, Caller::Owner { account }, uuid).await?;
    let hourly = state.storage.hourly(experiment.uuid).await?;
    let decision = decided(state, &experiment, &hourly, state.now_ms()).await?;
    Ok((decision, hourly))
}

/// The decision on `experiment` at `now_ms` from its `hourly` totals and
/// the weights served (read here).
async fn decided(
    state: &AppState,
    experiment: &Experiment,
    hourly: &[HourTotals],
    now_ms: i64,
) -> Result<Decision, StorageError> {
    let served = state.storage.served(experiment.uuid).await?;
    let ids: Vec<&str> = experiment.variants.iter().map(|v| v.id.as_str()).collect();
    let hours = hours(&ids, hourly, &served);
    Ok(decide(experiment, &hours, now_ms))
}

/// Core's hours, oldest first, variants in `ids`' order: every hour with
/// events or served weights. An hour's served weight of a variant is its
/// sum over the answers of the hour divided by their number (a variant
/// added during the hour was served 0 before); empty when none.
pub fn hours(ids: &[&str], hourly: &[HourTotals], served: &[Served]) -> Vec<Hour> {
    let k = ids.len();
    // By id: a year of 100 variants is 878,400 rows of each kind.
    let positions: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let index = |variant: &str| positions.get(variant).copied();
    let empty = |start_ms| {
        let hour = Hour {
            start_ms,
            served: Vec::new(),
            views: vec![0; k],
            rewards: vec![0.0; k],
        };
        (hour, vec![0.0; k], 0)
    };
    let mut by_hour: BTreeMap<i64, (Hour, Vec<f64>, u64)> = BTreeMap::new();
    for totals in hourly {
        let (hour, _, _) = by_hour
            .entry(totals.hour_ms)
            .or_insert_with(|| empty(totals.hour_ms));
        if let Some(i) = index(&totals.variant) {
            hour.views[i] += totals.views;
            hour.rewards[i] += totals.total_reward;
        }
    }
    for row in served {
        let (_, sums, answers) = by_hour
            .entry(row.hour_ms)
            .or_insert_with(|| empty(row.hour_ms));
        if let Some(i) = index(&row.variant) {
            sums[i] += row.weight_sum;
            *answers = (*answers).max(row.answers);
        }
    }
    by_hour
        .into_values()
        .map(|(mut hour, sums, answers)| {
            if answers > 0 {
                hour.served = sums.iter().map(|s| s / answers as f64).collect();
            }
            hour
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_oldest_first_with_served_averages() {
        let h = 3_600_000;
        let hourly = [
            HourTotals {
                variant: "b".into(),
                hour_ms: 2 * h,
                views: 3,
                total_reward: 1.0,
            },
            HourTotals {
                variant: "a".into(),
                hour_ms: h,
                views: 5,
                total_reward: 2.0,
            },
            HourTotals {
                variant: "gone".into(),
                hour_ms: h,
                views: 9,
                total_reward: 9.0,
            },
        ];
        let served = |variant: &str, hour_ms, weight_sum, answers| Served {
            experiment: Uuid::nil(),
            variant: variant.into(),
            hour_ms,
            weight_sum,
            answers,
        };
        let served = [
            served("a", h, 3.0, 4),
            served("b", h, 1.0, 4),
            served("b", 3 * h, 1.5, 2),
        ];
        let hours = hours(&["a", "b"], &hourly, &served);
        let starts: Vec<i64> = hours.iter().map(|x| x.start_ms).collect();
        assert_eq!(starts, [h, 2 * h, 3 * h]);
        assert_eq!(hours[0].views, [5, 0]);
        assert_eq!(hours[0].rewards, [2.0, 0.0]);
        assert_eq!(hours[0].served, [0.75, 0.25]);
        assert_eq!(hours[1].views, [0, 3]);
        assert!(hours[1].served.is_empty());
        // `a` was not served in the answers of that hour (it was added later).
        assert_eq!(hours[2].served, [0.0, 0.75]);
    }
}
