//! Dashboard sessions: signing in and out, the session cookie, and CSRF.
//!
//! Signing in checks the email and password exactly as `POST /v2/user/login`
//! does and issues the same kind of login token (sliding one-hour expiry).
//! The cookie `myna_session` holds `<token>.<csrf>`: `HttpOnly;
//! SameSite=Strict; Path=/`, plus `Secure` when the request came over HTTPS
//! (`X-Forwarded-Proto: https` from a proxy). The CSRF part is random, fixed
//! for the session, and must come back as the hidden `csrf` field of every
//! POST. Before a session exists, the sign-in form is protected the same way
//! by a short-lived `myna_signin` cookie.
//!
//! The dashboard authenticates ONLY by this cookie: an `Authorization`
//! header (API key, Basic, Bearer) or an `apikey` parameter gives no access.

use myna_core::account::normalize_email;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use uuid::Uuid;

use super::html::{self, Nav, esc};
use crate::auth::{self, Caller, Credentials, issue_token};
use crate::request::{Params, read_body};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "myna_session";
/// The pre-session cookie that protects the sign-in form.
pub const SIGNIN_COOKIE: &str = "myna_signin";

/// A signed-in dashboard visitor.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub account: Uuid,
    /// The login token behind the session.
    pub token: Uuid,
    /// The CSRF token every form carries.
    pub csrf: String,
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Whether the request reached us over HTTPS (directly or through a proxy
/// that says so).
pub fn is_https(request: &Request) -> bool {
    let forwarded = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().eq_ignore_ascii_case("https"));
    forwarded.unwrap_or_else(|| request.scheme().as_str() == "https")
}

fn set_cookie(request: &Request, name: &str, value: &str, path: &str, max_age: i64) -> String {
    let secure = if is_https(request) { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}")
}

/// A fresh random token for CSRF (128 random bits, hex).
fn random_token() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The signed-in session of a request, from its cookie only.
pub async fn session(state: &AppState, request: &Request) -> Option<Session> {
    let value = cookie(request, SESSION_COOKIE)?;
    let (token, csrf) = value.split_once('.')?;
    let token = Uuid::parse_str(token).ok()?;
    if csrf.len() != 32 || !csrf.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let caller = auth::authenticate(
        state.storage.as_ref(),
        &state.passwords,
        &state.keys,
        Credentials::Bearer(token),
        state.now_ms(),
    )
    .await
    .ok()?;
    match caller {
        Caller::Owner { account } => Some(Session {
            account,
            token,
            csrf: csrf.to_owned(),
        }),
        Caller::Key { .. } => None,
    }
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether a form's `csrf` field matches the session's.
pub fn csrf_ok(session: &Session, form: &Params) -> bool {
    form.get("csrf")
        .is_some_and(|given| same(given, &session.csrf))
}

/// Where to send a visitor without a session: the sign-in page, coming back
/// to `path` afterwards (GET pages only).
pub fn to_signin(request: &Request) -> Response {
    let path = request.uri().path();
    let location = if request.method() == poem::http::Method::GET && path != "/" {
        let back = request
            .uri()
            .path_and_query()
            .map_or(path, |pq| pq.as_str());
        format!("/signin?next={}", html::url_encode(back))
    } else {
        "/signin".to_owned()
    };
    html::redirect(&location, &[])
}

/// The refusal of a POST whose CSRF token is missing or wrong.
pub fn csrf_refused() -> Response {
    let body = "<section class=\"narrow\"><h1>This form cannot be accepted</h1>\
        <p>It did not come from this dashboard page, or it is too old. Nothing was changed.</p>\
        <p><a href=\"/\">Back to the experiments</a>, reload the page and try again.</p></section>";
    html::html(
        StatusCode::FORBIDDEN,
        html::page("Refused", Nav::None, None, body),
    )
}

/// A `next` target that stays on this site (a path, not `//host`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

fn signin_page(
    request: &Request,
    status: StatusCode,
    email: &str,
    next: &str,
    message: Option<&str>,
) -> Response {
    let token = random_token();
    let alert = message.map_or(String::new(), |m| {
        format!(
            "<div class=\"alert error\" role=\"alert\"><p>{}</p></div>",
            esc(m)
        )
    });
    let body = format!(
        "<section class=\"narrow card\"><h1>Sign in</h1>{alert}\
         <form method=\"post\" action=\"/signin\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <p class=\"field\"><label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"{email}\"{focus_email}></p>\
         <p class=\"field\"><label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{focus_password}></p>\
         <p><button type=\"submit\" class=\"primary\">Sign in</button></p></form>\
         <p class=\"hint\">The first start of the server created the first account: its email \
         and password come from <code>MYNA_ADMIN_EMAIL</code> and <code>MYNA_ADMIN_PASSWORD</code>, \
         or were printed once.</p></section>",
        next = esc(next),
        email = esc(email),
        focus_email = if email.is_empty() { " autofocus" } else { "" },
        focus_password = if email.is_empty() { "" } else { " autofocus" },
    );
    let page = html::page("Sign in", Nav::None, None, &body);
    let mut response = html::html(status, page);
    let cookie = set_cookie(request, SIGNIN_COOKIE, &token, "/signin", 3600);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /signin`: the sign-in form (or home when already signed in).
#[handler]
pub async fn signin_form(request: &Request, Data(state): Data<&AppState>) -> Response {
    let params = Params::of(request);
    let next = safe_next(params.get("next"));
    if session(state, request).await.is_some() {
        return html::redirect(next, &[]);
    }
    signin_page(request, StatusCode::OK, "", next, None)
}

/// `POST /signin`: checks the email and password as the API's login does;
/// on success a session cookie and a redirect, else the form again (401).
#[handler]
pub async fn signin(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let Ok(body) = read_body(request, body).await else {
        return signin_page(
            request,
            StatusCode::BAD_REQUEST,
            "",
            "/",
            Some("The form could not be read."),
        );
    };
    let form = Params::parse(&String::from_utf8_lossy(&body));
    let next = safe_next(form.get("next")).to_owned();
    let email = form.get("email").unwrap_or_default();
    let expected = cookie(request, SIGNIN_COOKIE).unwrap_or_default();
    let given = form.get("csrf").unwrap_or_default();
    if expected.is_empty() || !same(&expected, given) {
        return signin_page(
            request,
            StatusCode::FORBIDDEN,
            email,
            &next,
            Some("This sign-in form has expired (or cookies are blocked). Please try again."),
        );
    }
    let password = form.get("password").unwrap_or_default();
    let storage = state.storage.as_ref();
    let account = match state
        .passwords
        .check(storage, &normalize_email(email), password)
        .await
    {
        Ok(account) => account,
        Err(problem) if problem.status == 401 => {
            return signin_page(
                request,
                StatusCode::UNAUTHORIZED,
                email,
                &next,
                Some("The email or password is not right."),
            );
        }
        Err(_) => {
            return signin_page(
                request,
                StatusCode::SERVICE_UNAVAILABLE,
                email,
                &next,
                Some("The server cannot sign you in right now; try again in a moment."),
            );
        }
    };
    let token = match issue_token(storage, account, state.now_ms()).await {
        Ok(token) => token,
        Err(_) => {
            return signin_page(
                request,
                StatusCode::SERVICE_UNAVAILABLE,
                email,
                &next,
                Some("The server cannot sign you in right now; try again in a moment."),
            );
        }
    };
    let value = format!("{}.{}", token.token, random_token());
    // The cookie outlives the token's sliding hour; the token decides.
    let session = set_cookie(request, SESSION_COOKIE, &value, "/", 30 * 24 * 3600);
    let clear = set_cookie(request, SIGNIN_COOKIE, "", "/signin", 0);
    html::redirect(&next, &[session, clear])
}

/// `POST /signout`: ends the session's token and clears the cookie.
#[handler]
pub async fn signout(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let Some(session) = session(state, request).await else {
        return to_signin(request);
    };
    let body = read_body(request, body).await.unwrap_or_default();
    let form = Params::parse(&String::from_utf8_lossy(&body));
    if !csrf_ok(&session, &form) {
        return csrf_refused();
    }
    if let Err(problem) = state.storage.delete_token(session.token).await {
        tracing::warn!(?problem, "signing out: the token could not be deleted");
    }
    let clear = set_cookie(request, SESSION_COOKIE, "", "/", 0);
    html::redirect("/signin", &[clear])
}
