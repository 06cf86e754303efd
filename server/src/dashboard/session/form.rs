//! The sign-in form and its post: the email and password checked as
//! `POST /v2/user/login` checks them, a session issued, and every refusal
//! said on the form (with why a visitor was sent to it: `Why`).

use myna_core::Code;
use myna_core::account::normalize_email;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::*;
use crate::dashboard::html;
use crate::dashboard::views::signin::{Note, signin_page as signin_view};

/// What the sign-in form says when it is refused.
struct Refusal<'a> {
    status: StatusCode,
    message: &'a str,
    retry_after: Option<u64>,
}

fn signin_page(
    state: &AppState,
    request: &Request,
    email: &str,
    next: &str,
    refusal: Option<Refusal<'_>>,
) -> Response {
    let held = cookie(request, SIGNIN_COOKIE);
    let (nonce, token) = signin_token(&state.secret, held, state.now_ms());
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    // A note with a 200 says why the form is shown; any other, why it refused.
    let note = refusal.as_ref().map(|r| match r.status {
        StatusCode::OK => Note::Said(r.message),
        _ => Note::Refused(r.message),
    });
    let page = signin_view(&token, next, email, note);
    let mut response = html::html(status, page);
    let cookie = set_cookie(request, SIGNIN_COOKIE, &nonce, "/signin", 3600);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if let Some(seconds) = refusal.and_then(|r| r.retry_after) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `GET /signin`: the sign-in form (or `next` when already signed in).
#[handler]
pub async fn signin_form(request: &Request, Data(state): Data<&AppState>) -> Response {
    let params = Params::of(request);
    let next = safe_next(params.get("next"));
    if matches!(session(state, request).await, Ok(Some(_))) {
        return html::redirect(next, &[]);
    }
    // Why the form is shown, when a redirect said.
    let note = if params.get("cookies") == Some("twice") {
        Some(COOKIE_TWICE)
    } else {
        params.get("session").and_then(Why::of).map(Why::message)
    };
    let note = note.map(|message| Refusal {
        status: StatusCode::OK,
        message,
        retry_after: None,
    });
    signin_page(state, request, "", next, note)
}

const COOKIE_TWICE: &str = "Your browser sent this site's session cookie twice (another site \
    sharing this host's cookies may have set one), so you were signed out. Please sign in \
    again; if this comes back, clear this site's cookies in your browser.";

/// Why the sign-in page is shown, as a redirect to it says (`?session=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// A page asked for with a session that has ended.
    Ended,
    /// A form posted without a live session: it was not saved.
    EndedForm,
    /// Signed out.
    Out,
    /// Signed out in this browser; the database could not end the session.
    OutHere,
}

impl Why {
    const ALL: [Why; 4] = [Why::Ended, Why::EndedForm, Why::Out, Why::OutHere];

    /// The value of `?session=`.
    pub(super) fn param(self) -> &'static str {
        match self {
            Why::Ended => "ended",
            Why::EndedForm => "ended-form",
            Why::Out => "out",
            Why::OutHere => "out-here",
        }
    }

    /// The reason a `?session=` value names, if any.
    fn of(param: &str) -> Option<Why> {
        Why::ALL.into_iter().find(|why| why.param() == param)
    }

    /// What the sign-in page says.
    fn message(self) -> &'static str {
        match self {
            Why::Ended => {
                "Your session ended (after an hour unused, or you signed out in another tab). \
                 Please sign in again: you will be taken back to the page."
            }
            Why::EndedForm => {
                "Your session ended before the form was sent (after an hour unused, or you \
                 signed out in another tab), so nothing was saved. Please sign in again: you \
                 will be taken back to the page the form was on, to fill it in again."
            }
            Why::Out => "You are signed out.",
            Why::OutHere => {
                "You are signed out in this browser. The server could not end the session \
                 itself just now (its database did not answer): it ends on its own after an \
                 hour unused."
            }
        }
    }

    /// Where to send the browser: the sign-in page, saying why.
    pub(super) fn signin(self) -> String {
        format!("/signin?session={}", self.param())
    }
}

const UNAVAILABLE: &str = "The server cannot sign you in right now; try again in a moment.";

/// `POST /signin`: checks the email and password as the API's login does;
/// on success a session cookie and a redirect, else the form again (401;
/// 429 with `Retry-After` when limited).
#[handler]
pub async fn signin(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let refuse = |status, message| {
        Some(Refusal {
            status,
            message,
            retry_after: None,
        })
    };
    // Read exactly or not at all: `%FF` made U+FFFD would let other bytes
    // pass for a password, and spend a guess.
    let form = read_body_up_to(request, body, MAX_SIGNIN_FORM_BYTES)
        .await
        .ok()
        .and_then(|body| {
            std::str::from_utf8(&body)
                .ok()
                .and_then(Params::parse_exact)
        });
    let Some(form) = form else {
        let refusal = refuse(StatusCode::BAD_REQUEST, "The form could not be read.");
        return signin_page(state, request, "", "/", refusal);
    };
    let next = safe_next(form.get("next")).to_owned();
    let email = form.get("email").unwrap_or_default();
    let nonce = cookie(request, SIGNIN_COOKIE).unwrap_or_default();
    let given = form.get("csrf").unwrap_or_default();
    if sent_from_elsewhere(request) {
        // A page elsewhere may hold a token pair of its own (its server
        // fetched this form): it would sign the visitor in as its account.
        let refusal = refuse(
            StatusCode::FORBIDDEN,
            "This sign-in was sent from another site. Please sign in on this page.",
        );
        return signin_page(state, request, email, &next, refusal);
    }
    if !signin_token_ok(&state.secret, given, &nonce, state.now_ms()) {
        if matches!(session(state, request).await, Ok(Some(_))) {
            // Signed in meanwhile (in another tab, whose success ended the
            // sign-in cookie): where this form was going.
            return html::redirect(&next, &[]);
        }
        let refusal = refuse(
            StatusCode::FORBIDDEN,
            "This sign-in form has expired (or cookies are blocked). Please try again.",
        );
        return signin_page(state, request, email, &next, refusal);
    }
    let password = form.get("password").unwrap_or_default();
    let checked = state
        .checker(request)
        .password(&normalize_email(email), password)
        .await;
    let account = match checked {
        Ok(account) => account,
        Err(problem) if problem.code() == Code::TooManyAttempts => {
            let message = &problem.messages[0];
            let refusal = Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: &message.message,
                retry_after: message
                    .data
                    .as_ref()
                    .and_then(|d| d.get("retryAfter")?.as_u64()),
            };
            return signin_page(state, request, email, &next, Some(refusal));
        }
        Err(problem) if problem.status == 401 => {
            let refusal = refuse(
                StatusCode::UNAUTHORIZED,
                "The email or password is not right.",
            );
            return signin_page(state, request, email, &next, refusal);
        }
        Err(_) => {
            let refusal = refuse(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
            return signin_page(state, request, email, &next, refusal);
        }
    };
    let Ok(token) = issue_session(state.storage.as_ref(), account, state.now_ms()).await else {
        let refusal = refuse(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        return signin_page(state, request, email, &next, refusal);
    };
    // The cookie outlives the token's sliding hour; the token decides.
    let session = set_cookie(request, SESSION_COOKIE, &token, "/", 30 * 24 * 3600);
    let clear = set_cookie(request, SIGNIN_COOKIE, "", "/signin", 0);
    html::redirect(&next, &[session, clear])
}

/// The most the sign-in form may weigh (anyone may post it: its fields,
/// token, next page, email and password, take well under 4 KiB; parsed,
/// a megabyte of `a=&a=&…` would take tens of megabytes).
const MAX_SIGNIN_FORM_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_reads_back_from_its_parameter() {
        for why in Why::ALL {
            assert_eq!(Why::of(why.param()), Some(why));
            assert!(why.signin().ends_with(why.param()));
        }
        assert_eq!(Why::of("twice"), None);
    }
}
