//! An update body (`settingsUpdates`, `variantUpdates`…) applied to a real
//! experiment: never a crash; what is accepted loads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_core::experiment::apply_update;

#[path = "common.rs"]
mod common;

fuzz_target!(|body: &[u8]| {
    let experiment = common::experiment();
    if let Ok(next) = apply_update(&experiment, body) {
        let text = next.settings.to_string();
        let back: serde_json::Value = serde_json::from_str(&text).expect("settings load back");
        assert_eq!(back, next.settings);
        for variant in &next.variants {
            let text = variant.settings.to_string();
            let back: serde_json::Value =
                serde_json::from_str(&text).expect("variant settings load back");
            assert_eq!(back, variant.settings);
        }
    }
});
