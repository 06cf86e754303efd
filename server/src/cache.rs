//! The experiment cache: every experiment in memory with its counts, so reads
//! never touch the database. Weights are recomputed only when counts changed,
//! at most every [`WEIGHTS_REFRESH_MS`] per experiment (immediately when the
//! definition changes), and the serialized summary read form (what every page
//! load with an API key gets) is kept until the weights change.
//!
//! Only the commit writer changes it (see `commit.rs`), in the same order as
//! it changes the database, so the two always agree. When other instances
//! share the database (PostgreSQL), the writer also [`Cache::sync`]s it with
//! the database every [`crate::state::SHARED_REFRESH`]: their experiments and
//! counts arrive that way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use myna_core::weights::{WeightsConfig, weights};
use myna_core::{Access, Experiment, ReadForm, RecordBatch};
use uuid::Uuid;

/// Least time between two weight computations of one experiment whose counts
/// keep changing, in milliseconds.
pub const WEIGHTS_REFRESH_MS: i64 = 250;

/// An experiment as cached: its state and the weights that go with it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Definition and counts.
    pub experiment: Arc<Experiment>,
    /// One weight per variant, in order.
    pub weights: Arc<[f64]>,
}

impl Snapshot {
    /// The read form for `access`, serialized.
    pub fn read_form(&self, access: Access) -> String {
        let form = ReadForm::new(&self.experiment, access, &self.weights);
        serde_json::to_string(&form).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Entry {
    experiment: Arc<Experiment>,
    weights: Arc<[f64]>,
    weights_at_ms: i64,
    counts_changed: bool,
    summary: Option<Arc<str>>,
}

/// Every experiment, by uuid.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<HashMap<Uuid, Arc<Mutex<Entry>>>>,
    config: WeightsConfig,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entry {
    fn new(experiment: Experiment, config: &WeightsConfig, now_ms: i64) -> Entry {
        let weights = weights(&experiment.arms(), config).into();
        Entry {
            experiment: Arc::new(experiment),
            weights,
            weights_at_ms: now_ms,
            counts_changed: false,
            summary: None,
        }
    }

    fn refresh(&mut self, config: &WeightsConfig, now_ms: i64) {
        if self.counts_changed && now_ms - self.weights_at_ms >= WEIGHTS_REFRESH_MS {
            self.weights = weights(&self.experiment.arms(), config).into();
            self.weights_at_ms = now_ms;
            self.counts_changed = false;
            self.summary = None;
        }
    }
}

impl Cache {
    /// A cache holding `experiments`, weights computed at `now_ms`.
    pub fn new(experiments: Vec<Experiment>, config: WeightsConfig, now_ms: i64) -> Cache {
        let entries = experiments
            .into_iter()
            .map(|e| (e.uuid, Arc::new(Mutex::new(Entry::new(e, &config, now_ms)))))
            .collect();
        Cache {
            entries: RwLock::new(entries),
            config,
        }
    }

    fn entry(&self, uuid: Uuid) -> Option<Arc<Mutex<Entry>>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(&uuid).cloned()
    }

    /// The experiment as it is now (definition and counts), without weights.
    pub fn experiment(&self, uuid: Uuid) -> Option<Arc<Experiment>> {
        self.entry(uuid).map(|e| lock(&e).experiment.clone())
    }

    /// The experiment with its weights, refreshed first if they are due.
    pub fn snapshot(&self, uuid: Uuid, now_ms: i64) -> Option<Snapshot> {
        let entry = self.entry(uuid)?;
        let mut entry = lock(&entry);
        entry.refresh(&self.config, now_ms);
        Some(Snapshot {
            experiment: entry.experiment.clone(),
            weights: entry.weights.clone(),
        })
    }

    /// The serialized summary read form (API keys), kept until the weights
    /// or the definition change.
    pub fn summary(&self, uuid: Uuid, now_ms: i64) -> Option<Arc<str>> {
        let entry = self.entry(uuid)?;
        let mut entry = lock(&entry);
        entry.refresh(&self.config, now_ms);
        if let Some(summary) = &entry.summary {
            return Some(summary.clone());
        }
        let form = ReadForm::new(&entry.experiment, Access::Summary, &entry.weights);
        let text: Arc<str> = serde_json::to_string(&form).unwrap_or_default().into();
        entry.summary = Some(text.clone());
        Some(text)
    }

    /// Snapshots of every experiment (for search).
    pub fn all(&self, now_ms: i64) -> Vec<Snapshot> {
        let entries: Vec<_> = {
            let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        entries
            .iter()
            .map(|entry| {
                let mut entry = lock(entry);
                entry.refresh(&self.config, now_ms);
                Snapshot {
                    experiment: entry.experiment.clone(),
                    weights: entry.weights.clone(),
                }
            })
            .collect()
    }

    /// Adds or replaces an experiment (create, update: definition and counts
    /// as given); its weights are computed now.
    pub fn put(&self, experiment: Experiment, now_ms: i64) {
        let uuid = experiment.uuid;
        let entry = Entry::new(experiment, &self.config, now_ms);
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(uuid, Arc::new(Mutex::new(entry)));
    }

    /// Forgets an experiment.
    pub fn remove(&self, uuid: Uuid) {
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&uuid);
    }

    /// Makes the cache equal `experiments` (everything the database holds):
    /// new ones are added, missing ones forgotten, changed definitions
    /// replaced (weights computed now); where only counts changed they are
    /// taken, and the weights follow at their next refresh.
    pub fn sync(&self, experiments: Vec<Experiment>, now_ms: i64) {
        let mut seen = HashSet::with_capacity(experiments.len());
        let mut added = Vec::new();
        {
            let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            for experiment in experiments {
                seen.insert(experiment.uuid);
                let Some(entry) = map.get(&experiment.uuid) else {
                    added.push(experiment);
                    continue;
                };
                let mut entry = lock(entry);
                if *entry.experiment == experiment {
                    continue;
                }
                if same_definition(&entry.experiment, &experiment) {
                    entry.experiment = Arc::new(experiment);
                    entry.counts_changed = true;
                } else {
                    *entry = Entry::new(experiment, &self.config, now_ms);
                }
            }
        }
        let added: Vec<_> = added
            .into_iter()
            .map(|e| (e.uuid, Entry::new(e, &self.config, now_ms)))
            .collect();
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|uuid, _| seen.contains(uuid));
        for (uuid, entry) in added {
            map.insert(uuid, Arc::new(Mutex::new(entry)));
        }
    }

    /// Adds a committed batch's events to the counts; the weights follow at
    /// their next refresh. Events of variants that no longer exist are dropped.
    pub fn add(&self, uuid: Uuid, batch: &RecordBatch) {
        let Some(entry) = self.entry(uuid) else {
            return;
        };
        let mut entry = lock(&entry);
        let experiment = Arc::make_mut(&mut entry.experiment);
        for (variant, views, reward) in batch.totals() {
            if let Some(v) = experiment.variants.iter_mut().find(|v| v.id == variant) {
                v.views = v.views.saturating_add(views);
                v.total_reward += reward;
            }
        }
        entry.counts_changed = true;
    }
}

/// Whether two states of an experiment differ only in their counts.
fn same_definition(a: &Experiment, b: &Experiment) -> bool {
    a.uuid == b.uuid
        && a.account_id == b.account_id
        && a.name == b.name
        && a.visibility == b.visibility
        && a.settings == b.settings
        && a.variants.len() == b.variants.len()
        && a.variants
            .iter()
            .zip(&b.variants)
            .all(|(x, y)| x.id == y.id && x.name == y.name && x.settings == y.settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_core::model::empty_object;
    use myna_core::{Event, EventType, Variant, Visibility};

    fn experiment() -> Experiment {
        Experiment {
            uuid: Uuid::from_u128(1),
            account_id: Uuid::from_u128(2),
            name: "e".into(),
            visibility: Visibility::Published,
            settings: empty_object(),
            variants: vec![Variant::new("a"), Variant::new("b")],
        }
    }

    fn views_of_a(n: usize) -> RecordBatch {
        let view = Event {
            typename: EventType::View,
            variant: "a".into(),
            amount: None,
            timestamp: 0,
        };
        let reward = Event {
            typename: EventType::Reward,
            amount: Some(1.0),
            ..view.clone()
        };
        RecordBatch {
            batch: None,
            events: [vec![view; n], vec![reward; n]].concat(),
        }
    }

    #[test]
    fn weights_follow_counts_at_most_every_250_ms() {
        let uuid = Uuid::from_u128(1);
        let cache = Cache::new(vec![experiment()], WeightsConfig::default(), 0);
        let before = cache.snapshot(uuid, 0).map(|s| s.weights.to_vec());
        assert_eq!(before, Some(vec![0.5, 0.5]));
        cache.add(uuid, &views_of_a(50));
        let soon = cache.snapshot(uuid, WEIGHTS_REFRESH_MS - 1);
        assert_eq!(soon.as_ref().map(|s| s.weights.to_vec()), before);
        assert_eq!(soon.map(|s| s.experiment.variants[0].views), Some(50));
        let later = cache
            .snapshot(uuid, WEIGHTS_REFRESH_MS)
            .map(|s| s.weights.to_vec())
            .unwrap_or_default();
        assert!(later[0] > 0.9, "the rewarded variant leads: {later:?}");
    }

    #[test]
    fn sync_takes_counts_definitions_and_deletions() {
        let uuid = Uuid::from_u128(1);
        let cache = Cache::new(vec![experiment()], WeightsConfig::default(), 0);
        let summary = cache.summary(uuid, 0).unwrap_or_else(|| "".into());
        // Unchanged: the summary is kept.
        cache.sync(vec![experiment()], 10);
        let again = cache.summary(uuid, 10).unwrap_or_else(|| "".into());
        assert!(Arc::ptr_eq(&summary, &again));
        // Counts from another instance: taken, weights follow at the refresh.
        let mut counted = experiment();
        counted.variants[1].views = 40;
        counted.variants[1].total_reward = 40.0;
        cache.sync(vec![counted], 20);
        let snapshot = cache.snapshot(uuid, 20 + WEIGHTS_REFRESH_MS);
        let weights = snapshot.as_ref().map(|s| s.weights.to_vec());
        assert!(weights.as_ref().is_some_and(|w| w[1] > 0.9), "{weights:?}");
        assert_eq!(snapshot.map(|s| s.experiment.variants[1].views), Some(40));
        // A definition change (and a new experiment): taken at once.
        let mut renamed = experiment();
        renamed.name = "renamed".into();
        let other = Experiment {
            uuid: Uuid::from_u128(9),
            ..experiment()
        };
        cache.sync(vec![renamed, other], 30);
        assert_eq!(
            cache.experiment(uuid).map(|e| e.name.clone()),
            Some("renamed".into())
        );
        assert_eq!(
            cache.snapshot(uuid, 30).map(|s| s.weights.to_vec()),
            Some(vec![0.5, 0.5])
        );
        // Deleted elsewhere: forgotten.
        cache.sync(vec![], 40);
        assert!(cache.experiment(uuid).is_none());
        assert!(cache.all(40).is_empty());
    }

    #[test]
    fn summary_is_kept_until_weights_change() {
        let uuid = Uuid::from_u128(1);
        let cache = Cache::new(vec![experiment()], WeightsConfig::default(), 0);
        let first = cache.summary(uuid, 0).unwrap_or_else(|| "".into());
        assert!(first.contains(r#""subtype":"summary""#));
        assert!(!first.contains("views"));
        let again = cache.summary(uuid, 10).unwrap_or_else(|| "".into());
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        cache.add(uuid, &views_of_a(10));
        let changed = cache.summary(uuid, 1_000).unwrap_or_else(|| "".into());
        assert_ne!(first, changed);
        cache.remove(uuid);
        assert!(cache.summary(uuid, 1_000).is_none());
    }
}
