//! Requests and what their answers mean: the requests `js/glue.js` sends
//! (fetch with a timeout, or a JSONP script tag), `navigator.sendBeacon`,
//! the URLs of the v2 API, and the verdict on an answer (sent, dropped,
//! retry: [`crate::retry`]'s rules) with its problem.

use alloc::vec;
use alloc::vec::Vec;

use myna_core::{Code, Message, Problem};
use wasm_bindgen::prelude::*;

use crate::experiment::get;
use crate::queue::push_decimal;
use crate::retry::{self, Body, Fate};
use crate::storage::array;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// The request `[url, auth, body, timeoutMs, jsonp, tag]` as glue.js sends
    /// it: a GET (a POST when there is a body) by fetch with `auth` as the
    /// `Authorization` header, or a JSONP script tag; `tag` comes back with
    /// the answer.
    pub fn request(
        url: &str,
        auth: Option<&str>,
        body: Option<&str>,
        timeout_ms: f64,
        jsonp: bool,
        tag: &JsValue,
    ) -> JsValue;
}

#[wasm_bindgen]
extern "C" {
    /// `navigator.sendBeacon` (throws where there is no navigator).
    #[wasm_bindgen(js_namespace = navigator, js_name = sendBeacon, catch)]
    fn send_beacon(url: &str, body: &str) -> Result<bool, JsValue>;
}

/// The `tag` a request carries.
pub fn request_tag(request: &JsValue) -> JsValue {
    array(request).map_or(JsValue::UNDEFINED, |r| r.get(5))
}

/// What Myna answers a request with when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A read form (`typename` "experiment"): the read and record endpoints.
    Form,
    /// The search answer (`{ "results": [...] }`).
    Search,
}

/// Whether `body` is Myna's successful answer of kind `want`.
fn is_answer(body: &JsValue, want: Want) -> bool {
    match want {
        Want::Form => get(body, "typename").as_string().as_deref() == Some("experiment"),
        Want::Search => array(&get(body, "results")).is_some(),
    }
}

/// What an answer means for the request that got it.
#[derive(Debug)]
pub struct Verdict {
    /// Sent, dropped or retry.
    pub fate: Fate,
    /// The body of the answer (`null` when there was none, or it was not JSON).
    pub body: JsValue,
    /// Why it failed (the server's problem, or one made up for a bare status).
    pub problem: Option<Problem>,
    /// Whether the problem came from the server (then it has a `status`).
    pub from_server: bool,
    /// The server's `Retry-After`, in milliseconds.
    pub retry_after: Option<f64>,
}

/// Judges what glue.js answered to a request whose success is `want`:
/// `[status, body, Retry-After, Retry-After as a date, Date]` (JSONP
/// answers always come with status 200 and no headers; a problem inside
/// carries the real status; a script that ran without calling back has no
/// body), or `"network"` / `"timeout"` when no answer came
/// ([`Code::Network`], [`Code::Timeout`]). A 2xx whose body is neither
/// Myna's answer nor a problem did not come from Myna (a portal, a CDN, a
/// body cut short): a [`Code::Network`] failure, retried.
pub fn verdict(answer: &JsValue, want: Want) -> Verdict {
    let Some(answer) = array(answer) else {
        let timeout = answer.as_string().as_deref() == Some("timeout");
        let (code, message) = if timeout {
            (Code::Timeout, "The server did not answer in time.")
        } else {
            (Code::Network, "The server could not be reached.")
        };
        return Verdict {
            fate: Fate::Retry,
            body: JsValue::NULL,
            problem: Some(Problem::new(code, message)),
            from_server: false,
            retry_after: None,
        };
    };
    let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
    let body = answer.get(1);
    let retry_after = answer.get(2).as_string().and_then(|h| {
        retry::retry_after_ms(&h, js_sys::Date::now(), answer.get(4).as_f64(), |_| {
            answer.get(3).as_f64().filter(|at| at.is_finite())
        })
    });
    let problem = problem_of(&body);
    let kind = match &problem {
        Some(p) => Body::Problem(p),
        None if is_answer(&body, want) => Body::Answer,
        None => Body::Foreign,
    };
    let fate = retry::classify(status, kind);
    let foreign = matches!(kind, Body::Foreign) && (200..300).contains(&status);
    let problem = match (fate, problem) {
        (Fate::Sent, _) => None,
        (_, Some(p)) => Some(p),
        _ if foreign => Some(Problem::new(
            Code::Network,
            "The answer did not come from the Myna server (a proxy or portal in the way?).",
        )),
        _ => Some(bare_status(status)),
    };
    Verdict {
        fate,
        body,
        problem,
        from_server: !foreign,
        retry_after,
    }
}

/// The problem in a body, if the body is one: core's problem form read from
/// the JS value (unknown codes become `internal`).
pub fn problem_of(body: &JsValue) -> Option<Problem> {
    if get(body, "typename").as_string().as_deref() != Some("problem") {
        return None;
    }
    let status = get(body, "status").as_f64()?;
    if !(100.0..600.0).contains(&status) {
        return None;
    }
    let mut messages = Vec::new();
    if let Some(listed) = array(&get(body, "messages")) {
        for m in listed.iter() {
            let code = get(&m, "typename")
                .as_string()
                .and_then(|t| Code::from_typename(&t))
                .unwrap_or(Code::Internal);
            let mut message =
                Message::new(code, get(&m, "message").as_string().unwrap_or_default());
            message.path = get(&m, "path").as_string();
            messages.push(message);
        }
    }
    Some(Problem {
        status: status as u16,
        messages,
    })
}

/// A problem for an error status whose body was not a problem (a proxy's page).
fn bare_status(status: u16) -> Problem {
    let code = match status {
        401 => Code::Authentication,
        403 => Code::Authorization,
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        408 => Code::Timeout,
        409 => Code::Conflict,
        413 => Code::BodyTooLarge,
        429 | 503 => Code::Unavailable,
        500.. => Code::Internal,
        _ => Code::InvalidValue,
    };
    let mut message = alloc::string::String::from("The server answered HTTP ");
    push_decimal(&mut message, u64::from(status));
    message.push('.');
    Problem {
        status,
        messages: vec![Message::new(code, message)],
    }
}

/// Queues `body` for delivery by `navigator.sendBeacon` (a `text/plain` POST
/// that outlives the page); whether the browser accepted it.
pub fn beacon(url: &str, body: &str) -> bool {
    send_beacon(url, body).unwrap_or(false)
}

/// The URLs of the v2 API (pure).
pub mod url {
    use alloc::string::String;

    use crate::queue::push_decimal;

    /// `{root}/v2/experiment/{uuid}`.
    pub fn experiment(root: &str, uuid: &str) -> String {
        [root, "/v2/experiment/", &encode(uuid)].concat()
    }

    /// `{root}/v2/experiment/{uuid}/record?apikey=…` (the key in the URL: the
    /// POST stays a CORS "simple" request, and a beacon cannot set headers).
    pub fn record(root: &str, uuid: &str, api_key: &str) -> String {
        [&experiment(root, uuid), "/record?apikey=", &encode(api_key)].concat()
    }

    /// `{root}/v2/experiment?limit=…&skip=…` (published experiments by default).
    pub fn search(root: &str, limit: usize, skip: usize) -> String {
        let mut out = [root, "/v2/experiment?limit="].concat();
        push_decimal(&mut out, limit as u64);
        out.push_str("&skip=");
        push_decimal(&mut out, skip as u64);
        out
    }

    /// `name=value&…`, each part URL-encoded.
    pub fn query(params: &[(&str, String)]) -> String {
        let mut out = String::new();
        for (i, (name, value)) in params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&encode(name));
            out.push('=');
            out.push_str(&encode(value));
        }
        out
    }

    /// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~` (UTF-8 bytes).
    pub fn encode(text: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn urls_of_the_v2_api() {
            let root = "https://ab.example.com";
            let uuid = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";
            assert_eq!(
                record(root, uuid, "k y"),
                "https://ab.example.com/v2/experiment/6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11/record?apikey=k%20y"
            );
            assert_eq!(
                search(root, 100, 200),
                "https://ab.example.com/v2/experiment?limit=100&skip=200"
            );
        }

        #[test]
        fn encoding_is_like_encode_uri_component_for_ids_and_text() {
            assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
            assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
            assert_eq!(
                query(&[("variant", "x y".into()), ("amount", "0.5".into())]),
                "variant=x%20y&amount=0.5"
            );
        }
    }
}
