//! Password hashing: argon2id under a fixed number of permits, so the
//! memory hashing takes is bounded whatever arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use myna_core::{Code, Problem};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::storage::Storage;

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
    pub(super) async fn verify_account(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_their_own_hash() {
        let passwords = Passwords::fast_for_tests();
        let hash = passwords.hash_now("correct horse").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(Passwords::verify(&hash, "correct horse"));
        assert!(!Passwords::verify(&hash, "correct horse "));
        assert!(!Passwords::verify("garbage", "x"));
    }
}
