//! The `myna-server` binary: parses the command line, sets up logging, runs.

use std::io::IsTerminal;

use clap::Parser;
use myna_server::config::{AccountCommand, ApikeyCommand, Cli, Command, LogArgs, LogFormat};
use myna_server::{commands, serve};
use tracing_subscriber::EnvFilter;

/// Recording allocates many small strings per event (JSON parsing); mimalloc
/// does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the exit waits for work still running on the runtime's blocking
/// threads (a database call the shutdown gave up on): never the exit's hold.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("myna-server: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    myna_server::log_queue::flush_before_exit();
    code
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    let log = match &cli.command {
        None => cli.serve.log.clone(),
        Some(Command::Serve(args)) => args.log.clone(),
        Some(_) => LogArgs::default(),
    };
    init_logging(&log);
    // A server's failure is logged (in its log format, for its collector);
    // a command's is printed for the person who typed it. Never both.
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    let result = match cli.command {
        None => serve::serve(cli.serve).await,
        Some(Command::Serve(args)) => serve::serve(*args).await,
        Some(Command::Account(AccountCommand::Create(a))) => {
            commands::account_create(&a.database.database, &a.email, a.password).await
        }
        Some(Command::Account(AccountCommand::Password(a))) => {
            commands::account_password(&a.database.database, &a.email, a.password).await
        }
        Some(Command::Account(AccountCommand::List { database })) => {
            commands::account_list(&database.database).await
        }
        Some(Command::Account(AccountCommand::Delete {
            email,
            yes,
            database,
        })) => commands::account_delete(&database.database, &email, yes).await,
        Some(Command::Apikey(ApikeyCommand::Create {
            email,
            name,
            database,
        })) => commands::apikey_create(&database.database, &email, name).await,
        Some(Command::Apikey(ApikeyCommand::List { email, database })) => {
            commands::apikey_list(&database.database, &email).await
        }
        Some(Command::Backup { file, database }) => {
            commands::backup(&database.database, &file).await
        }
        Some(Command::Copy { to, database }) => commands::copy(&database.database, &to).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            if serving {
                tracing::error!("{message}");
            } else {
                eprintln!("myna-server: {message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, through a queue of its own (`log_queue`: a
/// reader that stops reading costs lines, never the server): `RUST_LOG`'s
/// filter, else `info`, as text or JSON. The access lines are on with
/// `--access-log` and off without, whatever `RUST_LOG` says, unless it
/// names their target (`access=…`). A line that cannot be written (a full
/// disk, a closed pipe) is lost, never the server: the subscriber's own
/// report of it would write to standard error again, and `eprintln!`
/// panics when that fails.
fn init_logging(log: &LogArgs) {
    // poem's own "listening" and "server started" lines would repeat ours;
    // PostgreSQL's notices (every instance after the first: the migrations
    // table "already exists, skipping") are no news.
    let default = "info,poem::server=warn,sqlx::postgres::notice=warn";
    let from_env = std::env::var("RUST_LOG").ok();
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    if !from_env
        .as_deref()
        .is_some_and(myna_server::access::names_target)
    {
        let access = if log.access_log {
            "access=info"
        } else {
            "access=off"
        };
        if let Ok(directive) = access.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(myna_server::log_queue::install());
    match log.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
