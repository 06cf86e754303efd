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
use myna_core::weights::WeightsConfig;
use myna_core::{Access, Experiment, ReadForm, RecordBatch, Visibility};
use uuid::Uuid;

use entry::{Entry, ServedSums};

use crate::metrics::Timer;
use crate::storage::{Experiments, Served, Unreadable};

/// Most rows of served weights an experiment keeps waiting for a flush
/// (past hours, earlier definitions) while storage cannot take them; the
/// oldest go first.
pub const SERVED_BACKLOG: usize = 10_000;

/// Least time between two weight computations of one experiment whose counts
/// keep changing, in milliseconds.
pub const WEIGHTS_REFRESH_MS: i64 = 250;

mod entry;

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

/// The entries, by uuid and by account: an account's search, deployments
/// and pages read its own experiments, never every account's.
#[derive(Debug, Default)]
struct Entries {
    by_uuid: HashMap<Uuid, Arc<Mutex<Entry>>>,
    by_account: HashMap<Uuid, HashSet<Uuid>>,
}

impl Entries {
    fn get(&self, uuid: &Uuid) -> Option<&Arc<Mutex<Entry>>> {
        self.by_uuid.get(uuid)
    }

    /// Adds or replaces the entry of `uuid`, an experiment of `account`.
    fn insert(&mut self, uuid: Uuid, account: Uuid, entry: Arc<Mutex<Entry>>) {
        self.by_account.entry(account).or_default().insert(uuid);
        self.by_uuid.insert(uuid, entry);
    }

    fn remove(&mut self, uuid: &Uuid) {
        let Some(removed) = self.by_uuid.remove(uuid) else {
            return;
        };
        let account = lock(&removed).experiment.account_id;
        if let Some(uuids) = self.by_account.get_mut(&account) {
            uuids.remove(uuid);
            if uuids.is_empty() {
                self.by_account.remove(&account);
            }
        }
    }

    /// Keeps the entries whose uuid `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&Uuid) -> bool) {
        self.by_uuid.retain(|uuid, _| keep(uuid));
        self.by_account.retain(|_, uuids| {
            uuids.retain(|uuid| keep(uuid));
            !uuids.is_empty()
        });
    }

    /// The entries of `account`'s experiments.
    fn of_account(&self, account: Uuid) -> Vec<Arc<Mutex<Entry>>> {
        self.by_account
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|uuid| self.by_uuid.get(uuid).cloned())
            .collect()
    }
}

/// Every experiment, by uuid.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<Entries>,
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

impl Cache {
    /// A cache holding `experiments` (and knowing the unreadable ones),
    /// weights computed at `now_ms`.
    pub fn new(experiments: Experiments, config: WeightsConfig, now_ms: i64) -> Cache {
        let aliases = aliases(&experiments.readable);
        let mut entries = Entries::default();
        for e in experiments.readable {
            let (uuid, account) = (e.uuid, e.account_id);
            entries.insert(
                uuid,
                account,
                Arc::new(Mutex::new(Entry::new(e, &config, now_ms))),
            );
        }
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
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            entries.remove(&uuid);
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
        Some(entry.summary())
    }

    /// Every entry, taken out of the map's lock (each is then locked alone).
    fn entry_list(&self) -> Vec<Arc<Mutex<Entry>>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.by_uuid.values().cloned().collect()
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
        let entries = {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            entries.of_account(account)
        };
        entries
            .iter()
            .filter_map(|entry| take(&mut lock(entry)))
            .collect()
    }

    /// Every experiment of `account`, as it is now (no weights computed),
    /// each with its name folded for search.
    pub fn of_account_named(&self, account: Uuid) -> Vec<(Arc<Experiment>, Arc<str>)> {
        self.each_of_account(account, |entry| {
            Some((entry.experiment.clone(), entry.folded_name()))
        })
    }

    /// Snapshots of `account`'s experiments (its dashboard pages), weights
    /// refreshed where due.
    pub fn snapshots_of_account(&self, account: Uuid, now_ms: i64) -> Vec<Snapshot> {
        self.each_of_account(account, |entry| {
            entry.refresh(&self.config, now_ms, &self.lag);
            Some(Snapshot {
                experiment: entry.experiment.clone(),
                weights: entry.weights.clone(),
            })
        })
    }

    /// Snapshots of every experiment.
    #[cfg(test)]
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
        let (uuid, account) = (experiment.uuid, experiment.account_id);
        if let Some(alias) = experiment.alias {
            let mut aliases = self.aliases.write().unwrap_or_else(PoisonError::into_inner);
            aliases.insert((experiment.account_id, alias), uuid);
        }
        let mut entry = Entry::new(experiment, &self.config, now_ms);
        self.forget_unreadable(uuid);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = entries.get(&uuid) {
            entry.inherit_served(&mut lock(old));
        }
        entries.insert(uuid, account, Arc::new(Mutex::new(entry)));
    }

    /// Forgets an experiment (readable or not).
    pub fn remove(&self, uuid: Uuid) {
        self.forget_unreadable(uuid);
        {
            let mut aliases = self.aliases.write().unwrap_or_else(PoisonError::into_inner);
            aliases.retain(|_, key| *key != uuid);
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.remove(&uuid);
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
            .map(|e| (e.uuid, e.account_id, Entry::new(e, &self.config, now_ms)))
            .collect();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|uuid| seen.contains(uuid));
        for (uuid, account, entry) in added {
            entries.insert(uuid, account, Arc::new(Mutex::new(entry)));
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
        Some(entry.summary())
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
mod tests;
