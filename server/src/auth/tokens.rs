//! Login tokens: issued, checked and slid (one hour after their last
//! use), stored as their SHA-256 only, of two kinds (API, dashboard).

use myna_core::Problem;
use uuid::Uuid;

use super::invalid;
use super::secret::{self, token_hash};
use crate::storage::{Storage, Token, TokenKind};

/// A login token lives this long after its last use, in milliseconds (1 hour).
pub const TOKEN_TTL_MS: i64 = 3_600_000;
/// A token's expiry is pushed back in the database at most this often.
const TOKEN_EXTEND_EVERY_MS: i64 = 60_000;

/// Checks a login token of `kind` as its holder presents it and slides its
/// expiry; the account. A token of the other kind is refused like an
/// unknown one.
pub async fn use_token(
    storage: &dyn Storage,
    kind: TokenKind,
    token: &str,
    now_ms: i64,
) -> Result<Uuid, Problem> {
    let hash = token_hash(token);
    let Some(found) = storage.token(hash).await? else {
        return Err(invalid());
    };
    if found.kind != kind {
        return Err(invalid());
    }
    if found.expires_ms <= now_ms {
        // Ended for good: a clock stepped back later must not bring it
        // back (pruning would remove it later; this is at once).
        let _ = storage.delete_token(hash).await;
        return Err(invalid());
    }
    let expires_ms = now_ms + TOKEN_TTL_MS;
    if expires_ms - found.expires_ms >= TOKEN_EXTEND_EVERY_MS {
        storage.extend_token(hash, expires_ms).await?;
    }
    Ok(found.account_id)
}

/// A login token just issued: the token itself (only ever in the client's
/// hands; storage keeps its hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token, for `Authorization: Bearer`.
    pub token: Uuid,
    /// Whose it is.
    pub account_id: Uuid,
    /// When it stops working unless used, epoch milliseconds.
    pub expires_ms: i64,
}

async fn store_token(
    storage: &dyn Storage,
    kind: TokenKind,
    token: &str,
    account_id: Uuid,
    expires_ms: i64,
) -> Result<(), Problem> {
    let stored = Token {
        hash: token_hash(token),
        kind,
        account_id,
        expires_ms,
    };
    storage
        .create_token(stored, myna_core::limits::MAX_TOKENS)
        .await?;
    Ok(())
}

/// Issues a new API token (`Authorization: Bearer`) for an account.
pub async fn issue_token(
    storage: &dyn Storage,
    account_id: Uuid,
    now_ms: i64,
) -> Result<IssuedToken, Problem> {
    let issued = IssuedToken {
        token: Uuid::new_v4(),
        account_id,
        expires_ms: now_ms + TOKEN_TTL_MS,
    };
    let text = issued.token.to_string();
    store_token(
        storage,
        TokenKind::Api,
        &text,
        account_id,
        issued.expires_ms,
    )
    .await?;
    Ok(issued)
}

/// Issues a new dashboard session token (256 random bits, hex) for an
/// account: the same sliding hour as API tokens, never accepted as one.
pub async fn issue_session(
    storage: &dyn Storage,
    account_id: Uuid,
    now_ms: i64,
) -> Result<String, Problem> {
    let token = secret::random_token();
    store_token(
        storage,
        TokenKind::Dashboard,
        &token,
        account_id,
        now_ms + TOKEN_TTL_MS,
    )
    .await?;
    Ok(token)
}
