//! The options of `Myna.connect`, read and checked once: every problem comes
//! back as data (a code and a path), like core's validation.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Array;
use myna_core::event::DEFAULT_BATCH_EVENTS;
use myna_core::{Code, Message, Problem};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::js::get;

#[wasm_bindgen(typescript_custom_section)]
const OPTIONS_TS: &str = r#"
/** The options of `Myna.connect`. */
export interface ConnectOptions {
  /** The server's root URL, e.g. `https://ab.example.com`. */
  apiRoot: string;
  /** An API key (public by design: it can only read published experiments and record events). */
  apiKey: string;
  /** How events travel: `"post"` (fetch, batched; the default) or `"jsonp"` (a script tag per event; refused at connect where the page cannot add one, e.g. under Trusted Types). */
  transport?: "post" | "jsonp";
  /** Send as soon as this many events are queued (default 20). */
  batchSize?: number;
  /** Send what is queued this often, in milliseconds (default 1000). */
  flushIntervalMs?: number;
  /** Most events kept queued; beyond, the oldest go, down to nine tenths of it (default 1000). */
  maxQueueEvents?: number;
  /** Most bytes of queue kept in localStorage; beyond, the oldest events go, down to nine tenths of it (default 100000). */
  maxQueueBytes?: number;
  /** How long a request may take, in milliseconds (default 10000). */
  timeoutMs?: number;
  /** The prefix of the SDK's localStorage keys (default `"myna"`). */
  storageKey?: string;
  /**
   * Experiments to start from instead of loading them from the server (no
   * network): read forms (an array, or a search answer), or a deployment
   * form (`GET /v2/deployment/{key}/myna.json`) or its `experiments`.
   */
  experiments?:
    | ExperimentSnapshot[]
    | { results: ExperimentSnapshot[] }
    | Deployment
    | DeploymentExperiment[];
}
"#;

/// How events travel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `fetch` POSTs of batches (`text/plain`, `apikey` in the URL: no preflight).
    Post,
    /// One JSONP script tag per event.
    Jsonp,
}

/// The checked options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The server root, without a trailing `/`.
    pub(crate) api_root: String,
    /// The API key.
    pub(crate) api_key: String,
    /// How events travel.
    pub(crate) transport: Transport,
    /// Flush once this many events are queued.
    pub(crate) batch_size: usize,
    /// Flush this often (ms).
    pub(crate) flush_interval_ms: f64,
    /// Most events queued.
    pub(crate) max_queue_events: usize,
    /// Most bytes queued.
    pub(crate) max_queue_bytes: usize,
    /// Request timeout (ms).
    pub(crate) timeout_ms: f64,
    /// Storage namespace.
    pub(crate) storage_key: String,
    /// Snapshots, when the page gave some (a JS array of read forms or of
    /// a deployment's experiments), with the path of that array.
    pub(crate) experiments: Option<(Array, &'static str)>,
}

/// Reads the options object; every problem at once.
pub(crate) fn read(value: &JsValue) -> Result<Options, Problem> {
    let mut problems = Vec::new();
    if !value.is_object() {
        return Err(Problem::new(
            Code::InvalidType,
            "Myna.connect takes an options object.",
        ));
    }
    let api_root = string(value, "apiRoot", None, &mut problems);
    // A URL (`https://…`: a scheme first) or a path of this site (`/…`):
    // anything else would be read as a path relative to the page, and fail
    // as a 404.
    let root = api_root.as_bytes();
    let scheme = root
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
        .count();
    let url = root.first().is_some_and(u8::is_ascii_alphabetic) && root.get(scheme) == Some(&b':');
    if !root.is_empty() && !url && root[0] != b'/' {
        problems.push(Message::at(
            Code::InvalidValue,
            "apiRoot",
            "`apiRoot` is the server's URL (https://…) or a path of this site (/…).",
        ));
    }
    let api_key = string(value, "apiKey", None, &mut problems);
    let transport = match string(value, "transport", Some("post"), &mut problems).as_str() {
        "post" => Transport::Post,
        "jsonp" => Transport::Jsonp,
        _ => {
            problems.push(Message::at(
                Code::InvalidValue,
                "transport",
                "`transport` is \"post\" or \"jsonp\".",
            ));
            Transport::Post
        }
    };
    let options = Options {
        api_root: without_trailing_slashes(&api_root).to_owned(),
        api_key,
        transport,
        batch_size: number(
            value,
            "batchSize",
            DEFAULT_BATCH_EVENTS as f64,
            false,
            &mut problems,
        ) as usize,
        flush_interval_ms: number(value, "flushIntervalMs", 1000.0, true, &mut problems),
        max_queue_events: number(value, "maxQueueEvents", 1000.0, false, &mut problems) as usize,
        max_queue_bytes: number(value, "maxQueueBytes", 100_000.0, false, &mut problems) as usize,
        timeout_ms: number(value, "timeoutMs", 10_000.0, true, &mut problems),
        storage_key: string(value, "storageKey", Some("myna"), &mut problems),
        experiments: snapshots(value, &mut problems),
    };
    if problems.is_empty() {
        Ok(options)
    } else {
        Err(Problem::many(problems))
    }
}

/// `text` without its trailing `/`s (`trim_end_matches('/')`, smaller).
fn without_trailing_slashes(text: &str) -> &str {
    let mut end = text.len();
    while end > 0 && text.as_bytes()[end - 1] == b'/' {
        end -= 1;
    }
    text.get(..end).unwrap_or(text)
}

fn string(
    value: &JsValue,
    name: &str,
    default: Option<&str>,
    problems: &mut Vec<Message>,
) -> String {
    let field = get(value, name);
    if let Some(text) = field.as_string()
        && !text.is_empty()
    {
        return text;
    }
    match (field.is_undefined() || field.is_null(), default) {
        (true, Some(default)) => default.to_owned(),
        (true, None) => {
            problems.push(Message::at(
                Code::MissingField,
                name,
                ["`", name, "` is required."].concat(),
            ));
            String::new()
        }
        (false, _) => {
            problems.push(Message::at(
                Code::InvalidType,
                name,
                ["`", name, "` must be a non-empty string."].concat(),
            ));
            String::new()
        }
    }
}

/// The longest delay a browser's timer takes (ms, about 24.8 days): a
/// longer one fires at once.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

/// A number option of at least 1 (`timer`: a delay in ms, at most
/// [`MAX_TIMER_MS`]).
fn number(
    value: &JsValue,
    name: &str,
    default: f64,
    timer: bool,
    problems: &mut Vec<Message>,
) -> f64 {
    let field = get(value, name);
    if field.is_undefined() || field.is_null() {
        return default;
    }
    let most = if timer { MAX_TIMER_MS } else { f64::MAX };
    match field.as_f64() {
        Some(n) if n >= 1.0 && n <= most => n,
        _ => {
            let rule = if timer {
                "` must be a number of ms from 1 to 2147483647 (a browser timer's most)."
            } else {
                "` must be a number of at least 1."
            };
            problems.push(Message::at(
                Code::InvalidValue,
                name,
                ["`", name, rule].concat(),
            ));
            default
        }
    }
}

/// The snapshots: an array of forms, a search answer (`results`) or a
/// deployment form (`experiments`); with the path of the array.
fn snapshots(value: &JsValue, problems: &mut Vec<Message>) -> Option<(Array, &'static str)> {
    let field = get(value, "experiments");
    if field.is_undefined() || field.is_null() {
        return None;
    }
    let found = [
        (field.clone(), "experiments"),
        (get(&field, "results"), "experiments.results"),
        (get(&field, "experiments"), "experiments.experiments"),
    ]
    .into_iter()
    .find(|(list, _)| Array::is_array(list));
    match found {
        Some((list, path)) => Some((list.unchecked_into(), path)),
        None => {
            problems.push(Message::at(
                Code::InvalidType,
                "experiments",
                "`experiments` must be an array of read forms, a search answer or a deployment form.",
            ));
            None
        }
    }
}
