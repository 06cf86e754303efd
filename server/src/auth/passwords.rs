//! Password hashing: argon2id under a fixed number of permits, on threads
//! of its own started with it, so the memory and threads hashing takes are
//! bounded whatever arrives, and a check never needs a new thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use myna_core::{Code, Problem};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use crate::storage::Storage;

/// Password checks waiting for a hashing permit, at most; beyond, a check
/// is refused at once with 503 (retry in a second).
const MAX_WAITING: usize = 256;

/// One password check for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The hashing permits and threads shared by every clone of a [`Passwords`].
#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    size: usize,
    /// The threads' queue; they end when the last clone drops it.
    jobs: mpsc::Sender<Job>,
    /// Why some of the threads asked for did not start, if any did not.
    not_started: Option<String>,
    waiting: AtomicUsize,
    verified: AtomicU64,
}

/// Starts up to `size` hashing threads on one queue: how many started, and
/// the error of the first that could not.
fn start_threads(size: usize) -> (mpsc::Sender<Job>, usize, Option<std::io::Error>) {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let mut started = 0;
    for n in 0..size {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("myna-passwords-{n}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                loop {
                    let job = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(job) = job else { return };
                    // A panicking check answers 500 (its reply dropped);
                    // the thread lives on for the next.
                    if catch_unwind(AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a password check panicked");
                    }
                }
            });
        match spawned {
            Ok(_) => started += 1,
            Err(error) => return (sender, started, Some(error)),
        }
    }
    (sender, started, None)
}

/// Password hashing: argon2id, salted, slow on purpose, and memory-hard
/// (19 MiB a hash by default): hashes and verifications run at most
/// [`Passwords::permits`] at a time (the number of CPUs, at least 2), on
/// as many threads started with it (a check never starts a thread, so a
/// limit on threads reached later costs no sign-in), so the memory they
/// take is bounded whatever arrives.
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
        let wanted = std::thread::available_parallelism()
            .map_or(2, std::num::NonZero::get)
            .max(2);
        let (jobs, started, error) = start_threads(wanted);
        let not_started = error.map(|error| {
            format!(
                "{} of the {wanted} password hashing threads did not start: {error} \
                 (a limit on processes or threads, such as ulimit -u?)",
                wanted - started
            )
        });
        // With no thread at all, checks wait for none: each answers 500.
        let size = started.max(1);
        let mut passwords = Passwords {
            params,
            dummy: String::new(),
            gate: Arc::new(Gate {
                permits: Arc::new(Semaphore::new(size)),
                size,
                jobs,
                not_started,
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

    /// Whether every hashing thread started: the error saying how many
    /// did not (the server then refuses to start).
    pub fn started(&self) -> Result<(), String> {
        self.gate.not_started.clone().map_or(Ok(()), Err)
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

    /// Runs `work` on the hashing threads under a permit, which it keeps
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
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let _ = reply.send(work());
        });
        if self.gate.jobs.send(job).is_err() {
            tracing::error!("no password hashing thread is running");
            return Err(Problem::internal());
        }
        answer.await.map_err(|_| {
            tracing::error!("a password check ended without an answer");
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

    #[tokio::test]
    async fn checks_run_on_the_threads_started_with_it_and_survive_a_panic() {
        let passwords = Passwords::fast_for_tests();
        assert_eq!(passwords.started(), Ok(()));
        let names = passwords
            .gated(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert!(
            matches!(&names, Ok(Some(name)) if name.starts_with("myna-passwords-")),
            "{names:?}"
        );
        // A check that panics answers 500 and gives its permit back; every
        // thread still takes the next checks.
        for _ in 0..passwords.permits() {
            let failed: Result<(), Problem> = passwords.gated(|| panic!("boom")).await;
            assert_eq!(failed.map_err(|p| p.status), Err(500));
        }
        let checks: Vec<_> = (0..8)
            .map(|n| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash(&format!("pw{n}")).await })
            })
            .collect();
        for (n, check) in checks.into_iter().enumerate() {
            let hash = check.await.ok().and_then(Result::ok).unwrap_or_default();
            assert!(Passwords::verify(&hash, &format!("pw{n}")), "{n}: {hash}");
        }
    }
}
