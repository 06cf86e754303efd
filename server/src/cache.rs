//! The experiment cache: every experiment in memory with its counts, so reads
//! never touch the database. Weights are recomputed only when counts changed,
//! at most every [`WEIGHTS_REFRESH_MS`] per experiment (immediately when the
//! definition changes), and the serialized summary read form (what every page
//! load with an API key gets) is kept until the weights change.
//!
//! Each entry also sums the weights of the read forms answered to clients
//! this hour (what pages choose a variant by): [`Cache::served`] adds an
//! answer under the entry's lock the answer takes anyway, and
//! [`Cache::take_served`] hands the sums over to be added to storage (every
//! [`crate::state::SERVED_FLUSH`], off the record path).
//!
//! An experiment storage could not read ([`Unreadable`]) is kept apart: it
//! is known to exist (its owner gets a 500 problem for it and may delete it)
//! but it has no state to serve, and search does not list it.
//!
//! Only the commit writer changes it (see `commit.rs`), in the same order as
//! it changes the database, so the two always agree. When other instances
//! share the database (PostgreSQL), the writer also [`Cache::sync`]s it with
//! the database every [`crate::state::SHARED_REFRESH`]: their experiments and
//! counts arrive that way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use myna_core::deployment::deployed_text;
use myna_core::timestamp::hour_start;
use myna_core::weights::{WeightsConfig, weights};
use myna_core::{Access, Experiment, ReadForm, RecordBatch, Visibility};
use uuid::Uuid;

use crate::metrics::Timer;
use crate::storage::{Experiments, Served, Unreadable};

/// Most rows of served weights an experiment keeps waiting for a flush
/// (past hours, earlier definitions) while storage cannot take them; the
/// oldest go first.
pub const SERVED_BACKLOG: usize = 10_000;

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
    /// Since when the counts differ from what the weights were computed
    /// from (valid while `counts_changed`).
    changed_at_ms: i64,
    summary: Option<Arc<str>>,
    /// The experiment in the deployment form (core's `deployed_text`),
    /// kept like `summary` until the weights or the definition change.
    deployed: Option<Arc<str>>,
    /// The name search folded last, and what it folded to (searches sort
    /// every name of an account: each is folded once, not per search).
    folded_name: Option<(String, Arc<str>)>,
    served: ServedSums,
}

/// The weights an entry answered with since the last flush: the current
/// hour's sums (one per variant of the entry's definition) and rows closed
/// already (past hours, earlier definitions).
#[derive(Debug, Default)]
struct ServedSums {
    hour_ms: i64,
    sums: Vec<f64>,
    answers: u64,
    closed: Vec<Served>,
}

/// Every experiment, by uuid.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<HashMap<Uuid, Arc<Mutex<Entry>>>>,
    /// `(account, alias)` → uuid, for the experiments that have an alias
    /// (uuids are per account: see `Experiment::alias`).
    aliases: RwLock<HashMap<(Uuid, Uuid), Uuid>>,
    /// Experiments storage could not read, by their stored uuid text.
    unreadable: RwLock<HashMap<String, Unreadable>>,
    config: WeightsConfig,
    /// Observes the time from counts changing to weights recomputed.
    lag: Timer,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Entry {
    fn new(experiment: Experiment, config: &WeightsConfig, now_ms: i64) -> Entry {
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
    fn folded_name(&mut self) -> Arc<str> {
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
    fn serve(&mut self, weights: &[f64], now_ms: i64) {
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
    fn close_served(&mut self) {
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
    fn inherit_served(&mut self, old: &mut Entry) {
        old.close_served();
        self.served.closed = std::mem::take(&mut old.served.closed);
    }

    /// The counts changed at `now_ms`.
    fn counts_changed(&mut self, now_ms: i64) {
        if !self.counts_changed {
            self.counts_changed = true;
            self.changed_at_ms = now_ms;
        }
    }

    fn refresh(&mut self, config: &WeightsConfig, now_ms: i64, lag: &Timer) {
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

impl Cache {
    /// A cache holding `experiments` (and knowing the unreadable ones),
    /// weights computed at `now_ms`.
    pub fn new(experiments: Experiments, config: WeightsConfig, now_ms: i64) -> Cache {
        let aliases = aliases(&experiments.readable);
        let entries = experiments
            .readable
            .into_iter()
            .map(|e| (e.uuid, Arc::new(Mutex::new(Entry::new(e, &config, now_ms)))))
            .collect();
        let unreadable = by_uuid(experiments.unreadable);
        Cache {
            entries: RwLock::new(entries),
            aliases: RwLock::new(aliases),
            unreadable: RwLock::new(unreadable),
            config,
            lag: Timer::default(),
        }
    }

    /// Observes in `lag` the time from an experiment's counts changing
    /// to its weights recomputed, in seconds.
    pub fn with_lag(mut self, lag: Timer) -> Cache {
        self.lag = lag;
        self
    }

    fn entry(&self, uuid: Uuid) -> Option<Arc<Mutex<Entry>>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(&uuid).cloned()
    }

    /// The uuid the experiment `account` knows as `uuid` is stored under:
    /// the experiment of that alias if the account has one, else `uuid`.
    pub fn resolve(&self, account: Uuid, uuid: Uuid) -> Uuid {
        let aliases = self.aliases.read().unwrap_or_else(PoisonError::into_inner);
        aliases.get(&(account, uuid)).copied().unwrap_or(uuid)
    }

    /// The experiment as it is now (definition and counts), without weights.
    pub fn experiment(&self, uuid: Uuid) -> Option<Arc<Experiment>> {
        self.entry(uuid).map(|e| lock(&e).experiment.clone())
    }

    /// What is known of an experiment storage could not read.
    pub fn unreadable(&self, uuid: Uuid) -> Option<Unreadable> {
        let unreadable = self
            .unreadable
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        unreadable.get(&uuid.to_string()).cloned()
    }

    /// Marks an experiment unreadable (storage could not read it any more);
    /// true if it was not known so, for this reason, before.
    pub fn put_unreadable(&self, unreadable: Unreadable) -> bool {
        if let Ok(uuid) = Uuid::parse_str(&unreadable.uuid) {
            let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            map.remove(&uuid);
        }
        let mut map = self
            .unreadable
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let known = map.get(&unreadable.uuid) == Some(&unreadable);
        map.insert(unreadable.uuid.clone(), unreadable);
        !known
    }

    /// The experiment with its weights, refreshed first if they are due.
    pub fn snapshot(&self, uuid: Uuid, now_ms: i64) -> Option<Snapshot> {
        let entry = self.entry(uuid)?;
        let mut entry = lock(&entry);
        entry.refresh(&self.config, now_ms, &self.lag);
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
        entry.refresh(&self.config, now_ms, &self.lag);
        if let Some(summary) = &entry.summary {
            return Some(summary.clone());
        }
        let form = ReadForm::new(&entry.experiment, Access::Summary, &entry.weights);
        let text: Arc<str> = serde_json::to_string(&form).unwrap_or_default().into();
        entry.summary = Some(text.clone());
        Some(text)
    }

    /// Every entry, taken out of the map's lock (each is then locked alone).
    fn entry_list(&self) -> Vec<Arc<Mutex<Entry>>> {
        let map = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Every experiment of `account`, as it is now (no weights computed).
    pub fn of_account(&self, account: Uuid) -> Vec<Arc<Experiment>> {
        self.each_of_account(account, |entry| Some(entry.experiment.clone()))
    }

    /// `take` of every entry of `account` (each locked in turn), where it
    /// takes something.
    fn each_of_account<T>(
        &self,
        account: Uuid,
        mut take: impl FnMut(&mut Entry) -> Option<T>,
    ) -> Vec<T> {
        let entries = self.entry_list();
        entries
            .iter()
            .filter_map(|entry| {
                let mut entry = lock(entry);
                (entry.experiment.account_id == account)
                    .then(|| take(&mut entry))
                    .flatten()
            })
            .collect()
    }

    /// Every experiment of `account`, as it is now (no weights computed),
    /// each with its name folded for search.
    pub fn of_account_named(&self, account: Uuid) -> Vec<(Arc<Experiment>, Arc<str>)> {
        self.each_of_account(account, |entry| {
            Some((entry.experiment.clone(), entry.folded_name()))
        })
    }

    /// Snapshots of every experiment (the webhook watcher's round, an
    /// account's pages).
    pub fn all(&self, now_ms: i64) -> Vec<Snapshot> {
        let entries = self.entry_list();
        entries
            .iter()
            .map(|entry| {
                let mut entry = lock(entry);
                entry.refresh(&self.config, now_ms, &self.lag);
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
        if let Some(alias) = experiment.alias {
            let mut aliases = self.aliases.write().unwrap_or_else(PoisonError::into_inner);
            aliases.insert((experiment.account_id, alias), uuid);
        }
        let mut entry = Entry::new(experiment, &self.config, now_ms);
        self.forget_unreadable(uuid);
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = map.get(&uuid) {
            entry.inherit_served(&mut lock(old));
        }
        map.insert(uuid, Arc::new(Mutex::new(entry)));
    }

    /// Forgets an experiment (readable or not).
    pub fn remove(&self, uuid: Uuid) {
        self.forget_unreadable(uuid);
        {
            let mut aliases = self.aliases.write().unwrap_or_else(PoisonError::into_inner);
            aliases.retain(|_, key| *key != uuid);
        }
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&uuid);
    }

    fn forget_unreadable(&self, uuid: Uuid) {
        let mut map = self
            .unreadable
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.remove(&uuid.to_string());
    }

    /// Makes the cache equal `experiments` (everything the database holds):
    /// new ones are added, missing ones forgotten, changed definitions
    /// replaced (weights computed now); where only counts changed they are
    /// taken, and the weights follow at their next refresh. Unreadable ones
    /// replace what was known of them; those not known so before (or for
    /// another reason) are answered, for the log.
    pub fn sync(&self, experiments: Experiments, now_ms: i64) -> Vec<Unreadable> {
        let fresh: Vec<Unreadable> = {
            let known = self
                .unreadable
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            experiments
                .unreadable
                .iter()
                .filter(|u| known.get(&u.uuid) != Some(u))
                .cloned()
                .collect()
        };
        *self
            .unreadable
            .write()
            .unwrap_or_else(PoisonError::into_inner) = by_uuid(experiments.unreadable);
        let experiments = experiments.readable;
        *self.aliases.write().unwrap_or_else(PoisonError::into_inner) = aliases(&experiments);
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
                self.take(&mut lock(entry), experiment, now_ms);
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
        fresh
    }

    /// Takes what changed in a shared database: `changed`, the current state
    /// of experiments that changed (readable or not; others are kept as
    /// they are), and `deleted`, experiments gone. Answers the unreadable
    /// ones not known so before, for the log.
    pub fn apply(&self, changed: Experiments, deleted: &[Uuid], now_ms: i64) -> Vec<Unreadable> {
        let mut fresh = Vec::new();
        for unreadable in changed.unreadable {
            if self.put_unreadable(unreadable.clone()) {
                fresh.push(unreadable);
            }
        }
        for experiment in changed.readable {
            match self.entry(experiment.uuid) {
                Some(entry) => {
                    self.forget_unreadable(experiment.uuid);
                    self.take(&mut lock(&entry), experiment, now_ms);
                }
                None => self.put(experiment, now_ms),
            }
        }
        for uuid in deleted {
            self.remove(*uuid);
        }
        fresh
    }

    /// Makes `entry` hold `experiment` as the database has it: counts only
    /// (the weights follow at their next refresh), or a new definition
    /// (weights computed now, what was served kept).
    fn take(&self, entry: &mut Entry, experiment: Experiment, now_ms: i64) {
        if *entry.experiment == experiment {
            return;
        }
        if entry.experiment.same_definition(&experiment) {
            entry.experiment = Arc::new(experiment);
            entry.counts_changed(now_ms);
        } else {
            let mut fresh = Entry::new(experiment, &self.config, now_ms);
            fresh.inherit_served(entry);
            *entry = fresh;
        }
    }

    /// Counts one answer of the read form with `snapshot`'s weights (taken
    /// from this cache) at `now_ms` in the experiment's served weights.
    pub fn served(&self, snapshot: &Snapshot, now_ms: i64) {
        let Some(entry) = self.entry(snapshot.experiment.uuid) else {
            return;
        };
        let mut entry = lock(&entry);
        // The weights go with the variants they were computed for.
        let same_variants = entry.experiment.variants.len() == snapshot.experiment.variants.len()
            && entry
                .experiment
                .variants
                .iter()
                .zip(&snapshot.experiment.variants)
                .all(|(a, b)| a.id == b.id);
        if same_variants {
            entry.serve(&snapshot.weights, now_ms);
        }
    }

    /// Every published experiment of `account` in the deployment form
    /// (core's `deployed_text`, kept until its weights or definition
    /// change), with the experiment it was written from; each counted as
    /// answered (its weights served) under its lock.
    pub fn serve_deployed(&self, account: Uuid, now_ms: i64) -> Vec<(Arc<Experiment>, Arc<str>)> {
        self.each_of_account(account, |entry| {
            if entry.experiment.visibility != Visibility::Published {
                return None;
            }
            entry.refresh(&self.config, now_ms, &self.lag);
            let weights = entry.weights.clone();
            entry.serve(&weights, now_ms);
            let experiment = &entry.experiment;
            let text = entry
                .deployed
                .get_or_insert_with(|| deployed_text(experiment, &weights).into());
            Some((experiment.clone(), text.clone()))
        })
    }

    /// The summary read form like [`Cache::summary`], counted as answered
    /// (its weights served) under the same lock.
    pub fn serve_summary(&self, uuid: Uuid, now_ms: i64) -> Option<Arc<str>> {
        let entry = self.entry(uuid)?;
        let mut entry = lock(&entry);
        entry.refresh(&self.config, now_ms, &self.lag);
        let weights = entry.weights.clone();
        entry.serve(&weights, now_ms);
        if let Some(summary) = &entry.summary {
            return Some(summary.clone());
        }
        let form = ReadForm::new(&entry.experiment, Access::Summary, &entry.weights);
        let text: Arc<str> = serde_json::to_string(&form).unwrap_or_default().into();
        entry.summary = Some(text.clone());
        Some(text)
    }

    /// The snapshot like [`Cache::snapshot`], counted as answered (its
    /// weights served) under the same lock.
    pub fn serve_snapshot(&self, uuid: Uuid, now_ms: i64) -> Option<Snapshot> {
        let entry = self.entry(uuid)?;
        let mut entry = lock(&entry);
        entry.refresh(&self.config, now_ms, &self.lag);
        let weights = entry.weights.clone();
        entry.serve(&weights, now_ms);
        Some(Snapshot {
            experiment: entry.experiment.clone(),
            weights,
        })
    }

    /// Everything served since the last call, as rows to add to storage.
    pub fn take_served(&self) -> Vec<Served> {
        let entries = self.entry_list();
        let mut rows = Vec::new();
        for entry in entries {
            let mut entry = lock(&entry);
            entry.close_served();
            rows.append(&mut entry.served.closed);
        }
        rows
    }

    /// Gives back rows [`Cache::take_served`] took that storage could not
    /// take, to be flushed again (those of experiments gone are dropped).
    pub fn restore_served(&self, rows: Vec<Served>) {
        let mut by_experiment: HashMap<Uuid, Vec<Served>> = HashMap::new();
        for row in rows {
            by_experiment.entry(row.experiment).or_default().push(row);
        }
        for (uuid, mut rows) in by_experiment {
            if let Some(entry) = self.entry(uuid) {
                let mut entry = lock(&entry);
                rows.append(&mut entry.served.closed);
                entry.served.closed = rows;
                entry.close_served();
            }
        }
    }

    /// Forgets what an experiment served and has not flushed (reset).
    pub fn forget_served(&self, uuid: Uuid) {
        if let Some(entry) = self.entry(uuid) {
            let mut entry = lock(&entry);
            entry.served = ServedSums::default();
        }
    }

    /// Adds a committed batch's events to the counts; the weights follow at
    /// their next refresh. Events of variants that no longer exist are dropped.
    /// `now_ms`: when they were committed.
    pub fn add(&self, uuid: Uuid, batch: &RecordBatch, now_ms: i64) {
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
        entry.counts_changed(now_ms);
    }
}

/// `(account, alias)` → uuid of the experiments that have an alias.
fn aliases(experiments: &[Experiment]) -> HashMap<(Uuid, Uuid), Uuid> {
    experiments
        .iter()
        .filter_map(|e| Some(((e.account_id, e.alias?), e.uuid)))
        .collect()
}

fn by_uuid(unreadable: Vec<Unreadable>) -> HashMap<String, Unreadable> {
    unreadable
        .into_iter()
        .map(|u| (u.uuid.clone(), u))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_core::model::empty_object;
    use myna_core::{Event, EventType, Variant, Visibility};

    fn experiment() -> Experiment {
        Experiment {
            uuid: Uuid::from_u128(1),
            alias: None,
            id: "e".into(),
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
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0);
        let before = cache.snapshot(uuid, 0).map(|s| s.weights.to_vec());
        assert_eq!(before, Some(vec![0.5, 0.5]));
        cache.add(uuid, &views_of_a(50), 0);
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
    fn the_lag_from_counts_to_weights_is_observed() {
        let uuid = Uuid::from_u128(1);
        let lag = Timer::default();
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0)
            .with_lag(lag.clone());
        cache.add(uuid, &views_of_a(5), 1_000);
        cache.add(uuid, &views_of_a(5), 1_200);
        assert_eq!(lag.count(), 0, "not recomputed yet");
        cache.snapshot(uuid, 1_500);
        assert_eq!(
            lag.count(),
            1,
            "recomputed once, 0.5 s after the first change"
        );
        cache.snapshot(uuid, 2_000);
        assert_eq!(lag.count(), 1, "nothing changed since");
    }

    #[test]
    fn sync_takes_counts_definitions_and_deletions() {
        let uuid = Uuid::from_u128(1);
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0);
        let summary = cache.summary(uuid, 0).unwrap_or_else(|| "".into());
        // Unchanged: the summary is kept.
        cache.sync(vec![experiment()].into(), 10);
        let again = cache.summary(uuid, 10).unwrap_or_else(|| "".into());
        assert!(Arc::ptr_eq(&summary, &again));
        // Counts from another instance: taken, weights follow at the refresh.
        let mut counted = experiment();
        counted.variants[1].views = 40;
        counted.variants[1].total_reward = 40.0;
        cache.sync(vec![counted].into(), 20);
        let snapshot = cache.snapshot(uuid, 20 + WEIGHTS_REFRESH_MS);
        let weights = snapshot.as_ref().map(|s| s.weights.to_vec());
        assert!(weights.as_ref().is_some_and(|w| w[1] > 0.9), "{weights:?}");
        assert_eq!(snapshot.map(|s| s.experiment.variants[1].views), Some(40));
        // A definition change (and a new experiment): taken at once.
        let mut renamed = experiment();
        renamed.name = "renamed".into();
        let other = Experiment {
            alias: None,
            uuid: Uuid::from_u128(9),
            ..experiment()
        };
        cache.sync(vec![renamed, other].into(), 30);
        assert_eq!(
            cache.experiment(uuid).map(|e| e.name.clone()),
            Some("renamed".into())
        );
        assert_eq!(
            cache.snapshot(uuid, 30).map(|s| s.weights.to_vec()),
            Some(vec![0.5, 0.5])
        );
        // Deleted elsewhere: forgotten.
        cache.sync(Experiments::default(), 40);
        assert!(cache.experiment(uuid).is_none());
        assert!(cache.all(40).is_empty());
    }

    #[test]
    fn apply_takes_what_changed_and_keeps_the_rest() {
        let uuid = Uuid::from_u128(1);
        let kept = Experiment {
            uuid: Uuid::from_u128(2),
            ..experiment()
        };
        let cache = Cache::new(
            vec![experiment(), kept.clone()].into(),
            WeightsConfig::default(),
            0,
        );
        let summary = cache.summary(kept.uuid, 0).unwrap_or_else(|| "".into());
        // Counts of one, a new one: taken; the one not named is kept as is.
        let mut counted = experiment();
        counted.variants[1].views = 40;
        counted.variants[1].total_reward = 40.0;
        let new = Experiment {
            uuid: Uuid::from_u128(3),
            ..experiment()
        };
        let unreadable = cache.apply(vec![counted, new].into(), &[], 10);
        assert!(unreadable.is_empty());
        let snapshot = cache.snapshot(uuid, 10 + WEIGHTS_REFRESH_MS);
        assert_eq!(snapshot.map(|s| s.experiment.variants[1].views), Some(40));
        assert!(cache.experiment(Uuid::from_u128(3)).is_some());
        let again = cache.summary(kept.uuid, 10).unwrap_or_else(|| "".into());
        assert!(Arc::ptr_eq(&summary, &again), "untouched: its summary kept");
        // One became unreadable, one was deleted: both answer as gone.
        let broken = Unreadable {
            uuid: uuid.to_string(),
            account_id: None,
            visibility: None,
            reason: "bad".into(),
        };
        let changed = Experiments {
            readable: Vec::new(),
            unreadable: vec![broken.clone()],
        };
        assert_eq!(cache.apply(changed.clone(), &[kept.uuid], 20), [broken]);
        assert!(cache.experiment(uuid).is_none());
        assert!(cache.unreadable(uuid).is_some());
        assert!(cache.experiment(kept.uuid).is_none());
        assert!(cache.apply(changed, &[], 30).is_empty(), "logged once");
        // Readable again.
        cache.apply(vec![experiment()].into(), &[], 40);
        assert!(cache.experiment(uuid).is_some());
        assert!(cache.unreadable(uuid).is_none());
    }

    #[test]
    fn served_weights_are_summed_per_hour_and_kept_across_definitions() {
        let uuid = Uuid::from_u128(1);
        let hour = 3_600_000;
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0);
        assert!(cache.take_served().is_empty());
        cache.serve_summary(uuid, 10);
        cache.serve_snapshot(uuid, 20);
        let snapshot = cache.snapshot(uuid, 30).expect("cached");
        cache.served(&snapshot, 30);
        // The next hour closes this one's sums.
        cache.serve_summary(uuid, hour + 1);
        let rows = |rows: Vec<Served>| -> Vec<(String, i64, f64, u64)> {
            rows.into_iter()
                .map(|r| (r.variant, r.hour_ms, r.weight_sum, r.answers))
                .collect()
        };
        assert_eq!(
            rows(cache.take_served()),
            [
                ("a".into(), 0, 1.5, 3),
                ("b".into(), 0, 1.5, 3),
                ("a".into(), hour, 0.5, 1),
                ("b".into(), hour, 0.5, 1),
            ]
        );
        assert!(cache.take_served().is_empty(), "taken once");
        // A new definition keeps what the old one served, by variant id.
        cache.serve_summary(uuid, hour + 2);
        let mut changed = experiment();
        changed.variants.push(Variant::new("c"));
        cache.put(changed.clone(), hour + 3);
        cache.serve_summary(uuid, hour + 4);
        let taken = cache.take_served();
        assert_eq!(taken.len(), 5, "{taken:?}");
        assert_eq!(rows(taken[..2].to_vec())[0], ("a".into(), hour, 0.5, 1));
        assert_eq!(taken[4].variant, "c");
        // Storage failed: given back, flushed next time; a reset forgets.
        cache.restore_served(taken);
        assert_eq!(cache.take_served().len(), 5);
        cache.serve_summary(uuid, hour + 5);
        cache.forget_served(uuid);
        assert!(cache.take_served().is_empty());
        // A snapshot of another definition is not counted.
        cache.served(&snapshot, hour + 6);
        assert!(cache.take_served().is_empty());
    }

    #[test]
    fn summary_is_kept_until_weights_change() {
        let uuid = Uuid::from_u128(1);
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0);
        let first = cache.summary(uuid, 0).unwrap_or_else(|| "".into());
        assert!(first.contains(r#""subtype":"summary""#));
        assert!(!first.contains("views"));
        let again = cache.summary(uuid, 10).unwrap_or_else(|| "".into());
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        cache.add(uuid, &views_of_a(10), 10);
        let changed = cache.summary(uuid, 1_000).unwrap_or_else(|| "".into());
        assert_ne!(first, changed);
        cache.remove(uuid);
        assert!(cache.summary(uuid, 1_000).is_none());
    }

    /// A deployment's part of an experiment is written once and kept
    /// until its weights or its definition change; drafts and other
    /// accounts' experiments are not in it.
    #[test]
    fn deployed_parts_are_kept_until_weights_or_definition_change() {
        let uuid = Uuid::from_u128(1);
        let mut draft = experiment();
        draft.uuid = Uuid::from_u128(3);
        draft.visibility = Visibility::Draft;
        let cache = Cache::new(
            vec![experiment(), draft].into(),
            WeightsConfig::default(),
            0,
        );
        let account = Uuid::from_u128(2);
        let part = |now| {
            let parts = cache.serve_deployed(account, now);
            assert_eq!(parts.len(), 1, "the published one only");
            assert!(cache.serve_deployed(Uuid::from_u128(9), now).is_empty());
            parts[0].1.clone()
        };
        let first = part(0);
        assert!(Arc::ptr_eq(&first, &part(10)), "kept");
        // Counts alone: the weights follow at their refresh, and the part.
        cache.add(uuid, &views_of_a(10), 10);
        assert!(Arc::ptr_eq(&first, &part(20)), "weights not refreshed yet");
        let weighted = part(1_000);
        assert_ne!(first, weighted);
        // A new definition.
        let mut renamed = experiment();
        renamed.name = "renamed".into();
        cache.put(renamed, 1_010);
        assert!(part(1_020).contains(r#""name":"renamed""#));
    }

    #[test]
    fn unreadable_experiments_are_kept_apart_and_reported_once() {
        let uuid = Uuid::from_u128(1);
        let broken = |reason: &str| Unreadable {
            uuid: uuid.to_string(),
            account_id: Some(Uuid::from_u128(2)),
            visibility: None,
            reason: reason.into(),
        };
        let only = |unreadable: Unreadable| Experiments {
            readable: vec![],
            unreadable: vec![unreadable],
        };
        let cache = Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0);
        // It became unreadable: no state to serve, known, reported once.
        assert_eq!(cache.sync(only(broken("bad")), 10), vec![broken("bad")]);
        assert!(cache.experiment(uuid).is_none() && cache.all(10).is_empty());
        assert_eq!(cache.unreadable(uuid), Some(broken("bad")));
        assert_eq!(cache.sync(only(broken("bad")), 20), vec![]);
        assert_eq!(cache.sync(only(broken("worse")), 30), vec![broken("worse")]);
        assert!(!cache.put_unreadable(broken("worse")));
        // Readable again: served, no longer unreadable.
        assert_eq!(cache.sync(vec![experiment()].into(), 40), vec![]);
        assert!(cache.experiment(uuid).is_some());
        assert_eq!(cache.unreadable(uuid), None);
        // Deleted while unreadable: forgotten.
        assert!(cache.put_unreadable(broken("bad")));
        assert!(cache.experiment(uuid).is_none());
        cache.remove(uuid);
        assert_eq!(cache.unreadable(uuid), None);
        // Written again by this instance: readable.
        cache.put_unreadable(broken("bad"));
        cache.put(experiment(), 50);
        assert_eq!(cache.unreadable(uuid), None);
        assert!(cache.experiment(uuid).is_some());
    }
}
