//! What stands between a password guess and argon2: every password check
//! (API Basic, `POST /v2/user/login`, the dashboard's sign-in) goes through
//! [`Guard::check`], which
//!
//! 1. answers at once, without hashing, for an email and password that
//!    succeeded less than [`VERIFIED_TTL_MS`] ago (a client sending Basic
//!    on every call pays argon2 once a minute; kept under a keyed hash,
//!    never the password);
//! 2. refuses, before any database read or hashing, a client address or an
//!    account that failed too often lately: 429 `too-many-attempts` with
//!    `Retry-After` (the waits double, capped; see [`Record`]);
//! 3. lets identical checks running at the same moment share one hash;
//! 4. refuses at once a client address that already has
//!    [`Guard::per_client`] checks in flight (so one client cannot hold
//!    every hashing permit; the permits themselves are `Passwords`').
//!
//! Per-account limits and lock-outs. Limiting per address alone lets an
//! attacker with many addresses guess one account's password at full speed;
//! limiting per account lets anyone slow down that account's owner. So an
//! account's own limit does NOT apply to an address the account signed in
//! from successfully (in the last [`TRUST_MS`], since this process
//! started): the owner at a usual address is never locked out by guesses
//! from elsewhere, while guesses from new addresses are held to at most one
//! per [`MAX_ACCOUNT_WAIT_MS`] once the free failures are spent. Existing
//! sessions and tokens are never affected. Unknown emails are limited
//! exactly like known ones, so the limits do not tell which exist.
//!
//! A success resets the account's record (only someone who knows the
//! password can do that) but not the address's: an attacker signing into
//! their own account between guesses at others gains nothing. Every map is
//! bounded ([`MAX_TRACKED`], [`MAX_VERIFIED`]), the least recently touched
//! entry evicted first, so a flood of addresses cannot grow memory. The
//! limits are per process: N instances on one database allow N times the
//! rate.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use myna_core::{Code, Message, Problem};
use poem::Request;
use poem::http::HeaderName;
use serde_json::json;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::secret::Secret;

/// Failed checks from one client address before it has to wait.
pub const ADDRESS_FREE_FAILURES: u32 = 10;
/// Failed checks for one account (known or not) before it has to wait.
pub const ACCOUNT_FREE_FAILURES: u32 = 10;
/// The first wait once the free failures are spent; it doubles with each
/// further failure.
pub const FIRST_WAIT_MS: i64 = 1_000;
/// The longest wait of a client address.
pub const MAX_ADDRESS_WAIT_MS: i64 = 15 * 60_000;
/// The longest wait of an account (shorter: its owner may be the one
/// waiting, from an address not yet trusted).
pub const MAX_ACCOUNT_WAIT_MS: i64 = 5 * 60_000;
/// Failures are forgotten this long after the last one.
pub const FORGET_AFTER_MS: i64 = 3_600_000;
/// How long an address an account signed in from is exempt from that
/// account's own limit.
pub const TRUST_MS: i64 = 30 * 24 * 3_600_000;
/// Entries each tracking map holds at most (addresses, accounts, trusted
/// pairs); the least recently touched goes first.
pub const MAX_TRACKED: usize = 20_000;
/// How long a successful check of an email and password is remembered.
pub const VERIFIED_TTL_MS: i64 = 60_000;
/// Remembered successful checks, at most.
pub const MAX_VERIFIED: usize = 4_096;

/// Where a request comes from, as far as limits go: an IPv4 address, or an
/// IPv6 /64 (one subscriber's network: its addresses are free to pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
    /// No IP address (a test client, a Unix socket): one shared bucket.
    Unknown,
}

impl ClientKey {
    /// The key of an IP address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
        }
    }

    /// The client of `request`: the TCP peer's address, or, behind a
    /// reverse proxy (`header`, e.g. `X-Forwarded-For`), the right-most
    /// address of that header's last line: the one the proxy appended
    /// (what the client itself sent stands to its left and is not
    /// believed). A missing or unreadable header falls back to the peer.
    pub fn of_request(request: &Request, header: Option<&HeaderName>) -> ClientKey {
        let forwarded = header
            .and_then(|name| request.headers().get_all(name).iter().next_back())
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| parse_ip(last.trim()));
        if let Some(ip) = forwarded {
            return ClientKey::of(ip);
        }
        request
            .remote_addr()
            .as_socket_addr()
            .map_or(ClientKey::Unknown, |addr| ClientKey::of(addr.ip()))
    }
}

/// An address as proxies write it: `ip`, `ip:port` or `[ipv6]:port`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// A map of at most `capacity` entries that evicts the least recently
/// inserted or touched one.
#[derive(Debug)]
pub struct Bounded<K, V> {
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
    next: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Bounded {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, if held (not counted as a touch).
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Stores `value` under `key` as the most recent entry, evicting the
    /// oldest when full.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some((_, seq)) = self.entries.remove(&key) {
            self.order.remove(&seq);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.entries.remove(&oldest);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(key, (value, seq));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) {
        if let Some((_, seq)) = self.entries.remove(key) {
            self.order.remove(&seq);
        }
    }
}

/// The failures of one address or one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// Failures since the record was last forgotten.
    pub failures: u32,
    /// When the last one happened, epoch milliseconds.
    pub last_ms: i64,
    /// Attempts are refused until then, epoch milliseconds.
    pub blocked_until_ms: i64,
}

impl Record {
    /// How long attempts must still wait at `now_ms`, if they must.
    pub fn wait_ms(&self, now_ms: i64) -> Option<i64> {
        (self.blocked_until_ms > now_ms).then(|| self.blocked_until_ms - now_ms)
    }

    /// This record after one more failure at `now_ms`: once `free`
    /// failures are spent, each one blocks for [`FIRST_WAIT_MS`], doubled
    /// for each failure beyond the first, at most `max_wait_ms`. A record
    /// whose last failure is [`FORGET_AFTER_MS`] old starts over.
    pub fn failed(self, now_ms: i64, free: u32, max_wait_ms: i64) -> Record {
        let failures = if now_ms - self.last_ms > FORGET_AFTER_MS {
            1
        } else {
            self.failures.saturating_add(1)
        };
        let blocked_until_ms = match failures.checked_sub(free + 1) {
            Some(beyond) => now_ms + (FIRST_WAIT_MS << beyond.min(30)).min(max_wait_ms),
            None => self.blocked_until_ms,
        };
        Record {
            failures,
            last_ms: now_ms,
            blocked_until_ms,
        }
    }
}

/// The 429 problem: `retryAfter` (seconds, also the `Retry-After` header)
/// in its data.
fn refused(message: String, wait_ms: i64) -> Problem {
    let seconds = (wait_ms.max(1) + 999) / 1000;
    Problem::one(
        Message::new(Code::TooManyAttempts, message).with_data(json!({ "retryAfter": seconds })),
    )
}

/// The failure records and trusted addresses.
#[derive(Debug)]
struct Limits {
    addresses: Bounded<ClientKey, Record>,
    accounts: Bounded<u64, Record>,
    trusted: Bounded<(u64, ClientKey), i64>,
}

impl Limits {
    fn new(capacity: usize) -> Limits {
        Limits {
            addresses: Bounded::new(capacity),
            accounts: Bounded::new(capacity),
            trusted: Bounded::new(capacity),
        }
    }

    fn admit(&self, client: ClientKey, account: u64, now_ms: i64) -> Result<(), Problem> {
        let address_wait = self.addresses.get(&client).and_then(|r| r.wait_ms(now_ms));
        let trusted = self
            .trusted
            .get(&(account, client))
            .is_some_and(|since| now_ms - since < TRUST_MS);
        let account_wait = if trusted {
            None
        } else {
            self.accounts.get(&account).and_then(|r| r.wait_ms(now_ms))
        };
        match (address_wait, account_wait) {
            (Some(wait), _) => Err(refused(
                format!(
                    "Too many failed sign-in attempts from your address; try again in {} s.",
                    (wait + 999) / 1000
                ),
                wait,
            )),
            (None, Some(wait)) => Err(refused(
                format!(
                    "Too many failed sign-in attempts for this account; try again in {} s.",
                    (wait + 999) / 1000
                ),
                wait,
            )),
            (None, None) => Ok(()),
        }
    }

    fn failed(&mut self, client: ClientKey, account: u64, now_ms: i64) {
        let address = self.addresses.get(&client).copied().unwrap_or_default();
        let address = address.failed(now_ms, ADDRESS_FREE_FAILURES, MAX_ADDRESS_WAIT_MS);
        self.addresses.insert(client, address);
        let record = self.accounts.get(&account).copied().unwrap_or_default();
        let record = record.failed(now_ms, ACCOUNT_FREE_FAILURES, MAX_ACCOUNT_WAIT_MS);
        self.accounts.insert(account, record);
    }

    fn succeeded(&mut self, client: ClientKey, account: u64, now_ms: i64) {
        self.accounts.remove(&account);
        self.trusted.insert((account, client), now_ms);
    }
}

/// What one password check came to, shared by identical checks in flight.
type Outcome = Result<Uuid, Problem>;

/// The password-check guard of a server (see the module's documentation).
#[derive(Debug)]
pub struct Guard {
    /// Keys the verified cache and the account records (process-local).
    key: Secret,
    /// The reverse proxy's client address header, if any.
    header: Option<HeaderName>,
    per_client: usize,
    limits: Mutex<Limits>,
    in_flight: Mutex<HashMap<ClientKey, usize>>,
    verified: Mutex<Bounded<[u8; 32], (Uuid, i64)>>,
    flights: Mutex<HashMap<[u8; 32], Arc<OnceCell<Outcome>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Guard {
    /// A guard allowing `per_client` checks in flight per client address,
    /// reading client addresses from `header` when set (behind a proxy).
    pub fn new(header: Option<HeaderName>, per_client: usize) -> Guard {
        Guard::with_capacity(header, per_client, MAX_TRACKED)
    }

    /// [`Guard::new`] with tracking maps of `capacity` entries.
    pub fn with_capacity(header: Option<HeaderName>, per_client: usize, capacity: usize) -> Guard {
        Guard {
            key: Secret::random(),
            header,
            per_client: per_client.max(1),
            limits: Mutex::new(Limits::new(capacity)),
            in_flight: Mutex::default(),
            verified: Mutex::new(Bounded::new(MAX_VERIFIED)),
            flights: Mutex::default(),
        }
    }

    /// How many checks one client address may have in flight.
    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// The client of a request (see [`ClientKey::of_request`]).
    pub fn client(&self, request: &Request) -> ClientKey {
        ClientKey::of_request(request, self.header.as_ref())
    }

    /// How many client addresses have failure records (for tests: bounded).
    pub fn tracked_addresses(&self) -> usize {
        lock(&self.limits).addresses.len()
    }

    /// Checks `email` (normalized) and `password` for `client` at `now_ms`:
    /// the account, else 401 (from `verify`: `Ok(None)` is a wrong
    /// password or unknown email), 429 when limited, or `verify`'s own
    /// problem (database unavailable, server busy). `verify` runs only
    /// when nothing above answers first.
    pub async fn check<F, V>(
        &self,
        client: ClientKey,
        email: &str,
        password: &str,
        now_ms: i64,
        verify: F,
    ) -> Outcome
    where
        F: FnOnce() -> V,
        V: Future<Output = Result<Option<Uuid>, Problem>>,
    {
        let credential = self
            .key
            .sign("verified", &[email.as_bytes(), password.as_bytes()]);
        if let Some(account) = self.verified(&credential, now_ms) {
            return Ok(account);
        }
        let account_key = self.key.key64("account", &[email.as_bytes()]);
        lock(&self.limits).admit(client, account_key, now_ms)?;
        let flight = Flight::join(&self.flights, credential);
        flight
            .cell
            .get_or_init(|| async {
                let _slot = self.enter(client)?;
                match verify().await? {
                    Some(account) => {
                        lock(&self.limits).succeeded(client, account_key, now_ms);
                        lock(&self.verified).insert(credential, (account, now_ms));
                        Ok(account)
                    }
                    None => {
                        lock(&self.limits).failed(client, account_key, now_ms);
                        Err(super::invalid())
                    }
                }
            })
            .await
            .clone()
    }

    fn verified(&self, credential: &[u8; 32], now_ms: i64) -> Option<Uuid> {
        let verified = lock(&self.verified);
        let &(account, at) = verified.get(credential)?;
        (now_ms - at < VERIFIED_TTL_MS && now_ms >= at).then_some(account)
    }

    /// A place among `client`'s checks in flight, or 429 when it has them all.
    fn enter(&self, client: ClientKey) -> Result<Slot<'_>, Problem> {
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(client).or_insert(0);
        if *count >= self.per_client {
            return Err(refused(
                "Another sign-in from your address is being checked; try again in a second.".into(),
                1_000,
            ));
        }
        *count += 1;
        Ok(Slot {
            in_flight: &self.in_flight,
            client,
        })
    }
}

/// One of a client's checks in flight; leaving frees its place.
struct Slot<'a> {
    in_flight: &'a Mutex<HashMap<ClientKey, usize>>,
    client: ClientKey,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(self.in_flight);
        if let Some(count) = in_flight.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.client);
            }
        }
    }
}

/// A caller's share in the check of one email and password: the first
/// runs it, the others wait for its outcome. The entry leaves the map once
/// the outcome is known or its last caller gave up, so the map holds only
/// checks in flight.
struct Flight<'a> {
    flights: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<Outcome>>>>,
    key: [u8; 32],
    cell: Arc<OnceCell<Outcome>>,
}

impl<'a> Flight<'a> {
    fn join(flights: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<Outcome>>>>, key: [u8; 32]) -> Self {
        let cell = lock(flights).entry(key).or_default().clone();
        Flight { flights, key, cell }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        let ours = flights
            .get(&self.key)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell));
        // The map's reference and ours: nobody else waits on it.
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
            flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
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
        let v6 =
            |text: &str| ClientKey::of(text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
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
}
