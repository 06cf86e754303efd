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
//! The events an API key's callers record are limited per client address
//! by [`record_limit::RecordLimit`] (`--record-limit`, off by default).
//! Login tokens are stored as their SHA-256 only ([`secret::token_hash`]),
//! each of one [`TokenKind`]: an API token is never a dashboard session, nor
//! the other way round.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_core::account::normalize_email;
use myna_core::{Access, Code, Experiment, Problem};
use poem::Request;
use poem::http::header;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::storage::{Storage, TokenKind};

mod keys;
mod passwords;
pub mod record_limit;
pub mod secret;
pub mod throttle;
mod tokens;

pub use keys::Keys;
pub use passwords::Passwords;
pub use secret::token_hash;
use throttle::{ClientKey, Guard};
pub use tokens::{IssuedToken, TOKEN_TTL_MS, issue_session, issue_token, use_token};

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
/// `apikey` parameter (`apikey` is `None` where the parameter is not
/// accepted). Two `Authorization` headers, or an API key in the header and
/// another in the parameter, are malformed: which one a proxy in front
/// took would be a guess.
pub fn credentials(request: &Request, apikey: Option<&str>) -> Credentials {
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return apikey_parameter(apikey);
    };
    if values.next().is_some() {
        return Credentials::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        // The same key in the `apikey` parameter too is fine; another is not.
        "apikey" => match Uuid::parse_str(rest) {
            Ok(key) if apikey.is_none_or(|p| Uuid::parse_str(p.trim()) == Ok(key)) => {
                Credentials::ApiKey(key)
            }
            _ => Credentials::Malformed,
        },
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

/// The credentials of an `apikey` parameter (`None`: none given).
pub fn apikey_parameter(apikey: Option<&str>) -> Credentials {
    match apikey {
        Some(key) => {
            Uuid::parse_str(key.trim()).map_or(Credentials::Malformed, Credentials::ApiKey)
        }
        None => Credentials::Missing,
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
    /// Counts the refused checks.
    pub metrics: &'a Metrics,
}

impl Checker<'_> {
    /// Checks credentials; the caller, or a 401 problem (429 when password
    /// checks are limited, 503 when the database or the hashing is busy).
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller, Problem> {
        let missing = matches!(credentials, Credentials::Missing);
        let checked = self.check(credentials).await;
        self.metrics.checked(&checked, missing);
        checked
    }

    async fn check(&self, credentials: Credentials) -> Result<Caller, Problem> {
        match credentials {
            Credentials::Missing => Err(missing()),
            Credentials::Malformed => Err(invalid()),
            Credentials::ApiKey(key) => match self.keys.account(self.storage, key).await? {
                Some(account) => Ok(Caller::Key { account, key }),
                None => Err(invalid()),
            },
            Credentials::Basic { email, password } => {
                let account = self.check_password(&email, &password).await?;
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
        let checked = self.check_password(email, password).await;
        self.metrics.checked(&checked, false);
        checked
    }

    async fn check_password(&self, email: &str, password: &str) -> Result<Uuid, Problem> {
        let (storage, passwords) = (self.storage, self.passwords);
        self.guard
            .check(self.client, email, password, self.now_ms, || {
                passwords.verify_account(storage, email, password)
            })
            .await
    }
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
    fn api_keys_are_refused_owner_actions() {
        let key = Caller::Key {
            account: Uuid::from_u128(1),
            key: Uuid::from_u128(2),
        };
        assert_eq!(key.owner().err().map(|p| p.status), Some(403));
        assert_eq!(key.access(), Access::Summary);
    }
}
