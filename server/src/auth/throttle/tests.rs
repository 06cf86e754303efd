//! The guard's limits, maps and flights.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const NOW: i64 = 1_800_000_000_000;

async fn wrong() -> Result<Option<Uuid>, Problem> {
    Ok(None)
}

fn status(outcome: &Outcome) -> u16 {
    outcome.as_ref().err().map_or(200, |p| p.status)
}

fn retry_after(outcome: &Outcome) -> Option<u64> {
    outcome.as_ref().err()?.messages[0].data.as_ref()?["retryAfter"].as_u64()
}

#[test]
fn waits_double_after_the_free_failures_up_to_the_cap() {
    let mut record = Record::default();
    for _ in 0..ADDRESS_FREE_FAILURES {
        record = record.failed(NOW, ADDRESS_FREE_FAILURES, MAX_ADDRESS_WAIT_MS);
        assert_eq!(record.wait_ms(NOW), None);
    }
    let mut waits = Vec::new();
    let mut now = NOW;
    for _ in 0..15 {
        record = record.failed(now, ADDRESS_FREE_FAILURES, MAX_ADDRESS_WAIT_MS);
        let wait = record.wait_ms(now).unwrap_or(0);
        waits.push(wait);
        now += wait;
    }
    assert_eq!(&waits[..4], [1_000, 2_000, 4_000, 8_000]);
    assert_eq!(waits.last(), Some(&MAX_ADDRESS_WAIT_MS));
    // An hour without failures forgets them.
    let later = record.failed(
        now + FORGET_AFTER_MS + 1,
        ADDRESS_FREE_FAILURES,
        MAX_ADDRESS_WAIT_MS,
    );
    assert_eq!(later.failures, 1);
    // A clock stepped back an hour does not lengthen the wait past the one
    // set (an outside probe was told 4,500 s, past the 900 s cap).
    let blocked = record.failed(now, ADDRESS_FREE_FAILURES, MAX_ADDRESS_WAIT_MS);
    assert_eq!(blocked.wait_ms(now - 3_600_000), Some(MAX_ADDRESS_WAIT_MS));
    assert_eq!(
        blocked.wait_ms(now + 1_000),
        Some(MAX_ADDRESS_WAIT_MS - 1_000)
    );
}

#[test]
fn bounded_maps_evict_the_least_recently_touched() {
    let mut map = Bounded::new(3);
    for n in 0..3 {
        map.insert(n, n);
    }
    map.insert(0, 10); // touched: 1 is now the oldest
    map.insert(3, 3);
    assert_eq!(map.len(), 3);
    assert_eq!(map.get(&1), None);
    assert_eq!(map.get(&0), Some(&10));
    for n in 4..10_000 {
        map.insert(n, n);
    }
    assert_eq!(map.len(), 3);
    map.remove(&9_999);
    assert_eq!(map.len(), 2);
}

#[test]
fn client_addresses_group_ipv6_by_64_and_proxies_append_on_the_right() {
    let v6 = |text: &str| ClientKey::of(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    assert_eq!(v6("2001:db8:1:2::1"), v6("2001:db8:1:2:ffff::9"));
    assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
    assert_eq!(v6("::ffff:192.0.2.7"), v6("192.0.2.7"));
    let header = HeaderName::from_static("x-forwarded-for");
    let request = Request::builder()
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
        .finish();
    assert_eq!(
        ClientKey::of_request(&request, Some(&header)),
        v6("203.0.113.9")
    );
    assert_eq!(ClientKey::of_request(&request, None), ClientKey::Unknown);
    let port = Request::builder()
        .header("x-forwarded-for", "[2001:db8::1]:443")
        .finish();
    assert_eq!(
        ClientKey::of_request(&port, Some(&header)),
        v6("2001:db8::7")
    );
}

#[tokio::test]
async fn a_flood_of_addresses_stays_bounded() {
    let guard = Guard::with_capacity(None, 1, 100);
    for n in 0..1_000u32 {
        let client = ClientKey::V4(Ipv4Addr::from(n));
        let email = format!("a{n}@b");
        let outcome = guard.check(client, &email, "guess", NOW, wrong).await;
        assert_eq!(status(&outcome), 401);
    }
    assert_eq!(guard.tracked_addresses(), 100);
}

#[tokio::test]
async fn the_account_limit_spares_addresses_it_signed_in_from() {
    let guard = Guard::new(None, 1);
    let home = ClientKey::V4(Ipv4Addr::new(192, 0, 2, 1));
    let account = Uuid::from_u128(1);
    let right = || async move { Ok(Some(account)) };
    assert_eq!(
        guard.check(home, "me@x", "right", NOW, right).await,
        Ok(account)
    );
    // Guesses from ever new addresses, each waiting out the last block.
    let (mut now, mut last) = (NOW, NOW);
    for n in 0..ACCOUNT_FREE_FAILURES + 7 {
        let attacker = ClientKey::V4(Ipv4Addr::new(203, 0, 113, n as u8));
        let outcome = guard.check(attacker, "me@x", "guess", now, wrong).await;
        assert_eq!(status(&outcome), 401, "guess {n}");
        last = now;
        if let Some(beyond) = n.checked_sub(ACCOUNT_FREE_FAILURES) {
            now += FIRST_WAIT_MS << beyond;
        }
    }
    let now = last + 1_000;
    assert!(
        now > NOW + VERIFIED_TTL_MS,
        "the owner's check is no longer cached"
    );
    let fresh = ClientKey::V4(Ipv4Addr::new(198, 51, 100, 1));
    let outcome = guard.check(fresh, "me@x", "right", now, right).await;
    assert_eq!(status(&outcome), 429, "not a trusted address: it waits too");
    assert!(retry_after(&outcome).is_some_and(|s| s > 1));
    assert_eq!(
        guard.check(home, "me@x", "right", now, right).await,
        Ok(account)
    );
}

#[tokio::test]
async fn identical_checks_in_flight_share_one_verification() {
    let guard = Guard::new(None, 1);
    let runs = std::sync::atomic::AtomicU32::new(0);
    let (gate, opened) = tokio::sync::watch::channel(false);
    let check = || {
        let mut opened = opened.clone();
        let runs = &runs;
        guard.check(ClientKey::Unknown, "me@x", "pw", NOW, move || async move {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = opened.wait_for(|open| *open).await;
            Ok(Some(Uuid::from_u128(7)))
        })
    };
    let all = futures_join(check(), check(), check(), async {
        tokio::task::yield_now().await;
        let _ = gate.send(true);
    })
    .await;
    let seven: Outcome = Ok(Uuid::from_u128(7));
    assert_eq!(all, [seven.clone(), seven.clone(), seven]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Once answered, nothing is left in flight.
    assert!(lock(&guard.in_flight).is_empty());
    assert!(lock(&guard.flights).is_empty());
}

async fn futures_join<A, B, C, D>(a: A, b: B, c: C, d: D) -> [Outcome; 3]
where
    A: Future<Output = Outcome>,
    B: Future<Output = Outcome>,
    C: Future<Output = Outcome>,
    D: Future<Output = ()>,
{
    let (a, b, c, ()) = tokio::join!(a, b, c, d);
    [a, b, c]
}

#[tokio::test]
async fn one_address_gets_one_check_in_flight_the_next_is_refused_at_once() {
    let guard = Guard::new(None, 1);
    let (gate, opened) = tokio::sync::watch::channel(false);
    let slow = guard.check(ClientKey::Unknown, "me@x", "one", NOW, || async move {
        let mut opened = opened;
        let _ = opened.wait_for(|open| *open).await;
        Ok(None)
    });
    let other = async {
        tokio::task::yield_now().await;
        let outcome = guard
            .check(ClientKey::Unknown, "me@x", "two", NOW, wrong)
            .await;
        let _ = gate.send(true);
        outcome
    };
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(status(&slow), 401);
    assert_eq!((status(&other), retry_after(&other)), (429, Some(1)));
}
