//! Running: read the TLS certificate if given, open the database, create the
//! first account if needed, listen (reloading the certificate on SIGHUP),
//! and on SIGTERM or SIGINT stop accepting, finish in-flight requests and
//! commits, and return: each wait bounded ([`finish`]), so a database that
//! does not answer never holds the exit. Also the account and API key
//! subcommands.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

mod signals;

use signals::{reload_on_hangup, shutdown_signal, tls};

use crate::auth::Passwords;
use crate::clock::Clock;
use crate::config::{ConnectionArgs, Database, ServeArgs};
use crate::cors::Origins;
use crate::listen::{self, Settings, files};
use crate::metrics::{Metrics, MetricsServer};
use crate::routes::app;
use crate::service::accounts::bootstrap;
use crate::service::webhooks;
use crate::state::{Abandoned, AppState, Options};
use crate::storage::Storage;
use crate::storage::postgres::PostgresStorage;
use crate::storage::sqlite::SqliteStorage;

/// A failure to start or run, with a message for the operator.
pub type Failure = String;

/// Opens the database a `--database` value names; fails at once if it
/// cannot.
pub async fn open(database: &str) -> Result<Arc<dyn Storage>, Failure> {
    open_waiting(database, Some(Duration::ZERO)).await
}

/// Opens the database a `--database` value names, waiting up to `patience`
/// (`None`: as long as it takes) for a PostgreSQL that does not accept
/// connections yet.
pub async fn open_waiting(
    database: &str,
    patience: Option<Duration>,
) -> Result<Arc<dyn Storage>, Failure> {
    let storage = match Database::parse(database) {
        Database::SqliteFile(path) => SqliteStorage::open(&path).await,
        Database::SqliteUrl(url) => SqliteStorage::open_url(&url).await,
        Database::Postgres(url) => {
            let storage = PostgresStorage::open_waiting(&url, patience)
                .await
                .map_err(|e| format!("cannot open the PostgreSQL database: {e}"))?;
            return Ok(Arc::new(storage));
        }
    };
    let storage = storage.map_err(|e| format!("cannot open the database {database}: {e}"))?;
    Ok(Arc::new(storage))
}

/// Prints the first account's generated password, its one showing. Standard
/// output closed, discarded or full: the password is lost, so the start
/// stops saying how to get in (`account password`).
fn print_first_password(email: &str, password: &str) -> Result<(), Failure> {
    let lost = |why: String| {
        format!(
            "created the first account ({email}) but its generated password is lost: {why}; \
             set one with: myna-server account password --email {email}"
        )
    };
    if stdout_discarded() {
        return Err(lost(
            "standard output is discarded (closed, or /dev/null)".to_owned(),
        ));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Created the first account. Log in with email {email} and password {password} \
         (shown only this once)."
    )
    .and_then(|()| out.flush())
    .map_err(|error| {
        lost(format!(
            "it could not be printed to standard output ({error})"
        ))
    })
}

/// Whether standard output goes nowhere: `/dev/null`, where the system
/// points a closed one (`>&-`) for this process. Linux tells through
/// `/proc`; elsewhere it is taken to be read.
pub(crate) fn stdout_discarded() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(out), Ok(null)) = (
            std::fs::metadata("/proc/self/fd/1"),
            std::fs::metadata("/dev/null"),
        ) else {
            return false;
        };
        out.dev() == null.dev() && out.ino() == null.ino()
    }
    #[cfg(not(unix))]
    false
}

/// Takes an SQLite database for this process alone: an exclusive lock
/// (`flock`) on the database file itself, so a second name for it (a
/// symbolic or hard link) is the same file, held as long as the returned
/// handle is (the process's life: the system drops it at exit, even on
/// `kill -9`; it is not SQLite's own lock, which it never touches). A second
/// server on the same file is refused: each would answer counts from its
/// own memory, never seeing the other's. PostgreSQL (shared by design)
/// takes none.
fn hold_sqlite(database: &str) -> Result<Option<std::fs::File>, Failure> {
    let lower = database.to_ascii_lowercase();
    if lower.contains(":memory:") || lower.contains("mode=memory") {
        return Err(format!(
            "{database} is an in-memory database: every event would be lost at exit; \
             give a file (or a postgres:// URL)"
        ));
    }
    let keywords = [
        "host=",
        "hostaddr=",
        "port=",
        "dbname=",
        "user=",
        "password=",
    ];
    if database
        .split_whitespace()
        .any(|word| keywords.iter().any(|k| word.starts_with(k)))
    {
        return Err(format!(
            "{database:?} looks like PostgreSQL's keyword/value form, which is not read here \
             (it would be taken as an SQLite file name): give a postgres:// URL, e.g. \
             postgres://user@host:5432/dbname"
        ));
    }
    let Some(path) = Database::parse(database).sqlite_file() else {
        return Ok(None);
    };
    // An empty file is a new database to SQLite: creating it here (private)
    // is what opening it would do.
    let existed = path.exists();
    let file = crate::storage::sqlite::open_private(&path).map_err(|e| {
        let why = match (e.kind(), existed) {
            (std::io::ErrorKind::PermissionDenied, false) => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(std::path::Path::new("."));
                format!(
                    "{e}: this user may not create files in its directory {}",
                    dir.display()
                )
            }
            (std::io::ErrorKind::PermissionDenied, true) => {
                format!("{e}: this user may not read and write it")
            }
            _ => e.to_string(),
        };
        format!("cannot open the database {}: {why}", path.display())
    })?;
    warn_if_readable_by_others(&file, &path);
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another myna-server is serving {} (or a copy or account delete runs on it): \
             stop it first, or give this one another --database (several servers on one \
             database need PostgreSQL)",
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Logs a warning when the database file (made by an earlier version, or
/// by hand) can be read by other users of the machine: it holds the
/// server secret and the credentials' hashes.
fn warn_if_readable_by_others(file: &std::fs::File, path: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(metadata) = file.metadata() {
        let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
        if mode & 0o077 != 0 {
            let path = path.display();
            tracing::warn!(
                "{path} can be read by users other than its owner (mode {mode:o}) and holds the server secret \
                 and password hashes: chmod 600 {path} {path}-wal {path}-shm"
            );
        }
    }
}

/// `myna-server serve`: runs until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), Failure> {
    // Watched from the first moment: a SIGTERM while starting (the port
    // already taking connections, the database opening) stops the server
    // as at any other time, not by the signal's default action.
    let mut signal = Box::pin(shutdown_signal());
    let tls = tls(&args.tls)?;
    // The ports first: one taken is found before the database is touched
    // (a first account created, its password printed, for a server that
    // then cannot start).
    let metrics_server = match &args.metrics_listen {
        Some(addr) => Some(
            MetricsServer::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.listen.as_str())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let _sole = hold_sqlite(&args.database.database)?;
    let patience = args.database_wait.map(Duration::from_secs);
    let storage = tokio::select! {
        storage = open_waiting(&args.database.database, patience) => storage?,
        // Stopped while waiting for the database: nothing was served.
        () = signal.as_mut() => return Ok(()),
    };
    let clock = Clock::system();
    let passwords = Passwords::new();
    passwords
        .started()
        .map_err(|error| format!("cannot start: {error}"))?;
    let first = bootstrap(
        storage.as_ref(),
        &passwords,
        args.admin_email.clone(),
        args.admin_password.clone(),
        clock.now_ms(),
    )
    .await
    .map_err(|p| format!("cannot create the first account: {p}"))?;
    if let Some(first) = first {
        match first.generated_password {
            Some(password) => print_first_password(&first.email, &password)?,
            None => tracing::info!(email = %first.email, "created the first account"),
        }
    }
    if let Some(url) = &args.public_url
        && url
            .splitn(4, '/')
            .nth(3)
            .is_some_and(|path| !path.is_empty())
    {
        tracing::warn!(
            "--public-url {url} has a path: pages are told to call the API under it, \
             but the dashboard's links and sign-in cookie start at the host's root; \
             open the dashboard where this server is at / (README)"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let options = Options {
        metrics: metrics.clone(),
        clock,
        passwords,
        origins: Origins::parse(&args.allow_origins),
        client_ip_header: args.client_ip_header.clone(),
        record_limit: args.record_limit,
        public_url: args.public_url.clone(),
        ..Options::default()
    };
    let (state, background) = AppState::start(storage.clone(), options)
        .await
        .map_err(|e| {
            format!("cannot start (loading the experiments, starting the commit writer): {e}")
        })?;
    let mut settings = settings(&args.connections, metrics.clone());
    settings.tls.clone_from(&tls);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        signal.await;
        let _ = stop.send(true);
    };
    reload_on_hangup(tls.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("myna-server listening on {scheme}://{addr}");
    if let Some(events) = args.record_limit {
        tracing::info!(
            "record limit: {events} events a minute per client address with API keys \
             (--record-limit)"
        );
    }
    let clock = state.clock.clone();
    // Logged after the main line (which names the API's address first).
    let metrics_task = metrics_server.map(|server| {
        tracing::info!("metrics listening on http://{}", server.addr);
        let mut stopping = stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::spawn(server.serve(metrics, clock.clone(), stopped))
    });
    // Webhooks: the watcher and the sender hold the state only during a
    // round, and stop before the commit writer is waited for.
    let watcher = tokio::spawn(webhooks::watch(state.downgrade()));
    let mut sender = tokio::spawn(webhooks::send(state.downgrade(), stopping.clone()));
    let served = listen::serve(listener, app(state), settings, clock, shutdown).await;
    watcher.abort();
    // Deliveries under way end (each within its timeout) and are stored,
    // rather than be sent again a minute after the restart.
    if tokio::time::timeout(SENDER_GRACE, &mut sender)
        .await
        .is_err()
    {
        sender.abort();
        let _ = sender.await;
    }
    let _ = watcher.await;
    if let Some(task) = metrics_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the metrics listener failed"),
            Err(error) => tracing::warn!(%error, "the metrics listener failed"),
        }
    }
    finish(background, storage.as_ref()).await;
    tracing::info!("myna-server stopped");
    served.map_err(|e| format!("the server failed: {e}"))
}

/// How long a graceful shutdown waits for webhook attempts under way to end
/// and be stored (an attempt's own timeout, and time to store it).
const SENDER_GRACE: Duration = Duration::from_secs(15);

/// How long a graceful shutdown waits for the database's connections to
/// close (after [`FINISH_GRACE`](crate::state::FINISH_GRACE)): a frozen PostgreSQL never acknowledges it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// After the last request: the commit writer's queue, the last flush of
/// the weights served (within [`FINISH_GRACE`](crate::state::FINISH_GRACE)) and closing the database
/// (within [`CLOSE_GRACE`]), each abandoned and logged when the database
/// does not answer in time, so a shutdown ends whatever it does. Nothing
/// acknowledged is at stake: a record is answered only once committed.
pub async fn finish(background: crate::state::Background, storage: &dyn Storage) -> Abandoned {
    finish_within(background, storage, crate::state::FINISH_GRACE, CLOSE_GRACE).await
}

/// [`finish`] with other bounds: `grace` for the commits and the weights
/// served, `close_grace` for closing the database.
pub async fn finish_within(
    background: crate::state::Background,
    storage: &dyn Storage,
    grace: Duration,
    close_grace: Duration,
) -> Abandoned {
    let mut abandoned = background.finish_within(grace).await;
    match tokio::time::timeout(close_grace, storage.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "closing the database failed"),
        Err(_) => {
            tracing::warn!(
                "closing the database's connections did not end within {} s (it does not \
                 answer); exiting without",
                close_grace.as_secs()
            );
            abandoned.close = true;
        }
    }
    abandoned
}

/// The serve loop's settings: the connection cap under the open-file limit
/// (raised to the hard limit first), and the timeouts.
fn settings(args: &ConnectionArgs, metrics: Arc<Metrics>) -> Settings {
    let file_limit = files::raise_open_file_limit();
    let max_connections =
        files::connection_cap(file_limit, args.max_connections, files::open_files());
    match file_limit {
        Some(limit) => {
            tracing::info!("open-file limit {limit}: at most {max_connections} client connections")
        }
        None => tracing::info!("at most {max_connections} client connections"),
    }
    if args
        .max_connections
        .is_some_and(|wanted| wanted > max_connections)
    {
        tracing::warn!(
            "--max-connections is over what the open-file limit allows; using {max_connections}"
        );
    }
    let millis = |ms: Option<u64>, default| ms.map_or(default, Duration::from_millis);
    Settings {
        max_connections,
        header_timeout: millis(args.header_timeout_ms, listen::HEADER_TIMEOUT),
        body_timeout: millis(args.body_timeout_ms, crate::request::BODY_TIMEOUT),
        body_budget: crate::request::BodyBudget::new(
            // At least 1 MiB: with none, every body over 16 KiB would be
            // refused for good (a 503 the SDK retries forever).
            args.max_body_memory
                .map_or(crate::request::BODY_MEMORY, |mib| {
                    mib.max(1).saturating_mul(1 << 20)
                }),
        ),
        answer_budget: listen::answers::AnswerBudget::new(
            args.max_answer_memory
                .map_or(listen::answers::ANSWER_MEMORY, |mib| {
                    mib.saturating_mul(1 << 20)
                }),
            // Closed to make room once stalled five stall graces in all.
            millis(args.stall_grace_ms, listen::STALL_GRACE) * 4,
        ),
        write_timeout: millis(args.write_timeout_ms, listen::WRITE_TIMEOUT),
        stall_grace: millis(args.stall_grace_ms, listen::STALL_GRACE),
        tls: None,
        metrics,
    }
}
