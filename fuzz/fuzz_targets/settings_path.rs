//! Settings paths, straight: any text as a path, set and then removed in a
//! settings object. Never a crash; an accepted path formats back to one that
//! parses to the same segments; what is set loads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_core::settings::{apply_updates, format_path, parse_path};
use serde_json::{Map, Value, json};

fuzz_target!(|path: &str| {
    if let Ok(segments) = parse_path(path) {
        assert_eq!(parse_path(&format_path(&segments)), Ok(segments));
    }
    let mut settings = json!({"a": {"b": [1, 2, {"c": "d"}]}, "e": "f"});
    let mut updates = Map::new();
    updates.insert(path.to_owned(), json!(1));
    if apply_updates(&mut settings, &updates, "settingsUpdates").is_ok() {
        let back: Value = serde_json::from_str(&settings.to_string()).expect("settings load back");
        assert_eq!(back, settings);
        updates.insert(path.to_owned(), Value::Null);
        assert!(apply_updates(&mut settings, &updates, "settingsUpdates").is_ok());
    }
});
