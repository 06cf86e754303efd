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
            Err(error) if error.is_connect() => Err("could not connect".into()),
            Err(error) if error.is_builder() => Err("the URL cannot be requested".into()),
            Err(_) => Err("the request failed".into()),
        }
    }
}
