//! Authentication: who is calling, from `Authorization: ApiKey | Basic |
//! Bearer` or the `apikey` query parameter, and the password, token and API
//! key machinery behind it.
//!
//! The access rules: an API key sees summaries of its account's published
//! experiments and records events; account credentials (Basic, Bearer) do
//! everything on their own account; another account's experiment looks
//! exactly like a missing one.
//!
//! Every password check (Basic, `POST /v2/user/login`, the dashboard's
//! sign-in) is [`Checker::password`]: bounded and rate-limited by
//! [`throttle::Guard`], hashed under [`Passwords`]' fixed number of permits.
//! Login tokens are stored as their SHA-256 only ([`secret::token_hash`]),
//! each of one [`TokenKind`]: an API token is never a dashboard session, nor
//! the other way round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_core::account::normalize_email;
use myna_core::{Access, Code, Experiment, Problem};
use poem::Request;
use poem::http::header;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::storage::{Storage, Token, TokenKind};

pub mod secret;
pub mod throttle;

pub use secret::token_hash;
use throttle::{ClientKey, Guard};

/// A login token lives this long after its last use, in milliseconds (1 hour).
pub const TOKEN_TTL_MS: i64 = 3_600_000;
/// A token's expiry is pushed back in the database at most this often.
const TOKEN_EXTEND_EVERY_MS: i64 = 60_000;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Account credentials (Basic or Bearer): everything on its own account.
    Owner {
        /// The account.
        account: Uuid,
    },
    /// An API key: summaries of its account's published experiments, recording.
    Key {
        /// The key's account.
        account: Uuid,
        /// The key.
        key: Uuid,
    },
}

impl Caller {
    /// The caller's account.
    pub fn account(self) -> Uuid {
        match self {
            Caller::Owner { account } | Caller::Key { account, .. } => account,
        }
    }

    /// What the caller may see of an experiment.
    pub fn access(self) -> Access {
        match self {
            Caller::Owner { .. } => Access::Complete,
            Caller::Key { .. } => Access::Summary,
        }
    }

    /// Whether the caller may see `experiment` at all (else it is a 404).
    pub fn sees(self, experiment: &Experiment) -> bool {
        experiment.account_id == self.account() && self.access().may_see(experiment.visibility)
    }

    /// The account, if the caller has account credentials; an API key gets 403.
    pub fn owner(self) -> Result<Uuid, Problem> {
        match self {
            Caller::Owner { account } => Ok(account),
            Caller::Key { .. } => Err(Problem::new(
                Code::Authorization,
                "An API key may only read published experiments and record events; this needs user credentials.",
            )),
        }
    }
}

/// Credentials as presented, before checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None at all.
    Missing,
    /// `ApiKey <uuid>` or `?apikey=<uuid>`.
    ApiKey(Uuid),
    /// `Basic base64(email:password)`.
    Basic {
        /// The email (normalized).
        email: String,
        /// The password.
        password: String,
    },
    /// `Bearer <token>`.
    Bearer(Uuid),
    /// Something unreadable (unknown scheme, bad base64, not a uuid).
    Malformed,
}

/// The credentials of a request: the `Authorization` header, else the
/// `apikey` parameter (`apikey` is `None` where the parameter is not accepted).
pub fn credentials(request: &Request, apikey: Option<&str>) -> Credentials {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return match apikey {
            Some(key) => {
                Uuid::parse_str(key.trim()).map_or(Credentials::Malformed, Credentials::ApiKey)
            }
            None => Credentials::Missing,
        };
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "apikey" => Uuid::parse_str(rest).map_or(Credentials::Malformed, Credentials::ApiKey),
        "bearer" => Uuid::parse_str(rest).map_or(Credentials::Malformed, Credentials::Bearer),
        "basic" => STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                let (email, password) = text.split_once(':')?;
                // No stored email holds one (and PostgreSQL takes no NUL).
                if email.chars().any(char::is_control) {
                    return None;
                }
                Some(Credentials::Basic {
                    email: normalize_email(email),
                    password: password.to_owned(),
                })
            })
            .unwrap_or(Credentials::Malformed),
        _ => Credentials::Malformed,
    }
}

/// The problem for absent credentials.
pub fn missing() -> Problem {
    Problem::new(
        Code::Authentication,
        "You must provide credentials: an API key, or user credentials (Basic or Bearer).",
    )
}

/// The problem for wrong, unknown, expired or unreadable credentials.
pub fn invalid() -> Problem {
    Problem::new(Code::Authentication, "These credentials are not valid.")
}

/// Password checks waiting for a hashing permit, at most; beyond, a check
/// is refused at once with 503 (retry in a second).
const MAX_WAITING: usize = 256;

/// The hashing permits shared by every clone of a [`Passwords`].
#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    size: usize,
    waiting: AtomicUsize,
    verified: AtomicU64,
}

/// Password hashing: argon2id, salted, slow on purpose, and memory-hard
/// (19 MiB a hash by default): hashes and verifications run at most
/// [`Passwords::permits`] at a time (the number of CPUs, at least 2), so
/// the memory they take is bounded whatever arrives.
#[derive(Debug, Clone)]
pub struct Passwords {
    params: Params,
    /// A hash checked when the email is unknown, so both take the same time.
    dummy: String,
    gate: Arc<Gate>,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords::with_params(Params::default())
    }
}

/// The problem when too many password checks are waiting already.
fn busy() -> Problem {
    Problem::new(
        Code::Unavailable,
        "The server is busy checking passwords; retry in a moment.",
    )
}

impl Passwords {
    /// Hashing with argon2's recommended cost (the default).
    pub fn new() -> Passwords {
        Passwords::default()
    }

    /// Hashing at the lowest cost: for tests only, where hundreds of logins
    /// must not take minutes.
    pub fn fast_for_tests() -> Passwords {
        let params = Params::new(Params::MIN_M_COST.max(64), 1, 1, None).unwrap_or_default();
        Passwords::with_params(params)
    }

    fn with_params(params: Params) -> Passwords {
        let size = std::thread::available_parallelism()
            .map_or(2, std::num::NonZero::get)
            .max(2);
        let mut passwords = Passwords {
            params,
            dummy: String::new(),
            gate: Arc::new(Gate {
                permits: Arc::new(Semaphore::new(size)),
                size,
                waiting: AtomicUsize::new(0),
                verified: AtomicU64::new(0),
            }),
        };
        passwords.dummy = passwords
            .hash_now(&Uuid::new_v4().to_string())
            .unwrap_or_default();
        passwords
    }

    /// How many hashes or verifications may run at once.
    pub fn permits(&self) -> usize {
        self.gate.size
    }

    /// How many password verifications ran so far (each an argon2 hash):
    /// what the verified cache and the limits save shows here.
    pub fn verifications(&self) -> u64 {
        self.gate.verified.load(Ordering::Relaxed)
    }

    fn hash_now(&self, password: &str) -> Result<String, Problem> {
        Argon2::from(self.params.clone())
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| {
                tracing::error!(%error, "password hashing failed");
                Problem::internal()
            })
    }

    /// Runs `work` on the blocking threads under a permit, which it keeps
    /// until done even if the caller goes away (so at most
    /// [`Passwords::permits`] ever run); 503 when too many already wait.
    async fn gated<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.gate.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.gate.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy());
        }
        let waiting = Waiting(&self.gate.waiting);
        let permit = self
            .gate
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Problem::internal())?;
        drop(waiting);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "password hashing task failed");
            Problem::internal()
        })
    }

    /// The PHC string of `password` with a fresh random salt (under a permit).
    pub async fn hash(&self, password: &str) -> Result<String, Problem> {
        let this = self.clone();
        let password = password.to_owned();
        self.gated(move || this.hash_now(&password)).await?
    }

    /// Whether `password` matches `hash` (the cost is read from the hash).
    pub fn verify(hash: &str, password: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    }

    /// Checks an email and password against storage under a permit: the
    /// account if they match, `None` if not (an unknown email costs the
    /// same hash, so timing does not tell which emails exist).
    async fn verify_account(
        &self,
        storage: &dyn Storage,
        email: &str,
        password: &str,
    ) -> Result<Option<Uuid>, Problem> {
        // No account has a control character in its email (and PostgreSQL
        // takes no NUL in text): such an email is unknown, unread.
        let account = if email.chars().any(char::is_control) {
            None
        } else {
            storage.account_by_email(email).await?
        };
        let (hash, id) = match &account {
            Some(account) => (account.password_hash.clone(), Some(account.id)),
            None => (self.dummy.clone(), None),
        };
        let password = password.to_owned();
        let gate = self.gate.clone();
        let matches = self
            .gated(move || {
                gate.verified.fetch_add(1, Ordering::Relaxed);
                Passwords::verify(&hash, &password)
            })
            .await?;
        Ok(id.filter(|_| matches))
    }
}

/// API keys seen so far (key → account): a page load with an API key costs
/// no database read. Deleting a key through the API evicts it.
#[derive(Debug, Default)]
pub struct Keys {
    known: RwLock<HashMap<Uuid, Uuid>>,
}

impl Keys {
    /// The account of an API key, asking storage on a miss.
    pub async fn account(&self, storage: &dyn Storage, key: Uuid) -> Result<Option<Uuid>, Problem> {
        let cached = {
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            known.get(&key).copied()
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let found = storage.api_key(key).await?.map(|k| k.account_id);
        if let Some(account) = found {
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            known.insert(key, account);
        }
        Ok(found)
    }

    /// Forgets a deleted key.
    pub fn forget(&self, key: Uuid) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.remove(&key);
    }

    /// Forgets every key (another instance may have deleted some): each is
    /// read from storage again at its next use.
    pub fn clear(&self) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.clear();
    }
}

/// Everything a credential check needs: the server's parts, who asks, and
/// when (`AppState::checker` makes one per request).
#[derive(Debug, Clone, Copy)]
pub struct Checker<'a> {
    /// Accounts, tokens and keys.
    pub storage: &'a dyn Storage,
    /// Hashing.
    pub passwords: &'a Passwords,
    /// API keys seen so far.
    pub keys: &'a Keys,
    /// Limits and the verified cache.
    pub guard: &'a Guard,
    /// The client address the limits count against.
    pub client: ClientKey,
    /// Now, epoch milliseconds.
    pub now_ms: i64,
}

impl Checker<'_> {
    /// Checks credentials; the caller, or a 401 problem (429 when password
    /// checks are limited, 503 when the database or the hashing is busy).
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller, Problem> {
        match credentials {
            Credentials::Missing => Err(missing()),
            Credentials::Malformed => Err(invalid()),
            Credentials::ApiKey(key) => match self.keys.account(self.storage, key).await? {
                Some(account) => Ok(Caller::Key { account, key }),
                None => Err(invalid()),
            },
            Credentials::Basic { email, password } => {
                let account = self.password(&email, &password).await?;
                Ok(Caller::Owner { account })
            }
            Credentials::Bearer(token) => {
                let token = token.to_string();
                let account = use_token(self.storage, TokenKind::Api, &token, self.now_ms).await?;
                Ok(Caller::Owner { account })
            }
        }
    }

    /// Checks an email (normalized) and password through the guard: the
    /// account, or 401, 429 (limited, with `retryAfter`), 503.
    pub async fn password(&self, email: &str, password: &str) -> Result<Uuid, Problem> {
        let (storage, passwords) = (self.storage, self.passwords);
        self.guard
            .check(self.client, email, password, self.now_ms, || {
                passwords.verify_account(storage, email, password)
            })
            .await
    }
}

/// Checks a login token of `kind` as its holder presents it and slides its
/// expiry; the account. A token of the other kind is refused like an
/// unknown one.
pub async fn use_token(
    storage: &dyn Storage,
    kind: TokenKind,
    token: &str,
    now_ms: i64,
) -> Result<Uuid, Problem> {
    let hash = token_hash(token);
    let Some(found) = storage.token(hash).await? else {
        return Err(invalid());
    };
    if found.kind != kind || found.expires_ms <= now_ms {
        return Err(invalid());
    }
    let expires_ms = now_ms + TOKEN_TTL_MS;
    if expires_ms - found.expires_ms >= TOKEN_EXTEND_EVERY_MS {
        storage.extend_token(hash, expires_ms).await?;
    }
    Ok(found.account_id)
}

/// A login token just issued: the token itself (only ever in the client's
/// hands; storage keeps its hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token, for `Authorization: Bearer`.
    pub token: Uuid,
    /// Whose it is.
    pub account_id: Uuid,
    /// When it stops working unless used, epoch milliseconds.
    pub expires_ms: i64,
}

async fn store_token(
    storage: &dyn Storage,
    kind: TokenKind,
    token: &str,
    account_id: Uuid,
    expires_ms: i64,
) -> Result<(), Problem> {
    let stored = Token {
        hash: token_hash(token),
        kind,
        account_id,
        expires_ms,
    };
    storage.create_token(stored).await?;
    Ok(())
}

/// Issues a new API token (`Authorization: Bearer`) for an account.
pub async fn issue_token(
    storage: &dyn Storage,
    account_id: Uuid,
    now_ms: i64,
) -> Result<IssuedToken, Problem> {
    let issued = IssuedToken {
        token: Uuid::new_v4(),
        account_id,
        expires_ms: now_ms + TOKEN_TTL_MS,
    };
    let text = issued.token.to_string();
    store_token(
        storage,
        TokenKind::Api,
        &text,
        account_id,
        issued.expires_ms,
    )
    .await?;
    Ok(issued)
}

/// Issues a new dashboard session token (256 random bits, hex) for an
/// account: the same sliding hour as API tokens, never accepted as one.
pub async fn issue_session(
    storage: &dyn Storage,
    account_id: Uuid,
    now_ms: i64,
) -> Result<String, Problem> {
    let token = secret::random_token();
    store_token(
        storage,
        TokenKind::Dashboard,
        &token,
        account_id,
        now_ms + TOKEN_TTL_MS,
    )
    .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header(header::AUTHORIZATION, value)
            .finish()
    }

    #[test]
    fn reads_every_scheme() {
        let key = Uuid::from_u128(5);
        assert_eq!(
            credentials(&with_header(&format!("ApiKey {key}")), None),
            Credentials::ApiKey(key)
        );
        assert_eq!(
            credentials(&with_header(&format!("bearer {key}")), None),
            Credentials::Bearer(key)
        );
        let basic = STANDARD.encode("Me@Example.com:pa:ss");
        assert_eq!(
            credentials(&with_header(&format!("Basic {basic}")), None),
            Credentials::Basic {
                email: "me@example.com".into(),
                password: "pa:ss".into()
            }
        );
        let bare = Request::builder().finish();
        assert_eq!(credentials(&bare, None), Credentials::Missing);
        assert_eq!(
            credentials(&bare, Some(&key.to_string())),
            Credentials::ApiKey(key)
        );
        let nul = STANDARD.encode("me\0@example.com:pw");
        for bad in [
            "Digest x",
            "Basic !!!",
            "ApiKey nope",
            "Bearer",
            "",
            &format!("Basic {nul}"),
        ] {
            assert_eq!(
                credentials(&with_header(bad), None),
                Credentials::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_verify_only_their_own_hash() {
        let passwords = Passwords::fast_for_tests();
        let hash = passwords.hash_now("correct horse").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(Passwords::verify(&hash, "correct horse"));
        assert!(!Passwords::verify(&hash, "correct horse "));
        assert!(!Passwords::verify("garbage", "x"));
    }

    #[test]
    fn api_keys_are_refused_owner_actions() {
        let key = Caller::Key {
            account: Uuid::from_u128(1),
            key: Uuid::from_u128(2),
        };
        assert_eq!(key.owner().err().map(|p| p.status), Some(403));
        assert_eq!(key.access(), Access::Summary);
    }
}
