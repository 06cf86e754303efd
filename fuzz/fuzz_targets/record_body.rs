//! A record POST body (JSON or beacon text): parsed, validated, never a crash;
//! an accepted batch only names the experiment's variants, with valid amounts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_core::event::parse_record_body;

#[path = "common.rs"]
mod common;

fuzz_target!(|body: &[u8]| {
    let experiment = common::experiment();
    if let Ok(batch) = parse_record_body(body, &experiment, common::NOW_MS) {
        for event in &batch.events {
            assert!(experiment.variants.iter().any(|v| v.id == event.variant));
            let reward = event.reward();
            assert!(reward.is_finite() && (0.0..=1.0).contains(&reward));
        }
    }
});
