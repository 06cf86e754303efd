//! The HTTP client of webhook deliveries: one `POST` of a signed JSON body,
//! bounded in time, redirects not followed (a receiver that moved is a
//! failed attempt the dashboard shows, never a request to a place the owner
//! did not register). Only the status of the answer is read.

use std::time::Duration;

use myna_core::webhook::SIGNATURE_HEADER;

/// How long one delivery attempt may take, all told, by default.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take, within the attempt's time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends deliveries. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
}

impl Outbound {
    /// A client whose attempts end within `timeout`.
    pub fn new(timeout: Duration) -> Outbound {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("myna-server/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a TLS backend that cannot start fails here: without it no
            // delivery could go anywhere, and the builder is fixed.
            .unwrap_or_else(|error| {
                tracing::error!(%error, "the webhook HTTP client cannot be built");
                reqwest::Client::new()
            });
        Outbound { client }
    }

    /// Posts `body` to `url` with `Content-Type: application/json` and the
    /// signature header `sha256=<signature_hex>`: the answer's status, or
    /// why there was none (a short sentence for the dashboard).
    pub async fn post(&self, url: &str, body: String, signature_hex: &str) -> Result<u16, String> {
        let answer = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, format!("sha256={signature_hex}"))
            .body(body)
            .send()
            .await;
        match answer {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) if error.is_timeout() => Err("no answer in time".into()),
            Err(error) if error.is_connect() => {
                Err(format!("could not connect: {}", cause(&error)))
            }
            Err(error) if error.is_builder() => Err("the URL cannot be requested".into()),
            Err(error) => Err(format!("the request failed: {}", cause(&error))),
        }
    }
}

/// Why a request failed, in a few words an owner can act on: refused, reset,
/// a name that does not resolve, a TLS certificate refused or a handshake
/// that failed, else the innermost error's own words (at most 160 bytes).
fn cause(error: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = error;
    while let Some(next) = root.source() {
        root = next;
    }
    // An I/O error may hold another, and that one rustls's own.
    let mut tls = false;
    while let Some(io) = root.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind;
        match io.kind() {
            ErrorKind::ConnectionRefused => return "connection refused".into(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                return "the connection was reset".into();
            }
            _ => {}
        }
        let Some(inner) = io.get_ref() else {
            break;
        };
        tls |= inner.is::<tokio_rustls::rustls::Error>();
        root = inner;
    }
    let text = root.to_string();
    let lower = text.to_ascii_lowercase();
    let said = if lower.contains("certificate") {
        format!("the receiver's TLS certificate was refused ({text})")
    } else if tls || lower.contains("tls") || lower.contains("handshake") {
        format!("the TLS handshake failed, is it an HTTPS server? ({text})")
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        format!("the host name did not resolve ({text})")
    } else {
        text
    };
    let mut end = said.len().min(160);
    while !said.is_char_boundary(end) {
        end -= 1;
    }
    said[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each failure says what failed: a refused connection, an HTTPS URL
    /// of a server that is none.
    #[tokio::test]
    async fn failures_say_what_failed() {
        let outbound = Outbound::new(Duration::from_secs(5));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = closed.local_addr().expect("its address").port();
        drop(closed);
        let refused = outbound
            .post(&format!("http://127.0.0.1:{port}/h"), "{}".into(), "00")
            .await;
        assert_eq!(refused, Err("could not connect: connection refused".into()));

        let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = plain.local_addr().expect("its address");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut stream, _)) = plain.accept().await {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let not_tls = outbound
            .post(&format!("https://{addr}/h"), "{}".into(), "00")
            .await
            .expect_err("no TLS there");
        assert!(not_tls.contains("TLS handshake failed"), "{not_tls}");
    }
}
