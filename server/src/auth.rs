//! Authentication: who is calling, from `Authorization: ApiKey | Basic |
//! Bearer` or the `apikey` query parameter, and the password, token and API
//! key machinery behind it.
//!
//! The access rules: an API key sees summaries of its account's published
//! experiments and records events; account credentials (Basic, Bearer) do
//! everything on their own account; another account's experiment looks
//! exactly like a missing one.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_core::account::normalize_email;
use myna_core::{Access, Code, Experiment, Problem};
use poem::Request;
use poem::http::header;
use uuid::Uuid;

use crate::storage::{Storage, Token};

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

/// Password hashing: argon2id, salted, slow on purpose.
#[derive(Debug, Clone)]
pub struct Passwords {
    params: Params,
    /// A hash checked when the email is unknown, so both take the same time.
    dummy: String,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords::with_params(Params::default())
    }
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
        let mut passwords = Passwords {
            params,
            dummy: String::new(),
        };
        passwords.dummy = passwords
            .hash(&Uuid::new_v4().to_string())
            .unwrap_or_default();
        passwords
    }

    /// The PHC string of `password` with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, Problem> {
        Argon2::from(self.params.clone())
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| {
                tracing::error!(%error, "password hashing failed");
                Problem::internal()
            })
    }

    /// Whether `password` matches `hash` (the cost is read from the hash).
    pub fn verify(hash: &str, password: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    }

    /// Checks an email and password, off the async threads; the account id.
    pub async fn check(
        &self,
        storage: &dyn Storage,
        email: &str,
        password: &str,
    ) -> Result<Uuid, Problem> {
        let account = storage.account_by_email(email).await?;
        let (hash, id) = match &account {
            Some(account) => (account.password_hash.clone(), Some(account.id)),
            None => (self.dummy.clone(), None),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || Passwords::verify(&hash, &password))
            .await
            .unwrap_or(false);
        match id {
            Some(id) if matches => Ok(id),
            _ => Err(invalid()),
        }
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

/// Checks credentials; the caller, or a 401 problem.
pub async fn authenticate(
    storage: &dyn Storage,
    passwords: &Passwords,
    keys: &Keys,
    credentials: Credentials,
    now_ms: i64,
) -> Result<Caller, Problem> {
    match credentials {
        Credentials::Missing => Err(missing()),
        Credentials::Malformed => Err(invalid()),
        Credentials::ApiKey(key) => match keys.account(storage, key).await? {
            Some(account) => Ok(Caller::Key { account, key }),
            None => Err(invalid()),
        },
        Credentials::Basic { email, password } => {
            let account = passwords.check(storage, &email, &password).await?;
            Ok(Caller::Owner { account })
        }
        Credentials::Bearer(token) => {
            let account = use_token(storage, token, now_ms).await?;
            Ok(Caller::Owner { account })
        }
    }
}

/// Checks a token and slides its expiry; the account.
async fn use_token(storage: &dyn Storage, token: Uuid, now_ms: i64) -> Result<Uuid, Problem> {
    let Some(found) = storage.token(token).await? else {
        return Err(invalid());
    };
    if found.expires_ms <= now_ms {
        return Err(invalid());
    }
    let expires_ms = now_ms + TOKEN_TTL_MS;
    if expires_ms - found.expires_ms >= TOKEN_EXTEND_EVERY_MS {
        storage.extend_token(token, expires_ms).await?;
    }
    Ok(found.account_id)
}

/// Issues a new token for an account.
pub async fn issue_token(
    storage: &dyn Storage,
    account_id: Uuid,
    now_ms: i64,
) -> Result<Token, Problem> {
    let token = Token {
        token: Uuid::new_v4(),
        account_id,
        expires_ms: now_ms + TOKEN_TTL_MS,
    };
    storage.create_token(token).await?;
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
        for bad in ["Digest x", "Basic !!!", "ApiKey nope", "Bearer", ""] {
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
        let hash = passwords.hash("correct horse").unwrap_or_default();
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
