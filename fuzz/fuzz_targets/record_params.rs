//! JSONP record parameters (and the callback): any query string parses to a
//! one-event batch or a problem; a callback is accepted only if it is a safe
//! identifier path, and then the wrapped answer starts with it verbatim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_core::event::parse_record_params;
use myna_core::jsonp::{validate_callback, wrap};

#[path = "common.rs"]
mod common;

/// Splits `a=b&c=d` (no percent-decoding: the fuzzer makes the bytes).
fn pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

fuzz_target!(|query: &str| {
    let experiment = common::experiment();
    let pairs = pairs(query);
    let param = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    if let Ok(batch) = parse_record_params(param, &experiment, common::NOW_MS) {
        assert_eq!(batch.events.len(), 1);
    }
    if let Some(callback) = param("callback")
        && validate_callback(callback).is_ok()
    {
        assert!(callback.len() <= 128);
        assert!(
            callback
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
        );
        assert!(wrap(callback, "{}").starts_with(&format!("/**/{callback}(")));
    }
});
