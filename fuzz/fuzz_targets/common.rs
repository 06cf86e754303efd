//! What every target shares: an experiment to record against and to update.

use myna_core::Experiment;
use myna_core::experiment::parse_create;
use uuid::Uuid;

/// Now, for the parsers (a fixed instant: runs are reproducible).
pub const NOW_MS: i64 = 1_780_000_000_000;

/// A published experiment with a few variants and nested settings.
pub fn experiment() -> Experiment {
    let body = br#"{"name": "fuzz", "visibility": "published",
        "settings": {"a": {"b": [1, 2, {"c": "d"}]}, "myna.web.sticky": true},
        "variants": {"a": {"settings": {"color": "red"}}, "b": {}, "c.d": {"name": "C"}}}"#;
    match parse_create(body) {
        Ok(new) => new.into_experiment(Uuid::from_u128(1), Uuid::from_u128(2)),
        Err(problem) => panic!("the seed experiment is refused: {problem}"),
    }
}
