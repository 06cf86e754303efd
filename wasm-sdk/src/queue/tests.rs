#![allow(clippy::unwrap_used)]
use super::*;
use crate::sticky::Entry;
use myna_core::{EventType, RecordBatch};
use serde_json::Value;

fn num(x: f64) -> String {
    serde_json::to_string(&x).unwrap()
}

fn queue(capacity: usize) -> Queue<fn(f64) -> String> {
    Queue::new(capacity, num)
}

fn view(variant: &str, ts: i64) -> Event {
    Event {
        typename: EventType::View,
        variant: variant.into(),
        amount: None,
        timestamp: ts,
    }
}

fn ids() -> impl FnMut() -> Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

#[test]
fn unit_ids_are_the_batch_id_xor_the_events_index() {
    for n in [0u128, 1, 0x6f1c1a52_3b0e_4d8e_9f39_0c6f5c1d2a11, u128::MAX] {
        let id = Uuid::from_u128(n);
        for i in [0, 1, 7, 255, 65_536, usize::MAX] {
            assert_eq!(unit_id(id, i), Uuid::from_u128(n ^ i as u128));
        }
    }
}

#[test]
fn events_of_one_experiment_share_a_batch_until_full_or_sealed() {
    let mut next = ids();
    let mut q = queue(2);
    q.push("e1", view("a", 1), Claim::default(), &mut next);
    q.push("e2", view("a", 2), Claim::default(), &mut next);
    q.push("e1", view("b", 3), Claim::default(), &mut next);
    assert_eq!(q.batches().len(), 2);
    assert_eq!(q.batches()[0].events().len(), 2);
    q.push("e1", view("c", 4), Claim::default(), &mut next); // e1's batch is full
    assert_eq!(q.batches().len(), 3);
    q.seal_settled(None, |_, _| true);
    q.push("e2", view("d", 5), Claim::default(), &mut next); // sealed batches never grow
    assert_eq!(q.batches().len(), 4);
    assert_eq!(q.len(), 5);
    let ids: Vec<_> = q.batches().iter().map(|b| b.id.as_u128()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn unit_ids_keep_a_single_events_batch_id_and_differ_per_event() {
    let id = Uuid::from_u128(0xabc0);
    assert_eq!(unit_id(id, 0), id);
    let ids: Vec<Uuid> = (0..1000).map(|i| unit_id(id, i)).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000);
    let mut q = queue(5);
    q.push("e", view("a", 1), Claim::default(), || id);
    q.push("e", view("b", 2), Claim::default(), || id);
    let one: RecordBatch = serde_json::from_str(&q.unit_body(&q.batches()[0], 1, None)).unwrap();
    assert_eq!(one.batch, Some(unit_id(id, 1)));
    assert_eq!(one.events, vec![view("b", 2)]);
}

#[test]
fn jsonp_capacity_is_one_event_a_batch() {
    let mut q = queue(1);
    let mut next = ids();
    q.push("e", view("a", 1), Claim::default(), &mut next);
    q.push("e", view("a", 2), Claim::default(), &mut next);
    assert_eq!(q.batches().len(), 2);
}

#[test]
fn body_is_cores_wire_form_and_parses_back() {
    let mut q = queue(10);
    q.push("e", view("a\"b", 7), Claim::default(), ids());
    let reward = Event {
        typename: EventType::Reward,
        variant: "a\"b".into(),
        amount: Some(0.25),
        timestamp: 8,
    };
    q.push("e", reward.clone(), Claim::default(), ids());
    let body = q.batches()[0].body(None);
    let back: RecordBatch = serde_json::from_str(&body).unwrap();
    assert_eq!(back.batch, Some(Uuid::from_u128(1)));
    assert_eq!(back.events, vec![view("a\"b", 7), reward.clone()]);
    // Sent: the page's clock rides along; the batch's id and events do not change.
    let sent: Value = serde_json::from_str(&q.batches()[0].body(Some(1234))).unwrap();
    assert_eq!(sent["sentAt"], 1234);
    let back: RecordBatch = serde_json::from_value(sent).unwrap();
    assert_eq!(back.batch, Some(Uuid::from_u128(1)));
    assert_eq!(back.events, vec![view("a\"b", 7), reward]);
    let unit: Value = serde_json::from_str(&q.unit_body(&q.batches()[0], 1, Some(99))).unwrap();
    assert_eq!(unit["sentAt"], 99);
    assert_eq!(unit["events"].as_array().unwrap().len(), 1);
}

#[test]
fn oldest_events_go_first_when_over_bounds() {
    let mut q = queue(3);
    let mut next = ids();
    for ts in 0..7 {
        q.push("e", view("a", ts), Claim::default(), &mut next);
    }
    let dropped = q.enforce(Bounds {
        max_events: 5,
        max_bytes: usize::MAX,
    });
    assert_eq!(dropped, 2);
    assert_eq!(q.len(), 5);
    let first: Vec<i64> = q.batches()[0]
        .events()
        .iter()
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(first, [2]);
    // The trimmed batch's body still parses and matches its events.
    let back: RecordBatch = serde_json::from_str(&q.batches()[0].body(None)).unwrap();
    assert_eq!(back.events, vec![view("a", 2)]);

    let dropped = q.enforce(Bounds {
        max_events: 100,
        max_bytes: q.bytes() + 9,
    });
    assert_eq!(dropped, 0, "within the bounds, nothing goes");
    let dropped = q.enforce(Bounds {
        max_events: 100,
        max_bytes: q.bytes() - 1,
    });
    assert_eq!(dropped, 1, "the oldest event goes for bytes");
    assert_eq!(q.len(), 4);
    // One big batch over the byte bound loses its oldest events, not all.
    let mut big = queue(100);
    for ts in 0..50 {
        big.push("e", view("a", ts), Claim::default(), &mut next);
    }
    let bound = big.bytes() / 2;
    big.enforce(Bounds {
        max_events: 100,
        max_bytes: bound,
    });
    assert!(big.bytes() <= bound && big.len() > 20, "{}", big.len());
    assert_eq!(big.batches()[0].events().last().unwrap().timestamp, 49);
    assert_eq!(
        q.enforce(Bounds {
            max_events: 0,
            max_bytes: 0
        }),
        4
    );
    assert!(q.is_empty());
}

#[test]
fn a_reward_goes_with_its_view_when_the_view_is_dropped_for_room() {
    let claim = |seq, token, reward| Entry {
        seq,
        token,
        reward,
        shown: false,
    };
    let reward = |variant: &str, ts| Event {
        typename: EventType::Reward,
        amount: Some(1.0),
        ..view(variant, ts)
    };
    let mut q = queue(2);
    let mut next = ids();
    // Views 1 and 2 (tokens 11, 12) in the oldest batch; later, a reward of
    // each, a view of "f" whose token is 11 too, and a view with no claim.
    q.push("e", view("a", 1), claim(1, 11, 0), &mut next);
    q.push("e", view("b", 2), claim(2, 12, 0), &mut next);
    q.push("f", view("a", 3), claim(1, 11, 0), &mut next);
    q.push("f", reward("a", 4), claim(1, 11, 9), &mut next);
    q.push("e", reward("a", 5), claim(1, 11, 7), &mut next);
    q.push("e", view("c", 6), Claim::default(), &mut next);
    q.push("e", reward("b", 7), claim(2, 12, 8), &mut next);
    // Room for 6: view 1 goes, and its reward (not f's, not view 2's).
    let dropped = q.enforce(Bounds {
        max_events: 6,
        max_bytes: usize::MAX,
    });
    assert_eq!(dropped, 2);
    let left: Vec<(i64, &str)> = q
        .batches()
        .iter()
        .flat_map(|b| {
            b.events()
                .iter()
                .map(move |e| (e.timestamp, b.experiment.as_str()))
        })
        .collect();
    assert_eq!(left, [(2, "e"), (3, "f"), (4, "f"), (6, "e"), (7, "e")]);
    // A whole batch dropped takes its views' rewards along too.
    let dropped = q.enforce(Bounds {
        max_events: 4,
        max_bytes: usize::MAX,
    });
    assert_eq!(dropped, 2, "view 2 and its reward");
    let left: Vec<i64> = q
        .batches()
        .iter()
        .flat_map(|b| b.events().iter().map(|e| e.timestamp))
        .collect();
    assert_eq!(left, [3, 4, 6]);
}

#[test]
fn a_full_queue_drops_a_tenth_at_once_then_fills_again() {
    let bounds = Bounds {
        max_events: 100,
        max_bytes: usize::MAX,
    };
    let mut q = queue(20);
    let mut next = ids();
    let mut drops = Vec::new();
    for ts in 0..250 {
        q.push("e", view("a", ts), Claim::default(), &mut next);
        let dropped = q.enforce(bounds);
        if dropped > 0 {
            drops.push((ts, dropped));
        }
        assert!(q.len() <= 100);
    }
    // Over 100: down to 90 (whole batches of 20, the oldest, then part of
    // one), and nothing again until the queue is over 100 once more.
    let expected: Vec<(i64, usize)> = (100..250).step_by(11).map(|ts| (ts, 11)).collect();
    assert_eq!(drops, expected);
    // 250 pushed, 154 dropped: the newest 96 are kept, oldest first.
    let kept: Vec<i64> = q
        .batches()
        .iter()
        .flat_map(|b| b.events())
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(kept, (154..250).collect::<Vec<_>>());

    // The same over the bytes: one event over drops a tenth of the bound.
    let mut q = queue(20);
    for ts in 0..50 {
        q.push("e", view("a", ts), Claim::default(), &mut next);
    }
    let bound = q.bytes();
    q.push("e", view("a", 50), Claim::default(), &mut next);
    let dropped = q.enforce(Bounds {
        max_events: 1000,
        max_bytes: bound,
    });
    assert!(q.bytes() <= bound - bound / 10, "{} of {bound}", q.bytes());
    assert!((5..=7).contains(&dropped), "{dropped}");
    assert_eq!(q.len(), 51 - dropped);
}

#[test]
fn adopted_batches_arrive_sealed_and_once() {
    let mut mine = queue(20);
    let mut theirs = queue(20);
    theirs.push("e", view("a", 1), Claim::default(), || Uuid::from_u128(9));
    mine.push("e", view("b", 2), Claim::default(), || Uuid::from_u128(1));
    mine.adopt(theirs.batches().to_vec());
    mine.adopt(theirs.batches().to_vec());
    assert_eq!(mine.batches().len(), 2);
    assert!(mine.get(Uuid::from_u128(9)).unwrap().sealed);
    // Our open batch keeps growing; theirs never does.
    mine.push("e", view("c", 3), Claim::default(), || Uuid::from_u128(2));
    assert_eq!(mine.get(Uuid::from_u128(1)).unwrap().events().len(), 2);
    assert_eq!(mine.remove(Uuid::from_u128(9)), 1);
    assert_eq!(mine.remove(Uuid::from_u128(9)), 0);
}

#[test]
fn a_batch_loses_events_whose_claims_lost_only_before_it_is_sealed() {
    let claim = |seq, token| Entry {
        seq,
        token,
        ..Entry::default()
    };
    let mut q = queue(10);
    q.push("e", view("a", 1), claim(1, 11), || Uuid::from_u128(1));
    q.push("e", view("b", 2), claim(1, 12), || Uuid::from_u128(1));
    q.push("f", view("c", 3), claim(1, 13), || Uuid::from_u128(2));
    // Token 12 holds seq 1 of experiment e: 11's view lost.
    let gone = q.seal_settled(Some(Uuid::from_u128(1)), |e, c| e != "e" || c.token == 12);
    assert_eq!(gone, 1);
    let sealed = q.get(Uuid::from_u128(1)).unwrap();
    assert!(sealed.sealed);
    assert_eq!(sealed.events(), &[view("b", 2)]);
    assert_eq!(sealed.claims(), &[claim(1, 12)]);
    let back: RecordBatch = serde_json::from_str(&sealed.body(None)).unwrap();
    assert_eq!(back.events, vec![view("b", 2)]);
    // Sealed: never judged again, whatever the claims say later.
    assert_eq!(
        q.seal_settled(None, |_, _| false),
        1,
        "only f's unsealed batch"
    );
    assert_eq!(q.batches().len(), 1, "a batch that lost every event goes");
    assert_eq!(q.len(), 1);
}
