//! Configuration: the command line (`myna-server [serve] --listen --database
//! --allow-origin --tls-cert --tls-key --max-connections --log-format
//! --access-log --public-url`, account, API
//! key and backup subcommands) and
//! the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use poem::http::HeaderName;

/// The Myna server: a self-hosted bandit A/B-testing service.
#[derive(Debug, Parser)]
#[command(name = "myna-server", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(Box<ServeArgs>),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Copy the SQLite database into a new file, consistently, while a
    /// server runs on it (PostgreSQL: use pg_dump). The database must
    /// exist: a missing file path is refused, not created.
    Backup {
        /// The new file: a plain path (a `sqlite:` prefix is part of the
        /// name), which must not exist.
        file: PathBuf,
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Copy every row of the SQLite database into a new, empty PostgreSQL
    /// database, to move to several servers: accounts and passwords,
    /// sessions, API keys, experiments with their counts and history, the
    /// batch ids that keep retries from counting twice, webhooks. All or
    /// nothing; refused while a server runs on the file; stop it first.
    Copy {
        /// The PostgreSQL database to copy into (`postgres://…`), empty:
        /// created with createdb, no server started on it yet.
        #[arg(long)]
        to: String,
        /// The SQLite database to copy.
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the database is (every subcommand takes it).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: an SQLite file path or `sqlite:` URL (created if
    /// missing by `serve` and `account create`; `apikey` and `backup`
    /// refuse a missing path); a `postgres://` URL selects PostgreSQL.
    #[arg(long, env = "MYNA_DATABASE", default_value = "myna.db")]
    pub database: String,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "MYNA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Origins browsers may call from: a comma list of `scheme://host[:port]`, or `*` for any.
    #[arg(
        long = "allow-origin",
        env = "MYNA_ALLOW_ORIGINS",
        default_value = "*",
        value_parser = allow_origins
    )]
    pub allow_origins: String,
    /// The first account's email, used only on an empty database.
    #[arg(long, env = "MYNA_ADMIN_EMAIL", hide = true)]
    pub admin_email: Option<String>,
    /// The first account's password, used only on an empty database.
    #[arg(long, env = "MYNA_ADMIN_PASSWORD", hide = true, hide_env_values = true)]
    pub admin_password: Option<String>,
    /// At start, how long to wait for a PostgreSQL that does not accept
    /// connections yet (default: until it does, logging every few seconds;
    /// at least one whole 2 s attempt). A bad URL, unknown host or
    /// database, or refused login fail at once.
    #[arg(long, env = "MYNA_DATABASE_WAIT", value_name = "SECONDS")]
    pub database_wait: Option<u64>,
    /// Behind a reverse proxy: the header it puts the client's address in
    /// (e.g. `X-Forwarded-For`; the right-most address, the one the proxy
    /// appended, is taken). Default: the TCP peer's address. Failed
    /// credential checks are limited per client address.
    #[arg(long, env = "MYNA_CLIENT_IP_HEADER", value_name = "HEADER", value_parser = header_name)]
    pub client_ip_header: Option<HeaderName>,
    /// Events one client address may record with API keys a minute (at
    /// least 20, the SDK's default batch size): a burst of as many, then
    /// that rate; past it a 429 `rate-limited` with `Retry-After` (the SDK
    /// waits and sends them then). Off by default. Behind a reverse proxy
    /// set `--client-ip-header` too, or every visitor shares the proxy's
    /// address.
    #[arg(
        long,
        env = "MYNA_RECORD_LIMIT",
        value_name = "EVENTS",
        value_parser = clap::value_parser!(u32)
            .range(i64::from(crate::auth::record_limit::MIN_PER_MINUTE)..)
    )]
    pub record_limit: Option<u32>,
    /// The server's public root URL as pages reach it (e.g.
    /// `https://ab.example.com`, or with a path behind a proxy): the
    /// `apiRoot` of deployments and of the dashboard's snippets. An absolute
    /// `http`/`https` URL without query or fragment; a trailing `/` is
    /// dropped. Default: the scheme and host of each request (`https` when
    /// serving TLS, or as a proxy's `X-Forwarded-Proto`/`-Host` say).
    #[arg(long, env = "MYNA_PUBLIC_URL", value_name = "URL", value_parser = public_url)]
    pub public_url: Option<String>,
    /// Serve Prometheus metrics at `GET /metrics` on this address (e.g.
    /// `127.0.0.1:9090`; port 0 picks a free port), apart from the API's
    /// port. Off by default.
    #[arg(long, env = "MYNA_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// HTTPS: the certificate and key.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Connections: their cap and timeouts.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// HTTPS: serve with this certificate and key (both or neither). SIGHUP
/// reads them again.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate
    /// first, then any intermediates), e.g. certbot's `fullchain.pem`; needs
    /// `--tls-key`. SIGHUP reloads it.
    #[arg(long, env = "MYNA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), e.g.
    /// certbot's `privkey.pem`; needs `--tls-cert`. SIGHUP reloads it.
    #[arg(long, env = "MYNA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// How the server logs (to standard error; `RUST_LOG` overrides the levels).
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// `text` for people, `json` (one object a line) for log shippers.
    #[arg(
        long = "log-format",
        env = "MYNA_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub format: LogFormat,
    /// One line per request: its id, method, route, status and duration.
    /// Takes no value; `MYNA_ACCESS_LOG` takes only `true` or `false`.
    #[arg(long = "access-log", env = "MYNA_ACCESS_LOG")]
    pub access_log: bool,
}

/// The log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Connections: their cap, and (hidden, for tests) the timeouts, whose
/// defaults are the constants of [`crate::listen`].
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// The most client connections open at once (default 4096; at most the
    /// open-file limit less 128, or less a quarter of it under 512; at least
    /// 1, so `0` gives 1); at the cap, a new client replaces the connection
    /// idle the longest, or gets a 503 if none is idle.
    #[arg(long, env = "MYNA_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request head, and a keep-alive
    /// connection may wait for its next request.
    #[arg(long, hide = true, value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// How long a client may take to send a request body.
    #[arg(long, hide = true, value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// MiB of request bodies held at once while they arrive, beyond each
    /// one's first 16 KiB (default 64, at least 1); a body with no room gets
    /// a 503.
    #[arg(long, env = "MYNA_MAX_BODY_MEMORY", value_name = "MIB")]
    pub max_body_memory: Option<usize>,
    /// MiB that answers larger than 256 KiB hold at once while they are
    /// written (default 256, at least 1; a larger answer is written alone);
    /// one client address holds at most a quarter beyond its first answer;
    /// with no room, connections whose clients stopped reading are closed,
    /// else the answer is a 503.
    #[arg(long, env = "MYNA_MAX_ANSWER_MEMORY", value_name = "MIB")]
    pub max_answer_memory: Option<usize>,
    /// How long writing an answer may make no progress.
    #[arg(long, hide = true, value_name = "MS")]
    pub write_timeout_ms: Option<u64>,
    /// How long writing an answer may make no progress before, at the
    /// connection cap, its connection may make room for a new client.
    #[arg(long, hide = true, value_name = "MS")]
    pub stall_grace_ms: Option<u64>,
}

/// A header name given on the command line.
fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.trim().as_bytes())
        .map_err(|_| format!("`{text}` is not an HTTP header name"))
}

/// An absolute `http` or `https` URL with a host, in printable ASCII, with
/// no user name, query or fragment: what `--public-url` and
/// `--allow-origin` take; `bad` words a refusal from its reason.
fn http_url(text: &str, bad: &dyn Fn(&str) -> String) -> Result<poem::http::Uri, String> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("it must be printable ASCII without spaces"));
    }
    if text.contains(['?', '#']) {
        return Err(bad("it may not have a query or fragment"));
    }
    let uri: poem::http::Uri = text.parse().map_err(|_| bad("it is malformed"))?;
    let scheme_ok = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !scheme_ok {
        return Err(bad("it must start with http:// or https://"));
    }
    match uri.authority() {
        Some(authority) if authority.as_str().contains('@') => {
            Err(bad("it may not hold a user name or password"))
        }
        Some(authority) if !authority.host().is_empty() => Ok(uri),
        _ => Err(bad("it must name a host")),
    }
}

/// A `--public-url` value: an [`http_url`], without its trailing `/`s.
pub fn public_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    http_url(text, &|why| format!("`{text}` is not a public URL: {why}"))?;
    Ok(text.trim_end_matches('/').to_owned())
}

/// An `--allow-origin` list: `*` alone, or origins, each written as
/// browsers write it in their `Origin` header (scheme and host in lower
/// case, no default port, no trailing `/`), so that the list matches what
/// they send. Anything else is refused: an origin that could never match
/// (no scheme, a path, a query, a port out of range) would refuse every
/// call from that site, and `null` (the origin of sandboxed frames and
/// `file:` pages, which any site can send), `*` within a list or an empty
/// list would allow more than written.
pub fn allow_origins(text: &str) -> Result<String, String> {
    let entries: Vec<&str> = text
        .split(',')
        .map(|e| e.trim().trim_end_matches('/'))
        .filter(|e| !e.is_empty())
        .collect();
    match entries.as_slice() {
        [] => {
            return Err(
                "no origin given: list the origins browsers may call from, or `*` for any".into(),
            );
        }
        ["*"] => return Ok("*".into()),
        _ if entries.contains(&"*") => {
            return Err("`*` allows every origin: give it alone, not within a list".into());
        }
        _ => {}
    }
    let mut list = Vec::new();
    for entry in entries {
        if entry == "null" {
            return Err("`null` is not an origin to allow: sandboxed frames and `file:` pages send it, whatever site they come from".into());
        }
        let bad = |why: &str| {
            format!("`{entry}` is not an origin (`https://example.com`, `http://host:8080`): {why}")
        };
        let uri = http_url(entry, &bad)?;
        if !uri.path().is_empty() && uri.path() != "/" {
            return Err(bad("an origin has no path"));
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        // The port as written (`+443` or `99999` would parse to another).
        let port = match authority.ends_with(']') {
            true => None,
            false => authority.rsplit_once(':').map(|(_, port)| port),
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("its port must be a number from 1 to 65535"))
            })
            .transpose()?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let origin = match port {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        };
        list.push(origin);
    }
    Ok(list.join(","))
}

/// `account` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its password when generated.
    Create(AccountArgs),
    /// Set an account's password (one lost, or the first start's printed
    /// one); prints it when generated. Signs the account out everywhere.
    /// The database must exist.
    Password(AccountArgs),
    /// List the accounts: email, when created, and how many experiments,
    /// API keys and webhooks each has. The database must exist.
    List {
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete an account with everything it holds: experiments with their
    /// counts and history, API keys, webhooks, sessions. Cannot be undone
    /// (take a backup first). On SQLite, stop the server first.
    Delete {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// Confirms the deletion (without it, nothing is deleted: the
        /// command says what would be).
        #[arg(long)]
        yes: bool,
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// What `account create` and `account password` take.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// The account's email (the login).
    #[arg(long)]
    pub email: String,
    /// Its password (default: generated and printed).
    #[arg(long, env = "MYNA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `apikey` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key for an account; prints it.
    Create {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List an account's API keys.
    List {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// The database.
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Which database a `--database` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    SqliteFile(PathBuf),
    /// An `sqlite:` URL.
    SqliteUrl(String),
    /// A `postgres://` URL.
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value.
    pub fn parse(text: &str) -> Database {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text.to_owned())
        } else if text.starts_with("sqlite:") {
            Database::SqliteUrl(text.to_owned())
        } else {
            Database::SqliteFile(PathBuf::from(text))
        }
    }

    /// The SQLite file it names (a path, or an `sqlite:` URL's file);
    /// `None` for PostgreSQL, or a URL that is not one (refused when opened).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self {
            Database::SqliteFile(path) => Some(path.clone()),
            Database::SqliteUrl(url) => {
                <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                    .ok()
                    .map(|options| options.get_filename().to_owned())
            }
            Database::Postgres(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_values() {
        assert_eq!(
            Database::parse("myna.db"),
            Database::SqliteFile("myna.db".into())
        );
        assert!(matches!(
            Database::parse("sqlite://x.db"),
            Database::SqliteUrl(_)
        ));
        assert!(matches!(
            Database::parse("postgres://u@h/db"),
            Database::Postgres(_)
        ));
    }

    #[test]
    fn the_client_ip_header_is_off_by_default_and_must_be_a_header_name() {
        let cli = Cli::try_parse_from(["myna-server"]).map(|c| c.serve.client_ip_header);
        assert!(matches!(cli, Ok(None)));
        let cli = Cli::try_parse_from(["myna-server", "--client-ip-header", "X-Forwarded-For"])
            .map(|c| c.serve.client_ip_header.map(|h| h.to_string()));
        assert_eq!(cli.ok().flatten().as_deref(), Some("x-forwarded-for"));
        assert!(
            Cli::try_parse_from(["myna-server", "--client-ip-header", "not a header"]).is_err()
        );
    }

    #[test]
    fn the_record_limit_is_off_by_default_and_holds_the_sdks_batches() {
        let limit = |args: &[&str]| {
            Cli::try_parse_from([&["myna-server"], args].concat()).map(|c| c.serve.record_limit)
        };
        assert!(matches!(limit(&[]), Ok(None)));
        assert!(matches!(limit(&["--record-limit", "600"]), Ok(Some(600))));
        assert!(matches!(limit(&["--record-limit", "20"]), Ok(Some(20))));
        assert!(
            limit(&["--record-limit", "19"]).is_err(),
            "the SDK's batches would not fit"
        );
        assert!(limit(&["--record-limit", "0"]).is_err());
        assert!(limit(&["--record-limit", "-5"]).is_err());
    }

    #[test]
    fn allowed_origins_are_written_as_browsers_send_them_or_refused() {
        assert_eq!(
            allow_origins("https://Good.com, HTTPS://good2.com:8443/, http://a.example:80, https://b.example:443, http://[::1]:3000").as_deref(),
            Ok("https://good.com,https://good2.com:8443,http://a.example,https://b.example,http://[::1]:3000")
        );
        assert_eq!(allow_origins("*").as_deref(), Ok("*"));
        assert_eq!(allow_origins(" * ").as_deref(), Ok("*"));
        for bad in [
            "",
            " , ",
            "null",
            "https://good.com,*",
            "https://good.com:99999",
            "https://good.com:65536",
            "https://good.com:+443",
            "https://good.com:0",
            "https://good.com:",
            "good.com",
            "https://good.com/app",
            "https://good.com?x",
            "ftp://good.com",
            "https://",
            "https://u@good.com",
        ] {
            assert!(allow_origins(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["myna-server", "--allow-origin", "good.com"]).is_err());
    }

    #[test]
    fn the_public_url_is_an_absolute_http_url() {
        assert_eq!(
            public_url("https://ab.example.com/").as_deref(),
            Ok("https://ab.example.com")
        );
        assert_eq!(
            public_url("http://10.0.0.5:8080/myna//").as_deref(),
            Ok("http://10.0.0.5:8080/myna")
        );
        for bad in [
            "ab.example.com",
            "/myna",
            "ftp://ab.example.com",
            "https://ab.example.com/?x=1",
            "https://ab.example.com/#top",
            "https://user:pw@ab.example.com",
            "https://ab example.com",
            "https://",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from(["myna-server", "--public-url", "https://x.example/"]);
        assert_eq!(
            cli.map(|c| c.serve.public_url).ok().flatten().as_deref(),
            Some("https://x.example")
        );
        assert!(Cli::try_parse_from(["myna-server", "--public-url", "x.example"]).is_err());
    }

    #[test]
    fn serve_is_the_default() {
        let cli = Cli::try_parse_from(["myna-server", "--listen", "127.0.0.1:0"]);
        let cli = cli.map_err(|e| e.to_string());
        assert_eq!(
            cli.as_ref()
                .map(|c| (c.command.is_none(), c.serve.listen.as_str())),
            Ok((true, "127.0.0.1:0"))
        );
        let cli = Cli::try_parse_from(["myna-server", "serve", "--database", "a.db"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Some(Command::Serve(args))) if args.database.database == "a.db"
        ));
    }

    #[test]
    fn connection_options() {
        let cli = Cli::try_parse_from([
            "myna-server",
            "--max-connections",
            "500",
            "--header-timeout-ms",
            "1500",
        ]);
        let connections = cli.map(|c| c.serve.connections).map_err(|e| e.to_string());
        assert_eq!(
            connections.as_ref().map(|c| (
                c.max_connections,
                c.header_timeout_ms,
                c.body_timeout_ms
            )),
            Ok((Some(500), Some(1500), None))
        );
    }
}
