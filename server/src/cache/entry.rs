//! One cached experiment ([`Entry`]): its definition and counts, the
//! weights computed from them and when, the serialized forms kept until
//! those change, and the weights it answered with this hour.

use std::sync::Arc;

use myna_core::timestamp::hour_start;
use myna_core::weights::{WeightsConfig, weights};
use myna_core::{Access, Experiment, ReadForm};

use super::{SERVED_BACKLOG, WEIGHTS_REFRESH_MS};
use crate::metrics::Timer;
use crate::storage::Served;

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) experiment: Arc<Experiment>,
    pub(super) weights: Arc<[f64]>,
    pub(super) weights_at_ms: i64,
    pub(super) counts_changed: bool,
    /// Since when the counts differ from what the weights were computed
    /// from (valid while `counts_changed`).
    pub(super) changed_at_ms: i64,
    pub(super) summary: Option<Arc<str>>,
    /// The experiment in the deployment form (core's `deployed_text`),
    /// kept like `summary` until the weights or the definition change.
    pub(super) deployed: Option<Arc<str>>,
    /// The name search folded last, and what it folded to (searches sort
    /// every name of an account: each is folded once, not per search).
    pub(super) folded_name: Option<(String, Arc<str>)>,
    pub(super) served: ServedSums,
}

/// The weights an entry answered with since the last flush: the current
/// hour's sums (one per variant of the entry's definition) and rows closed
/// already (past hours, earlier definitions).
#[derive(Debug, Default)]
pub(super) struct ServedSums {
    pub(super) hour_ms: i64,
    pub(super) sums: Vec<f64>,
    pub(super) answers: u64,
    pub(super) closed: Vec<Served>,
}

impl Entry {
    pub(super) fn new(experiment: Experiment, config: &WeightsConfig, now_ms: i64) -> Entry {
        // The experiment's own weights mode (`myna.weights.mode`); a bad
        // value falls back to the default, which its decision reports.
        let weights = weights(
            &experiment.arms(),
            &config.for_settings(&experiment.settings).0,
        )
        .into();
        Entry {
            experiment: Arc::new(experiment),
            weights,
            weights_at_ms: now_ms,
            counts_changed: false,
            changed_at_ms: now_ms,
            summary: None,
            deployed: None,
            folded_name: None,
            served: ServedSums::default(),
        }
    }

    /// The experiment's name as search compares it (core's `folded`),
    /// folded again only when the name changed.
    pub(super) fn folded_name(&mut self) -> Arc<str> {
        if let Some((name, folded)) = &self.folded_name
            && *name == self.experiment.name
        {
            return folded.clone();
        }
        let folded: Arc<str> = myna_core::search::folded(&self.experiment.name).into();
        self.folded_name = Some((self.experiment.name.clone(), folded.clone()));
        folded
    }

    /// Adds one answer with `weights` (the entry's, in variant order) at
    /// `now_ms` to the served sums.
    pub(super) fn serve(&mut self, weights: &[f64], now_ms: i64) {
        if weights.len() != self.experiment.variants.len() {
            return;
        }
        let hour = hour_start(now_ms);
        if self.served.answers > 0 && self.served.hour_ms != hour {
            self.close_served();
        }
        if self.served.answers == 0 {
            self.served.hour_ms = hour;
            self.served.sums.clear();
            self.served.sums.resize(weights.len(), 0.0);
        }
        for (sum, weight) in self.served.sums.iter_mut().zip(weights) {
            *sum += weight;
        }
        self.served.answers += 1;
    }

    /// Moves the current hour's sums to the rows waiting for a flush.
    pub(super) fn close_served(&mut self) {
        let served = &mut self.served;
        if served.answers > 0 {
            for (variant, sum) in self.experiment.variants.iter().zip(&served.sums) {
                served.closed.push(Served {
                    experiment: self.experiment.uuid,
                    variant: variant.id.clone(),
                    hour_ms: served.hour_ms,
                    weight_sum: *sum,
                    answers: served.answers,
                });
            }
            served.answers = 0;
        }
        if served.closed.len() > SERVED_BACKLOG {
            let excess = served.closed.len() - SERVED_BACKLOG;
            served.closed.drain(..excess);
        }
    }

    /// Takes over what `old` (this experiment under its previous
    /// definition) served and has not flushed.
    pub(super) fn inherit_served(&mut self, old: &mut Entry) {
        old.close_served();
        self.served.closed = std::mem::take(&mut old.served.closed);
    }

    /// The serialized summary read form (API keys), made once and kept
    /// until the weights or the definition change.
    pub(super) fn summary(&mut self) -> Arc<str> {
        if let Some(summary) = &self.summary {
            return summary.clone();
        }
        let form = ReadForm::new(&self.experiment, Access::Summary, &self.weights);
        let text: Arc<str> = serde_json::to_string(&form).unwrap_or_default().into();
        self.summary = Some(text.clone());
        text
    }

    /// The counts changed at `now_ms`.
    pub(super) fn counts_changed(&mut self, now_ms: i64) {
        if !self.counts_changed {
            self.counts_changed = true;
            self.changed_at_ms = now_ms;
        }
    }

    pub(super) fn refresh(&mut self, config: &WeightsConfig, now_ms: i64, lag: &Timer) {
        if self.counts_changed && now_ms - self.weights_at_ms >= WEIGHTS_REFRESH_MS {
            lag.observe((now_ms - self.changed_at_ms).max(0) as f64 / 1000.0);
            let config = config.for_settings(&self.experiment.settings).0;
            self.weights = weights(&self.experiment.arms(), &config).into();
            self.weights_at_ms = now_ms;
            self.counts_changed = false;
            self.summary = None;
            self.deployed = None;
        }
    }
}
