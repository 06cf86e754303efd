//! The client's rules without a browser: flush steps, JSONP units,
//! adopting other tabs' queues, a full storage, claims across tabs and
//! page life, with tabs sharing one in-memory storage and a clock the
//! tests move.
#![allow(clippy::unwrap_used)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use myna_core::{Code, RecordBatch};

use super::*;
use crate::retry;
use crate::testing::TestHost;

const E: &str = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";
const F: &str = "0b6a7a53-5c5f-4f6a-9d1e-2f4e1c3b2a10";

fn settings(jsonp: bool) -> Settings {
    Settings {
        server: Server::new("https://ab.example.com".into(), "k", jsonp, 10_000.0),
        batch_size: 20,
        bounds: Bounds {
            max_events: 1000,
            max_bytes: 100_000,
        },
        flush_interval_ms: 1000.0,
        ns: "myna".into(),
    }
}

fn tab(host: &TestHost, jsonp: bool) -> Tab<TestHost> {
    Tab::new(host.tab(), settings(jsonp))
}

fn variants() -> Vec<String> {
    vec!["a".into(), "b".into()]
}

/// The server: counts each batch id once, as Myna does.
#[derive(Default)]
struct Myna {
    counted: BTreeMap<Uuid, usize>,
    /// The events of the POSTed batches counted, as "typename variant".
    events: Vec<String>,
    requests: usize,
}

impl Myna {
    /// Takes a request as Myna would and answers it with a read form.
    fn take(&mut self, r: &Request) -> Verdict {
        self.requests += 1;
        let (id, events) = match &r.body {
            Some(body) => {
                let batch: RecordBatch = serde_json::from_str(body).unwrap();
                let id = batch.batch.unwrap();
                if !self.counted.contains_key(&id) {
                    let named = batch.events.iter();
                    let named = named.map(|e| format!("{} {}", e.typename.as_str(), e.variant));
                    self.events.extend(named);
                }
                (id, batch.events.len())
            }
            None => {
                assert!(r.jsonp && r.url.contains("/record?"), "{}", r.url);
                let at = r.url.find("&batch=").unwrap() + "&batch=".len();
                (r.url[at..at + 36].parse().unwrap(), 1)
            }
        };
        self.counted.entry(id).or_insert(events);
        retry::judge(200, None, true, None)
    }

    fn total(&self) -> usize {
        self.counted.values().sum()
    }
}

/// Runs one flush of `tab` as `js/glue.js` would (start, an answer to
/// each request, done), `answer` answering each request.
fn flush(
    tab: &mut Tab<TestHost>,
    eager: bool,
    mut answer: impl FnMut(&Request) -> Verdict,
) -> Done {
    let mut next = tab.start_flush(eager);
    while let Some(request) = next {
        next = tab.answered(answer(&request)).request;
    }
    tab.done()
}

fn stored_queue(host: &TestHost) -> Vec<String> {
    host.items()
        .into_iter()
        .filter(|(k, _)| k.starts_with("myna:t:"))
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn a_burst_of_events_asks_for_one_write_and_a_flush_at_batch_size() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.view(E, &variants(), "a").unwrap();
    t.reward(E, &variants(), Some(0.5)).unwrap();
    assert_eq!(t.take_effects(), vec![Effect::Persist]);
    assert!(
        stored_queue(&host).is_empty(),
        "written at the end of the task"
    );
    t.persist();
    assert_eq!(stored_queue(&host).len(), 1);
    let mut t = Tab::new(
        host.tab(),
        Settings {
            batch_size: 3,
            ..settings(false)
        },
    );
    for _ in 0..3 {
        t.view(E, &variants(), "b").unwrap();
    }
    assert_eq!(t.take_effects(), vec![Effect::Persist, Effect::Flush]);
    t.view(E, &variants(), "b").unwrap();
    assert_eq!(t.take_effects(), vec![], "one flush at a time");
}

#[test]
fn decisions_are_validated_by_core_and_queue_nothing_when_refused() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    let no_view = t.reward(E, &variants(), None).unwrap_err();
    assert_eq!(no_view.code(), Code::NoView);
    let bad = t.view(E, &variants(), "zzz").unwrap_err();
    assert_eq!(bad.code(), Code::UnknownVariant);
    let variant = t.suggest(E, &variants(), &[0.5, 0.5]).unwrap();
    assert_eq!(
        t.suggest(E, &variants(), &[0.5, 0.5]).unwrap(),
        variant,
        "sticky"
    );
    let amount = t.reward(E, &variants(), Some(7.0)).unwrap_err();
    assert_eq!(amount.messages[0].path.as_deref(), Some("amount"));
    assert!(t.reward(E, &variants(), None).unwrap());
    assert!(
        !t.reward(E, &variants(), None).unwrap(),
        "one reward per view"
    );
    assert_eq!(t.queued(), 2);
    let none = t.suggest(E, &[], &[]).unwrap_err();
    assert_eq!(none.code(), Code::UnknownVariant);
}

#[test]
fn a_flush_sends_each_batch_once_and_forgets_what_was_confirmed() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.view(E, &variants(), "a").unwrap();
    t.view(F, &variants(), "b").unwrap();
    t.reward(F, &variants(), None).unwrap();
    t.persist();
    let mut server = Myna::default();
    let done = flush(&mut t, false, |r| server.take(r));
    assert_eq!(
        done.counts,
        Counts {
            sent: 3,
            dropped: 0,
            requeued: 0
        }
    );
    assert_eq!(done.failure, None);
    assert_eq!((server.requests, server.total()), (2, 3));
    assert_eq!(t.queued(), 0);
    assert!(stored_queue(&host).is_empty(), "nothing left stored");
}

#[test]
fn a_failed_attempt_keeps_the_batch_whose_id_names_it_on_every_retry() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.view(E, &variants(), "a").unwrap();
    let mut bodies = Vec::new();
    let done = flush(&mut t, false, |r| {
        bodies.push(r.body.clone().unwrap());
        retry::judge(503, None, false, Some(30_000.0))
    });
    assert_eq!(
        done.counts,
        Counts {
            sent: 0,
            dropped: 0,
            requeued: 1
        }
    );
    assert_eq!(
        done.failure.unwrap().problem.unwrap().code(),
        Code::Unavailable
    );
    // Backing off: a background flush sends nothing, the page's own does.
    host.advance(1_000.0);
    assert_eq!(t.start_flush(false), None);
    assert_eq!(t.done().counts, Counts::default());
    host.advance(1_000.0);
    let mut server = Myna::default();
    let done = flush(&mut t, true, |r| {
        bodies.push(r.body.clone().unwrap());
        server.take(r)
    });
    assert_eq!(done.counts.sent, 1);
    let ids: Vec<Option<Uuid>> = bodies
        .iter()
        .map(|b| serde_json::from_str::<RecordBatch>(b).unwrap().batch)
        .collect();
    assert_eq!(ids[0], ids[1], "one id for one content");
    assert_ne!(bodies[0], bodies[1], "a later sentAt rides along");
}

#[test]
fn a_refused_batch_is_dropped_and_told_and_the_flush_goes_on() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.view(E, &variants(), "a").unwrap();
    t.view(F, &variants(), "a").unwrap();
    let refusal = Problem::at(Code::UnknownVariant, "events[0].variant", "No.");
    let mut server = Myna::default();
    let mut first = true;
    let done = flush(&mut t, false, |r| {
        if core::mem::take(&mut first) {
            retry::judge(400, Some(refusal.clone()), false, None)
        } else {
            server.take(r)
        }
    });
    assert_eq!(
        done.counts,
        Counts {
            sent: 1,
            dropped: 1,
            requeued: 0
        }
    );
    let told = t.take_effects();
    assert!(told.contains(&Effect::Refused(Failure {
        problem: Some(refusal),
        from_server: true
    })));
}

#[test]
fn a_hidden_page_beacons_its_queue_and_another_tab_sends_it_under_the_same_ids() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    let mut b = tab(&host, false);
    a.view(E, &variants(), "a").unwrap();
    a.view(E, &variants(), "b").unwrap();
    a.page_event(PageEvent::Hidden);
    let beacons = host.beacons();
    assert_eq!(beacons.len(), 1);
    let beaconed: RecordBatch = serde_json::from_str(&beacons[0].1).unwrap();
    assert_eq!(beaconed.events.len(), 2);
    // Tab b adopts the released queue and sends the same batch.
    let mut server = Myna::default();
    let done = flush(&mut b, false, |r| server.take(r));
    assert_eq!(done.counts.sent, 2);
    assert_eq!(server.counted.keys().next(), beaconed.batch.as_ref());
    assert!(stored_queue(&host).is_empty(), "a's queue is gone");
    // The beacon and the send name one batch: the server counts 2, not 4.
    server.counted.entry(beaconed.batch.unwrap()).or_insert(2);
    assert_eq!(server.total(), 2);
}

#[test]
fn a_page_of_another_key_never_sends_a_queue_left_by_this_one() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    a.view(E, &variants(), "a").unwrap();
    a.persist();
    a.page_event(PageEvent::Hidden);
    let of = |root: &str, key: &str| {
        let mut settings = settings(false);
        settings.server = Server::new(root.into(), key, false, 10_000.0);
        Tab::new(host.tab(), settings)
    };
    let mut server = Myna::default();
    // Another key (another account's page on this origin): a's queue stays.
    let mut other = of("https://ab.example.com", "k2");
    assert_eq!(flush(&mut other, false, |r| server.take(r)).counts.sent, 0);
    other.close();
    assert_eq!(server.requests, 0);
    assert!(!stored_queue(&host).is_empty());
    // A page of the same key sends it, wherever its server now is.
    let mut same = of("https://moved.example.com/myna", "k");
    let mut sent_to = Vec::new();
    let done = flush(&mut same, false, |r| {
        sent_to.push(r.url.clone());
        server.take(r)
    });
    assert_eq!(done.counts.sent, 1);
    assert!(
        sent_to[0].starts_with("https://moved.example.com/myna/"),
        "{sent_to:?}"
    );
    assert!(stored_queue(&host).is_empty());
}

#[test]
fn a_queue_stored_before_tab_ids_named_their_sender_is_adopted_by_any_page() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    a.view(E, &variants(), "a").unwrap();
    a.persist();
    a.page_event(PageEvent::Hidden);
    // Renamed as an earlier SDK named a tab: a bare uuid.
    for (key, value) in host.items() {
        if let Some(rest) = key.strip_prefix("myna:t:") {
            let legacy = rest.split_once('.').map(|(_, after)| after).unwrap();
            assert!(host.set(&["myna:t:", legacy].concat(), &value));
            host.remove(&key);
        }
    }
    let mut other = Tab::new(host.tab(), {
        let mut settings = settings(false);
        settings.server = Server::new("https://ab.example.com".into(), "k2", false, 10_000.0);
        settings
    });
    let mut server = Myna::default();
    assert_eq!(flush(&mut other, false, |r| server.take(r)).counts.sent, 1);
}

#[test]
fn a_silent_tabs_queue_is_adopted_only_after_fifteen_minutes() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    let mut b = tab(&host, false);
    a.view(E, &variants(), "a").unwrap();
    a.persist();
    let mut server = Myna::default();
    assert_eq!(flush(&mut b, false, |r| server.take(r)).counts.sent, 0);
    host.advance(STALE_MS + 1.0);
    assert_eq!(flush(&mut b, false, |r| server.take(r)).counts.sent, 1);
    assert_eq!(server.total(), 1);
}

#[test]
fn a_jsonp_tab_sends_an_adopted_batch_event_by_event_each_under_its_own_id() {
    let host = TestHost::new();
    let mut post = tab(&host, false);
    for variant in ["a", "b", "a"] {
        post.view(E, &variants(), variant).unwrap();
    }
    post.close();
    let mut jsonp = tab(&host, true);
    let mut urls = Vec::new();
    let mut server = Myna::default();
    let done = flush(&mut jsonp, false, |r| {
        urls.push(r.url.clone());
        server.take(r)
    });
    assert_eq!(done.counts.sent, 3);
    assert_eq!((server.requests, server.total()), (3, 3));
    assert!(
        urls.iter()
            .all(|u| u.contains("/record?typename=view&variant="))
    );
    assert!(urls.iter().all(|u| u.ends_with("&apikey=k")));
}

#[test]
fn a_failed_jsonp_event_ends_the_run_and_keeps_the_whole_batch() {
    let host = TestHost::new();
    let mut post = tab(&host, false);
    post.view(E, &variants(), "a").unwrap();
    post.view(E, &variants(), "b").unwrap();
    post.close();
    let mut jsonp = tab(&host, true);
    let mut answers = 0;
    let done = flush(&mut jsonp, false, |_| {
        answers += 1;
        if answers == 1 {
            retry::judge(200, None, true, None)
        } else {
            retry::unanswered(true)
        }
    });
    assert_eq!(
        done.counts,
        Counts {
            sent: 0,
            dropped: 0,
            requeued: 2
        }
    );
    assert_eq!(done.failure.unwrap().problem.unwrap().code(), Code::Timeout);
    assert_eq!(
        jsonp.queued(),
        2,
        "the batch leaves after its last event only"
    );
}

#[test]
fn a_full_storage_drops_the_oldest_batches_and_says_so_once() {
    let host = TestHost::new();
    let mut t = Tab::new(
        host.tab(),
        Settings {
            batch_size: 1,
            ..settings(false)
        },
    );
    t.view(E, &variants(), "a").unwrap();
    t.persist();
    let one = host.items().values().map(String::len).sum::<usize>();
    host.set_quota(Some(one + 200));
    t.take_effects();
    for _ in 0..4 {
        t.view(F, &variants(), "b").unwrap();
    }
    t.persist();
    let effects = t.take_effects();
    let full: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::QueueFull { .. }))
        .collect();
    assert_eq!(full.len(), 1, "{effects:?}");
    let Effect::QueueFull { dropped, .. } = full[0] else {
        unreachable!()
    };
    assert_eq!(*dropped + t.queued(), 5);
    assert!(effects.contains(&Effect::Sync(Counts {
        sent: 0,
        dropped: *dropped,
        requeued: 0
    })));
    // Even the newest does not fit: memory only, told once.
    let host = TestHost::new();
    let mut t = tab(&host, false);
    host.set_quota(Some(0));
    t.view(F, &variants(), "b").unwrap();
    t.persist();
    let full = |effects: Vec<Effect>| {
        effects
            .iter()
            .filter(|e| {
                // Nothing dropped, and the message does not say otherwise.
                matches!(e, Effect::QueueFull { dropped: 0, message }
                    if message.contains("nothing was dropped"))
            })
            .count()
    };
    assert_eq!(full(t.take_effects()), 1);
    t.view(F, &variants(), "b").unwrap();
    t.persist();
    assert_eq!(full(t.take_effects()), 0);
    assert_eq!(t.queued(), 2, "kept in memory, sent from there");
    let mut server = Myna::default();
    assert_eq!(flush(&mut t, false, |r| server.take(r)).counts.sent, 2);

    // Two experiments on a page whose storage has no room at all: neither
    // experiment's events go (dropping one would make no room for the other).
    let host = TestHost::new();
    let mut t = tab(&host, false);
    host.set_quota(Some(0));
    t.view(E, &variants(), "a").unwrap();
    t.persist();
    t.view(F, &variants(), "b").unwrap();
    t.persist();
    t.reward(E, &variants(), None).unwrap();
    t.persist();
    assert_eq!(full(t.take_effects()), 1);
    assert_eq!(t.queued(), 3);
    let mut server = Myna::default();
    assert_eq!(flush(&mut t, false, |r| server.take(r)).counts.sent, 3);
}

#[test]
fn a_queue_over_its_bounds_loses_its_oldest_events_told_at_the_next_write() {
    let host = TestHost::new();
    let mut t = Tab::new(
        host.tab(),
        Settings {
            bounds: Bounds {
                max_events: 3,
                max_bytes: 100_000,
            },
            ..settings(false)
        },
    );
    for _ in 0..5 {
        t.view(E, &variants(), "a").unwrap();
    }
    assert_eq!(t.queued(), 3);
    t.take_effects();
    t.persist();
    assert_eq!(
        t.take_effects(),
        vec![
            Effect::QueueFull {
                dropped: 2,
                message: "The queue was full: the oldest events were dropped."
            },
            Effect::Sync(Counts {
                sent: 0,
                dropped: 2,
                requeued: 0
            })
        ]
    );
}

#[test]
fn a_full_queue_rewrites_its_stored_base_once_per_tenth_of_its_room_not_per_event() {
    let host = TestHost::new();
    let bounds = Bounds {
        max_events: 100,
        max_bytes: 100_000,
    };
    let mut t = Tab::new(
        host.tab(),
        Settings {
            bounds,
            ..settings(false)
        },
    );
    let base = |items: &BTreeMap<String, String>| {
        items
            .iter()
            .find(|(k, _)| k.starts_with("myna:t:") && k.matches(':').count() == 2)
            .map(|(_, v)| v.clone())
    };
    for _ in 0..100 {
        t.view(E, &variants(), "a").unwrap();
    }
    t.persist();
    let mut rewrites = 0;
    let mut last = base(&host.items());
    for _ in 0..110 {
        t.view(E, &variants(), "a").unwrap();
        t.persist(); // each event its own write
        let now = base(&host.items());
        rewrites += usize::from(now != last);
        last = now;
    }
    // Each view past the bound would otherwise drop the oldest and rewrite
    // the whole base; a tenth dropped at once leaves room for 10 records.
    assert_eq!(rewrites, 10);
    assert!((90..=100).contains(&t.queued()), "{}", t.queued());
    // What is stored is what is queued: the next page finds it all.
    let stored: usize = stored_events(&host).iter().map(|(_, e)| e.len()).sum();
    assert_eq!(stored, t.queued());
}

/// Two tabs of one visitor that drew at once: both found no state, `a`
/// shows "a", `b` shows "b", and `b` wrote last (its state is stored).
fn drawn_at_once(host: &TestHost) -> (Tab<TestHost>, Tab<TestHost>) {
    let mut a = tab(host, false);
    let mut b = tab(host, false);
    assert_eq!(a.suggest(E, &variants(), &[1.0, 0.0]).unwrap(), "a");
    assert_eq!(b.suggest(E, &variants(), &[0.0, 1.0]).unwrap(), "b");
    a.persist();
    b.persist();
    (a, b)
}

#[test]
fn views_two_tabs_showed_at_once_each_count_with_their_rewards() {
    // Both tabs' pages call `view` at the same moment (neither has seen
    // the other's write): each showed its variant, so each view counts,
    // and each tab's reward of it.
    let host = TestHost::new();
    let mut first = tab(&host, false);
    first.view(E, &variants(), "a").unwrap();
    first.persist();
    let mut a = tab(&host, false);
    let mut b = tab(&host, false);
    a.view(E, &variants(), "a").unwrap();
    b.view(E, &variants(), "b").unwrap();
    assert!(a.reward(E, &variants(), None).unwrap());
    assert!(b.reward(E, &variants(), None).unwrap());
    a.persist();
    b.persist();
    let mut server = Myna::default();
    flush(&mut first, false, |r| server.take(r));
    flush(&mut a, false, |r| server.take(r));
    flush(&mut b, false, |r| server.take(r));
    let mut events = server.events.clone();
    events.sort();
    assert_eq!(
        events,
        ["reward a", "reward b", "view a", "view a", "view b"]
    );
}

#[test]
fn of_two_tabs_drawing_at_once_only_the_view_the_shared_state_kept_counts() {
    let host = TestHost::new();
    let (mut a, mut b) = drawn_at_once(&host);
    let mut server = Myna::default();
    flush(&mut a, false, |r| server.take(r));
    flush(&mut b, false, |r| server.take(r));
    assert_eq!(server.total(), 1, "one visitor, one view");
    assert_eq!(a.queued(), 0, "a's losing view was dropped while sealing");
    // Both tabs now agree on b's variant.
    a.page_event(PageEvent::Storage);
    assert_eq!(a.suggest(E, &variants(), &[1.0, 0.0]).unwrap(), "b");
}

#[test]
fn a_reward_in_the_tab_whose_drawn_variant_lost_credits_nothing() {
    let host = TestHost::new();
    let (mut a, mut b) = drawn_at_once(&host);
    a.page_event(PageEvent::Storage);
    // The visitor converts on a's page, which shows "a": crediting "b"
    // (the visitor's counted variant) would be wrong.
    assert!(!a.reward(E, &variants(), None).unwrap(), "nothing queued");
    assert!(b.reward(E, &variants(), None).unwrap());
    a.persist();
    b.persist();
    let mut server = Myna::default();
    flush(&mut a, false, |r| server.take(r));
    flush(&mut b, false, |r| server.take(r));
    assert_eq!(server.events, ["view b", "reward b"]);
    // Once a shows the visitor's variant again (drawn anew here), a tab
    // that shows nothing of the experiment (a checkout page) rewards it.
    a.unstick(E);
    assert_eq!(a.suggest(E, &variants(), &[1.0, 0.0]).unwrap(), "a");
    a.persist();
    let mut checkout = tab(&host, false);
    assert!(checkout.reward(E, &variants(), None).unwrap());
    checkout.persist();
    a.page_event(PageEvent::Storage);
    assert!(!a.reward(E, &variants(), None).unwrap(), "rewarded already");
}

#[test]
fn two_clients_of_one_page_show_one_variant_and_count_it_once() {
    // Two components of one page, each connecting, decide in the same task.
    let host = TestHost::new();
    let page = host.tab();
    let mut one = Tab::new(page.client(), settings(false));
    let mut two = Tab::new(page.client(), settings(false));
    let weights = [0.5, 0.5];
    for round in 0..20 {
        one.unstick(E);
        let first = one.suggest(E, &variants(), &weights).unwrap();
        let second = two.suggest(E, &variants(), &weights).unwrap();
        assert_eq!(first, second, "round {round}: one visitor, one variant");
        assert!(two.reward(E, &variants(), None).unwrap());
        assert!(
            !one.reward(E, &variants(), None).unwrap(),
            "rewarded already"
        );
    }
    one.persist();
    two.persist();
    let mut server = Myna::default();
    flush(&mut one, false, |r| server.take(r));
    flush(&mut two, false, |r| server.take(r));
    assert_eq!(server.total(), 40, "20 views and 20 rewards, none lost");
}

#[test]
fn of_tabs_rewarding_one_view_at_once_only_one_reward_counts() {
    let host = TestHost::new();
    let mut first = tab(&host, false);
    first.view(E, &variants(), "a").unwrap();
    first.persist();
    let mut server = Myna::default();
    flush(&mut first, false, |r| server.take(r));
    let mut tabs: Vec<Tab<TestHost>> = (0..5).map(|_| tab(&host, false)).collect();
    for t in &mut tabs {
        assert!(t.reward(E, &variants(), None).unwrap());
    }
    for t in &mut tabs {
        t.persist();
    }
    for t in &mut tabs {
        flush(t, false, |r| server.take(r));
    }
    assert_eq!(server.total(), 2, "the view and one reward");
}

#[test]
fn page_life_heartbeats_flushes_when_due_and_lets_go_at_close() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.start();
    assert_eq!(t.take_effects(), vec![Effect::Listen(1000.0)]);
    t.view(E, &variants(), "a").unwrap();
    t.persist();
    t.take_effects();
    let before = stored_queue(&host);
    host.advance(1000.0);
    t.page_event(PageEvent::Tick);
    assert_eq!(t.take_effects(), vec![Effect::Flush]);
    assert_eq!(stored_queue(&host), before, "no write a tick");
    host.advance(persist::HEARTBEAT_MS);
    t.page_event(PageEvent::Tick);
    assert_ne!(
        stored_queue(&host),
        before,
        "the heartbeat rewrote the queue"
    );
    // Failed: the tick waits for the backoff; online does not.
    flush(&mut t, false, |_| retry::unanswered(false));
    t.page_event(PageEvent::Tick);
    assert_eq!(t.take_effects(), vec![]);
    t.page_event(PageEvent::Online);
    assert_eq!(t.take_effects(), vec![Effect::Flush]);
    assert!(t.lease(Lease::Take));
    t.close();
    assert_eq!(t.take_effects(), vec![Effect::Listen(0.0)]);
    assert!(
        !host.items().contains_key("myna:lease"),
        "the lease is given back"
    );
    let stored = stored_queue(&host);
    assert!(stored[0].contains("\"r\":true"), "released for other tabs");
    t.page_event(PageEvent::Visible);
    assert!(
        stored_queue(&host)[0].contains("\"r\":true"),
        "closed stays closed"
    );
}

#[test]
fn beacons_stop_when_the_browser_refuses_one() {
    let host = TestHost::new();
    let mut t = tab(&host, true);
    for _ in 0..3 {
        t.view(E, &variants(), "a").unwrap();
    }
    host.set_beacon_quota(2);
    t.page_event(PageEvent::Hidden);
    assert_eq!(host.beacons().len(), 2);
    assert_eq!(t.queued(), 3, "kept until a confirmed send");
}

#[test]
fn the_lease_goes_to_one_tab_at_a_time_until_it_expires_or_is_given_back() {
    let host = TestHost::new();
    let a = tab(&host, false);
    let b = tab(&host, false);
    assert!(a.lease(Lease::Take) && a.lease(Lease::Held));
    assert!(!b.lease(Lease::Take) && !b.lease(Lease::Held));
    host.advance(lock::LEASE_MS + 1.0);
    assert!(b.lease(Lease::Take), "a dead tab's lease expires");
    assert!(!a.lease(Lease::Held));
    assert!(!a.lease(Lease::Give), "not a's to give");
    assert!(b.lease(Lease::Give));
    assert!(a.lease(Lease::Take));
}

#[test]
fn a_tab_whose_storage_refuses_it_holds_the_lease_instead_of_waiting_forever() {
    // A sandboxed frame: no Web Locks and no localStorage (nothing reads
    // back). No other tab can share this storage: the lease is ours.
    let host = TestHost::new();
    host.set_quota(Some(0));
    let a = tab(&host, false);
    assert!(a.lease(Lease::Take) && a.lease(Lease::Held));
    host.advance(lock::RENEW_MS);
    assert!(a.lease(Lease::Held), "renewed");
}

#[test]
fn page_events_are_named_as_glue_js_names_them() {
    for (name, event) in [
        ("tick", PageEvent::Tick),
        ("start", PageEvent::Start),
        ("pagehide", PageEvent::Hidden),
        ("freeze", PageEvent::Hidden),
        ("hidden", PageEvent::Hidden),
        ("pageshow", PageEvent::Visible),
        ("visible", PageEvent::Visible),
        ("storage", PageEvent::Storage),
        ("online", PageEvent::Online),
    ] {
        assert_eq!(PageEvent::from_name(name), Some(event));
    }
    assert_eq!(PageEvent::from_name("click"), None);
}

/// The events another tab would find in storage: (batch id, timestamps)
/// of every batch of every tab's queue (bases, records, old forms).
fn stored_events(host: &TestHost) -> Vec<(Uuid, Vec<i64>)> {
    let keys = host.keys("myna:");
    let mut tabs: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("myna:t:"))
        .map(|rest| rest.split(':').next().unwrap())
        .collect();
    tabs.dedup();
    tabs.into_iter()
        .flat_map(|tab| {
            persist::read_tab(host, &storage::base("myna", tab))
                .unwrap()
                .batches
        })
        .map(|b| {
            (
                b.id.unwrap(),
                b.events.iter().map(|e| e.timestamp).collect(),
            )
        })
        .collect()
}

#[test]
fn each_event_is_stored_as_its_own_record_before_the_next_and_a_reload_at_any_point_sends_each_once()
 {
    // The page reloads (a crash: no pagehide) after each of 1..=6 events,
    // each queued one at a time, with a flush between some of them.
    for crash_after in 1..=6 {
        let host = TestHost::new();
        let mut t = tab(&host, false);
        let mut server = Myna::default();
        let mut acknowledged = 0;
        for i in 0..crash_after {
            host.advance(1.0);
            if i % 2 == 0 {
                t.view(E, &variants(), "a").unwrap();
            } else {
                assert!(t.reward(E, &variants(), Some(1.0)).unwrap());
            }
            acknowledged += 1;
            let before = host.items();
            t.persist(); // the end of the task
            let after = host.items();
            let new = after
                .keys()
                .filter(|k| k.starts_with("myna:t:") && !before.contains_key(*k))
                .count();
            let changed = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(v))
                .count();
            assert_eq!(new, 1, "one record for the event");
            assert!(changed <= 2, "the record and the visitor's state only");
            if i == 2 {
                // A flush confirms the first three: the base is rewritten.
                assert_eq!(flush(&mut t, true, |r| server.take(r)).counts.sent, 3);
                assert!(stored_queue(&host).is_empty());
            }
        }
        let stored: usize = stored_events(&host).iter().map(|(_, e)| e.len()).sum();
        assert_eq!(
            stored + server.total(),
            acknowledged,
            "crash after {crash_after}"
        );
        // The next page, 15 minutes on, adopts what the dead tab left.
        host.advance(STALE_MS + 1.0);
        let mut next = tab(&host, false);
        flush(&mut next, false, |r| server.take(r));
        assert_eq!(server.total(), acknowledged, "each event counted once");
        assert!(stored_queue(&host).is_empty());
    }
}

#[test]
fn a_queue_stored_by_an_sdk_before_records_is_adopted_and_sent_under_its_ids() {
    let host = TestHost::new();
    // What the previous SDK version wrote as its page went away.
    let old = r#"{"t":1000000,"r":true,"q":[
        {"e":"6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11","s":true,
         "b":{"batch":"00000000-0000-0000-0000-0000000000aa","events":[
           {"typename":"view","variant":"a","timestamp":5},
           {"typename":"reward","variant":"a","amount":0.5,"timestamp":6}]},
         "k":[[1,7],[1,7,9]]},
        {"e":"6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11","s":false,
         "b":{"batch":"00000000-0000-0000-0000-0000000000bb","events":[
           {"typename":"view","variant":"b","timestamp":7}]}}]}"#;
    host.set("myna:q:oldtab", old);
    let mut t = tab(&host, false);
    t.start();
    t.page_event(PageEvent::Start);
    assert_eq!(
        t.take_effects(),
        vec![Effect::Listen(1000.0), Effect::Flush]
    );
    // The server is down at first: the queue is ours now, in the new form.
    flush(&mut t, false, |_| retry::unanswered(false));
    assert_eq!(host.get("myna:q:oldtab"), None);
    assert_eq!(t.queued(), 3);
    let aa = Uuid::from_u128(0xaa);
    let bb = Uuid::from_u128(0xbb);
    assert_eq!(stored_events(&host), [(aa, vec![5, 6]), (bb, vec![7])]);
    host.advance(600_000.0);
    let mut server = Myna::default();
    let done = flush(&mut t, false, |r| server.take(r));
    assert_eq!(done.counts.sent, 3);
    assert_eq!(server.counted, BTreeMap::from([(aa, 2), (bb, 1)]));
}

#[test]
fn what_the_page_queued_before_the_listeners_started_waits_for_the_timer() {
    // The page's first view is queued in the task that connected, before
    // the listeners start: its own queue is no reason to flush at once.
    let host = TestHost::new();
    let mut t = tab(&host, false);
    t.start();
    t.view(E, &variants(), "a").unwrap();
    t.persist();
    t.page_event(PageEvent::Start);
    assert!(!t.take_effects().contains(&Effect::Flush));
    // Another page's queue is.
    let mut next = tab(&host, false);
    next.start();
    next.page_event(PageEvent::Start);
    assert!(next.take_effects().contains(&Effect::Flush));
}

#[test]
fn a_tab_leaves_a_live_tabs_records_alone_and_adopts_them_once_released() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    let mut b = tab(&host, false);
    for _ in 0..3 {
        a.view(E, &variants(), "a").unwrap();
        a.persist();
    }
    assert_eq!(stored_queue(&host).len(), 3, "three records");
    let mut server = Myna::default();
    b.start();
    b.page_event(PageEvent::Start);
    assert!(b.take_effects().contains(&Effect::Flush));
    assert_eq!(flush(&mut b, false, |r| server.take(r)).counts.sent, 0);
    assert_eq!(
        stored_queue(&host).len(),
        3,
        "a live tab's queue stays its own"
    );
    a.page_event(PageEvent::Hidden);
    assert_eq!(flush(&mut b, false, |r| server.take(r)).counts.sent, 3);
    assert!(stored_queue(&host).is_empty());
    // a is shown again and queues more: a new batch, written as a record.
    a.page_event(PageEvent::Visible);
    a.view(E, &variants(), "b").unwrap();
    a.persist();
    assert_eq!(flush(&mut a, false, |r| server.take(r)).counts.sent, 4);
    assert_eq!(server.total(), 4, "the batch both sent is counted once");
}

/// A hidden tab's page may still queue events (a background tab's timers);
/// what it stores while released another tab may adopt and send at once,
/// so that batch never grows: each later event goes in a new batch, and
/// every event is counted once (an outside probe lost views when the
/// released tab appended to a batch the other had sent).
#[test]
fn a_batch_stored_while_released_never_grows_after_another_tab_may_have_sent_it() {
    let host = TestHost::new();
    let mut a = tab(&host, false);
    let mut b = tab(&host, false);
    let mut server = Myna::default();
    a.page_event(PageEvent::Hidden);
    a.view(E, &variants(), "a").unwrap();
    a.persist();
    assert_eq!(flush(&mut b, false, |r| server.take(r)).counts.sent, 1);
    a.reward(E, &variants(), Some(1.0)).unwrap();
    a.persist();
    a.page_event(PageEvent::Visible);
    a.view(E, &variants(), "b").unwrap();
    a.persist();
    flush(&mut a, false, |r| server.take(r));
    flush(&mut b, false, |r| server.take(r));
    assert_eq!(
        server.events,
        ["view a", "reward a", "view b"],
        "every event counted once"
    );
}

#[test]
fn the_visitors_state_is_written_only_when_it_changed() {
    let host = TestHost::new();
    let mut t = tab(&host, false);
    let key = alloc::format!("myna:s:{E}");
    t.view(E, &variants(), "a").unwrap();
    t.unstick(E);
    t.persist();
    assert!(host.get(&key).is_some());
    host.remove(&key);
    t.unstick(E); // nothing is shown already
    t.persist();
    assert_eq!(host.get(&key), None, "unchanged: not written again");
    t.suggest(E, &variants(), &[1.0, 0.0]).unwrap();
    t.persist();
    assert!(host.get(&key).is_some(), "changed: written");
}

/// Events queued while the page's clock was days fast, sent after it was
/// set right: the request's `sentAt` is no earlier than its events, so the
/// server reads them on the clock they were stamped with instead of as
/// from the future (an outside probe's 8 such events were all refused and
/// dropped), by POST and by JSONP alike.
#[test]
fn events_queued_before_the_clock_was_set_back_are_sent_at_their_own_time() {
    for jsonp in [false, true] {
        let host = TestHost::new();
        let mut t = tab(&host, jsonp);
        let fast = 3.0 * 86_400_000.0;
        host.advance(fast);
        t.view(E, &variants(), "a").unwrap();
        t.persist();
        host.advance(-fast);
        let mut sent = Vec::new();
        flush(&mut t, true, |r| {
            let text = match &r.body {
                Some(body) => body.clone(),
                None => r.url.clone(),
            };
            sent.push(text);
            retry::judge(200, None, true, None)
        });
        assert_eq!(sent.len(), 1, "{sent:?}");
        let stamped = |key: &str| -> i64 {
            let at = sent[0].find(key).unwrap() + key.len();
            let digits: String = sent[0][at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        };
        let (event, sent_at) = if jsonp {
            (stamped("timestamp="), stamped("sentAt="))
        } else {
            (stamped("\"timestamp\":"), stamped("\"sentAt\":"))
        };
        assert!(
            sent_at >= event,
            "jsonp {jsonp}: sentAt {sent_at} < {event}"
        );
        assert!((host.tab().now() as i64) < event, "the clock was set back");
    }
}
