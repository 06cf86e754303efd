//! Webhooks on the wire: the create body and its URL rules, the webhook
//! answer, what an experiment's decision is watched for ([`Observation`]),
//! the events a change makes ([`events`]) and the event form a delivery
//! posts ([`event_body`]).
//!
//! **Decision** (what counts as a change): an experiment is compared with
//! the observation last notified for it. A different verdict is one
//! `verdict-changed`; one or more health checks that start failing are one
//! `health-failing`, and checks that stop failing one `health-recovered`
//! (the event carries the whole decision form, whose `health` says which).
//! The first observation of an experiment is stored silently, except that
//! checks already failing then are a `health-failing`: a verdict is only
//! news once there was one before it.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::decision::{Decision, Status};
use crate::event::{MAX_BODY_BYTES, body_too_large};
use crate::limits::{MAX_WEBHOOK_URL_BYTES, over_limit};
use crate::problem::{BODY_PATH, Code, Problem};
use crate::timestamp::format_iso;

/// The header a delivery is signed in: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "Myna-Signature";

/// The fields a webhook create body reads.
const WEBHOOK_FIELDS: &[&str] = &["url"];

/// Parses a webhook create body `{ "url": "https://…" }` (no other field);
/// answers the URL, checked by [`check_url`], in its [`normal_url`] form.
pub fn parse_webhook_create(body: &[u8]) -> Result<String, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large(body.len()));
    }
    let root = match crate::json::parse_body(body)? {
        Value::Object(map) => map,
        _ => {
            return Err(Problem::at(
                Code::InvalidType,
                BODY_PATH,
                "The body must be a JSON object.",
            ));
        }
    };
    let mut problems = Vec::new();
    crate::json::unknown_fields(root.keys(), "", WEBHOOK_FIELDS, "a webhook", &mut problems);
    let url = match root.get("url") {
        None | Some(Value::Null) => Err(Problem::at(
            Code::MissingField,
            "url",
            "`url` is required: the address deliveries are posted to.",
        )),
        Some(Value::String(url)) => check_url(url).map(|()| normal_url(url)),
        Some(_) => Err(Problem::at(
            Code::InvalidType,
            "url",
            "`url` must be a string.",
        )),
    };
    match url {
        Ok(url) if problems.is_empty() => Ok(url),
        Ok(_) => Err(Problem::many(problems)),
        Err(refused) => {
            problems.extend(refused.messages);
            Err(Problem::many(problems))
        }
    }
}

/// The rules of a webhook URL: `http://` or `https://` (any case), a host,
/// an optional port from 1 to 65535, at most [`MAX_WEBHOOK_URL_BYTES`]
/// bytes of printable ASCII (an international host in its `xn--` form),
/// no user name or password (`user@host`: secrets belong in the signature,
/// not in a URL shown on the dashboard), and what the sender's URL parser
/// (reqwest's, the `url` crate) reads with a host. The problem is at `url`.
pub fn check_url(url: &str) -> Result<(), Problem> {
    let bad = |message: &str| Problem::at(Code::InvalidValue, "url", message);
    if url.len() > MAX_WEBHOOK_URL_BYTES {
        return Err(Problem::one(over_limit(
            Code::InvalidValue,
            "url",
            MAX_WEBHOOK_URL_BYTES,
            format!("A webhook URL may be at most {MAX_WEBHOOK_URL_BYTES} bytes long."),
        )));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("A webhook URL must be printable ASCII without spaces \
             (percent-encode the rest; an international host in its xn-- form)."));
    }
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return Err(bad("A webhook URL must start with https:// or http://."));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad(
            "A webhook URL may not hold a user name or password (user@host).",
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(inner) => match inner.split_once(']') {
            Some((host, after)) if !host.is_empty() => match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("A webhook URL's host is malformed.")),
                },
            },
            _ => return Err(bad("A webhook URL's host is malformed.")),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Err(bad("A webhook URL must name a host."));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !valid {
            return Err(bad(
                "A webhook URL's port must be a number from 1 to 65535.",
            ));
        }
    }
    // What passed is read as the sender will read it (an IPv6 literal that
    // is one, an IPv4 address in range, a name's labels), so nothing is
    // accepted that could never be delivered.
    match url::Url::parse(url) {
        Ok(parsed) if parsed.host().is_some() => Ok(()),
        _ => Err(bad("A webhook URL's host is malformed.")),
    }
}

/// A checked webhook URL as it is stored, so one resource has one spelling
/// (an account's URLs are kept unique: the same receiver twice would get
/// every event twice): scheme and host in lower case, no default port, no
/// fragment (never sent), percent-encoded unreserved characters decoded
/// (`%6f` is `o`) and the other escapes' hex in upper case.
pub fn normal_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    parsed.set_fragment(None);
    let text = parsed.as_str();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None => {
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}

/// One webhook on the wire: `{ "typename": "webhook", "uuid", "url",
/// "created", "secret"? }`; the secret only in the answer that creates it.
pub fn webhook_answer(uuid: Uuid, url: &str, created_ms: i64, secret: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("typename".into(), "webhook".into());
    out.insert("uuid".into(), json!(uuid));
    out.insert("url".into(), url.into());
    out.insert("created".into(), format_iso(created_ms).into());
    if let Some(secret) = secret {
        out.insert("secret".into(), secret.into());
    }
    Value::Object(out)
}

/// What a webhook tells about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The verdict is not the one last notified.
    VerdictChanged,
    /// A health check fails that did not.
    HealthFailing,
    /// A health check that failed does not any more.
    HealthRecovered,
}

impl Event {
    /// The wire name (`event` of the event form).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::VerdictChanged => "verdict-changed",
            Event::HealthFailing => "health-failing",
            Event::HealthRecovered => "health-recovered",
        }
    }

    /// Reads the wire name back.
    pub fn parse(text: &str) -> Option<Event> {
        match text {
            "verdict-changed" => Some(Event::VerdictChanged),
            "health-failing" => Some(Event::HealthFailing),
            "health-recovered" => Some(Event::HealthRecovered),
            _ => None,
        }
    }
}

/// What is watched of a decision: its verdict and which health checks fail
/// (their `typename`s, sorted, without repeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The verdict's wire name.
    pub verdict: String,
    /// The failing checks' typenames, sorted.
    pub failing: Vec<String>,
}

impl Observation {
    /// What `decision` shows.
    pub fn of(decision: &Decision) -> Observation {
        let mut failing: Vec<String> = decision
            .health
            .iter()
            .filter(|c| c.status == Status::Failing)
            .map(|c| c.typename.to_owned())
            .collect();
        failing.sort();
        failing.dedup();
        Observation {
            verdict: decision.verdict.as_str().to_owned(),
            failing,
        }
    }
}

/// The events of going from `previous` (the observation last notified;
/// `None` for an experiment never observed) to `now`, in the order
/// verdict, failing, recovered. Empty when nothing changed.
pub fn events(previous: Option<&Observation>, now: &Observation) -> Vec<Event> {
    let Some(previous) = previous else {
        return if now.failing.is_empty() {
            Vec::new()
        } else {
            vec![Event::HealthFailing]
        };
    };
    let mut out = Vec::new();
    if previous.verdict != now.verdict {
        out.push(Event::VerdictChanged);
    }
    if now.failing.iter().any(|t| !previous.failing.contains(t)) {
        out.push(Event::HealthFailing);
    }
    if previous.failing.iter().any(|t| !now.failing.contains(t)) {
        out.push(Event::HealthRecovered);
    }
    out
}

/// The event form a delivery posts: `{ "typename": "event", "event",
/// "experiment", "at", "decision": <decision form> }` (`at`: when the
/// change was seen, ISO 8601 UTC), as the exact bytes that are signed.
pub fn event_body(event: Event, experiment: Uuid, at_ms: i64, decision: &Decision) -> String {
    json!({
        "typename": "event",
        "event": event.as_str(),
        "experiment": experiment,
        "at": format_iso(at_ms),
        "decision": decision.to_json(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(verdict: &str, failing: &[&str]) -> Observation {
        Observation {
            verdict: verdict.into(),
            failing: failing.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn urls_follow_the_rules() {
        for ok in [
            "https://example.com/hook",
            "http://127.0.0.1:8080/x?y=1",
            "HTTPS://Example.COM",
            "http://[::1]:9000/",
            "http://[2001:db8::8a2e:370:7334]/hook",
            "http://my_host.internal/",
            "https://xn--bcher-kva.example/a%20b",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://example.com/",
            "example.com",
            "https://",
            "https:///path",
            "https://user:pw@example.com/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://example.com:/",
            "https://exa mple.com/",
            "https://bücher.example/",
            "https://[::1/",
            "http://[zz]/",
            "http://[::1%25eth0]/",
            "http://10.0.0.256/",
            "http://a:b:c/",
            "javascript:alert(1)",
        ] {
            let problem = check_url(bad).expect_err(bad);
            assert_eq!(problem.messages[0].path.as_deref(), Some("url"), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_BYTES));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn create_bodies_are_read_with_their_problems() {
        assert_eq!(
            parse_webhook_create(br#"{"url": "https://example.com/h"}"#),
            Ok("https://example.com/h".into())
        );
        // One spelling per resource: an account cannot add the same twice.
        for same in [
            "https://example.com/h",
            "HTTPS://EXAMPLE.COM/h",
            "https://example.com:443/h",
            "https://example.com/h#part",
            "https://example.com/%68",
        ] {
            let body = format!(r#"{{"url": "{same}"}}"#);
            assert_eq!(
                parse_webhook_create(body.as_bytes()),
                Ok("https://example.com/h".into()),
                "{same}"
            );
        }
        assert_eq!(
            normal_url("http://h.example/a%2fb?q=%e2%82%ac"),
            "http://h.example/a%2Fb?q=%E2%82%AC"
        );
        assert_eq!(
            normal_url("http://h.example/Upper"),
            "http://h.example/Upper"
        );
        let code = |body: &[u8]| parse_webhook_create(body).expect_err("refused").messages[0].code;
        assert_eq!(code(b"{}"), Code::MissingField);
        assert_eq!(code(br#"{"url": 3}"#), Code::InvalidType);
        assert_eq!(code(br#"{"url": "ftp://x"}"#), Code::InvalidValue);
        assert_eq!(code(b"[]"), Code::InvalidType);
        assert_eq!(code(b"{"), Code::InvalidJson);
    }

    #[test]
    fn a_first_observation_tells_only_of_failing_checks() {
        assert!(events(None, &observation("leading", &[])).is_empty());
        assert_eq!(
            events(None, &observation("collecting", &["sample-ratio"])),
            [Event::HealthFailing]
        );
    }

    #[test]
    fn changes_make_one_event_of_each_kind() {
        let before = observation("leading", &["sample-ratio"]);
        assert!(events(Some(&before), &before.clone()).is_empty());
        assert_eq!(
            events(Some(&before), &observation("decided", &["sample-ratio"])),
            [Event::VerdictChanged]
        );
        assert_eq!(
            events(
                Some(&before),
                &observation("leading", &["sample-ratio", "stopped", "unseen"])
            ),
            [Event::HealthFailing]
        );
        assert_eq!(
            events(Some(&before), &observation("decided", &["stopped"])),
            [
                Event::VerdictChanged,
                Event::HealthFailing,
                Event::HealthRecovered
            ]
        );
        for event in [
            Event::VerdictChanged,
            Event::HealthFailing,
            Event::HealthRecovered,
        ] {
            assert_eq!(Event::parse(event.as_str()), Some(event));
        }
    }
}
