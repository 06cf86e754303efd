//! Dashboard sessions: signing in and out, the session cookie, and CSRF.
//!
//! Signing in checks the email and password exactly as `POST /v2/user/login`
//! does (the same limits: [`crate::auth::throttle`]) and issues a dashboard
//! session: a token of its own kind (256 random bits; stored as its SHA-256;
//! sliding one-hour expiry), never accepted as an API Bearer token, nor an
//! API token as a session. The cookie `myna_session` holds that token:
//! `HttpOnly; SameSite=Strict; Path=/`; over HTTPS (served with
//! `--tls-cert`, or `X-Forwarded-Proto: https` from a proxy) it is
//! `__Host-myna_session` and `Secure`, a name browsers let only this host,
//! over HTTPS, set (a sibling subdomain cannot plant its own session on the
//! dashboard's visitors). A request carrying the cookie twice (the second
//! planted with a narrower `Path` by a site sharing the host's cookies) is
//! not signed in: which one the browser meant cannot be told.
//!
//! CSRF: the session's token is the HMAC of the session token under the
//! server secret (in the database, the same for every instance), so its
//! holder cannot choose it; it must come back as the hidden `csrf` field of
//! every POST. Before a session exists, the sign-in form carries a token the
//! server signed (a random nonce and an expiry, HMAC under the server
//! secret) whose nonce is also in a short-lived `myna_signin` cookie: it is
//! verified, not merely compared between cookie and field.
//!
//! The dashboard authenticates ONLY by this cookie: an `Authorization`
//! header (API key, Basic, Bearer) or an `apikey` parameter gives no access.

use myna_core::Problem;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use uuid::Uuid;

use super::html;
use super::views::signin::refused_page;
use crate::auth::secret::{Secret, hex, is_hex_of, is_random_token, random_bytes};
use crate::auth::{self, issue_session, token_hash};
use crate::proxy::is_https;
use crate::request::{Params, read_body, read_body_up_to};
use crate::state::AppState;
use crate::storage::TokenKind;

mod form;

use form::Why;
pub use form::{signin, signin_form};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "myna_session";
/// The pre-session cookie that protects the sign-in form.
pub const SIGNIN_COOKIE: &str = "myna_signin";
/// How long a sign-in form may be submitted after it was served (1 hour).
const SIGNIN_TTL_MS: i64 = 3_600_000;
/// The longest `next` path kept.
const MAX_NEXT_BYTES: usize = 2048;

/// A signed-in dashboard visitor.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub account: Uuid,
    /// The session token (the cookie's value).
    pub token: String,
    /// The CSRF token every form carries: bound to the session token.
    pub csrf: String,
}

/// The name cookie `name` of the dashboard has on `request`'s scheme:
/// `__Host-` first over HTTPS.
fn cookie_name(request: &Request, name: &str) -> String {
    if is_https(request) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// The value of the dashboard's cookie `name` (as [`cookie_name`] names it
/// for the request) in the request's `Cookie` headers; none when it is
/// there more than once.
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    let mut values = cookie_values(request, name);
    let value = values.next();
    if values.next().is_some() {
        return None;
    }
    value.map(str::to_owned)
}

/// Every value of the dashboard's cookie `name` the request carries.
fn cookie_values<'r>(request: &'r Request, name: &str) -> impl Iterator<Item = &'r str> {
    let name = cookie_name(request, name);
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for the dashboard's cookie `name`; over HTTPS
/// `Secure`, `__Host-` and so at `Path=/`, whatever `path`.
fn set_cookie(request: &Request, name: &str, value: &str, path: &str, max_age: i64) -> String {
    let https = is_https(request);
    let (secure, path) = if https { ("; Secure", "/") } else { ("", path) };
    let name = cookie_name(request, name);
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}")
}

/// The signed-in session of a request, from its cookie only; the problem
/// when the database could not tell (an outage: the session may be fine).
pub async fn session(state: &AppState, request: &Request) -> Result<Option<Session>, Problem> {
    let Some(token) = cookie(request, SESSION_COOKIE) else {
        return Ok(None);
    };
    if !is_random_token(&token) {
        return Ok(None);
    }
    let storage = state.storage.as_ref();
    match auth::use_token(storage, TokenKind::Dashboard, &token, state.now_ms()).await {
        Ok(account) => Ok(Some(Session {
            account,
            csrf: session_csrf(&state.secret, &token),
            token,
        })),
        // The database did not answer: not a sign that the session is over.
        Err(problem) if problem.status >= 500 => Err(problem),
        Err(_) => Ok(None),
    }
}

/// The CSRF token of a session: the HMAC of its token under the server secret.
fn session_csrf(secret: &Secret, token: &str) -> String {
    secret.sign_hex("dashboard-csrf", &[token.as_bytes()])
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether the browser says a form was sent from a page of another origin
/// (Fetch Metadata's `Sec-Fetch-Site`: another site, or another port or
/// scheme of this host, which share its cookies): a sign-in or change that
/// a page elsewhere made the visitor send. Browsers without Fetch Metadata
/// send none; the form tokens guard those.
pub fn sent_from_elsewhere(request: &Request) -> bool {
    request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| matches!(site.as_bytes(), b"cross-site" | b"same-site"))
}

/// Whether a form's `csrf` field matches the session's.
pub fn csrf_ok(session: &Session, form: &Params) -> bool {
    form.get("csrf")
        .is_some_and(|given| same(given, &session.csrf))
}

/// A new sign-in form token, `nonce.expires.signature`, and its nonce (for
/// the `myna_signin` cookie): the nonce the browser's cookie holds already,
/// if it holds one, so every sign-in form open in its tabs stays valid
/// (each load used to replace the cookie: only the last tab loaded could
/// sign in); else a fresh one.
fn signin_token(secret: &Secret, held: Option<String>, now_ms: i64) -> (String, String) {
    let nonce = held
        .filter(|n| is_hex_of(n, 32))
        .unwrap_or_else(|| hex(&random_bytes::<16>()));
    let expires = (now_ms + SIGNIN_TTL_MS).to_string();
    let signature = secret.sign_hex("signin", &[nonce.as_bytes(), expires.as_bytes()]);
    let token = format!("{nonce}.{expires}.{signature}");
    (nonce, token)
}

/// Whether `token` is a sign-in token this server signed, not expired at
/// `now_ms`, whose nonce is the `myna_signin` cookie's.
fn signin_token_ok(secret: &Secret, token: &str, cookie: &str, now_ms: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(nonce), Some(expires), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let live = expires.parse::<i64>().is_ok_and(|at| at > now_ms);
    live && same(nonce, cookie)
        && secret.verify_hex("signin", &[nonce.as_bytes(), expires.as_bytes()], signature)
}

/// Where to send a visitor without a session: the sign-in page, coming back
/// afterwards to the page asked for, or the one a form was posted from.
pub fn to_signin(request: &Request) -> Response {
    let path = request.uri().path();
    let back = if request.method() == poem::http::Method::GET {
        Some(
            request
                .uri()
                .path_and_query()
                .map_or(path, |pq| pq.as_str()),
        )
    } else {
        // A form posted with a session that ended: back to the page it
        // was on (its edits are not kept).
        form_page(path)
    };
    let mut location = match back {
        Some(back) if back != "/" => {
            format!("/signin?next={}", myna_core::wire::url_encode(back))
        }
        _ => "/signin".to_owned(),
    };
    let mut sent = cookie_values(request, SESSION_COOKIE);
    let (one, two) = (sent.next().is_some(), sent.next().is_some());
    if !two {
        // Why, for the sign-in page to say: a form posted without a session
        // was loaded in one that has ended since (signed out in another tab
        // clears the cookie); a page asked for with a cookie the server no
        // longer takes, likewise (an hour unused, or signed out elsewhere).
        let get = request.method() == poem::http::Method::GET;
        let why = match (get, one) {
            (false, _) => Some(Why::EndedForm),
            (true, true) => Some(Why::Ended),
            (true, false) => None,
        };
        if let Some(why) = why {
            location.push(if location.contains('?') { '&' } else { '?' });
            location.push_str("session=");
            location.push_str(why.param());
        }
        return html::redirect(&location, &[]);
    }
    // The session cookie twice: one was planted (by a site sharing this
    // host's cookies) at a narrower path. Each is cleared where this host
    // can clear it (at this path and the ones above it), and the sign-in
    // page says why, should one set for a whole domain come back.
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str("cookies=twice");
    let mut clear: Vec<String> = path_prefixes(path)
        .map(|at| set_cookie(request, SESSION_COOKIE, "", at, 0))
        .collect();
    clear.dedup();
    html::redirect(&location, &clear)
}

/// `path` and the paths above it, to `/` (at most 16).
fn path_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let cuts = path.match_indices('/').map(|(at, _)| at.max(1));
    cuts.chain([path.len()])
        .map(|end| &path[..end])
        .filter(|p| p.starts_with('/'))
        .take(16)
}

/// The page a form posted to `path` is on: the page itself, or for the
/// buttons of a list, the list (`None` for signing out).
fn form_page(path: &str) -> Option<&str> {
    match path {
        "/signout" => None,
        _ if path.starts_with("/keys/") => Some("/keys"),
        _ if path.starts_with("/webhooks/") => Some("/webhooks"),
        _ => Some(path),
    }
}

/// The refusal of a POST whose CSRF token is missing or wrong.
pub fn csrf_refused() -> Response {
    html::html(StatusCode::FORBIDDEN, refused_page())
}

/// A `next` target that stays on this site, else `/`: one leading `/`,
/// then visible ASCII only (no space, no control character, TAB, CR, LF,
/// NUL, DEL or any other, and nothing beyond ASCII, so no Unicode control:
/// a real `next` comes percent-encoded), no `//` and no `\\` anywhere (which
/// browsers read as another host), at most 2 KiB. So the redirect always
/// has a valid `Location`, on this site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.len() <= MAX_NEXT_BYTES
                && n.starts_with('/')
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

/// `POST /signout`: ends the session's token and clears the cookie.
#[handler]
pub async fn signout(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let checked = session(state, request).await;
    let body = read_body(request, body).await.unwrap_or_default();
    let form = Params::parse(&String::from_utf8_lossy(&body));
    // The session's token; or, the database not answering, the cookie's as
    // sent: the form's token (an HMAC of it) still tells that the owner
    // asked, and signing out in this browser needs nothing else.
    let (token, checked) = match checked {
        Ok(Some(session)) => (session.token, true),
        // Signed out already (in another tab, or the session ended); a
        // cookie sent twice is cleared as on any page.
        Ok(None) if cookie_values(request, SESSION_COOKIE).nth(1).is_none() => {
            return html::redirect(&Why::Out.signin(), &[]);
        }
        Ok(None) => return to_signin(request),
        Err(_) => (cookie(request, SESSION_COOKIE).unwrap_or_default(), false),
    };
    let asked = form
        .get("csrf")
        .is_some_and(|given| same(given, &session_csrf(&state.secret, &token)));
    if !asked || sent_from_elsewhere(request) {
        return csrf_refused();
    }
    // The server's record of it ends now, or on its own an hour on.
    let ended = checked && {
        let deleted = state.storage.delete_token(token_hash(&token)).await;
        if let Err(problem) = &deleted {
            tracing::warn!(?problem, "signing out: the token could not be deleted");
        }
        deleted.is_ok()
    };
    let clear = set_cookie(request, SESSION_COOKIE, "", "/", 0);
    let why = if ended { Why::Out } else { Why::OutHere };
    html::redirect(&why.signin(), &[clear])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_path_on_this_site() {
        for good in [
            "/",
            "/experiments/x?done=created",
            "/keys",
            "/a/%2F%2Fb",
            "/%09",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "",
            "x",
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/x",
            "/\0",
            "/\u{7f}",
            "/\\evil.example",
            "/a//b",
            "https://evil.example",
            "/ /x",
            "/\u{85}x",
            "/\u{202e}x",
            "/\u{200b}/evil.example",
            "/é",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn signin_tokens_are_signed_bound_to_their_cookie_and_expire() {
        let secret = Secret::random();
        let (nonce, token) = signin_token(&secret, None, 1_000);
        assert!(signin_token_ok(&secret, &token, &nonce, 1_000));
        // The nonce a cookie holds already is kept; anything but a nonce
        // the server could have made is not.
        let (kept, again) = signin_token(&secret, Some(nonce.clone()), 2_000);
        assert_eq!(kept, nonce);
        assert!(signin_token_ok(&secret, &again, &nonce, 2_000));
        assert!(
            signin_token_ok(&secret, &token, &nonce, 2_000),
            "the first still works"
        );
        for odd in ["", "x", "ABCDEF0123456789ABCDEF0123456789", &"a".repeat(64)] {
            let (fresh, _) = signin_token(&secret, Some(odd.to_owned()), 1_000);
            assert_ne!(fresh, odd);
            assert_eq!(fresh.len(), 32);
        }
        assert!(!signin_token_ok(
            &secret,
            &token,
            &nonce,
            1_000 + SIGNIN_TTL_MS
        ));
        assert!(!signin_token_ok(&secret, &token, "another", 1_000));
        assert!(!signin_token_ok(&Secret::random(), &token, &nonce, 1_000));
        // A value the client made up, the same in cookie and field.
        assert!(!signin_token_ok(&secret, "x", "x", 1_000));
        let forged = format!("{nonce}.{}.{}", 1_000 + 10 * SIGNIN_TTL_MS, "0".repeat(64));
        assert!(!signin_token_ok(&secret, &forged, &nonce, 1_000));
    }
}
