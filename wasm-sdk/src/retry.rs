//! What to do with an answer (sent, dropped, retried), the problem it is
//! reported as, and how long to wait before retrying. Pure logic, tested
//! natively.
//!
//! Only Myna's own answer confirms a send: a `200` from something in the
//! way (a captive portal's page, a CDN's empty answer, a body cut short) did
//! not reach the server, so it is retried like a network error.

use myna_core::wire::parse_decimal;
use myna_core::{Code, Problem};

/// First retry delay, in milliseconds.
pub(crate) const BASE_MS: f64 = 1_000.0;
/// Longest delay between retries, in milliseconds.
pub(crate) const MAX_MS: f64 = 5.0 * 60_000.0;
/// Longest `Retry-After` honoured, in milliseconds (a larger one is capped).
pub(crate) const MAX_RETRY_AFTER_MS: f64 = 60.0 * 60_000.0;

/// What the body of an answer is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// Myna's answer to the request (a read form, a search answer).
    Answer,
    /// A Myna problem.
    Problem(&'a Problem),
    /// Anything else: no body, not JSON, or JSON that is not Myna's.
    Foreign,
}

/// The fate of a batch after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The server confirmed it: forget it.
    Sent,
    /// The server refused it for good (a 4xx): drop it and tell the page.
    Dropped,
    /// Try again later (network error, timeout, 5xx, 429).
    Retry,
}

/// Statuses retried whatever the body says: 408 (the request took too long
/// on its way), 429 (throttled) and 5xx (the server, or a proxy, failed).
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// The fate of an answer with HTTP `status` and body `body`: sent only when
/// it is Myna's answer with a 2xx; a problem decides by its own rule
/// ([`Problem::is_retryable`]) or its status (JSONP answers 200 with the
/// status inside); a foreign 2xx never reached the server, so it is retried.
pub(crate) fn classify(status: u16, body: Body) -> Fate {
    let ok = (200..300).contains(&status);
    let retry = match body {
        Body::Answer if ok => return Fate::Sent,
        Body::Problem(p) => p.is_retryable() || retryable_status(p.status),
        Body::Foreign if ok => true,
        _ => false,
    };
    if retry || retryable_status(status) {
        Fate::Retry
    } else {
        Fate::Dropped
    }
}

/// What an answer means for the request that got it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// Sent, dropped or retry.
    pub(crate) fate: Fate,
    /// Why it failed (the server's problem, or one made up for a bare
    /// status, a foreign answer or no answer); `None` when sent.
    pub(crate) problem: Option<Problem>,
    /// Whether the problem came from the server (then it has a `status`).
    pub(crate) from_server: bool,
    /// The server's `Retry-After`, in milliseconds.
    pub(crate) retry_after: Option<f64>,
}

/// The verdict on an answer with HTTP `status` (JSONP answers always say
/// 200; a problem inside carries the real status): the problem its body
/// holds if any, else whether the body is Myna's answer to the request
/// (`answer`). A 2xx whose body is neither did not come from Myna (a
/// portal, a CDN, a body cut short): a [`Code::Network`] failure, retried.
pub(crate) fn judge(
    status: u16,
    problem: Option<Problem>,
    answer: bool,
    retry_after: Option<f64>,
) -> Verdict {
    let kind = match &problem {
        Some(p) => Body::Problem(p),
        None if answer => Body::Answer,
        None => Body::Foreign,
    };
    let fate = classify(status, kind);
    let foreign = matches!(kind, Body::Foreign) && (200..300).contains(&status);
    let problem = match (fate, problem) {
        (Fate::Sent, _) => None,
        (_, Some(p)) => Some(p),
        _ if foreign => Some(Problem::new(
            Code::Network,
            "The answer did not come from the Myna server (a proxy or portal in the way?).",
        )),
        _ => Some(Problem::of_status(status)),
    };
    Verdict {
        fate,
        problem,
        from_server: !foreign,
        retry_after,
    }
}

/// The verdict when no answer came: the request timed out
/// ([`Code::Timeout`]) or failed ([`Code::Network`]); retried.
pub(crate) fn unanswered(timeout: bool) -> Verdict {
    let (code, message) = if timeout {
        (Code::Timeout, "The server did not answer in time.")
    } else {
        (Code::Network, "The server could not be reached.")
    };
    Verdict {
        fate: Fate::Retry,
        problem: Some(Problem::new(code, message)),
        from_server: false,
        retry_after: None,
    }
}

/// The delay before retry number `attempt` (0 for the first retry), with
/// "equal jitter" from `u` in `[0, 1)`: half the exponential delay plus a
/// random share of the other half, so clients that failed together spread
/// out. A server's `Retry-After` (milliseconds) is a lower bound.
pub(crate) fn delay_ms(attempt: u32, u: f64, retry_after_ms: Option<f64>) -> f64 {
    let exp = (BASE_MS * f64::from(1u32 << attempt.min(30))).min(MAX_MS);
    let u = if u.is_finite() {
        u.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let jittered = exp / 2.0 + u * exp / 2.0;
    match retry_after_ms {
        Some(after) if after.is_finite() && after > 0.0 => {
            jittered.max(after.min(MAX_RETRY_AFTER_MS))
        }
        _ => jittered,
    }
}

/// Reads a `Retry-After` header: delay seconds, or an HTTP date that
/// `parse_date` turns into epoch milliseconds; `None` if it is neither. A
/// date is the answerer's clock: it is read against the answer's `Date`
/// (`server_now_ms`) when there is one, so a page whose clock is wrong
/// still waits as long as it was asked; else against the page's `now_ms`.
pub(crate) fn retry_after_ms(
    header: &str,
    now_ms: f64,
    server_now_ms: Option<f64>,
    parse_date: impl FnOnce(&str) -> Option<f64>,
) -> Option<f64> {
    // ASCII whitespace only (HTTP's is spaces and tabs): `trim` would bring
    // Unicode's whitespace table into the wasm.
    let header = header.trim_ascii();
    if !header.is_empty() && header.bytes().all(|b| b.is_ascii_digit()) {
        // Integer parsing: f64 parsing would add some 5 KB to the wasm.
        return parse_decimal(header).map(|s| s as f64 * 1000.0);
    }
    let now = server_now_ms.filter(|t| t.is_finite()).unwrap_or(now_ms);
    parse_date(header).map(|at| (at - now).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_core::Message;

    #[test]
    fn verdicts_say_what_failed_and_whether_the_server_said_it() {
        let refused = Problem::at(Code::UnknownVariant, "events[0].variant", "x");
        let v = judge(400, Some(refused.clone()), false, None);
        assert_eq!((v.fate, v.from_server), (Fate::Dropped, true));
        assert_eq!(v.problem, Some(refused));
        let v = judge(200, None, true, Some(5.0));
        assert_eq!((v.fate, &v.problem), (Fate::Sent, &None));
        // A portal's page: not the server's, a network failure, retried.
        let v = judge(200, None, false, None);
        assert_eq!((v.fate, v.from_server), (Fate::Retry, false));
        assert_eq!(v.problem.map(|p| p.code()), Some(Code::Network));
        // A proxy's bare 502: the server's status, its own code.
        let v = judge(502, None, false, Some(1000.0));
        assert_eq!(
            (v.fate, v.from_server, v.retry_after),
            (Fate::Retry, true, Some(1000.0))
        );
        assert_eq!(v.problem, Some(Problem::of_status(502)));
        let v = judge(404, None, false, None);
        assert_eq!(v.fate, Fate::Dropped);
        assert_eq!(v.problem.map(|p| p.code()), Some(Code::NotFound));
        for (timeout, code) in [(true, Code::Timeout), (false, Code::Network)] {
            let v = unanswered(timeout);
            assert_eq!((v.fate, v.from_server), (Fate::Retry, false));
            assert_eq!(v.problem.map(|p| p.code()), Some(code));
        }
    }

    #[test]
    fn success_drop_and_retry_by_status() {
        assert_eq!(classify(200, Body::Answer), Fate::Sent);
        for status in [500, 502, 503, 504, 429, 408] {
            assert_eq!(classify(status, Body::Foreign), Fate::Retry, "{status}");
        }
        for status in [400, 401, 403, 404, 405, 409, 413, 422] {
            assert_eq!(classify(status, Body::Foreign), Fate::Dropped, "{status}");
        }
    }

    #[test]
    fn a_408_is_retried_like_429_and_5xx() {
        assert_eq!(classify(408, Body::Foreign), Fate::Retry);
        let timeout = Problem {
            status: 408,
            messages: vec![Message::new(Code::Timeout, "too slow")],
        };
        assert_eq!(classify(408, Body::Problem(&timeout)), Fate::Retry);
        // JSONP: a 408 inside a 200.
        let inside = Problem {
            status: 408,
            messages: vec![Message::new(Code::InvalidValue, "too slow")],
        };
        assert_eq!(classify(200, Body::Problem(&inside)), Fate::Retry);
    }

    #[test]
    fn a_2xx_that_is_not_mynas_answer_is_retried_not_taken_as_sent() {
        // A captive portal's page, an empty body, JSON cut short: not delivered.
        assert_eq!(classify(200, Body::Foreign), Fate::Retry);
        assert_eq!(classify(204, Body::Foreign), Fate::Retry);
        assert_eq!(classify(201, Body::Answer), Fate::Sent);
    }

    #[test]
    fn a_problem_body_decides_by_cores_rule() {
        let bad = Problem::at(Code::UnknownVariant, "events[0].variant", "x");
        assert_eq!(classify(400, Body::Problem(&bad)), Fate::Dropped);
        let down = Problem::new(Code::Unavailable, "later");
        assert_eq!(classify(503, Body::Problem(&down)), Fate::Retry);
        // JSONP answers 200 with the would-be status inside the problem.
        assert_eq!(classify(200, Body::Problem(&bad)), Fate::Dropped);
        assert_eq!(classify(200, Body::Problem(&down)), Fate::Retry);
        let throttled = Problem {
            status: 429,
            messages: vec![Message::new(Code::Unavailable, "slow down")],
        };
        assert_eq!(classify(429, Body::Problem(&throttled)), Fate::Retry);
    }

    #[test]
    fn delays_grow_exponentially_with_bounded_jitter() {
        for attempt in 0..12 {
            let exp = (BASE_MS * 2f64.powi(attempt)).min(MAX_MS);
            let low = delay_ms(attempt as u32, 0.0, None);
            let high = delay_ms(attempt as u32, 0.999_999, None);
            assert_eq!(low, exp / 2.0);
            assert!(high < exp && high > exp * 0.99, "{attempt}: {high}");
        }
        assert_eq!(delay_ms(1000, 1.0, None), MAX_MS);
        assert_eq!(delay_ms(0, f64::NAN, None), 750.0);
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        assert_eq!(delay_ms(0, 0.0, Some(30_000.0)), 30_000.0);
        assert_eq!(delay_ms(0, 0.0, Some(1.0)), 500.0);
        assert_eq!(
            delay_ms(0, 0.0, Some(1e12)),
            MAX_RETRY_AFTER_MS,
            "a huge Retry-After cannot stall the queue forever"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after_ms("120", 0.0, None, |_| None), Some(120_000.0));
        assert_eq!(retry_after_ms(" 0 ", 0.0, None, |_| None), Some(0.0));
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        let at = 1_445_412_480_000.0;
        let parse = |text: &str| (text == date).then_some(at);
        assert_eq!(
            retry_after_ms(date, at - 5_000.0, None, parse),
            Some(5_000.0)
        );
        assert_eq!(retry_after_ms(date, at + 5_000.0, None, parse), Some(0.0));
        assert_eq!(retry_after_ms("soon", 0.0, None, |_| None), None);
        assert_eq!(retry_after_ms("-3", 0.0, None, |_| None), None);
    }

    #[test]
    fn a_retry_after_date_is_read_on_the_answerers_clock() {
        let date = "Wed, 21 Oct 2015 07:28:20 GMT";
        let at = 1_445_412_500_000.0;
        let parse = |text: &str| (text == date).then_some(at);
        // The answer's `Date` says 20 s before; the page's clock is two days fast.
        let page_now = at + 2.0 * 86_400_000.0;
        assert_eq!(
            retry_after_ms(date, page_now, Some(at - 20_000.0), parse),
            Some(20_000.0),
            "a wrong page clock still waits as long as it was asked"
        );
        assert_eq!(
            retry_after_ms(date, at - 7_000.0, Some(f64::NAN), parse),
            Some(7_000.0),
            "without a readable Date, the page's clock"
        );
    }
}
