//! The JSONP record call's parameters (`GET .../record?typename=…`): read,
//! validated into a one-event batch, and refused when given twice or in a
//! POST's URL (the server's side; `std` only).

use super::parse::{
    EventInput, RecordBatch, TimestampInput, clock_shift, parse_batch_text, validate_event_sent,
};
use crate::model::Experiment;
use crate::problem::{Code, Message, Problem};

/// The JSONP record parameters [`parse_record_params`] reads.
pub const RECORD_PARAMS: [&str; 7] = [
    "typename",
    "variant",
    "amount",
    "reward",
    "timestamp",
    "batch",
    "sentAt",
];

/// Refuses a query that gives a record parameter twice (`amount=0.5&amount=0.7`),
/// or the amount both as `amount` and as `reward`: which one would count is a
/// guess. `names` are the query's parameter names, in order; the problem's
/// path is the repeated name.
pub fn check_record_param_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), Problem> {
    crate::query::check_given_once(names, &RECORD_PARAMS, &["amount", "reward"])
}

/// Refuses a record POST whose URL gives a record parameter (`batch=`,
/// `typename=`…): a POST records the events of its body, so a batch id in
/// its URL would be ignored and a retry counted twice. `names` are the
/// query's parameter names; the problem's path is the first such name.
pub fn check_post_query<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), Problem> {
    match names.into_iter().find(|n| RECORD_PARAMS.contains(n)) {
        None => Ok(()),
        Some(name) => Err(Problem::at(
            Code::InvalidValue,
            name,
            format!(
                "A POST records the events of its body: `{name}` goes in the body, not the URL."
            ),
        )),
    }
}

/// Parses and validates the JSONP record parameters (`typename`, `variant`,
/// `amount` or its synonym `reward`, `timestamp`, `batch`, `sentAt`) into a
/// one-event batch. Without `typename`, an amount makes the event a reward
/// (the original's help page sends `?variant=variant1&amount=1.0`).
///
/// `param` looks a query parameter up by name. Problem paths are parameter names.
pub fn parse_record_params<'a>(
    param: impl Fn(&str) -> Option<&'a str>,
    experiment: &Experiment,
    now_ms: i64,
) -> Result<RecordBatch, Problem> {
    let mut problems = Vec::new();
    let mut required = |name: &str| match param(name) {
        Some(value) => Some(value),
        None => {
            problems.push(Message::at(
                Code::MissingField,
                name,
                format!("The `{name}` parameter is required."),
            ));
            None
        }
    };
    let (amount_name, amount_text) = match param("amount") {
        Some(text) => ("amount", Some(text)),
        None => ("reward", param("reward")),
    };
    // The original's help page records a reward as `?variant=…&amount=1.0`:
    // without a `typename`, an amount says which event it is.
    let typename = match param("typename") {
        None if amount_text.is_some() => Some("reward"),
        _ => required("typename"),
    };
    let variant = required("variant");
    let amount = amount_text.and_then(|text| match text.trim().parse::<f64>() {
        Ok(amount) => Some(amount),
        Err(_) => {
            problems.push(super::invalid_amount(amount_name.to_owned()));
            None
        }
    });
    let timestamp = param("timestamp").map(|text| match text.trim().parse::<f64>() {
        Ok(ms) => TimestampInput::Millis(ms),
        Err(_) => TimestampInput::Text(text),
    });
    let batch = param("batch").and_then(|text| parse_batch_text(text, "batch", &mut problems));
    let sent_at = param("sentAt").map(|text| match text.trim().parse::<f64>() {
        Ok(ms) => TimestampInput::Millis(ms),
        Err(_) => TimestampInput::Text(text),
    });
    let shift = clock_shift(sent_at, now_ms, &mut problems);
    let (Some(typename), Some(variant)) = (typename, variant) else {
        return Err(Problem::many(problems));
    };
    let input = EventInput {
        typename,
        variant,
        amount,
        timestamp,
    };
    match validate_event_sent(&input, experiment, now_ms, "", shift) {
        Ok(event) if problems.is_empty() => Ok(RecordBatch {
            batch,
            events: vec![event],
        }),
        Ok(_) => Err(Problem::many(problems)),
        Err(more) => {
            problems.extend(more.into_iter().map(|mut m| {
                // The amount may have come as the `reward` synonym.
                if m.path.as_deref() == Some("amount") {
                    m.path = Some(amount_name.to_owned());
                }
                m
            }));
            Err(Problem::many(problems))
        }
    }
}
