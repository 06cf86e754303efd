//! A create body: parsed and validated, never a crash; what is accepted
//! serializes and parses back equal (so it loads back after a restart).
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_core::experiment::parse_create;

fuzz_target!(|body: &[u8]| {
    if let Ok(new) = parse_create(body) {
        let settings = new.settings.to_string();
        let back: serde_json::Value = serde_json::from_str(&settings).expect("settings load back");
        assert_eq!(back, new.settings);
        for variant in &new.variants {
            let text = variant.settings.to_string();
            let back: serde_json::Value =
                serde_json::from_str(&text).expect("variant settings load back");
            assert_eq!(back, variant.settings);
        }
    }
});
