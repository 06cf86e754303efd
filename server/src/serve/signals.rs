//! The signals a running server answers: SIGHUP reloads the TLS
//! certificate (read first by [`tls`]), SIGTERM or SIGINT stops it
//! gracefully ([`shutdown_signal`]; a second one exits at once).

use super::Failure;
use crate::config::TlsArgs;
use crate::listen::tls::Tls;

/// The certificate and key, when `--tls-cert` and `--tls-key` are given;
/// a clear error when only one is, or a file cannot be used.
pub(super) fn tls(args: &TlsArgs) -> Result<Option<Tls>, Failure> {
    match (&args.tls_cert, &args.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Tls::load(cert, key).map(Some),
        (Some(_), None) => {
            Err("--tls-cert needs --tls-key (MYNA_TLS_KEY): give both or neither".to_owned())
        }
        (None, Some(_)) => {
            Err("--tls-key needs --tls-cert (MYNA_TLS_CERT): give both or neither".to_owned())
        }
    }
}

/// On each SIGHUP, reads the certificate and key again: new handshakes use
/// them, open connections keep theirs; a failure is logged and the old
/// certificate stays. Without TLS there is nothing to reload, and a SIGHUP
/// (a `systemctl reload`, a renewal hook) is logged, never fatal. The
/// handler is installed before this returns.
pub(super) fn reload_on_hangup(tls: Option<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP: the certificate will not reload");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(tls) = &tls else {
                    tracing::info!("SIGHUP: not serving TLS, nothing to reload");
                    continue;
                };
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        file = %tls.cert_file().display(),
                        "SIGHUP: reloaded the TLS certificate"
                    ),
                    Err(error) => {
                        tracing::error!("SIGHUP: {error}; still serving the previous certificate")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed when
/// this is called, not when it is first awaited: `serve` calls it before it
/// says it listens, so a supervisor's SIGTERM right after that line is a
/// clean stop too, never the default action's kill. A second signal while
/// stopping exits at once (Ctrl-C twice): what was acknowledged is already
/// durable, as after `kill -9`; requests in flight get no answer.
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|error| tracing::warn!(%error, "cannot watch {name}"))
                .ok()
        };
        [
            watch(SignalKind::terminate(), "SIGTERM"),
            watch(SignalKind::interrupt(), "SIGINT"),
        ]
    };
    async move {
        #[cfg(unix)]
        {
            let [mut terminate, mut interrupt] = signals;
            next_signal(&mut terminate, &mut interrupt).await;
            tokio::spawn(async move {
                next_signal(&mut terminate, &mut interrupt).await;
                tracing::warn!("a second signal: exiting now, requests in flight unanswered");
                crate::log_queue::flush_before_exit();
                std::process::exit(130);
            });
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: finishing in-flight requests and commits");
    }
}

/// The next SIGTERM or SIGINT (of those watched).
#[cfg(unix)]
async fn next_signal(
    terminate: &mut Option<tokio::signal::unix::Signal>,
    interrupt: &mut Option<tokio::signal::unix::Signal>,
) {
    tokio::select! {
        _ = received(terminate) => {}
        _ = received(interrupt) => {}
    }
}

/// The next delivery of `signal`; never, when it is not watched.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
