//! Keys and digests: random tokens, the SHA-256 under which login tokens are
//! stored, and [`Secret`], an HMAC-SHA256 key that signs (the server secret
//! in the database: CSRF tokens of the dashboard) or keys lookups (a
//! process-local one: the throttle's account keys and verified-password
//! cache).

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError, TokenHash};

type HmacSha256 = Hmac<Sha256>;

/// The name of the server secret in the database's `secrets` table.
const SERVER_SECRET: &str = "dashboard";

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Linux's getrandom(2) cannot fail once the pool is seeded; without a
    // random source no credential can be issued safely at all.
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of the plain HMAC-SHA256 of `message` under `key` (RFC
/// 2104, as `openssl dgst -sha256 -hmac <key>` computes it): the signature
/// a webhook's receiver checks.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

/// A fresh random token: 256 bits, lower-case hex (64 characters).
pub fn random_token() -> String {
    hex(&random_bytes::<32>())
}

/// Whether `text` has the form of [`random_token`]'s tokens.
pub fn is_random_token(text: &str) -> bool {
    is_hex_of(text, 64)
}

/// Whether `text` is `len` lower-case hex digits: what [`hex`] makes of
/// `len / 2` random bytes.
pub fn is_hex_of(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The SHA-256 of a login token as its holder presents it: what storage
/// keeps (a database copy yields no token; a token of 122 random bits or
/// more needs no salt nor a slow hash).
pub fn token_hash(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// An HMAC-SHA256 key. Never printed: its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret(Arc<[u8; 32]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A fresh random key (for what only this process needs to agree on).
    pub fn random() -> Secret {
        Secret(Arc::new(random_bytes()))
    }

    /// The server secret: read from the database, created there at first
    /// start, so every instance on one database and every restart signs
    /// alike.
    pub async fn load(storage: &dyn Storage) -> Result<Secret, StorageError> {
        let stored = storage
            .secret(SERVER_SECRET, &hex(&random_bytes::<32>()))
            .await?;
        let bytes = TokenHash::from_hex(&stored).ok_or_else(|| {
            StorageError::Internal("the stored server secret is malformed".into())
        })?;
        Ok(Secret(Arc::new(bytes.0)))
    }

    fn mac(&self, domain: &str, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes keys of any length");
        // Length-prefixed, so no two different part lists read the same.
        for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The HMAC of `parts` for the purpose `domain` (a signature made for
    /// one purpose is worthless for another).
    pub fn sign(&self, domain: &str, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(domain, parts).finalize().into_bytes().into()
    }

    /// [`Secret::sign`] as lower-case hex.
    pub fn sign_hex(&self, domain: &str, parts: &[&[u8]]) -> String {
        hex(&self.sign(domain, parts))
    }

    /// Whether `signature_hex` is the signature of `parts` for `domain`
    /// (compared in constant time).
    pub fn verify_hex(&self, domain: &str, parts: &[&[u8]], signature_hex: &str) -> bool {
        match TokenHash::from_hex(signature_hex) {
            Some(signature) => self.mac(domain, parts).verify_slice(&signature.0).is_ok(),
            None => false,
        }
    }

    /// The first 64 bits of [`Secret::sign`]: a keyed map key.
    pub fn key64(&self, domain: &str, parts: &[&[u8]]) -> u64 {
        let mac = self.sign(domain, parts);
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        u64::from_be_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_per_key_and_per_purpose() {
        let (a, b) = (Secret::random(), Secret::random());
        let signature = a.sign_hex("csrf", &[b"token"]);
        assert_eq!(signature.len(), 64);
        assert!(a.verify_hex("csrf", &[b"token"], &signature));
        assert!(!b.verify_hex("csrf", &[b"token"], &signature));
        assert!(!a.verify_hex("signin", &[b"token"], &signature));
        assert!(!a.verify_hex("csrf", &[b"tok", b"en"], &signature));
        assert!(!a.verify_hex("csrf", &[b"token"], "not hex"));
        assert_eq!(format!("{a:?}"), "Secret(…)");
    }

    #[test]
    fn plain_hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_random_and_stored_as_their_sha256() {
        let (one, two) = (random_token(), random_token());
        assert!(is_random_token(&one) && is_random_token(&two));
        assert_ne!(one, two);
        assert!(!is_random_token(&one.to_uppercase()));
        assert!(!is_random_token("00000000-0000-4000-8000-000000000000"));
        // SHA-256 of "abc" (FIPS 180-2's example).
        assert_eq!(
            token_hash("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
