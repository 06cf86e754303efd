//! The one place that turns a problem into a JS `MynaError`: a real `Error`
//! (with a stack) whose `code` is the problem message `typename` from core,
//! with `path` where one applies and `status` for server answers. Nothing in
//! the SDK throws a string across the boundary.

use js_sys::{Array, Object, Reflect};
use myna_core::{Code, Message, Problem};
use wasm_bindgen::prelude::*;

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
  /** The HTTP status, for problems the server answered. */
  readonly status?: number;
  /** Every message of the problem, in order. */
  readonly messages: ProblemMessage[];
}
"#;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    type MynaError;

    #[wasm_bindgen(constructor, js_class = "MynaError")]
    fn new(
        message: &str,
        code: &str,
        path: Option<String>,
        status: Option<u16>,
        messages: Array,
    ) -> MynaError;

    /// Re-exports the class itself from the package (as a function import so
    /// that the TypeScript declaration is the one above, not `unknown`).
    #[wasm_bindgen(reexport, skip_typescript, js_name = MynaError)]
    fn myna_error_class();
}

/// A `MynaError` for `problem`; `status` is set for answers from the server.
pub fn to_js(problem: &Problem, from_server: bool) -> JsValue {
    let messages: Array = problem.messages.iter().map(message_to_js).collect();
    let first = problem.messages.first();
    let mut text = first.map(|m| m.message.clone()).unwrap_or_default();
    if problem.messages.len() > 1 {
        text.push_str(" (and more: see `messages`)");
    }
    MynaError::new(
        &text,
        problem.code().typename(),
        first.and_then(|m| m.path.clone()),
        from_server.then_some(problem.status),
        messages,
    )
    .into()
}

/// A `MynaError` of one code, raised by the SDK itself.
pub fn new(code: Code, path: Option<&str>, message: &str) -> JsValue {
    let message = match path {
        Some(path) => Message::at(code, path, message),
        None => Message::new(code, message),
    };
    to_js(&Problem::one(message), false)
}

fn message_to_js(m: &Message) -> JsValue {
    let out = Object::new();
    let _ = Reflect::set(&out, &"code".into(), &m.code.typename().into());
    let _ = Reflect::set(&out, &"message".into(), &m.message.as_str().into());
    if let Some(path) = &m.path {
        let _ = Reflect::set(&out, &"path".into(), &path.as_str().into());
    }
    out.into()
}
