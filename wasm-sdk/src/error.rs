//! The one place that turns a problem into a JS `MynaError`: a real `Error`
//! (with a stack) whose `code` is the problem message `typename` from core,
//! with `path` where one applies and `status` for server answers. Nothing in
//! the SDK throws a string across the boundary.

use alloc::borrow::ToOwned;

use js_sys::Array;
use myna_core::{Code, Message, Problem};
use wasm_bindgen::prelude::*;

use crate::glue::MynaError;

#[wasm_bindgen(typescript_custom_section)]
const MYNA_ERROR_TS: &str = r#"
/** One message of a problem (the server's or the SDK's own). */
export interface ProblemMessage {
  /** The machine-readable code: a problem message `typename` from myna-core. */
  code: string;
  /** A sentence for humans. */
  message: string;
  /** The offending field, e.g. `amount` or `events[3].variant`. */
  path?: string;
}

/**
 * An error thrown or emitted by the SDK: a real `Error` carrying the problem.
 * `code` is the first message's code (`invalid-amount`, `unknown-experiment`,
 * `network`, `timeout`, `queue-full`…); every message is in `messages`.
 */
export class MynaError extends Error {
  private constructor();
  readonly name: "MynaError";
  /** The problem code: a message `typename` from myna-core. */
  readonly code: string;
  /** The offending field, where one applies (`amount`, `variant`…). */
  readonly path?: string;
  /** For `queue-full`: how many events were dropped (0: none, all kept in memory). */
  readonly dropped?: number;
  /** The HTTP status, for problems the server answered. */
  readonly status?: number;
  /** Every message of the problem, in order. */
  readonly messages: ProblemMessage[];
}
"#;

/// A `MynaError` for `problem`; `status` is set for answers from the server.
pub(crate) fn to_js(problem: &Problem, from_server: bool) -> JsValue {
    let list = Array::new();
    for m in &problem.messages {
        list.push(&m.code.typename().into());
        list.push(&m.message.as_str().into());
        list.push(&m.path.as_deref().map_or(JsValue::UNDEFINED, JsValue::from));
    }
    let first = problem.messages.first();
    let mut text = first.map(|m| m.message.to_owned()).unwrap_or_default();
    if problem.messages.len() > 1 {
        text.push_str(" (and more: see `messages`)");
    }
    MynaError::new(
        &text,
        problem.code().typename(),
        first.and_then(|m| m.path.as_deref()),
        from_server.then_some(problem.status),
        list,
    )
    .into()
}

/// A `MynaError` of one code, raised by the SDK itself.
pub(crate) fn new(code: Code, path: Option<&str>, message: &str) -> JsValue {
    let message = match path {
        Some(path) => Message::at(code, path, message),
        None => Message::new(code, message),
    };
    to_js(&Problem::one(message), false)
}
