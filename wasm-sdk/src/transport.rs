//! Getting bytes to the server and answers back: `fetch` with a timeout,
//! JSONP script tags with a callback registry, `navigator.sendBeacon`, and the
//! URLs of the v2 API. What an answer *means* (sent, dropped, retry) is
//! [`crate::retry`]'s business.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use myna_core::{Code, Message, Problem};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, HtmlScriptElement, RequestCredentials, RequestInit, Response};

use crate::experiment::get;
use crate::retry::{self, Fate};

/// What came back from one request.
#[derive(Debug)]
pub enum Answer {
    /// A JSON answer (`null` when the body was not JSON). JSONP answers always
    /// come with status 200; a problem inside carries the real status.
    Json {
        /// The HTTP status.
        status: u16,
        /// The parsed body.
        body: JsValue,
        /// The server's `Retry-After`, in milliseconds.
        retry_after: Option<f64>,
    },
    /// No answer: [`Code::Network`] or [`Code::Timeout`].
    Failed(Code),
}

/// What an answer means for the request that got it.
#[derive(Debug)]
pub struct Verdict {
    /// Sent, dropped or retry.
    pub fate: Fate,
    /// The body of a successful answer.
    pub body: JsValue,
    /// Why it failed (the server's problem, or one made up for a bare status).
    pub problem: Option<Problem>,
    /// Whether the problem came from the server (then it has a `status`).
    pub from_server: bool,
    /// The server's `Retry-After`, in milliseconds.
    pub retry_after: Option<f64>,
}

impl Answer {
    /// Judges the answer with [`retry::classify`].
    pub fn verdict(self) -> Verdict {
        match self {
            Answer::Failed(code) => Verdict {
                fate: Fate::Retry,
                body: JsValue::NULL,
                problem: Some(Problem::new(
                    code,
                    if code == Code::Timeout {
                        "The server did not answer in time."
                    } else {
                        "The server could not be reached."
                    },
                )),
                from_server: false,
                retry_after: None,
            },
            Answer::Json {
                status,
                body,
                retry_after,
            } => {
                let problem = problem_of(&body);
                let fate = retry::classify(status, problem.as_ref());
                let problem = match (fate, problem) {
                    (Fate::Sent, _) => None,
                    (_, Some(p)) => Some(p),
                    (_, None) => Some(bare_status(status)),
                };
                Verdict {
                    fate,
                    body,
                    problem,
                    from_server: true,
                    retry_after,
                }
            }
        }
    }
}

/// The problem in a body, if the body is one: core's [`Problem::from_json`]
/// read from the JS value (unknown codes become `internal`).
pub fn problem_of(body: &JsValue) -> Option<Problem> {
    if get(body, "typename").as_string().as_deref() != Some("problem") {
        return None;
    }
    let status = get(body, "status").as_f64()?;
    if !(100.0..600.0).contains(&status) {
        return None;
    }
    let listed = get(body, "messages");
    let messages = if Array::is_array(&listed) {
        Array::from(&listed)
            .iter()
            .map(|m| Message {
                code: get(&m, "typename")
                    .as_string()
                    .and_then(|t| Code::from_typename(&t))
                    .unwrap_or(Code::Internal),
                message: get(&m, "message").as_string().unwrap_or_default(),
                path: get(&m, "path").as_string(),
                data: None,
            })
            .collect()
    } else {
        Vec::new()
    };
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
        409 => Code::Conflict,
        413 => Code::BodyTooLarge,
        429 | 503 => Code::Unavailable,
        500.. => Code::Internal,
        _ => Code::InvalidValue,
    };
    Problem {
        status,
        messages: vec![Message::new(
            code,
            ["The server answered HTTP ", &status.to_string(), "."].concat(),
        )],
    }
}

/// A request by `fetch`: no cookies, `auth` as the `Authorization` header, a
/// `text/plain` body (a CORS "simple" request: no preflight), aborted after
/// `timeout_ms`.
pub async fn fetch(
    method: &str,
    url: &str,
    auth: Option<&str>,
    body: Option<&str>,
    timeout_ms: f64,
) -> Answer {
    let Some(window) = web_sys::window() else {
        return Answer::Failed(Code::Network);
    };
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::Omit);
    let headers = Object::new();
    if let Some(auth) = auth {
        let _ = Reflect::set(&headers, &"Authorization".into(), &auth.into());
    }
    if let Some(body) = body {
        let _ = Reflect::set(&headers, &"Content-Type".into(), &"text/plain".into());
        init.set_body(&body.into());
    }
    init.set_headers(&headers);
    let controller = AbortController::new().ok();
    if let Some(c) = &controller {
        init.set_signal(Some(&c.signal()));
    }
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let abort = Closure::once(move || {
        flag.set(true);
        if let Some(c) = controller {
            c.abort();
        }
    });
    let timer = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            abort.as_ref().unchecked_ref(),
            timeout_ms as i32,
        )
        .unwrap_or(0);
    let result = async {
        let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
            .await?
            .dyn_into()?;
        let status = response.status();
        let retry_after = response.headers().get("Retry-After").ok().flatten();
        let body = match response.json() {
            Ok(json) => JsFuture::from(json).await.unwrap_or(JsValue::NULL),
            Err(_) => JsValue::NULL,
        };
        Ok::<_, JsValue>((status, body, retry_after))
    }
    .await;
    window.clear_timeout_with_handle(timer);
    drop(abort);
    match result {
        Ok((status, body, retry_after)) => Answer::Json {
            status,
            body,
            retry_after: retry_after.and_then(|h| {
                retry::retry_after_ms(&h, js_sys::Date::now(), |d| {
                    let at = js_sys::Date::parse(d);
                    at.is_finite().then_some(at)
                })
            }),
        },
        Err(_) if timed_out.get() => Answer::Failed(Code::Timeout),
        Err(_) => Answer::Failed(Code::Network),
    }
}

/// The global object holding JSONP callbacks (`window.__mynaJsonp`).
pub const REGISTRY: &str = "__mynaJsonp";

thread_local! {
    static NEXT_CALLBACK: Cell<u32> = const { Cell::new(0) };
    /// Random per wasm instance, so two copies of the SDK on one page never
    /// share a callback name.
    static INSTANCE: String = ((js_sys::Math::random() * 1e9) as u32).to_string();
}

/// A GET by JSONP: a script tag whose answer calls `__mynaJsonp.c<i>_<n>`. The
/// script is removed whatever happens; after a timeout the callback stays
/// registered (as a no-op) so a late answer finds it.
pub async fn jsonp(url: &str, timeout_ms: f64) -> Answer {
    let Some(window) = web_sys::window() else {
        return Answer::Failed(Code::Network);
    };
    let Some(document) = window.document() else {
        return Answer::Failed(Code::Network);
    };
    let registry: Object = {
        let existing = get(&window, REGISTRY);
        if existing.is_object() {
            existing
        } else {
            let fresh: JsValue = Object::new().into();
            let _ = Reflect::set(&window, &REGISTRY.into(), &fresh);
            fresh
        }
    }
    .unchecked_into();
    let n = NEXT_CALLBACK.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    let name = INSTANCE.with(|i| ["c", i, "_", &n.to_string()].concat());
    let callback = [REGISTRY, ".", &name].concat();
    debug_assert!(myna_core::jsonp::validate_callback(&callback).is_ok());

    // 0 pending, 1 answered, 2 script error, 3 timed out.
    let outcome = Rc::new(Cell::new(0u8));
    let mut resolve: Option<Function> = None;
    let promise = Promise::new(&mut |ok, _| resolve = Some(ok));
    let Some(resolve) = resolve else {
        return Answer::Failed(Code::Network);
    };
    let settle = |code: u8| {
        let outcome = outcome.clone();
        let resolve = resolve.clone();
        move |value: JsValue| {
            if outcome.get() == 0 {
                outcome.set(code);
            }
            let _ = resolve.call1(&JsValue::UNDEFINED, &value);
        }
    };
    let answered = Closure::once_into_js(settle(1));
    let _ = Reflect::set(&registry, &name.as_str().into(), &answered);
    let on_error = Closure::<dyn FnMut(JsValue)>::new(settle(2));
    let on_timeout = Closure::once(settle(3));

    let separator = if url.contains('?') { "&" } else { "?" };
    let src = [url, separator, "callback=", &callback].concat();
    let script: Option<HtmlScriptElement> = document
        .create_element("script")
        .ok()
        .and_then(|e| e.dyn_into().ok());
    let Some(script) = script else {
        return Answer::Failed(Code::Network);
    };
    script.set_src(&src);
    script.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let parent = document
        .head()
        .map(web_sys::Element::from)
        .or_else(|| document.document_element());
    if let Some(parent) = parent {
        let _ = parent.append_child(&script);
    }
    let timer = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            on_timeout.as_ref().unchecked_ref(),
            timeout_ms as i32,
        )
        .unwrap_or(0);

    let value = JsFuture::from(promise).await.unwrap_or(JsValue::NULL);

    window.clear_timeout_with_handle(timer);
    script.set_onerror(None);
    script.remove();
    match outcome.get() {
        1 => {
            let _ = Reflect::delete_property(&registry, &JsValue::from_str(&name));
            Answer::Json {
                status: 200,
                body: value,
                retry_after: None,
            }
        }
        2 => {
            let _ = Reflect::delete_property(&registry, &JsValue::from_str(&name));
            Answer::Failed(Code::Network)
        }
        _ => Answer::Failed(Code::Timeout),
    }
}

/// Queues `body` for delivery by `navigator.sendBeacon` (a `text/plain` POST
/// that outlives the page); whether the browser accepted it.
pub fn beacon(url: &str, body: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}

/// The URLs of the v2 API (pure).
pub mod url {
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
        [
            root,
            "/v2/experiment?limit=",
            &limit.to_string(),
            "&skip=",
            &skip.to_string(),
        ]
        .concat()
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
