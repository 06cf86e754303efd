//! Health checks that are right for a bandit: the sample ratio against the
//! weights actually served ([`srm`]), rewards without views, traffic that
//! stopped, a variant never shown. Pure functions of the counts, the hourly
//! totals and `now`.

pub mod srm;

use serde_json::{Value, json};

use crate::weights::Arm;
pub use srm::{HourSplit, SampleRatio, sample_ratio};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Nothing wrong.
    Ok,
    /// Worth a look; the numbers may still be right.
    Warning,
    /// The data cannot be trusted as it is.
    Failing,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failing => "failing",
        }
    }
}

/// One health check's answer, as the decision form lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Stable name of the check (`sample-ratio`, …).
    pub typename: &'static str,
    /// How it came out.
    pub status: Status,
    /// What it found, in plain language.
    pub message: String,
    /// The numbers behind it.
    pub data: Value,
}

impl Check {
    /// Its JSON form: `{typename, status, message, data}`.
    pub fn to_json(&self) -> Value {
        json!({
            "typename": self.typename,
            "status": self.status.as_str(),
            "message": self.message,
            "data": self.data,
        })
    }
}

/// One clock hour of an experiment, variants in the experiment's order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hour {
    /// Start of the hour, epoch milliseconds.
    pub start_ms: i64,
    /// The weights the server answered with during the hour (their
    /// average); empty when it answered none.
    pub served: Vec<f64>,
    /// Views recorded per variant.
    pub views: Vec<u64>,
    /// Sum of the rewards recorded per variant.
    pub rewards: Vec<f64>,
}

/// Below this p-value an hourly sample-ratio test is significant. Strict:
/// the check is run again every hour of a long experiment, and a healthy
/// bandit must practically never alarm in any of them (the simulation
/// measures the rate per hourly check and per experiment).
pub const SRM_FAILING_BELOW: f64 = 1e-4;

/// The sample ratio's status from this hour's p-value and the previous
/// hour's: `failing` when both are below [`SRM_FAILING_BELOW`] (a mismatch
/// that persists), `warning` when only this hour's is (one significant hour
/// may be a healthy bandit's bad luck: its hourly differences are
/// heavier-tailed than the test's reference), else `ok`.
pub fn sample_ratio_status(p: f64, p_before: f64) -> Status {
    match (p < SRM_FAILING_BELOW, p_before < SRM_FAILING_BELOW) {
        (true, true) => Status::Failing,
        (true, false) => Status::Warning,
        _ => Status::Ok,
    }
}

/// The sample-ratio check over `hours` (oldest first): the test over all of
/// them, and over all but the last (the check an hour earlier), for
/// [`sample_ratio_status`].
pub fn sample_ratio_check(hours: &[Hour]) -> Check {
    let splits: Vec<HourSplit> = hours
        .iter()
        .map(|h| HourSplit {
            served: h.served.clone(),
            views: h.views.clone(),
        })
        .collect();
    let result = sample_ratio(&splits);
    let before = match splits.split_last() {
        Some((_, earlier)) if result.p < SRM_FAILING_BELOW => sample_ratio(earlier).p,
        _ => 1.0,
    };
    let status = sample_ratio_status(result.p, before);
    let message = match status {
        Status::Failing => format!(
            "The views per variant do not match the weights served, this hour and the hour before (p = {:.1e}): some views may be lost or recorded twice, or the page may not show variants by their weights.",
            result.p
        ),
        Status::Warning => format!(
            "The views per variant differ from the weights served this hour (p = {:.1e}); it fails if the next hour agrees.",
            result.p
        ),
        Status::Ok if result.hours == 0 => "Not tested yet: the views per variant are compared with the weights served once 24 hours (more with many variants) have views.".to_owned(),
        Status::Ok => "The views per variant match the weights served.".to_owned(),
    };
    Check {
        typename: "sample-ratio",
        status,
        message,
        data: json!({ "p": result.p, "pBefore": before, "statistic": result.statistic, "hours": result.hours }),
    }
}

/// Rewards beyond views: a variant whose total reward exceeds its views got
/// rewards sent without views (each view earns at most 1).
pub fn rewards_exceed_views(ids: &[&str], arms: &[Arm]) -> Check {
    let over: Vec<&str> = ids
        .iter()
        .zip(arms)
        .filter(|(_, a)| a.total_reward > a.views as f64)
        .map(|(id, _)| *id)
        .collect();
    let (status, message) = if over.is_empty() {
        (
            Status::Ok,
            "No variant has more rewards than views.".to_owned(),
        )
    } else {
        (
            Status::Failing,
            format!(
                "More rewards than views for {}: rewards are being sent without views.",
                super::listed(&over)
            ),
        )
    };
    Check {
        typename: "rewards-exceed-views",
        status,
        message,
        data: json!({ "variants": over }),
    }
}

/// Steady traffic: at least this many of the day's hours before a silence
/// had events.
const STEADY_HOURS: usize = 12;

/// A silence fails when, at the rate before it, it had at most this chance
/// (e^-7, about 0.1 %).
const SILENCE_EVENTS: f64 = 7.0;

/// Traffic that stopped: a published experiment with steady traffic (events
/// in at least 12 of the 24 hours before its last event) and then no events
/// for longer than that rate makes believable (P < 0.1 %), at least two
/// hours. `hours` oldest first; only published experiments are checked.
pub fn traffic_stopped(hours: &[Hour], published: bool, now_ms: i64) -> Check {
    let events = |h: &Hour| h.views.iter().sum::<u64>() as f64 + h.rewards.iter().sum::<f64>();
    let active: Vec<&Hour> = hours.iter().filter(|h| events(h) > 0.0).collect();
    let ok = |message: &str| Check {
        typename: "traffic-stopped",
        status: Status::Ok,
        message: message.to_owned(),
        data: json!({}),
    };
    let Some(last) = active.last().filter(|_| published) else {
        return ok("Not checked: the experiment is not published or has no events yet.");
    };
    let day_before = last.start_ms - 23 * HOUR_MS;
    let recent: Vec<&&Hour> = active.iter().filter(|h| h.start_ms >= day_before).collect();
    let per_hour = recent.iter().map(|h| events(h)).sum::<f64>() / 24.0;
    let silent_hours = ((now_ms - (last.start_ms + HOUR_MS)) / HOUR_MS).max(0);
    let limit = (SILENCE_EVENTS / per_hour).ceil().max(2.0);
    if recent.len() >= STEADY_HOURS && silent_hours as f64 >= limit {
        Check {
            typename: "traffic-stopped",
            status: Status::Failing,
            message: format!(
                "No events for {silent_hours} hours after about {per_hour:.0} an hour: check that the page still loads the experiment."
            ),
            data: json!({ "silentHours": silent_hours, "eventsPerHour": per_hour }),
        }
    } else {
        ok("Events are arriving.")
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Expected views below which a variant with none is not yet suspicious
/// (P(no view) = e^-7, about 0.1 %).
const NEVER_SHOWN_EXPECTED: f64 = 7.0;

/// A variant never shown: no views although the weights served predict at
/// least 7 (so a healthy page shows it with probability above 99.9 %).
pub fn never_shown(ids: &[&str], hours: &[Hour]) -> Check {
    let k = ids.len();
    let mut views = vec![0u64; k];
    let mut expected = vec![0.0; k];
    for hour in hours {
        let total: u64 = hour.views.iter().sum();
        let served_total: f64 = hour
            .served
            .iter()
            .filter(|w| w.is_finite() && **w > 0.0)
            .sum();
        for i in 0..k {
            views[i] += hour.views.get(i).copied().unwrap_or(0);
            if served_total > 0.0 {
                let w = hour
                    .served
                    .get(i)
                    .copied()
                    .filter(|w| w.is_finite() && *w > 0.0);
                expected[i] += total as f64 * w.unwrap_or(0.0) / served_total;
            }
        }
    }
    let never: Vec<&str> = (0..k)
        .filter(|&i| views[i] == 0 && expected[i] >= NEVER_SHOWN_EXPECTED)
        .map(|i| ids[i])
        .collect();
    let unseen: Vec<&str> = (0..k).filter(|&i| views[i] == 0).map(|i| ids[i]).collect();
    let (status, message) = if never.is_empty() && unseen.is_empty() {
        (Status::Ok, "Every variant has been shown.".to_owned())
    } else if never.is_empty() {
        // Not shown yet, but not served enough for that to mean anything.
        (
            Status::Ok,
            format!(
                "Not shown yet: {} (too few views served so far to tell whether the page \
                 can show {}).",
                super::listed(&unseen),
                if unseen.len() == 1 { "it" } else { "them" }
            ),
        )
    } else {
        (
            Status::Failing,
            format!(
                "Never shown although served: {}. Check that the page can display {}.",
                super::listed(&never),
                if never.len() == 1 { "it" } else { "them" }
            ),
        )
    };
    Check {
        typename: "variant-never-shown",
        status,
        message,
        data: json!({ "variants": never }),
    }
}
