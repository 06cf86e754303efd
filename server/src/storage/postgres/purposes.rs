//! What each PostgreSQL call is for ([`Purpose`]), and each purpose's pool:
//! its size, deadlines and the session settings every connection sets
//! first (timeouts, keepalives), sent once connected, as a pooler allows.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

/// How long a call waits for a connection of its pool (or for PostgreSQL to
/// accept a new one) before failing as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server-side `statement_timeout` of the interactive purposes.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(4);
/// The server-side `lock_timeout` of the interactive purposes: a statement
/// waiting this long for a lock gives up (a table locked by hand, a stuck
/// transaction), answering an error on a connection that stays usable.
const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// The deadline of an interactive call, its connection included: past it
/// the call answers `Unavailable` whatever PostgreSQL does.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// `statement_timeout` and `lock_timeout` of upkeep (folding counts,
/// pruning and purging batch ids in slices, migrations).
const UPKEEP_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The deadline of an upkeep call.
const UPKEEP_DEADLINE: Duration = Duration::from_secs(65);
/// What a call is for. Each purpose has its own pool of connections, so a
/// slow or blocked kind of query never starves the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The commit writer: group commits, definition changes, refreshes.
    Commits,
    /// API key lookups (on the record path of every page).
    Keys,
    /// Accounts and tokens: logins, Basic and Bearer credentials, sessions.
    Logins,
    /// The dashboard's reads and API key management.
    Pages,
    /// The health check's write.
    Health,
    /// Background upkeep: folding counts, pruning, purging, migrations.
    Upkeep,
}

impl Purpose {
    /// Every purpose, in the order of [`Purpose::index`].
    pub const ALL: [Purpose; 6] = [
        Purpose::Commits,
        Purpose::Keys,
        Purpose::Logins,
        Purpose::Pages,
        Purpose::Health,
        Purpose::Upkeep,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// Most connections its pool opens. Together: [`MAX_CONNECTIONS`].
    pub(super) const fn connections(self) -> u32 {
        match self {
            // One writer, one call at a time; spares replace abandoned ones.
            Purpose::Commits => 3,
            Purpose::Keys => 3,
            Purpose::Logins => 4,
            Purpose::Pages => 3,
            Purpose::Health => 1,
            Purpose::Upkeep => 2,
        }
    }

    fn statement_timeout(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_STATEMENT_TIMEOUT,
            _ => STATEMENT_TIMEOUT,
        }
    }

    fn lock_timeout(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_STATEMENT_TIMEOUT,
            _ => LOCK_TIMEOUT,
        }
    }

    /// How long one call of this purpose may take, all told.
    pub fn deadline(self) -> Duration {
        match self {
            Purpose::Upkeep => UPKEEP_DEADLINE,
            _ => CALL_DEADLINE,
        }
    }

    /// Its name in the log.
    pub(super) fn name(self) -> &'static str {
        match self {
            Purpose::Commits => "commit",
            Purpose::Keys => "API key",
            Purpose::Logins => "login and token",
            Purpose::Pages => "dashboard",
            Purpose::Health => "health check",
            Purpose::Upkeep => "upkeep",
        }
    }
}

/// Most connections one instance opens, all pools together (N instances
/// open at most N times this, plus a probe each during an outage: keep it
/// below the server's `max_connections`).
pub const MAX_CONNECTIONS: u32 = {
    let mut total = 0;
    let mut i = 0;
    while i < Purpose::ALL.len() {
        total += Purpose::ALL[i].connections();
        i += 1;
    }
    total
};

/// The connect options of every connection (its name in
/// `pg_stat_activity`). Its settings are set once connected
/// ([`session_settings`]), not sent as startup options, which PgBouncer
/// refuses (`unsupported startup parameter: options`) unless told to drop
/// them, and then nothing would say that the timeouts were gone.
///
/// TLS as libpq reads the URL `url` where the driver differs:
/// `sslmode=require` with a root certificate named (`sslrootcert`, or
/// `PGSSLROOTCERT`) checks the server's certificate against it, as
/// `verify-ca` does (a provider's "require, with this CA bundle" would
/// otherwise check nothing).
pub fn base_options(options: PgConnectOptions, url: &str) -> PgConnectOptions {
    let options = options.application_name("myna-server");
    if matches!(options.get_ssl_mode(), PgSslMode::Require) && root_cert_named(url) {
        options.ssl_mode(PgSslMode::VerifyCa)
    } else {
        options
    }
}

/// Whether `url`'s query, or `PGSSLROOTCERT`, names a root certificate.
fn root_cert_named(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let in_url = query.split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| k == "sslrootcert" && !v.is_empty())
    });
    in_url || std::env::var_os("PGSSLROOTCERT").is_some_and(|v| !v.is_empty())
}

/// What to fix, for a failure to connect whose words (the driver's) are
/// `message`, with the URL `url`: a certificate authority not named, an
/// X.509 v1 certificate, a file the URL names missing, a password not
/// percent-encoded. Empty when none applies.
pub fn connect_hint(message: &str, url: &str) -> &'static str {
    let names_file = ["sslrootcert=", "sslcert=", "sslkey="]
        .iter()
        .any(|p| url.contains(p));
    if message.contains("UnknownIssuer") {
        " (the server's certificate is signed by a certificate authority this binary does \
         not know: name it in the URL, sslrootcert=/path/ca.pem; README, Scaling out, TLS)"
    } else if message.contains("UnsupportedCertVersion") {
        " (an X.509 v1 certificate, the server's or the client's: only v3 certificates \
         are taken; reissue it with a subjectAltName)"
    } else if message.contains("os error 2") && names_file {
        " (a file the URL names is missing: check its sslrootcert, sslcert and sslkey)"
    } else if message.contains("invalid port number") && url.contains('@') {
        " (characters such as @ : / ? # % in a user name or password are written \
         percent-encoded in the URL: %40 %3A %2F %3F %23 %25)"
    } else {
        ""
    }
}

/// What every connection of a purpose sets first: the server ends what a
/// lost or hung client leaves behind (an open transaction, a dead socket),
/// and cancels a statement or a wait for a lock a little before the call's
/// own deadline ([`Purpose::statement_timeout`], [`Purpose::lock_timeout`]).
/// Through a pooler in session mode these hold for the client's session.
fn session_settings(purpose: Purpose) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = '10s'; \
         SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
         SET tcp_keepalives_count = 3; \
         SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'",
        purpose.statement_timeout().as_millis(),
        purpose.lock_timeout().as_millis()
    )
}

/// The pool settings of one purpose.
pub(super) fn pool_options(purpose: Purpose) -> PgPoolOptions {
    let settings = session_settings(purpose);
    PgPoolOptions::new()
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(settings)).execute(conn).await?;
                Ok(())
            })
        })
        .max_connections(purpose.connections())
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(60))
        // An idle connection is checked before use, so connections left
        // over from before a database restart are replaced, not failed on.
        .test_before_acquire(true)
}

/// Opens the commit writer's pool, connecting once (so a bad URL, host,
/// database or login fails here).
pub async fn first_pool(base: &PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    pool_options(Purpose::Commits)
        .connect_with(base.clone())
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use super::*;

    fn mode(url: &str) -> String {
        let options = PgConnectOptions::from_str(url).unwrap();
        format!("{:?}", base_options(options, url).get_ssl_mode())
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_server_against_it_as_libpq_does() {
        let db = "postgres://u@db.example.com:5432/myna";
        assert_eq!(mode(&format!("{db}?sslmode=require")), "Require");
        assert_eq!(
            mode(&format!("{db}?sslmode=require&sslrootcert=ca.pem")),
            "VerifyCa"
        );
        assert_eq!(
            mode(&format!("{db}?sslrootcert=ca.pem&sslmode=verify-full")),
            "VerifyFull"
        );
        assert_eq!(mode(&format!("{db}?sslrootcert=ca.pem")), "Prefer");
    }

    #[test]
    fn a_failure_to_connect_says_what_to_fix() {
        let url = "postgres://u@h/db?sslmode=verify-full&sslrootcert=/missing.pem";
        let io = "error communicating with database: No such file or directory (os error 2)";
        assert!(connect_hint(io, url).contains("sslrootcert, sslcert and sslkey"));
        assert_eq!(connect_hint(io, "postgres://u@h/db"), "");
        let issuer = "error communicating with database: invalid peer certificate: UnknownIssuer";
        assert!(connect_hint(issuer, url).contains("sslrootcert=/path/ca.pem"));
        let v1 = "invalid peer certificate: Other(OtherError(UnsupportedCertVersion))";
        assert!(connect_hint(v1, url).contains("v3"));
        let port = "invalid port number";
        assert!(connect_hint(port, "postgres://u:p@ss@h/db").contains("%40"));
        assert_eq!(connect_hint("password authentication failed", url), "");
    }
}
