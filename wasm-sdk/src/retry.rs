//! What to do with an answer (sent, dropped, retried) and how long to wait
//! before retrying. Pure logic, tested natively.

use myna_core::Problem;

use crate::queue::parse_decimal;

/// First retry delay, in milliseconds.
pub const BASE_MS: f64 = 1_000.0;
/// Longest delay between retries, in milliseconds.
pub const MAX_MS: f64 = 5.0 * 60_000.0;
/// Longest `Retry-After` honoured, in milliseconds (a larger one is capped).
pub const MAX_RETRY_AFTER_MS: f64 = 60.0 * 60_000.0;

/// The fate of a batch after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The server confirmed it: forget it.
    Sent,
    /// The server refused it for good (a 4xx): drop it and tell the page.
    Dropped,
    /// Try again later (network error, timeout, 5xx, 429).
    Retry,
}

/// The fate of an answer with HTTP `status` and, when the body was a problem,
/// that problem (whose own rule, [`Problem::is_retryable`], decides).
pub fn classify(status: u16, problem: Option<&Problem>) -> Fate {
    if (200..300).contains(&status) && problem.is_none() {
        return Fate::Sent;
    }
    let retry = match problem {
        Some(problem) => problem.is_retryable(),
        None => status >= 500 || status == 429,
    };
    if retry { Fate::Retry } else { Fate::Dropped }
}

/// The delay before retry number `attempt` (0 for the first retry), with
/// "equal jitter" from `u` in `[0, 1)`: half the exponential delay plus a
/// random share of the other half, so clients that failed together spread
/// out. A server's `Retry-After` (milliseconds) is a lower bound.
pub fn delay_ms(attempt: u32, u: f64, retry_after_ms: Option<f64>) -> f64 {
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
/// `parse_date` turns into epoch milliseconds; `None` if it is neither.
pub fn retry_after_ms(
    header: &str,
    now_ms: f64,
    parse_date: impl FnOnce(&str) -> Option<f64>,
) -> Option<f64> {
    // ASCII whitespace only (HTTP's is spaces and tabs): `trim` would bring
    // Unicode's whitespace table into the wasm.
    let header = header.trim_ascii();
    if !header.is_empty() && header.bytes().all(|b| b.is_ascii_digit()) {
        // Integer parsing: f64 parsing would add some 5 KB to the wasm.
        return parse_decimal(header).map(|s| s as f64 * 1000.0);
    }
    parse_date(header).map(|at| (at - now_ms).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_core::{Code, Message};

    #[test]
    fn success_drop_and_retry_by_status() {
        assert_eq!(classify(200, None), Fate::Sent);
        assert_eq!(classify(204, None), Fate::Sent);
        for status in [500, 502, 503, 504, 429] {
            assert_eq!(classify(status, None), Fate::Retry, "{status}");
        }
        for status in [400, 401, 403, 404, 405, 409, 413, 422] {
            assert_eq!(classify(status, None), Fate::Dropped, "{status}");
        }
    }

    #[test]
    fn a_problem_body_decides_by_cores_rule() {
        let bad = Problem::at(Code::UnknownVariant, "events[0].variant", "x");
        assert_eq!(classify(400, Some(&bad)), Fate::Dropped);
        let down = Problem::new(Code::Unavailable, "later");
        assert_eq!(classify(503, Some(&down)), Fate::Retry);
        // JSONP answers 200 with the would-be status inside the problem.
        assert_eq!(classify(200, Some(&bad)), Fate::Dropped);
        assert_eq!(classify(200, Some(&down)), Fate::Retry);
        let throttled = Problem {
            status: 429,
            messages: vec![Message::new(Code::Unavailable, "slow down")],
        };
        assert_eq!(classify(429, Some(&throttled)), Fate::Retry);
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
        assert_eq!(retry_after_ms("120", 0.0, |_| None), Some(120_000.0));
        assert_eq!(retry_after_ms(" 0 ", 0.0, |_| None), Some(0.0));
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        let at = 1_445_412_480_000.0;
        let parse = |text: &str| (text == date).then_some(at);
        assert_eq!(retry_after_ms(date, at - 5_000.0, parse), Some(5_000.0));
        assert_eq!(retry_after_ms(date, at + 5_000.0, parse), Some(0.0));
        assert_eq!(retry_after_ms("soon", 0.0, |_| None), None);
        assert_eq!(retry_after_ms("-3", 0.0, |_| None), None);
    }
}
