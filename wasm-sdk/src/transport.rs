//! Requests and answers across the boundary: an [`api::Request`] as the
//! JS array `js/glue.js` sends (fetch with a timeout, or a JSONP script
//! tag), and what came back as a [`Verdict`] ([`crate::retry`]'s rules)
//! with its body.

use js_sys::Date;
use myna_core::Problem;
use wasm_bindgen::JsValue;

use crate::api::Request;
use crate::glue;
use crate::js::{Js, array, get};
use crate::retry::{self, Verdict};

/// A request as `js/glue.js` sends it (`undefined` for none); a search
/// page's `skip` rides along as its tag.
pub(crate) fn to_js(request: Option<&Request>) -> JsValue {
    let Some(r) = request else {
        return JsValue::UNDEFINED;
    };
    let page = r
        .page
        .map_or(JsValue::UNDEFINED, |skip| (skip as f64).into());
    glue::request(
        &r.url,
        r.auth.as_deref(),
        r.body.as_deref(),
        r.timeout_ms,
        r.jsonp,
        &page,
    )
}

/// The search page (`skip`) a request was for, if it was one.
pub(crate) fn page(request: &JsValue) -> Option<usize> {
    array(request)
        .and_then(|r| r.get(5).as_f64())
        .map(|skip| skip as usize)
}

/// What Myna answers a request with when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
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

/// Judges what glue.js answered to a request whose success is `want`:
/// `[status, body, Retry-After, Retry-After as a date, Date]` (JSONP
/// answers always come with status 200 and no headers; a problem inside
/// carries the real status; a script that ran without calling back has no
/// body), or `"network"` / `"timeout"` when no answer came. The verdict,
/// and the body (`null` when there was none).
pub(crate) fn verdict(answer: &JsValue, want: Want) -> (Verdict, JsValue) {
    let Some(answer) = array(answer) else {
        let timeout = answer.as_string().as_deref() == Some("timeout");
        return (retry::unanswered(timeout), JsValue::NULL);
    };
    let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
    let body = Js(answer.get(1));
    let retry_after = answer.get(2).as_string().and_then(|h| {
        retry::retry_after_ms(&h, Date::now(), answer.get(4).as_f64(), |_| {
            answer.get(3).as_f64().filter(|at| at.is_finite())
        })
    });
    let problem = Problem::read(&body);
    let answered = problem.is_none() && is_answer(&body.0, want);
    (retry::judge(status, problem, answered, retry_after), body.0)
}
