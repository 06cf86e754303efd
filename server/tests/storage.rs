//! The storage suite: written once against `&dyn Storage`, run for every
//! backend: SQLite (a temporary file) and PostgreSQL (a fresh database on the
//! server `MYNA_TEST_POSTGRES` names, default this machine's; unreachable
//! fails loudly, `skip` skips with a warning). Then what only one backend has.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use myna_core::model::empty_object;
use myna_core::webhook::{Event as WebhookEvent, Observation};
use myna_core::{Event, EventType, Experiment, RecordBatch, Variant, Visibility};
use myna_server::storage::postgres::PostgresStorage;
use myna_server::storage::sqlite::SqliteStorage;
use myna_server::storage::{
    Account, ApiKey, Attempt, Notice, Observed, Recording, Served, Storage, StorageError, Token,
    TokenHash, TokenKind, Webhook,
};
use serde_json::json;
use uuid::Uuid;

mod common;
use common::postgres::TestDatabase;

const HOUR: i64 = 3_600_000;

/// A fresh, empty database of one backend (kept alive while the test runs).
pub struct Fixture {
    pub storage: Arc<dyn Storage>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("suite.db"))
        .await
        .unwrap();
    Some(Fixture {
        storage: Arc::new(storage),
        _guard: Box::new(dir),
    })
}

/// A fresh PostgreSQL database, migrated; `None` when skipped.
async fn postgres() -> Option<Fixture> {
    let database = TestDatabase::create()?;
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    Some(Fixture {
        storage: Arc::new(storage),
        _guard: Box::new(database),
    })
}

macro_rules! suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            #[tokio::test]
            async fn accounts() {
                let Some(fixture) = $open.await else { return };
                cases::accounts(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn an_account_is_deleted_with_all_it_holds() {
                let Some(fixture) = $open.await else { return };
                cases::an_account_is_deleted_with_all_it_holds(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn tokens() {
                let Some(fixture) = $open.await else { return };
                cases::tokens(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn secrets() {
                let Some(fixture) = $open.await else { return };
                cases::secrets(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn api_keys() {
                let Some(fixture) = $open.await else { return };
                cases::api_keys(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn experiments_round_trip() {
                let Some(fixture) = $open.await else { return };
                cases::experiments_round_trip(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn update_keeps_counts() {
                let Some(fixture) = $open.await else { return };
                cases::update_keeps_counts(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn delete_and_reset() {
                let Some(fixture) = $open.await else { return };
                cases::delete_and_reset(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn record_counts_and_hours() {
                let Some(fixture) = $open.await else { return };
                cases::record_counts_and_hours(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn record_exactly_once() {
                let Some(fixture) = $open.await else { return };
                cases::record_exactly_once(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn record_for_removed_variants() {
                let Some(fixture) = $open.await else { return };
                cases::record_for_removed_variants(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn aliases_round_trip_and_are_unique_per_account() {
                let Some(fixture) = $open.await else { return };
                cases::aliases_round_trip_and_are_unique_per_account(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn ping_writes_and_leaves_counts_alone() {
                let Some(fixture) = $open.await else { return };
                cases::ping_writes_and_leaves_counts_alone(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn record_ancient_events_in_the_arrival_hour() {
                let Some(fixture) = $open.await else { return };
                cases::record_ancient_events_in_the_arrival_hour(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn prune_batches() {
                let Some(fixture) = $open.await else { return };
                cases::prune_batches(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn served_weights_add_up() {
                let Some(fixture) = $open.await else { return };
                cases::served_weights_add_up(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn served_weights_go_with_variants_reset_and_delete() {
                let Some(fixture) = $open.await else { return };
                cases::served_weights_go_with_variants_reset_and_delete(fixture.storage.as_ref())
                    .await
            }
            #[tokio::test]
            async fn webhooks() {
                let Some(fixture) = $open.await else { return };
                cases::webhooks(fixture.storage.as_ref()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn account_limits_hold_under_racing_creates() {
                let Some(fixture) = $open.await else { return };
                cases::account_limits_hold_under_racing_creates(fixture.storage.clone()).await
            }
            #[tokio::test]
            async fn a_change_is_stored_once_with_its_deliveries() {
                let Some(fixture) = $open.await else { return };
                cases::a_change_is_stored_once_with_its_deliveries(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn deliveries_are_claimed_once_and_pruned() {
                let Some(fixture) = $open.await else { return };
                cases::deliveries_are_claimed_once_and_pruned(fixture.storage.as_ref()).await
            }
            #[tokio::test]
            async fn pending_deliveries_are_bounded_per_webhook() {
                let Some(fixture) = $open.await else { return };
                cases::pending_deliveries_are_bounded_per_webhook(fixture.storage.as_ref()).await
            }
        }
    };
}

suite!(sqlite_backend, sqlite());
suite!(postgres_backend, postgres());

#[tokio::test]
async fn sqlite_commits_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let account = cases::account(&storage).await;
    let experiment = cases::experiment(account, Visibility::Published);
    storage.create_experiment(&experiment, 0).await.unwrap();
    let batch = cases::batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]);
    let recording = Recording {
        experiment: experiment.uuid,
        batch,
    };
    storage
        .record(std::slice::from_ref(&recording), 0)
        .await
        .unwrap();
    // Dropped without closing, like a killed process.
    drop(storage);
    let storage = SqliteStorage::open(&path).await.unwrap();
    let again = storage
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(again.variants[0].views, 1);
    assert_eq!(
        storage.record(&[recording], 0).await.unwrap(),
        [false],
        "the id survived too"
    );
}

#[tokio::test]
async fn sqlite_a_failed_group_commit_leaves_nothing_behind() {
    let fixture = sqlite().await.unwrap();
    let storage = fixture.storage.as_ref();
    let account = cases::account(storage).await;
    let experiment = cases::experiment(account, Visibility::Published);
    storage.create_experiment(&experiment, 0).await.unwrap();
    // A NaN reward (core never lets one through) makes SQLite refuse the
    // counter update, after the batch ids were inserted in the same commit.
    let mut poisoned = cases::batch(Some(Uuid::new_v4()), &[("a", EventType::Reward, 0)]);
    poisoned.events[0].amount = Some(f64::NAN);
    let recording = Recording {
        experiment: experiment.uuid,
        batch: poisoned,
    };
    assert!(
        storage
            .record(std::slice::from_ref(&recording), 0)
            .await
            .is_err()
    );
    // Rolled back: the id was not kept, and the connection works on.
    let mut fixed = recording.clone();
    fixed.batch.events[0].amount = Some(1.0);
    assert_eq!(storage.record(&[fixed], 0).await.unwrap(), [true]);
    let stored = storage
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.variants[0].total_reward, 1.0);
}

/// The group commit runs on a connection of its own, from the commit
/// writer's thread, while the other writes (API keys, served weights) go
/// through the pool's connection: each waits its turn, none fails, and
/// every count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commits_and_other_writes_run_together() {
    let fixture = sqlite().await.unwrap();
    let storage = fixture.storage.clone();
    let account = cases::account(storage.as_ref()).await;
    let experiment = cases::experiment(account, Visibility::Published);
    let uuid = experiment.uuid;
    storage.create_experiment(&experiment, 0).await.unwrap();
    let mut recorder = storage
        .blocking_recorder()
        .expect("SQLite commits on the writer's thread");
    let commits = std::thread::spawn(move || {
        for _ in 0..200 {
            let group: Vec<Recording> = (0..10)
                .map(|_| Recording {
                    experiment: uuid,
                    batch: cases::batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
                })
                .collect();
            assert_eq!(recorder(&group, 0).unwrap(), [true; 10]);
        }
    });
    for created_ms in 0..100 {
        let key = ApiKey {
            uuid: Uuid::new_v4(),
            account_id: account,
            name: None,
            created_ms,
        };
        storage
            .create_api_key(&key, myna_core::limits::MAX_API_KEYS)
            .await
            .unwrap();
        let served = Served {
            experiment: uuid,
            variant: "b".into(),
            hour_ms: 0,
            weight_sum: 0.5,
            answers: 1,
        };
        storage.add_served(&[served]).await.unwrap();
    }
    commits.join().unwrap();
    let stored = storage.experiment(uuid).await.unwrap().unwrap().unwrap();
    assert_eq!(stored.variants[0].views, 2000);
    assert_eq!(storage.api_keys(account).await.unwrap().len(), 100);
    let served = storage.served(uuid).await.unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].answers, 100);
}

/// An in-memory database would lose every event at exit: refused.
#[tokio::test]
async fn sqlite_in_memory_is_refused() {
    let listed = || -> Vec<_> {
        let here = std::fs::read_dir(".").unwrap();
        let mut names: Vec<_> = here.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        names
    };
    let before = listed();
    for url in ["sqlite::memory:", "sqlite://:memory:"] {
        let opened = SqliteStorage::open_url(url).await;
        assert!(
            matches!(&opened, Err(StorageError::Unavailable(m)) if m.contains("in-memory")),
            "{url}: {opened:?}"
        );
    }
    // Nothing left behind (sqlx names an in-memory database
    // `file:sqlx-in-memory-N`: not a file to create).
    assert_eq!(listed(), before);
}

/// A database file opened by path is created readable by its owner only:
/// it holds the server secret and the credentials' hashes.
#[tokio::test]
async fn a_new_sqlite_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myna.db");
    let _storage = SqliteStorage::open(&path).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("myna.db{suffix}"));
        let mode = file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "myna.db{suffix}: {mode:o}");
    }
}

#[tokio::test]
async fn postgres_commits_survive_reopening() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    let account = cases::account(&storage).await;
    let experiment = cases::experiment(account, Visibility::Published);
    storage.create_experiment(&experiment, 0).await.unwrap();
    let recording = Recording {
        experiment: experiment.uuid,
        batch: cases::batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
    };
    storage
        .record(std::slice::from_ref(&recording), 0)
        .await
        .unwrap();
    drop(storage);
    // Opening again runs the migrations again: nothing to do, nothing lost.
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    let again = storage
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(again.variants[0].views, 1);
    assert_eq!(storage.record(&[recording], 0).await.unwrap(), [false]);
}

#[tokio::test]
async fn postgres_a_failed_group_commit_leaves_nothing_behind() {
    let Some(fixture) = postgres().await else {
        return;
    };
    let storage = fixture.storage.as_ref();
    let account = cases::account(storage).await;
    let mut experiment = cases::experiment(account, Visibility::Published);
    // One more view overflows the counter (bigint): PostgreSQL refuses the
    // counter update after the batch ids were inserted in the same commit.
    experiment.variants[0].views = i64::MAX as u64;
    storage.create_experiment(&experiment, 0).await.unwrap();
    let recording = Recording {
        experiment: experiment.uuid,
        batch: cases::batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
    };
    assert!(matches!(
        storage.record(std::slice::from_ref(&recording), 0).await,
        Err(StorageError::Internal(_))
    ));
    // Rolled back: the id was not kept, and the pool works on.
    assert!(storage.reset_experiment(experiment.uuid).await.unwrap());
    assert_eq!(storage.record(&[recording], 0).await.unwrap(), [true]);
    let stored = storage
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.variants[0].views, 1);
}

/// Two instances (two pools on one database) see the same changes of
/// decision at once and race to store them, then race to claim the
/// deliveries: each change is stored once, with one delivery, and each
/// delivery is claimed by one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_instances_notify_and_claim_each_change_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let two = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let account = cases::account(one.as_ref()).await;
    let experiment = cases::experiment(account, Visibility::Published);
    one.create_experiment(&experiment, 0).await.unwrap();
    let hook = Webhook {
        uuid: Uuid::new_v4(),
        account_id: account,
        url: "https://example.com/hook".into(),
        created_ms: 0,
    };
    one.create_webhook(&hook, 10).await.unwrap();
    const CHANGES: usize = 30;
    let states: Arc<Vec<Observation>> = Arc::new(
        (0..=CHANGES)
            .map(|i| Observation {
                verdict: format!("v{i}"),
                failing: vec![],
            })
            .collect(),
    );
    let observe = |storage: Arc<PostgresStorage>| {
        let states = states.clone();
        let uuid = experiment.uuid;
        tokio::spawn(async move {
            let mut stored = 0;
            for i in 0..=CHANGES {
                let notice = Notice {
                    experiment: uuid,
                    account_id: account,
                    previous: i.checked_sub(1).map(|p| &states[p]),
                    observation: &states[i],
                    events: if i == 0 {
                        vec![]
                    } else {
                        vec![(WebhookEvent::VerdictChanged, format!("{i}"))]
                    },
                    now_ms: i as i64,
                };
                if storage.observe(&notice).await.unwrap() {
                    stored += 1;
                }
            }
            stored
        })
    };
    let (a, b) = tokio::join!(observe(one.clone()), observe(two.clone()));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        CHANGES + 1,
        "each change stored once"
    );
    let listed = one.deliveries(account, 1000).await.unwrap();
    let mut bodies: Vec<usize> = listed.iter().map(|d| d.body.parse().unwrap()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, (1..=CHANGES).collect::<Vec<_>>());

    let claim = |storage: Arc<PostgresStorage>| {
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            for delivery in storage
                .due_deliveries(1_000, usize::MAX, 1_000)
                .await
                .unwrap()
            {
                let due = delivery.next_ms.unwrap();
                if storage
                    .claim_delivery(delivery.id, due, 60_000, 1_000)
                    .await
                    .unwrap()
                {
                    claimed.push(delivery.id);
                }
            }
            claimed
        })
    };
    let (a, b) = tokio::join!(claim(one.clone()), claim(two.clone()));
    let mut all: Vec<i64> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    all.sort_unstable();
    let mut ids: Vec<i64> = listed.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    assert_eq!(all, ids, "every delivery claimed, by one instance");
}

/// Two instances (two pools on one database) commit groups concurrently,
/// half of whose batch ids the other sends too: each id counts once, in
/// exactly one of them, and the counters are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_instances_count_each_batch_once() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let two = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let account = cases::account(one.as_ref()).await;
    let experiment = cases::experiment(account, Visibility::Published);
    one.create_experiment(&experiment, 0).await.unwrap();
    const ROUNDS: usize = 40;
    const GROUP: usize = 20;
    // Round r: ids shared by both instances, and ids each sends alone.
    let ids: Vec<Vec<Uuid>> = (0..ROUNDS * 3)
        .map(|_| (0..GROUP / 2).map(|_| Uuid::new_v4()).collect())
        .collect();
    let ids = Arc::new(ids);
    let run = |storage: Arc<PostgresStorage>, own: usize| {
        let ids = ids.clone();
        let uuid = experiment.uuid;
        tokio::spawn(async move {
            let mut counted = Vec::new();
            for round in 0..ROUNDS {
                let mut group: Vec<Uuid> = ids[round * 3].clone();
                group.extend(&ids[round * 3 + own]);
                if own == 2 {
                    group.reverse(); // another order than the other instance's
                }
                let recordings: Vec<_> = group
                    .iter()
                    .map(|id| Recording {
                        experiment: uuid,
                        batch: cases::batch(
                            Some(*id),
                            &[("a", EventType::View, 0), ("b", EventType::Reward, HOUR)],
                        ),
                    })
                    .collect();
                let answers = storage.record(&recordings, 0).await.unwrap();
                counted.extend(group.into_iter().zip(answers).filter(|(_, c)| *c));
            }
            counted
        })
    };
    let (a, b) = tokio::join!(run(one.clone(), 1), run(two.clone(), 2));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all: Vec<Uuid> = a.iter().chain(&b).map(|(id, _)| *id).collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "no id counted by both instances");
    assert_eq!(total, ROUNDS * GROUP * 3 / 2, "every distinct id counted");
    let stored = two
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.variants[0].views, total as u64);
    assert_eq!(stored.variants[1].total_reward, 0.5 * total as f64);
    let hours = two.hourly(experiment.uuid).await.unwrap();
    let hour_views: u64 = hours.iter().map(|h| h.views).sum();
    assert_eq!(hour_views, total as u64);
}

/// Counts committed but not folded yet (PostgreSQL's `pending_counts`) are
/// read like folded ones: counts and hourly totals are the same before and
/// after a fold, and a reset or a removed variant forgets them too.
#[tokio::test]
async fn postgres_pending_counts_read_the_same_before_and_after_a_fold() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    let pending = || {
        common::postgres::query_i64(
            &database.url,
            "SELECT count(*) FROM pending_counts".to_owned(),
        )
        .unwrap()
    };
    let account = cases::account(&storage).await;
    let experiment = cases::experiment(account, Visibility::Published);
    let uuid = experiment.uuid;
    storage.create_experiment(&experiment, 0).await.unwrap();
    let group = [
        Recording {
            experiment: uuid,
            batch: cases::batch(
                Some(Uuid::new_v4()),
                &[("a", EventType::View, 0), ("a", EventType::View, HOUR)],
            ),
        },
        Recording {
            experiment: uuid,
            batch: cases::batch(
                None,
                &[("b", EventType::Reward, HOUR), ("c", EventType::View, 0)],
            ),
        },
    ];
    let read = async || {
        let stored = storage.experiment(uuid).await.unwrap().unwrap().unwrap();
        let counts: Vec<_> = stored
            .variants
            .iter()
            .map(|v| (v.id.clone(), v.views, v.total_reward))
            .collect();
        (counts, storage.hourly(uuid).await.unwrap())
    };

    assert_eq!(storage.record(&group, 0).await.unwrap(), [true, true]);
    let before = read().await;
    assert_eq!(
        before.0,
        [
            ("a".into(), 2, 0.0),
            ("b".into(), 0, 0.5),
            ("c".into(), 1, 0.0)
        ]
    );
    assert_eq!(before.1.len(), 4, "{:?}", before.1);
    storage.fold_pending().await.unwrap();
    assert_eq!(pending(), 0, "folded");
    assert_eq!(read().await, before);
    // Again, onto folded counts and existing hours.
    assert_eq!(storage.record(&group[1..], 0).await.unwrap(), [true]);
    storage.fold_pending().await.unwrap();
    let (counts, _) = read().await;
    assert_eq!(counts[1], ("b".into(), 0, 1.0));
    assert_eq!(counts[2], ("c".into(), 2, 0.0));

    // A removed variant loses what was pending; re-added, it starts at zero.
    assert_eq!(storage.record(&group[1..], 0).await.unwrap(), [true]);
    let mut next = experiment.clone();
    next.variants.retain(|v| v.id != "c");
    assert!(storage.update_experiment(&next).await.unwrap());
    next.variants.push(Variant::new("c"));
    assert!(storage.update_experiment(&next).await.unwrap());
    storage.fold_pending().await.unwrap();
    let (counts, hours) = read().await;
    assert_eq!(counts[2], ("c".into(), 0, 0.0));
    assert!(hours.iter().all(|h| h.variant != "c"), "{hours:?}");
    assert_eq!(counts[1], ("b".into(), 0, 1.5), "the others keep theirs");

    // A reset forgets what was pending too.
    assert_eq!(storage.record(&group[..1], 0).await.unwrap(), [false]);
    assert_eq!(storage.record(&group[1..], 0).await.unwrap(), [true]);
    assert!(pending() > 0);
    assert!(storage.reset_experiment(uuid).await.unwrap());
    let (counts, hours) = read().await;
    assert!(
        counts
            .iter()
            .all(|(_, views, reward)| *views == 0 && *reward == 0.0)
    );
    assert!(hours.is_empty());
    storage.fold_pending().await.unwrap();
    assert_eq!(read().await, (counts, hours));
}

/// An incremental refresh (`changes` from a mark) answers every experiment
/// that changed since, however it changed (created, updated, counts
/// committed, counts folded, reset), the experiments and API keys deleted,
/// and, once nothing changes, nothing at all.
#[tokio::test]
async fn postgres_changes_answer_what_changed_since_a_mark() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    let account = cases::account(&storage).await;
    let mut made = Vec::new();
    for _ in 0..4 {
        let experiment = cases::experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        made.push(experiment);
    }
    let [untouched, mut updated, deleted, counted] = <[Experiment; 4]>::try_from(made).unwrap();
    let key = ApiKey {
        uuid: Uuid::new_v4(),
        account_id: account,
        name: None,
        created_ms: 0,
    };
    storage
        .create_api_key(&key, myna_core::limits::MAX_API_KEYS)
        .await
        .unwrap();

    let all = storage.changes(None).await.unwrap();
    assert!(all.complete);
    assert_eq!(all.experiments.readable.len(), 4);
    let mark = all.mark.expect("PostgreSQL answers a mark");

    updated.name = "Renamed".into();
    assert!(storage.update_experiment(&updated).await.unwrap());
    assert!(storage.delete_experiment(deleted.uuid).await.unwrap());
    let recording = Recording {
        experiment: counted.uuid,
        batch: cases::batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
    };
    assert_eq!(storage.record(&[recording], 0).await.unwrap(), [true]);
    let created = cases::experiment(account, Visibility::Draft);
    storage.create_experiment(&created, 0).await.unwrap();
    assert!(storage.delete_api_key(account, key.uuid).await.unwrap());

    let changes = storage.changes(Some(mark)).await.unwrap();
    assert!(!changes.complete);
    let read = |changes: &myna_server::storage::Changes, uuid: Uuid| {
        changes
            .experiments
            .readable
            .iter()
            .find(|e| e.uuid == uuid)
            .cloned()
    };
    assert_eq!(read(&changes, updated.uuid).unwrap().name, "Renamed");
    assert_eq!(
        read(&changes, counted.uuid).unwrap().variants[0].views,
        1,
        "pending"
    );
    assert_eq!(read(&changes, created.uuid).unwrap(), created);
    assert!(read(&changes, deleted.uuid).is_none());
    assert!(changes.deleted_experiments.contains(&deleted.uuid));
    assert_eq!(changes.deleted_keys, [key.uuid]);

    // Counts folded after a refresh that did not see them committed are
    // still seen: the fold marks what it changed.
    let mark = changes.mark.unwrap();
    storage.fold_pending().await.unwrap();
    let changes = storage.changes(Some(mark)).await.unwrap();
    assert_eq!(
        read(&changes, counted.uuid).unwrap().variants[0].views,
        1,
        "folded"
    );

    // Nothing changes: refreshes soon read nothing (transactions of other
    // tests on this PostgreSQL may hold the marks back for a moment).
    let mut mark = changes.mark.unwrap();
    let mut quiet = false;
    for _ in 0..100 {
        let changes = storage.changes(Some(mark)).await.unwrap();
        mark = changes.mark.unwrap();
        if changes.experiments.readable.is_empty() && changes.deleted_experiments.is_empty() {
            quiet = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(quiet, "refreshes keep reading experiments nobody changed");
    assert!(read(&storage.changes(Some(mark)).await.unwrap(), untouched.uuid).is_none());

    // A reset is a change too.
    assert!(storage.reset_experiment(counted.uuid).await.unwrap());
    let changes = storage.changes(Some(mark)).await.unwrap();
    assert_eq!(
        read(&changes, counted.uuid).unwrap().variants[0].views,
        0,
        "reset"
    );
}

/// Two instances commit while a third folds without pause: every batch
/// counts once, and the counts read the same through all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_commits_and_folds_run_together_exactly() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let one = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let two = Arc::new(PostgresStorage::open(&database.url).await.unwrap());
    let folder = PostgresStorage::open(&database.url).await.unwrap();
    let account = cases::account(one.as_ref()).await;
    let experiment = cases::experiment(account, Visibility::Published);
    one.create_experiment(&experiment, 0).await.unwrap();
    const ROUNDS: usize = 60;
    let shared: Arc<Vec<Uuid>> = Arc::new((0..ROUNDS).map(|_| Uuid::new_v4()).collect());
    let run = |storage: Arc<PostgresStorage>| {
        let (shared, uuid) = (shared.clone(), experiment.uuid);
        tokio::spawn(async move {
            let mut counted = 0;
            for id in shared.iter() {
                // Each round: one id both send, and one of its own.
                let group: Vec<Recording> = [Some(*id), Some(Uuid::new_v4())]
                    .into_iter()
                    .map(|id| Recording {
                        experiment: uuid,
                        batch: cases::batch(
                            id,
                            &[("a", EventType::View, 0), ("b", EventType::Reward, HOUR)],
                        ),
                    })
                    .collect();
                let answers = storage.record(&group, 0).await.unwrap();
                counted += answers.iter().filter(|c| **c).count();
            }
            counted
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let folding = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut moved = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                moved += folder.fold_pending().await.unwrap();
            }
            moved
        })
    };
    let (a, b) = tokio::join!(run(one.clone()), run(two.clone()));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let moved = folding.await.unwrap();
    let total = a.unwrap() + b.unwrap();
    assert_eq!(total, ROUNDS * 3, "each shared id once, each own id once");
    let stored = two
        .experiment(experiment.uuid)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stored.variants[0].views, total as u64);
    assert_eq!(stored.variants[1].total_reward, 0.5 * total as f64);
    one.fold_pending().await.unwrap();
    let hours = two.hourly(experiment.uuid).await.unwrap();
    assert_eq!(hours.iter().map(|h| h.views).sum::<u64>(), total as u64);
    assert!(moved > 0, "the folds ran while the commits did");
}

/// Unreadable stored experiments are reported as data, never fail a read:
/// one whose settings nest deeper than serde_json reads back, one whose
/// variant's settings are not JSON. `sql` runs a statement straight on the
/// database (the same SQL suits both backends).
async fn unreadable_experiments_are_reported(storage: &dyn Storage, sql: impl AsyncFn(String)) {
    let account = cases::account(storage).await;
    let good = cases::experiment(account, Visibility::Published);
    let bad = cases::experiment(account, Visibility::Draft);
    let bad_variant = cases::experiment(account, Visibility::Archived);
    for experiment in [&good, &bad, &bad_variant] {
        storage.create_experiment(experiment, 0).await.unwrap();
    }
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    sql(format!(
        "UPDATE experiments SET settings = '{deep}' WHERE uuid = '{}'",
        bad.uuid
    ))
    .await;
    sql(format!(
        "UPDATE variants SET settings = 'nope' WHERE experiment = '{}' AND id = 'b'",
        bad_variant.uuid
    ))
    .await;
    let all = storage.experiments().await.unwrap();
    assert_eq!(all.readable, vec![good.clone()]);
    let mut unreadable = all.unreadable.clone();
    unreadable.sort_by_key(|u| u.uuid != bad.uuid.to_string());
    let expected = [
        (&bad, Visibility::Draft, "recursion limit"),
        (&bad_variant, Visibility::Archived, "variant \"b\""),
    ];
    assert_eq!(unreadable.len(), 2);
    for (found, (experiment, visibility, reason)) in unreadable.iter().zip(expected) {
        assert_eq!(found.uuid, experiment.uuid.to_string());
        assert_eq!(found.account_id, Some(account));
        assert_eq!(found.visibility, Some(visibility));
        assert!(found.reason.contains(reason), "{}", found.reason);
    }
    let one = storage.experiment(bad.uuid).await.unwrap();
    assert_eq!(one, Some(Err(unreadable[0].clone())));
    let one = storage.experiment(good.uuid).await.unwrap();
    assert_eq!(one, Some(Ok(good.clone())));
    // It can still be deleted, with all it had.
    assert!(storage.delete_experiment(bad_variant.uuid).await.unwrap());
    let all = storage.experiments().await.unwrap();
    assert_eq!(all.unreadable, vec![unreadable[0].clone()]);
    assert_eq!(all.readable, vec![good]);
}

#[tokio::test]
async fn sqlite_unreadable_experiments_are_reported() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unreadable.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    unreadable_experiments_are_reported(&storage, async |sql: String| {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut connection)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
        connection.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_unreadable_experiments_are_reported() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let storage = PostgresStorage::open(&database.url).await.unwrap();
    unreadable_experiments_are_reported(&storage, async |sql: String| {
        common::postgres::execute(&database.url, sql).unwrap();
    })
    .await;
}

mod cases {
    use super::*;

    pub async fn account(storage: &dyn Storage) -> Uuid {
        let account = Account {
            id: Uuid::new_v4(),
            email: format!("{}@example.com", Uuid::new_v4().simple()),
            password_hash: "$argon2id$stub".into(),
            created_ms: 0,
        };
        storage.create_account(&account).await.unwrap();
        account.id
    }

    pub fn experiment(account: Uuid, visibility: Visibility) -> Experiment {
        let mut b = Variant::new("b");
        b.name = "Bee".into();
        b.settings = json!({"color": "blue", "list": [1, 2]});
        Experiment {
            uuid: Uuid::new_v4(),
            alias: None,
            id: "headline_1-A".into(),
            account_id: account,
            name: "Headline".into(),
            visibility,
            settings: json!({"k": {"nested": true}}),
            variants: vec![Variant::new("a"), b, Variant::new("c")],
        }
    }

    pub fn batch(id: Option<Uuid>, events: &[(&str, EventType, i64)]) -> RecordBatch {
        RecordBatch {
            batch: id,
            events: events
                .iter()
                .map(|(variant, typename, timestamp)| Event {
                    typename: *typename,
                    variant: (*variant).into(),
                    amount: (*typename == EventType::Reward).then_some(0.5),
                    timestamp: *timestamp,
                })
                .collect(),
        }
    }

    fn counts(experiment: &Experiment) -> Vec<(String, u64, f64)> {
        experiment
            .variants
            .iter()
            .map(|v| (v.id.clone(), v.views, v.total_reward))
            .collect()
    }

    async fn stored(storage: &dyn Storage, uuid: Uuid) -> Experiment {
        storage
            .experiment(uuid)
            .await
            .unwrap()
            .expect("stored")
            .unwrap()
    }

    pub async fn accounts(storage: &dyn Storage) {
        assert_eq!(storage.account_count().await.unwrap(), 0);
        let account = Account {
            id: Uuid::new_v4(),
            email: "me@example.com".into(),
            password_hash: "$argon2id$v=19$hash".into(),
            created_ms: 42,
        };
        storage.create_account(&account).await.unwrap();
        assert_eq!(storage.account_count().await.unwrap(), 1);
        let found = storage.account_by_email("me@example.com").await.unwrap();
        assert_eq!(found.as_ref(), Some(&account));
        assert_eq!(
            storage.account_by_email("you@example.com").await.unwrap(),
            None
        );
        let twin = Account {
            id: Uuid::new_v4(),
            ..account
        };
        assert!(matches!(
            storage.create_account(&twin).await,
            Err(StorageError::Conflict)
        ));
        storage.ping().await.unwrap();
        storage.close().await.unwrap();
        assert!(matches!(
            storage.ping().await,
            Err(StorageError::Unavailable(_))
        ));
        assert!(matches!(
            storage.account_count().await,
            Err(StorageError::Unavailable(_))
        ));
    }

    pub async fn an_account_is_deleted_with_all_it_holds(storage: &dyn Storage) {
        let mine = account(storage).await;
        let theirs = account(storage).await;
        let email = |id: Uuid| async move {
            let listing = storage.accounts().await.unwrap();
            let all: Vec<_> = listing.iter().map(|a| a.email.clone()).collect();
            for e in all {
                if storage.account_by_email(&e).await.unwrap().unwrap().id == id {
                    return e;
                }
            }
            panic!("no account {id}")
        };
        let (my_email, their_email) = (email(mine).await, email(theirs).await);
        let key = |account_id| ApiKey {
            uuid: Uuid::new_v4(),
            account_id,
            name: None,
            created_ms: 0,
        };
        let (my_key, their_key) = (key(mine), key(theirs));
        let (e1, e2, kept) = (
            experiment(mine, Visibility::Published),
            experiment(mine, Visibility::Draft),
            experiment(theirs, Visibility::Published),
        );
        for e in [&e1, &e2, &kept] {
            storage.create_experiment(e, 0).await.unwrap();
        }
        for k in [&my_key, &their_key] {
            assert!(storage.create_api_key(k, 10).await.unwrap());
        }
        assert!(storage.create_webhook(&webhook(mine, 1), 5).await.unwrap());
        let token = Token {
            hash: TokenHash([7; 32]),
            kind: TokenKind::Dashboard,
            account_id: mine,
            expires_ms: i64::MAX,
        };
        storage.create_token(token, 10).await.unwrap();
        let batch_id = Uuid::new_v4();
        let recorded = |experiment: Uuid| Recording {
            experiment,
            batch: batch(Some(batch_id), &[("a", EventType::View, 0)]),
        };
        storage
            .record(&[recorded(e1.uuid), recorded(kept.uuid)], 0)
            .await
            .unwrap();

        let listing = storage.accounts().await.unwrap();
        let mine_listed = listing.iter().find(|a| a.email == my_email).unwrap();
        assert_eq!(
            (
                mine_listed.experiments,
                mine_listed.api_keys,
                mine_listed.webhooks
            ),
            (2, 1, 1)
        );
        let mut my_experiments = storage.account_experiments(mine).await.unwrap();
        my_experiments.sort();
        let mut expected = vec![e1.uuid, e2.uuid];
        expected.sort();
        assert_eq!(my_experiments, expected);
        assert!(
            !storage.delete_account(mine).await.unwrap(),
            "an account with experiments left is not deleted"
        );
        assert!(storage.account_by_email(&my_email).await.unwrap().is_some());

        let deleted = myna_server::service::accounts::delete_account(storage, &my_email)
            .await
            .unwrap();
        assert_eq!(deleted.experiments, 2);
        assert_eq!(storage.account_by_email(&my_email).await.unwrap(), None);
        assert_eq!(storage.experiment(e1.uuid).await.unwrap(), None);
        assert_eq!(storage.experiment(e2.uuid).await.unwrap(), None);
        assert_eq!(storage.api_key(my_key.uuid).await.unwrap(), None);
        assert_eq!(storage.token(token.hash).await.unwrap(), None);
        assert!(storage.webhooks(mine).await.unwrap().is_empty());
        assert!(storage.hourly(e1.uuid).await.unwrap().is_empty());
        let again = myna_server::service::accounts::delete_account(storage, &my_email).await;
        assert_eq!(again.unwrap_err().status, 404);
        // The other account is untouched, its batch id still counted once.
        let listing = storage.accounts().await.unwrap();
        assert_eq!(listing.len(), 1);
        assert_eq!(listing[0].email, their_email);
        assert_eq!((listing[0].experiments, listing[0].api_keys), (1, 1));
        assert_eq!(counts(&stored(storage, kept.uuid).await)[0].1, 1);
        assert_eq!(
            storage.record(&[recorded(kept.uuid)], 0).await.unwrap(),
            [false]
        );
        assert!(storage.api_key(their_key.uuid).await.unwrap().is_some());
    }

    pub async fn tokens(storage: &dyn Storage) {
        let account = account(storage).await;
        let token = Token {
            hash: TokenHash([1; 32]),
            kind: TokenKind::Api,
            account_id: account,
            expires_ms: 1000,
        };
        let other = Token {
            hash: TokenHash([2; 32]),
            kind: TokenKind::Dashboard,
            ..token
        };
        storage.create_token(token, 10).await.unwrap();
        storage.create_token(other, 10).await.unwrap();
        assert_eq!(storage.token(token.hash).await.unwrap(), Some(token));
        assert_eq!(storage.token(other.hash).await.unwrap(), Some(other));
        storage.extend_token(token.hash, 5000).await.unwrap();
        assert_eq!(
            storage
                .token(token.hash)
                .await
                .unwrap()
                .map(|t| t.expires_ms),
            Some(5000)
        );
        assert_eq!(
            storage.prune_tokens(1000).await.unwrap(),
            1,
            "the other expired"
        );
        assert_eq!(storage.token(other.hash).await.unwrap(), None);
        assert!(storage.delete_token(token.hash).await.unwrap());
        assert!(!storage.delete_token(token.hash).await.unwrap());
        storage.create_token(other, 10).await.unwrap();
        assert_eq!(storage.delete_account_tokens(account).await.unwrap(), 1);
        assert_eq!(storage.token(other.hash).await.unwrap(), None);

        // At most `max` of a kind: a new one ends those expiring first,
        // whichever order they were made in; the other kind is untouched.
        let api = |n: u8, expires_ms| Token {
            hash: TokenHash([10 + n; 32]),
            expires_ms,
            ..token
        };
        let session = Token {
            hash: TokenHash([9; 32]),
            kind: TokenKind::Dashboard,
            ..api(0, 1)
        };
        storage.create_token(session, 3).await.unwrap();
        for (n, expires_ms) in [(0, 500), (1, 100), (2, 300), (3, 400), (4, 200)] {
            storage.create_token(api(n, expires_ms), 3).await.unwrap();
        }
        let mut kept = Vec::new();
        for n in 0..5 {
            if storage.token(api(n, 0).hash).await.unwrap().is_some() {
                kept.push(n);
            }
        }
        assert_eq!(kept, [0, 2, 3], "the three expiring last");
        assert_eq!(storage.token(session.hash).await.unwrap(), Some(session));
    }

    pub async fn secrets(storage: &dyn Storage) {
        let first = storage.secret("dashboard", "aa").await.unwrap();
        assert_eq!(first, "aa");
        // Kept: a later start (or another instance) gets the first one.
        assert_eq!(storage.secret("dashboard", "bb").await.unwrap(), "aa");
        assert_eq!(storage.secret("other", "cc").await.unwrap(), "cc");
    }

    pub async fn api_keys(storage: &dyn Storage) {
        let mine = account(storage).await;
        let theirs = account(storage).await;
        let first = ApiKey {
            uuid: Uuid::new_v4(),
            account_id: mine,
            name: Some("site".into()),
            created_ms: 1,
        };
        let second = ApiKey {
            uuid: Uuid::new_v4(),
            name: None,
            created_ms: 2,
            ..first.clone()
        };
        // At most two for this account: a third is refused, stores nothing.
        assert!(storage.create_api_key(&second, 2).await.unwrap());
        assert!(storage.create_api_key(&first, 2).await.unwrap());
        let third = ApiKey {
            uuid: Uuid::new_v4(),
            ..second.clone()
        };
        assert!(
            !storage.create_api_key(&third, 2).await.unwrap(),
            "at most 2"
        );
        assert_eq!(storage.api_key(third.uuid).await.unwrap(), None);
        assert_eq!(
            storage.api_key(first.uuid).await.unwrap(),
            Some(first.clone())
        );
        assert_eq!(
            storage.api_keys(mine).await.unwrap(),
            [first.clone(), second.clone()],
            "oldest first"
        );
        assert_eq!(storage.api_keys(theirs).await.unwrap(), []);
        assert!(
            !storage.delete_api_key(theirs, first.uuid).await.unwrap(),
            "not theirs"
        );
        assert!(storage.delete_api_key(mine, first.uuid).await.unwrap());
        assert_eq!(storage.api_key(first.uuid).await.unwrap(), None);
        assert!(
            storage.create_api_key(&third, 2).await.unwrap(),
            "room again"
        );
    }

    pub async fn experiments_round_trip(storage: &dyn Storage) {
        let account = account(storage).await;
        let mut one = experiment(account, Visibility::Draft);
        one.variants[1].views = 3;
        one.variants[1].total_reward = 1.5;
        let mut two = experiment(account, Visibility::Archived);
        // The longest id there is (ids are stored as given, case and all).
        two.id = "Z_-9".repeat(16);
        storage.create_experiment(&one, 0).await.unwrap();
        storage.create_experiment(&two, 0).await.unwrap();
        assert_eq!(
            stored(storage, one.uuid).await,
            one,
            "definition, order and counts"
        );
        let all = storage.experiments().await.unwrap().readable;
        assert_eq!(all.len(), 2);
        assert!(all.contains(&one) && all.contains(&two));
        assert_eq!(stored(storage, two.uuid).await.id, "Z_-9".repeat(16));
        assert!(matches!(
            storage.create_experiment(&one, 0).await,
            Err(StorageError::Conflict)
        ));
        assert_eq!(storage.experiment(Uuid::new_v4()).await.unwrap(), None);
        let empty = Experiment {
            uuid: Uuid::new_v4(),
            alias: None,
            variants: vec![],
            settings: empty_object(),
            ..one.clone()
        };
        storage.create_experiment(&empty, 0).await.unwrap();
        assert_eq!(stored(storage, empty.uuid).await, empty);
    }

    pub async fn update_keeps_counts(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Draft);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let batch = batch(
            None,
            &[("a", EventType::View, 0), ("c", EventType::Reward, 0)],
        );
        storage
            .record(
                &[Recording {
                    experiment: experiment.uuid,
                    batch,
                }],
                0,
            )
            .await
            .unwrap();
        let mut next = experiment.clone();
        next.name = "Renamed".into();
        next.id = "renamed_2-B".into();
        next.visibility = Visibility::Published;
        next.settings = json!({"new": 1});
        next.variants.remove(0); // a
        next.variants[0].name = "B!".into();
        next.variants.push(Variant::new("d"));
        next.variants.swap(0, 1); // c, b, d
        assert!(storage.update_experiment(&next).await.unwrap());
        let after = stored(storage, experiment.uuid).await;
        assert_eq!(after.name, "Renamed");
        assert_eq!(after.id, "renamed_2-B");
        assert_eq!(after.visibility, Visibility::Published);
        assert_eq!(after.settings, json!({"new": 1}));
        assert_eq!(
            counts(&after),
            [
                ("c".into(), 0, 0.5),
                ("b".into(), 0, 0.0),
                ("d".into(), 0, 0.0)
            ]
        );
        assert_eq!(after.variants[1].name, "B!");
        assert_eq!(
            after.variants[1].settings,
            json!({"color": "blue", "list": [1, 2]})
        );
        // The removed variant's hourly totals went with it.
        let hours: Vec<_> = storage
            .hourly(experiment.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.variant)
            .collect();
        assert_eq!(hours, ["c"]);
        // Re-adding `a` starts it from zero.
        next.variants.push(Variant::new("a"));
        storage.update_experiment(&next).await.unwrap();
        assert_eq!(stored(storage, experiment.uuid).await.variants[3].views, 0);
        let ghost = Experiment {
            uuid: Uuid::new_v4(),
            alias: None,
            ..next
        };
        assert!(!storage.update_experiment(&ghost).await.unwrap());
    }

    pub async fn delete_and_reset(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let id = Uuid::new_v4();
        let recording = Recording {
            experiment: experiment.uuid,
            batch: batch(
                Some(id),
                &[("a", EventType::View, 0), ("a", EventType::Reward, 0)],
            ),
        };
        storage
            .record(std::slice::from_ref(&recording), 0)
            .await
            .unwrap();
        assert!(storage.reset_experiment(experiment.uuid).await.unwrap());
        let after = stored(storage, experiment.uuid).await;
        assert!(
            counts(&after)
                .iter()
                .all(|(_, views, reward)| *views == 0 && *reward == 0.0)
        );
        assert!(storage.hourly(experiment.uuid).await.unwrap().is_empty());
        assert_eq!(
            storage
                .record(std::slice::from_ref(&recording), 0)
                .await
                .unwrap(),
            [false],
            "a batch recorded before the reset is not counted again"
        );
        assert!(!storage.reset_experiment(Uuid::new_v4()).await.unwrap());
        assert!(storage.delete_experiment(experiment.uuid).await.unwrap());
        assert_eq!(storage.experiment(experiment.uuid).await.unwrap(), None);
        assert!(!storage.delete_experiment(experiment.uuid).await.unwrap());
        // Recording for a deleted experiment does nothing and fails nothing.
        assert_eq!(storage.record(&[recording], 0).await.unwrap().len(), 1);
        assert!(storage.hourly(experiment.uuid).await.unwrap().is_empty());
    }

    pub async fn record_counts_and_hours(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let group = [
            Recording {
                experiment: experiment.uuid,
                batch: batch(
                    None,
                    &[
                        ("a", EventType::View, 10),
                        ("a", EventType::Reward, HOUR + 5),
                        ("b", EventType::View, 20),
                    ],
                ),
            },
            Recording {
                experiment: experiment.uuid,
                batch: batch(Some(Uuid::new_v4()), &[("a", EventType::View, HOUR)]),
            },
        ];
        assert_eq!(storage.record(&group, 0).await.unwrap(), [true, true]);
        let after = stored(storage, experiment.uuid).await;
        assert_eq!(
            counts(&after),
            [
                ("a".into(), 2, 0.5),
                ("b".into(), 1, 0.0),
                ("c".into(), 0, 0.0)
            ]
        );
        let hours: Vec<_> = storage
            .hourly(experiment.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.variant, h.hour_ms, h.views, h.total_reward))
            .collect();
        assert_eq!(
            hours,
            [
                ("a".into(), 0, 1, 0.0),
                ("a".into(), HOUR, 1, 0.5),
                ("b".into(), 0, 1, 0.0)
            ]
        );
        assert_eq!(storage.record(&[], 0).await.unwrap(), Vec::<bool>::new());
    }

    pub async fn record_exactly_once(storage: &dyn Storage) {
        let account = account(storage).await;
        let one = experiment(account, Visibility::Published);
        let two = experiment(account, Visibility::Published);
        storage.create_experiment(&one, 0).await.unwrap();
        storage.create_experiment(&two, 0).await.unwrap();
        let id = Uuid::new_v4();
        let view = |experiment: Uuid, id: Option<Uuid>| Recording {
            experiment,
            batch: batch(id, &[("a", EventType::View, 0)]),
        };
        // Twice in one group, once for another experiment, once without an id.
        let group = [
            view(one.uuid, Some(id)),
            view(one.uuid, Some(id)),
            view(two.uuid, Some(id)),
            view(one.uuid, None),
        ];
        assert_eq!(
            storage.record(&group, 0).await.unwrap(),
            [true, false, true, true]
        );
        // Again in a later commit.
        assert_eq!(storage.record(&group[..1], 0).await.unwrap(), [false]);
        assert_eq!(stored(storage, one.uuid).await.variants[0].views, 2);
        assert_eq!(stored(storage, two.uuid).await.variants[0].views, 1);
        // Many ids in one commit (more than one statement's worth).
        let many: Vec<_> = (0..1200)
            .map(|_| view(one.uuid, Some(Uuid::new_v4())))
            .collect();
        let counted = storage.record(&many, 0).await.unwrap();
        assert!(counted.iter().all(|c| *c));
        let counted = storage.record(&many, 0).await.unwrap();
        assert!(counted.iter().all(|c| !*c));
        assert_eq!(stored(storage, one.uuid).await.variants[0].views, 1202);
    }

    pub async fn record_for_removed_variants(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let mut next = experiment.clone();
        next.variants.retain(|v| v.id != "b");
        storage.update_experiment(&next).await.unwrap();
        let recording = Recording {
            experiment: experiment.uuid,
            batch: batch(
                None,
                &[("b", EventType::View, 0), ("a", EventType::View, 0)],
            ),
        };
        assert_eq!(storage.record(&[recording], 0).await.unwrap(), [true]);
        let after = stored(storage, experiment.uuid).await;
        assert_eq!(counts(&after), [("a".into(), 1, 0.0), ("c".into(), 0, 0.0)]);
        let hours: Vec<_> = storage
            .hourly(experiment.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.variant)
            .collect();
        assert_eq!(hours, ["a"]);
    }

    /// An experiment's alias (the uuid its owner chose, that another
    /// account's experiment has) is stored and read back; one account
    /// cannot hold an alias twice.
    pub async fn aliases_round_trip_and_are_unique_per_account(storage: &dyn Storage) {
        let one = account(storage).await;
        let two = account(storage).await;
        let theirs = experiment(one, Visibility::Published);
        storage.create_experiment(&theirs, 0).await.unwrap();
        let mut mine = experiment(two, Visibility::Draft);
        mine.alias = Some(theirs.uuid);
        storage.create_experiment(&mine, 0).await.unwrap();
        let loaded = storage.experiments().await.unwrap().readable;
        let back = loaded.iter().find(|e| e.uuid == mine.uuid).unwrap();
        assert_eq!(back, &mine);
        assert_eq!(back.public_uuid(), theirs.uuid);
        // Found by the account and its alias, by that account only; an
        // account's own uuid is its own, another's is none, as an unknown.
        assert_eq!(
            storage.known_as(two, theirs.uuid).await.unwrap(),
            Some(mine.uuid)
        );
        assert_eq!(
            storage.known_as(one, theirs.uuid).await.unwrap(),
            Some(theirs.uuid)
        );
        assert_eq!(
            storage.known_as(two, mine.uuid).await.unwrap(),
            Some(mine.uuid)
        );
        assert_eq!(storage.known_as(one, mine.uuid).await.unwrap(), None);
        let unknown = Uuid::new_v4();
        assert_eq!(storage.known_as(one, unknown).await.unwrap(), None);
        let mut twice = experiment(two, Visibility::Draft);
        twice.alias = Some(theirs.uuid);
        assert!(matches!(
            storage.create_experiment(&twice, 0).await,
            Err(StorageError::Conflict)
        ));
    }

    /// The health check's write, repeated and pruned, changes nothing a
    /// user sees.
    pub async fn ping_writes_and_leaves_counts_alone(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        storage.ping().await.unwrap();
        storage.ping().await.unwrap();
        let view = Recording {
            experiment: experiment.uuid,
            batch: batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
        };
        assert_eq!(
            storage
                .record(std::slice::from_ref(&view), 0)
                .await
                .unwrap(),
            [true]
        );
        assert_eq!(
            storage.prune_batches(1).await.unwrap(),
            2,
            "the probe's row and the batch's"
        );
        storage.ping().await.unwrap();
        assert_eq!(storage.experiments().await.unwrap().readable.len(), 1);
        assert_eq!(stored(storage, experiment.uuid).await.variants[0].views, 1);
    }

    /// A client stamping events back to 1970 (an API key is public) gets
    /// them counted, but cannot make one hourly row per event: anything
    /// older than a week is charted in the hour it arrived.
    pub async fn record_ancient_events_in_the_arrival_hour(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let now = 10_000 * HOUR + 17;
        let ancient: Vec<_> = (0..2_000)
            .map(|h| ("a", EventType::View, h * 4 * HOUR))
            .collect();
        let recent = [
            ("a", EventType::View, now - 100 * HOUR),
            ("a", EventType::Reward, now - 2 * HOUR),
            ("b", EventType::View, now + HOUR),
        ];
        let group = [
            Recording {
                experiment: experiment.uuid,
                batch: batch(Some(Uuid::new_v4()), &ancient),
            },
            Recording {
                experiment: experiment.uuid,
                batch: batch(None, &recent),
            },
        ];
        assert_eq!(storage.record(&group, now).await.unwrap(), [true, true]);
        let after = stored(storage, experiment.uuid).await;
        assert_eq!(
            counts(&after),
            [
                ("a".into(), 2_001, 0.5),
                ("b".into(), 1, 0.0),
                ("c".into(), 0, 0.0)
            ]
        );
        let hours: Vec<_> = storage
            .hourly(experiment.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.variant, h.hour_ms, h.views, h.total_reward))
            .collect();
        assert_eq!(
            hours,
            [
                ("a".into(), 9_900 * HOUR, 1, 0.0),
                ("a".into(), 9_998 * HOUR, 0, 0.5),
                ("a".into(), 10_000 * HOUR, 2_000, 0.0),
                ("b".into(), 10_001 * HOUR, 1, 0.0),
            ]
        );
    }

    pub async fn prune_batches(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let old = Recording {
            experiment: experiment.uuid,
            batch: batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
        };
        let new = Recording {
            experiment: experiment.uuid,
            batch: batch(Some(Uuid::new_v4()), &[("a", EventType::View, 0)]),
        };
        storage
            .record(std::slice::from_ref(&old), 1_000)
            .await
            .unwrap();
        storage
            .record(std::slice::from_ref(&new), 5_000)
            .await
            .unwrap();
        assert_eq!(storage.prune_batches(2_000).await.unwrap(), 1);
        assert_eq!(
            storage.record(&[old, new], 6_000).await.unwrap(),
            [true, false],
            "only the old id was forgotten"
        );
    }

    fn served(
        experiment: Uuid,
        variant: &str,
        hour_ms: i64,
        weight_sum: f64,
        answers: u64,
    ) -> Served {
        Served {
            experiment,
            variant: variant.into(),
            hour_ms,
            weight_sum,
            answers,
        }
    }

    fn served_rows(rows: &[Served]) -> Vec<(String, i64, f64, u64)> {
        rows.iter()
            .map(|r| (r.variant.clone(), r.hour_ms, r.weight_sum, r.answers))
            .collect()
    }

    pub async fn served_weights_add_up(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        let uuid = experiment.uuid;
        storage.create_experiment(&experiment, 0).await.unwrap();
        assert!(storage.served(uuid).await.unwrap().is_empty());
        storage.add_served(&[]).await.unwrap();
        // Two instances' flushes (and a key twice in one flush) add up;
        // unknown variants and experiments are dropped; none with no answer.
        storage
            .add_served(&[
                served(uuid, "c", HOUR, 0.5, 2),
                served(uuid, "a", HOUR, 1.0, 2),
                served(uuid, "a", HOUR, 0.25, 1),
                served(uuid, "nope", HOUR, 1.0, 1),
                served(Uuid::new_v4(), "a", HOUR, 1.0, 1),
                served(uuid, "b", 2 * HOUR, 0.0, 0),
            ])
            .await
            .unwrap();
        storage
            .add_served(&[
                served(uuid, "a", HOUR, 0.75, 3),
                served(uuid, "a", 0, 0.1, 1),
            ])
            .await
            .unwrap();
        assert_eq!(
            served_rows(&storage.served(uuid).await.unwrap()),
            [
                ("a".into(), 0, 0.1, 1),
                ("a".into(), HOUR, 2.0, 6),
                ("c".into(), HOUR, 0.5, 2),
            ],
            "by variant (creation order), then hour"
        );
        assert!(
            storage
                .served(uuid)
                .await
                .unwrap()
                .iter()
                .all(|r| r.experiment == uuid)
        );
        // Many rows at once (more than one statement's worth).
        let many: Vec<Served> = (0..2_500)
            .map(|h| served(uuid, "b", h * HOUR, 0.5, 1))
            .collect();
        storage.add_served(&many).await.unwrap();
        storage.add_served(&many).await.unwrap();
        let stored = storage.served(uuid).await.unwrap();
        let b: Vec<_> = stored.iter().filter(|r| r.variant == "b").collect();
        assert_eq!(b.len(), 2_500);
        assert!(b.iter().all(|r| r.answers == 2 && r.weight_sum == 1.0));
    }

    pub async fn served_weights_go_with_variants_reset_and_delete(storage: &dyn Storage) {
        let account = account(storage).await;
        let experiment = experiment(account, Visibility::Published);
        let uuid = experiment.uuid;
        storage.create_experiment(&experiment, 0).await.unwrap();
        let other = Experiment {
            uuid: Uuid::new_v4(),
            ..experiment.clone()
        };
        storage.create_experiment(&other, 0).await.unwrap();
        let rows = [
            served(uuid, "a", 0, 0.5, 1),
            served(uuid, "b", 0, 0.25, 1),
            served(uuid, "c", 0, 0.25, 1),
            served(other.uuid, "a", 0, 1.0, 1),
        ];
        storage.add_served(&rows).await.unwrap();
        // A removed variant's served weights go with it.
        let mut next = experiment.clone();
        next.variants.remove(0);
        assert!(storage.update_experiment(&next).await.unwrap());
        let left: Vec<_> = served_rows(&storage.served(uuid).await.unwrap())
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(left, ["b", "c"]);
        // Reset forgets them, as it forgets the hourly totals.
        assert!(storage.reset_experiment(uuid).await.unwrap());
        assert!(storage.served(uuid).await.unwrap().is_empty());
        storage.add_served(&rows).await.unwrap();
        assert_eq!(storage.served(uuid).await.unwrap().len(), 2);
        // Delete too; adding for a deleted experiment does nothing.
        assert!(storage.delete_experiment(uuid).await.unwrap());
        assert!(storage.served(uuid).await.unwrap().is_empty());
        storage.add_served(&rows).await.unwrap();
        assert!(storage.served(uuid).await.unwrap().is_empty());
        // The other experiment's are untouched.
        assert_eq!(
            served_rows(&storage.served(other.uuid).await.unwrap()),
            [("a".into(), 0, 3.0, 3)]
        );
    }

    fn webhook(account: Uuid, created_ms: i64) -> Webhook {
        Webhook {
            uuid: Uuid::new_v4(),
            account_id: account,
            url: format!("https://example.com/{created_ms}"),
            created_ms,
        }
    }

    /// Stores `n` verdict changes of `experiment`, each with its
    /// deliveries (bodies "0", "1", …, seen at 100, 101, … ms); the last
    /// observation.
    async fn verdict_changes(
        storage: &dyn Storage,
        owner: Uuid,
        experiment: Uuid,
        n: i64,
    ) -> Option<Observation> {
        let mut previous: Option<Observation> = None;
        for i in 0..n {
            let now = observation(&format!("v{i}"), &[]);
            let notice = Notice {
                experiment,
                account_id: owner,
                previous: previous.as_ref(),
                observation: &now,
                events: vec![(WebhookEvent::VerdictChanged, format!("{i}"))],
                now_ms: 100 + i,
            };
            assert!(storage.observe(&notice).await.unwrap());
            previous = Some(now);
        }
        previous
    }

    fn observation(verdict: &str, failing: &[&str]) -> Observation {
        Observation {
            verdict: verdict.into(),
            failing: failing.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Creates racing one another (several instances, or one instance's
    /// concurrent requests, on PostgreSQL) keep an account's limits: of 30
    /// keys with room for 5, 5 are stored; so of 30 webhooks; of 10 with
    /// one URL, one.
    pub async fn account_limits_hold_under_racing_creates(storage: Arc<dyn Storage>) {
        let account = account(storage.as_ref()).await;
        let mut keys = tokio::task::JoinSet::new();
        for n in 0..30 {
            let storage = storage.clone();
            let key = ApiKey {
                uuid: Uuid::new_v4(),
                account_id: account,
                name: None,
                created_ms: n,
            };
            keys.spawn(async move { storage.create_api_key(&key, 5).await.unwrap() });
        }
        let stored = keys.join_all().await.into_iter().filter(|s| *s).count();
        assert_eq!(stored, 5);
        assert_eq!(storage.api_keys(account).await.unwrap().len(), 5);

        let mut hooks = tokio::task::JoinSet::new();
        for n in 0..30 {
            let storage = storage.clone();
            let hook = webhook(account, n);
            hooks.spawn(async move { storage.create_webhook(&hook, 5).await.unwrap() });
        }
        let stored = hooks.join_all().await.into_iter().filter(|s| *s).count();
        assert_eq!(stored, 5);
        assert_eq!(storage.webhooks(account).await.unwrap().len(), 5);

        let other = super::cases::account(storage.as_ref()).await;
        let mut same = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let storage = storage.clone();
            let hook = webhook(other, 7);
            same.spawn(async move { storage.create_webhook(&hook, 10).await.unwrap() });
        }
        let stored = same.join_all().await.into_iter().filter(|s| *s).count();
        assert_eq!(stored, 1, "one URL, once");
        assert_eq!(storage.webhooks(other).await.unwrap().len(), 1);
    }

    pub async fn webhooks(storage: &dyn Storage) {
        let mine = account(storage).await;
        let theirs = account(storage).await;
        assert_eq!(
            storage.webhook_accounts().await.unwrap(),
            Vec::<Uuid>::new()
        );
        let second = webhook(mine, 2);
        let first = webhook(mine, 1);
        assert!(storage.create_webhook(&second, 2).await.unwrap());
        assert!(storage.create_webhook(&first, 2).await.unwrap());
        assert!(
            !storage.create_webhook(&webhook(mine, 3), 2).await.unwrap(),
            "over the limit"
        );
        let same_url = Webhook {
            uuid: Uuid::new_v4(),
            ..first.clone()
        };
        assert!(
            !storage.create_webhook(&same_url, 5).await.unwrap(),
            "its URL is registered already"
        );
        assert!(
            storage
                .create_webhook(&webhook(theirs, 4), 2)
                .await
                .unwrap()
        );
        assert_eq!(
            storage.webhooks(mine).await.unwrap(),
            [first.clone(), second.clone()],
            "oldest first"
        );
        let mut accounts = vec![mine, theirs];
        accounts.sort();
        assert_eq!(storage.webhook_accounts().await.unwrap(), accounts);
        assert!(!storage.delete_webhook(theirs, first.uuid).await.unwrap());
        assert!(storage.delete_webhook(mine, first.uuid).await.unwrap());
        assert_eq!(storage.webhooks(mine).await.unwrap(), [second]);
    }

    pub async fn a_change_is_stored_once_with_its_deliveries(storage: &dyn Storage) {
        let owner = account(storage).await;
        let experiment = experiment(owner, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let (one, two) = (webhook(owner, 1), webhook(owner, 2));
        storage.create_webhook(&one, 10).await.unwrap();
        storage.create_webhook(&two, 10).await.unwrap();

        let collecting = observation("collecting", &[]);
        let first = Notice {
            experiment: experiment.uuid,
            account_id: owner,
            previous: None,
            observation: &collecting,
            events: vec![],
            now_ms: 10,
        };
        // An experiment deleted since it was looked at (by another
        // instance) is observed as nothing, no error.
        let gone = self::experiment(owner, Visibility::Published);
        storage.create_experiment(&gone, 0).await.unwrap();
        assert!(storage.delete_experiment(gone.uuid).await.unwrap());
        let late = Notice {
            experiment: gone.uuid,
            ..first.clone()
        };
        assert!(!storage.observe(&late).await.unwrap(), "deleted");

        assert!(storage.observe(&first).await.unwrap());
        assert!(!storage.observe(&first).await.unwrap(), "already observed");
        let stored = Observed {
            experiment: experiment.uuid,
            observation: collecting.clone(),
            told_ms: None,
        };
        assert_eq!(
            storage.observations().await.unwrap(),
            std::slice::from_ref(&stored),
            "stored silently: nothing told"
        );

        let decided = observation("decided", &["sample-ratio", "traffic-stopped"]);
        let change = Notice {
            previous: Some(&collecting),
            observation: &decided,
            events: vec![
                (WebhookEvent::VerdictChanged, "{\"n\":1}".to_owned()),
                (WebhookEvent::HealthFailing, "{\"n\":2}".to_owned()),
            ],
            now_ms: 20,
            ..first.clone()
        };
        assert!(storage.observe(&change).await.unwrap());
        // The same change seen again (another round, another instance): the
        // stored observation is not the one it read any more.
        assert!(!storage.observe(&change).await.unwrap());
        assert_eq!(
            storage.observations().await.unwrap(),
            [Observed {
                observation: decided.clone(),
                told_ms: Some(20),
                ..stored.clone()
            }],
            "the time told kept, for the hold"
        );
        let listed = storage.deliveries(owner, 100).await.unwrap();
        assert_eq!(listed.len(), 4, "two events for two webhooks");
        for delivery in &listed {
            assert_eq!(delivery.experiment, experiment.uuid);
            assert_eq!(delivery.attempts, 0);
            assert_eq!(delivery.next_ms, Some(20));
            assert_eq!(delivery.created_ms, 20);
        }
        let mut pairs: Vec<(String, String, Uuid)> = listed
            .iter()
            .map(|d| (d.event.clone(), d.body.clone(), d.webhook))
            .collect();
        pairs.sort();
        let mut expected = vec![
            (
                "health-failing".to_owned(),
                "{\"n\":2}".to_owned(),
                one.uuid,
            ),
            (
                "health-failing".to_owned(),
                "{\"n\":2}".to_owned(),
                two.uuid,
            ),
            (
                "verdict-changed".to_owned(),
                "{\"n\":1}".to_owned(),
                one.uuid,
            ),
            (
                "verdict-changed".to_owned(),
                "{\"n\":1}".to_owned(),
                two.uuid,
            ),
        ];
        expected.sort();
        assert_eq!(pairs, expected);
        assert!(listed[0].url.starts_with("https://example.com/"));

        // A change that makes no event keeps the time last told.
        let quiet = observation("decided", &["sample-ratio"]);
        let untold = Notice {
            previous: Some(&decided),
            observation: &quiet,
            events: vec![],
            now_ms: 30,
            ..first.clone()
        };
        assert!(storage.observe(&untold).await.unwrap());
        assert_eq!(
            storage.observations().await.unwrap(),
            [Observed {
                observation: quiet.clone(),
                told_ms: Some(20),
                ..stored
            }]
        );

        // Deleting the experiment forgets its observation; deleting a
        // webhook, its deliveries.
        assert!(storage.delete_experiment(experiment.uuid).await.unwrap());
        assert!(storage.observations().await.unwrap().is_empty());
        assert!(storage.delete_webhook(owner, one.uuid).await.unwrap());
        let listed = storage.deliveries(owner, 100).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|d| d.webhook == two.uuid));
    }

    pub async fn deliveries_are_claimed_once_and_pruned(storage: &dyn Storage) {
        let owner = account(storage).await;
        let experiment = experiment(owner, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let hook = webhook(owner, 1);
        storage.create_webhook(&hook, 10).await.unwrap();
        verdict_changes(storage, owner, experiment.uuid, 5).await;
        assert!(storage.due_deliveries(99, 10, 10).await.unwrap().is_empty());
        let due = storage.due_deliveries(102, 10, 10).await.unwrap();
        let bodies: Vec<&str> = due.iter().map(|d| d.body.as_str()).collect();
        assert_eq!(bodies, ["0", "1", "2"], "the longest due first");
        let two = storage.due_deliveries(1_000, 2, 10).await.unwrap();
        let bodies: Vec<&str> = two.iter().map(|d| d.body.as_str()).collect();
        assert_eq!(bodies, ["0", "1"], "at most 2 of a webhook");
        assert_eq!(storage.due_deliveries(1_000, 10, 2).await.unwrap().len(), 2);

        let first = &due[0];
        assert!(
            storage
                .claim_delivery(first.id, 100, 60_000, 200)
                .await
                .unwrap()
        );
        assert!(
            !storage
                .claim_delivery(first.id, 100, 60_000, 200)
                .await
                .unwrap(),
            "claimed once"
        );
        let due: Vec<i64> = storage
            .due_deliveries(1_000, 10, 10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert!(!due.contains(&first.id), "a claimed delivery is not due");
        storage
            .finish_attempt(&Attempt {
                id: first.id,
                at_ms: 200,
                status: Some(503),
                error: Some("answered HTTP 503".into()),
                delivered_ms: None,
                next_ms: Some(5_000),
            })
            .await
            .unwrap();
        let listed = storage.deliveries(owner, 100).await.unwrap();
        let stored = listed.iter().find(|d| d.id == first.id).unwrap();
        assert_eq!(stored.attempts, 1);
        assert_eq!(stored.last_attempt_ms, Some(200));
        assert_eq!(stored.last_status, Some(503));
        assert_eq!(stored.last_error.as_deref(), Some("answered HTTP 503"));
        assert_eq!(stored.next_ms, Some(5_000));
        storage
            .finish_attempt(&Attempt {
                id: first.id,
                at_ms: 5_000,
                status: Some(204),
                error: None,
                delivered_ms: Some(5_100),
                next_ms: None,
            })
            .await
            .unwrap();
        let listed = storage.deliveries(owner, 100).await.unwrap();
        let stored = listed.iter().find(|d| d.id == first.id).unwrap();
        assert_eq!((stored.delivered_ms, stored.next_ms), (Some(5_100), None));
        assert_eq!(stored.last_error, None);
        let log: Vec<(i64, i64, Option<u16>, Option<String>)> = storage
            .attempts(owner, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.delivery, a.at_ms, a.status, a.error))
            .collect();
        assert_eq!(
            log,
            [
                (first.id, 200, Some(503), Some("answered HTTP 503".into())),
                (first.id, 5_000, Some(204), None),
            ],
            "each attempt kept"
        );
        assert!(
            !storage
                .due_deliveries(i64::MAX, 10, 10)
                .await
                .unwrap()
                .iter()
                .any(|d| d.id == first.id)
        );

        // Newest first; pruning keeps the latest of each webhook, and every
        // one still pending ("2" and "1": never sent, they must not be lost).
        let bodies: Vec<String> = listed.iter().map(|d| d.body.clone()).collect();
        assert_eq!(bodies, ["4", "3", "2", "1", "0"]);
        assert_eq!(storage.prune_deliveries(2).await.unwrap(), 1);
        let bodies: Vec<String> = storage
            .deliveries(owner, 100)
            .await
            .unwrap()
            .iter()
            .map(|d| d.body.clone())
            .collect();
        assert_eq!(bodies, ["4", "3", "2", "1"]);
        assert!(
            storage.attempts(owner, 100).await.unwrap().is_empty(),
            "a pruned delivery's attempts go with it"
        );
    }

    /// Pending deliveries are bounded per webhook: beyond `max`, the oldest
    /// pending go (each webhook named with how many); finished ones and
    /// other webhooks' are untouched.
    pub async fn pending_deliveries_are_bounded_per_webhook(storage: &dyn Storage) {
        let owner = account(storage).await;
        let experiment = experiment(owner, Visibility::Published);
        storage.create_experiment(&experiment, 0).await.unwrap();
        let hook = webhook(owner, 1);
        storage.create_webhook(&hook, 10).await.unwrap();
        let previous = verdict_changes(storage, owner, experiment.uuid, 6).await;
        let other = webhook(owner, 2);
        storage.create_webhook(&other, 10).await.unwrap();
        let last = observation("last", &[]);
        let notice = Notice {
            experiment: experiment.uuid,
            account_id: owner,
            previous: previous.as_ref(),
            observation: &last,
            events: vec![(WebhookEvent::VerdictChanged, "6".to_owned())],
            now_ms: 106,
        };
        assert!(storage.observe(&notice).await.unwrap());
        // "0" delivered: finished, not pending.
        let oldest = storage.due_deliveries(100, 10, 1).await.unwrap()[0].clone();
        assert_eq!(oldest.body, "0");
        assert!(
            storage
                .claim_delivery(oldest.id, 100, 60_000, 200)
                .await
                .unwrap()
        );
        storage
            .finish_attempt(&Attempt {
                id: oldest.id,
                at_ms: 200,
                status: Some(204),
                error: None,
                delivered_ms: Some(200),
                next_ms: None,
            })
            .await
            .unwrap();

        assert_eq!(storage.drop_pending(6).await.unwrap(), []);
        assert_eq!(
            storage.drop_pending(4).await.unwrap(),
            [(hook.uuid, 2)],
            "7 pending, 1 of them the other webhook's"
        );
        let mut left: Vec<(String, Uuid)> = storage
            .deliveries(owner, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.body, d.webhook))
            .collect();
        left.sort();
        let mut expected = vec![
            ("0".to_owned(), hook.uuid),
            ("3".to_owned(), hook.uuid),
            ("4".to_owned(), hook.uuid),
            ("5".to_owned(), hook.uuid),
            ("6".to_owned(), hook.uuid),
            ("6".to_owned(), other.uuid),
        ];
        expected.sort();
        assert_eq!(
            left, expected,
            "the oldest pending went; the delivered one stays"
        );
    }
}
