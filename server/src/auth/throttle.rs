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

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use myna_core::{Code, Message, Problem};
use poem::Request;
use poem::http::HeaderName;
use serde_json::json;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::secret::Secret;

mod bounded;
mod client;

pub use bounded::Bounded;
pub use client::ClientKey;

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
    /// How long attempts must still wait at `now_ms`, if they must: never
    /// longer than the wait set at the last failure (a clock stepped back
    /// would lengthen it past the cap).
    pub fn wait_ms(&self, now_ms: i64) -> Option<i64> {
        let left = (self.blocked_until_ms - now_ms).min(self.blocked_until_ms - self.last_ms);
        (left > 0).then_some(left)
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
    /// A request forwarded by a proxy was seen without `header` set (and
    /// the operator warned, once).
    proxy_warned: std::sync::atomic::AtomicBool,
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
            proxy_warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// How many checks one client address may have in flight.
    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// The client of a request (see [`ClientKey::of_request`]).
    /// Without a client address header, a request a proxy forwarded
    /// (`X-Forwarded-For`) has the proxy's address: the operator is warned,
    /// once, that every client behind it shares one set of limits.
    pub fn client(&self, request: &Request) -> ClientKey {
        if self.header.is_none()
            && request.headers().contains_key("x-forwarded-for")
            && !self
                .proxy_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "a request came through a proxy (X-Forwarded-For) but --client-ip-header \
                 is not set: every client behind that proxy counts as one address in the \
                 sign-in limits (and --record-limit), so one client's failed sign-ins (or \
                 events) hold back the others; set \
                 --client-ip-header to the header the proxy appends the client's address \
                 to (README, Credentials and rate limits)"
            );
        }
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

    /// Forgets the passwords checked for these accounts (deleted by
    /// another process: the next check reads the database).
    pub fn forget_accounts(&self, accounts: &[Uuid]) {
        if !accounts.is_empty() {
            lock(&self.verified).retain(|(account, _)| !accounts.contains(account));
        }
    }

    /// Forgets every password checked.
    pub fn forget_every_account(&self) {
        lock(&self.verified).retain(|_| false);
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
mod tests;
