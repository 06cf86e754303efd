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
    let cache =
        Cache::new(vec![experiment()].into(), WeightsConfig::default(), 0).with_lag(lag.clone());
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

#[test]
fn an_accounts_experiments_are_found_by_account_through_every_change() {
    let of = |account: u128, uuid: u128| Experiment {
        uuid: Uuid::from_u128(uuid),
        account_id: Uuid::from_u128(account),
        ..experiment()
    };
    let mine = |cache: &Cache, account: u128| {
        let mut uuids: Vec<u128> = cache
            .of_account(Uuid::from_u128(account))
            .iter()
            .map(|e| e.uuid.as_u128())
            .collect();
        uuids.sort_unstable();
        uuids
    };
    let cache = Cache::new(
        vec![of(7, 1), of(7, 2), of(8, 3)].into(),
        WeightsConfig::default(),
        0,
    );
    assert_eq!((mine(&cache, 7), mine(&cache, 8)), (vec![1, 2], vec![3]));
    cache.put(of(8, 4), 1);
    cache.put(of(7, 2), 1);
    assert_eq!((mine(&cache, 7), mine(&cache, 8)), (vec![1, 2], vec![3, 4]));
    cache.remove(Uuid::from_u128(1));
    assert_eq!(mine(&cache, 7), vec![2]);
    cache.put_unreadable(Unreadable {
        uuid: Uuid::from_u128(2).to_string(),
        account_id: Some(Uuid::from_u128(7)),
        visibility: None,
        reason: "bad".into(),
    });
    assert_eq!(mine(&cache, 7), Vec::<u128>::new());
    // A sync to what the database holds: 3 gone, 5 new, 4 kept.
    cache.sync(vec![of(8, 4), of(9, 5)].into(), 2);
    assert_eq!(
        (mine(&cache, 7), mine(&cache, 8), mine(&cache, 9)),
        (vec![], vec![4], vec![5])
    );
    assert_eq!(cache.all(2).len(), 2);
}
