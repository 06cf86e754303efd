//! The `myna-server` binary: parses the command line, sets up logging, runs.

use std::io::IsTerminal;

use clap::Parser;
use myna_server::config::{AccountCommand, ApikeyCommand, Cli, Command};
use myna_server::serve;
use tracing_subscriber::EnvFilter;

/// Recording allocates many small strings per event (JSON parsing); mimalloc
/// does that markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // poem's own "listening" and "server started" lines would repeat ours.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,poem::server=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve::serve(cli.serve).await,
        Some(Command::Serve(args)) => serve::serve(args).await,
        Some(Command::Account(AccountCommand::Create {
            email,
            password,
            database,
        })) => serve::account_create(&database.database, &email, password).await,
        Some(Command::Apikey(ApikeyCommand::Create {
            email,
            name,
            database,
        })) => serve::apikey_create(&database.database, &email, name).await,
        Some(Command::Apikey(ApikeyCommand::List { email, database })) => {
            serve::apikey_list(&database.database, &email).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("myna-server: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
