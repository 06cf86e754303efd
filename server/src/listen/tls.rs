//! HTTPS: the certificate and key (PEM files) the server presents, served
//! with rustls (the `ring` provider; TLS 1.2 and 1.3, ALPN `http/1.1`).
//! [`Tls::reload`] reads the files again (on SIGHUP): handshakes from then on
//! use the new certificate, connections already open keep their session, and
//! a reload that fails keeps the old certificate. (A client that resumes a
//! TLS session made before a reload resumes it, with the identity that
//! session had, as with any TLS server; its next full handshake gets the
//! new certificate.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, version};
use tokio_rustls::server::TlsStream;

/// The most bytes of a certificate chain or key file read: real ones are a
/// few KiB.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The server's TLS: its files, the certificate in use, and the acceptor.
#[derive(Clone)]
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// The certificate every new handshake gets, replaced on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl Tls {
    /// Reads the certificate chain and its key; fails with a message naming
    /// the file at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Tls, String> {
        let provider = Arc::new(ring::default_provider());
        let key = certified_key(&provider, cert_file, key_file)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // HTTP/1.1, and HTTP/1.0 for a client that offers only that
        // (`curl --http1.0`): without it the handshake fails.
        config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        Ok(Tls {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again: new handshakes use what they hold. On failure
    /// the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let provider = ring::default_provider();
        let key = certified_key(&provider, &self.cert_file, &self.key_file)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The TLS handshake on an accepted connection.
    pub(crate) async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }
}

/// A PEM file's error in words: a section's end line names its label as
/// text (`-----END CERTIFICATE-----`), never as bytes.
fn pem_error(error: tokio_rustls::rustls::pki_types::pem::Error) -> String {
    use tokio_rustls::rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM section has no end line `-----END {}-----` (is the file cut short?)",
            String::from_utf8_lossy(&end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "a PEM section starts with a bad line `{}`",
            String::from_utf8_lossy(&line)
        ),
        error => error.to_string(),
    }
}

/// The certificate chain of `cert_file` with the private key of `key_file`,
/// checked to match.
fn certified_key(
    provider: &CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertifiedKey, String> {
    let cert_text = read(cert_file, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "cannot read the TLS certificate {}: {}",
                cert_file.display(),
                pem_error(e)
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "cannot read the TLS certificate {}: no PEM CERTIFICATE in it",
            cert_file.display()
        ));
    }
    if let Some(warning) = validity_warning(&chain[0], now_seconds()) {
        tracing::warn!("the TLS certificate {}: {warning}", cert_file.display());
    }
    let key_text = read(key_file, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| {
        let e = match e {
            _ if key_text.iter().all(u8::is_ascii_whitespace) => "the file is empty".to_owned(),
            _ if contains(&key_text, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || contains(&key_text, b"Proc-Type: 4,ENCRYPTED") =>
            {
                "the key is encrypted (a passphrase), which the server cannot read: give it \
                 the key decrypted, e.g. `openssl pkey -in KEY -out KEY.pem` (keep it \
                 readable by the server's user only)"
                    .to_owned()
            }
            tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM PRIVATE KEY in it (is it the certificate?)".to_owned()
            }
            e => pem_error(e),
        };
        format!("cannot read the TLS key {}: {e}", key_file.display())
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("cannot use the TLS key {}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "the TLS key {} does not belong to the certificate {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(certified)
}

/// How long before its end a certificate's coming expiry is warned of.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// What an operator must hear about the dates of a server certificate at
/// `now` (Unix seconds): expired, not valid yet, or expiring within
/// [`EXPIRY_WARNING_DAYS`]; `None` when it is fine or cannot be read (rustls
/// judges the rest).
pub fn validity_warning(certificate: &[u8], now: i64) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let validity = parsed.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let date = |seconds: i64| myna_core::timestamp::format_iso(seconds.saturating_mul(1000));
    if now > until {
        Some(format!(
            "it expired at {}: clients refuse it; renew it, then send SIGHUP",
            date(until)
        ))
    } else if now < from {
        Some(format!(
            "it is not valid until {}: clients refuse it until then",
            date(from)
        ))
    } else if until - now < EXPIRY_WARNING_DAYS * 86_400 {
        Some(format!(
            "it expires at {} (in {} days): renew it, then send SIGHUP",
            date(until),
            (until - now) / 86_400
        ))
    } else {
        None
    }
}

/// The time now, in Unix seconds.
fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `text` contains `part`.
fn contains(text: &[u8], part: &[u8]) -> bool {
    text.windows(part.len()).any(|w| w == part)
}

/// A PEM file's bytes, bounded.
fn read(file: &Path, what: &str) -> Result<Vec<u8>, String> {
    let failed =
        |e: &dyn fmt::Display| format!("cannot read the TLS {what} {}: {e}", file.display());
    let metadata = std::fs::metadata(file).map_err(|e| failed(&e))?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(failed(&format!("over {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read(file).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate valid from `from` to `until` (years, on 1 January).
    fn valid(from: i32, until: i32) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = rcgen::KeyPair::generate().expect("a key");
        params
            .self_signed(&key)
            .expect("a certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn the_dates_of_the_certificate_are_told_when_they_matter() {
        let day = 86_400;
        // 2030-01-01T00:00:00Z.
        let y2030 = 1_893_456_000;
        let cert = valid(2029, 2030);
        let warning = |now| validity_warning(&cert, now);
        assert_eq!(warning(y2030 - 30 * day), None);
        assert_eq!(
            warning(y2030 - 3 * day).as_deref(),
            Some("it expires at 2030-01-01T00:00:00.000Z (in 3 days): renew it, then send SIGHUP")
        );
        assert!(warning(y2030 + 1).is_some_and(|w| w.starts_with("it expired at 2030-01-01")));
        assert!(
            validity_warning(&valid(2031, 2032), y2030)
                .is_some_and(|w| w.starts_with("it is not valid until 2031-01-01"))
        );
        assert_eq!(validity_warning(b"not a certificate", y2030), None);
    }
}
