//! The limits on stored inputs, as properties: whatever core accepts (create,
//! then updates) stays within every limit, holds no U+0000, and reads back
//! equal from the JSON text it is stored as.
#![allow(clippy::unwrap_used, missing_docs)]

mod bodies;

use myna_core::experiment::{apply_update, parse_create};
use myna_core::limits::{
    MAX_DEFINITION_BYTES, MAX_NAME_CHARS, MAX_SETTINGS_BYTES, MAX_SETTINGS_DEPTH,
    MAX_VARIANT_ID_CHARS, MAX_VARIANTS, definition_bytes, json_bytes, scan,
};
use myna_core::model::Experiment;
use proptest::prelude::*;
use serde_json::Value;
use uuid::Uuid;

/// Every limit holds, and the settings read back equal from their text.
fn check_stored(experiment: &Experiment) {
    let text_ok = |text: &str, limit: usize| !text.contains('\0') && text.chars().count() <= limit;
    assert!(text_ok(&experiment.name, MAX_NAME_CHARS));
    assert!(experiment.variants.len() <= MAX_VARIANTS);
    assert!(definition_bytes(experiment, MAX_DEFINITION_BYTES).is_some());
    let mut all = vec![&experiment.settings];
    for variant in &experiment.variants {
        assert!(text_ok(&variant.id, MAX_VARIANT_ID_CHARS) && !variant.id.is_empty());
        assert!(text_ok(&variant.name, MAX_NAME_CHARS));
        all.push(&variant.settings);
    }
    for settings in all {
        assert_eq!(scan(settings, MAX_SETTINGS_DEPTH), Default::default());
        assert!(json_bytes(settings, MAX_SETTINGS_BYTES).is_some());
        let stored = settings.to_string();
        let back: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(&back, settings, "{stored}");
        assert_eq!(back.to_string(), stored);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn what_core_accepts_is_within_the_limits_and_reads_back(
        create in bodies::create_body(),
        updates in prop::collection::vec(bodies::update_body(), 0..4),
    ) {
        let Ok(new) = parse_create(create.to_string().as_bytes()) else {
            return Ok(());
        };
        let mut experiment = new.into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
        check_stored(&experiment);
        for update in updates {
            if let Ok(next) = apply_update(&experiment, update.to_string().as_bytes()) {
                check_stored(&next);
                experiment = next;
            }
        }
    }
}

/// A number read back from the JSON it was stored as is the same number
/// (serde_json's default parser read this one a unit in the last place off,
/// so accepted settings changed across a restart; `float_roundtrip` fixes it).
#[test]
fn stored_numbers_read_back_exactly() {
    for text in [
        "7.561391008121188e189",
        "7.561391008121187e189",
        "0.1",
        "5e-324",
    ] {
        let exact: f64 = text.parse().unwrap();
        let read: f64 = serde_json::from_str(text).unwrap();
        assert_eq!(read.to_bits(), exact.to_bits(), "{text}");
        let settings: Value = serde_json::from_str(&format!("{{\"n\":{text}}}")).unwrap();
        let back: Value = serde_json::from_str(&settings.to_string()).unwrap();
        assert_eq!(back, settings);
    }
}
