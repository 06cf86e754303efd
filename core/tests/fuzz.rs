//! Regression tests from `scripts/fuzz`: every input a fuzz target crashed on
//! (kept under `tests/fuzz_regressions/<target>-<what>.txt`) runs through the
//! same checks as the target, so the crash never comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use myna_core::settings::{apply_updates, format_path, parse_path};
use serde_json::{Map, Value, json};

/// The `settings_path` target's checks: a path either is refused, or what it
/// sets loads back from its JSON text equal.
fn settings_path(path: &str) {
    if let Ok(segments) = parse_path(path) {
        assert_eq!(parse_path(&format_path(&segments)), Ok(segments));
    }
    let mut settings = json!({"a": {"b": [1, 2, {"c": "d"}]}, "e": "f"});
    let mut updates = Map::new();
    updates.insert(path.to_owned(), json!(1));
    if apply_updates(&mut settings, &updates, "settingsUpdates").is_ok() {
        let back: Value = serde_json::from_str(&settings.to_string()).expect("settings load back");
        assert_eq!(back, settings);
    }
}

/// Found in 10 s (150,000 runs): a path of 140 segments set a value nested
/// deeper than serde_json reads back (128 levels), so the stored settings
/// could not be loaded again.
#[test]
fn settings_path_deeper_than_what_loads_back() {
    settings_path(include_str!("fuzz_regressions/settings_path-deep.txt"));
}
