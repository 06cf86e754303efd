//! The problem form: every error the server answers and the SDK throws.
//!
//! A [`Problem`] carries an HTTP status and one or more [`Message`]s, each with
//! a stable machine [`Code`] (its `typename` on the wire), a human message and,
//! where it applies, the `path` of the offending field.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

#[cfg(feature = "std")]
use serde_json::{Map, Value, json};

#[cfg(feature = "std")]
use crate::timestamp;
use crate::wire::{self, Json};

/// A stable, machine-readable problem code: the message `typename` on the wire
/// and the `code` of the SDK's `MynaError`. Its `Display` is the typename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The body is not valid JSON (the `data` says where it broke).
    InvalidJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    InvalidType,
    /// A field has a value outside what it may hold (visibility, name, id...).
    InvalidValue,
    /// An event `typename` other than `view` or `reward`.
    UnknownTypename,
    /// An event names a variant the experiment does not have.
    UnknownVariant,
    /// A reward amount that is not a finite number in `[0, 1]`, or an amount on a view.
    InvalidAmount,
    /// A timestamp that is neither integer epoch milliseconds nor RFC 3339.
    InvalidTimestamp,
    /// A timestamp more than 24 hours in the future.
    FutureTimestamp,
    /// A `batch` id that is not a UUID.
    InvalidBatchId,
    /// More events in one batch than the limit.
    TooManyEvents,
    /// A request body over the size limit.
    BodyTooLarge,
    /// A JSONP callback that is not a safe identifier path.
    InvalidCallback,
    /// A malformed settings path.
    InvalidSettingsPath,
    /// Credentials are missing or wrong.
    Authentication,
    /// Credentials are valid but may not do this.
    Authorization,
    /// No experiment with this uuid is visible to the caller.
    UnknownExperiment,
    /// No such resource (route, API key...).
    NotFound,
    /// The resource does not answer this HTTP method.
    MethodNotAllowed,
    /// The resource already exists.
    Conflict,
    /// Too many failed credential checks from this client or for this
    /// account: refused before any checking (429, with `Retry-After`).
    TooManyAttempts,
    /// More events from this client address than the server's record limit
    /// allows (429, with `Retry-After`); retry later.
    RateLimited,
    /// The server cannot serve now (database down); retry later.
    Unavailable,
    /// An internal failure; details are in the server log, never in the answer.
    Internal,
    /// SDK: the request did not reach the server or got no answer.
    Network,
    /// SDK: this browser cannot run the SDK here (no WebAssembly, or the
    /// page's Content Security Policy forbids compiling it): retrying will
    /// not help.
    Unsupported,
    /// SDK: the request took longer than its timeout.
    Timeout,
    /// SDK: the event queue was full and the oldest events were dropped.
    QueueFull,
    /// SDK: `reward` was called before the visitor viewed any variant of the experiment.
    NoView,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.typename())
    }
}

impl core::error::Error for Code {}

impl Code {
    /// The wire `typename` of this code.
    pub fn typename(self) -> &'static str {
        match self {
            Code::InvalidJson => "invalid-json",
            Code::MissingField => "missing-field",
            Code::InvalidType => "invalid-type",
            Code::InvalidValue => "invalid-value",
            Code::UnknownTypename => "unknown-typename",
            Code::UnknownVariant => "unknown-variant",
            Code::InvalidAmount => "invalid-amount",
            Code::InvalidTimestamp => "invalid-timestamp",
            Code::FutureTimestamp => "future-timestamp",
            Code::InvalidBatchId => "invalid-batch-id",
            Code::TooManyEvents => "too-many-events",
            Code::BodyTooLarge => "body-too-large",
            Code::InvalidCallback => "invalid-callback",
            Code::InvalidSettingsPath => "invalid-settings-path",
            Code::Authentication => "authentication",
            Code::Authorization => "authorization",
            Code::UnknownExperiment => "unknown-experiment",
            Code::NotFound => "not-found",
            Code::MethodNotAllowed => "method-not-allowed",
            Code::Conflict => "conflict",
            Code::TooManyAttempts => "too-many-attempts",
            Code::RateLimited => "rate-limited",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::Network => "network",
            Code::Unsupported => "unsupported",
            Code::Timeout => "timeout",
            Code::QueueFull => "queue-full",
            Code::NoView => "no-view",
        }
    }

    /// The HTTP status a problem made of this code alone answers with.
    pub fn status(self) -> u16 {
        match self {
            Code::Authentication => 401,
            Code::Authorization => 403,
            Code::UnknownExperiment | Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::Conflict => 409,
            Code::TooManyEvents | Code::BodyTooLarge => 413,
            Code::TooManyAttempts | Code::RateLimited => 429,
            Code::Internal => 500,
            Code::Unavailable | Code::Network | Code::Timeout => 503,
            _ => 400,
        }
    }

    /// The code a bare HTTP `status` stands for: an error answer whose body
    /// is not a problem (a proxy's page). Where a code answers with this
    /// status alone, that code (`401` is `authentication`); besides, `408`
    /// is `timeout`, `429` `unavailable` (retried, like 503), another `5xx`
    /// `internal` and anything else `invalid-value`.
    pub fn for_status(status: u16) -> Code {
        match status {
            401 => Code::Authentication,
            403 => Code::Authorization,
            404 => Code::NotFound,
            405 => Code::MethodNotAllowed,
            408 => Code::Timeout,
            409 => Code::Conflict,
            413 => Code::BodyTooLarge,
            429 | 503 => Code::Unavailable,
            500.. => Code::Internal,
            _ => Code::InvalidValue,
        }
    }

    /// Whether a client should retry a request that failed with this code.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Code::RateLimited | Code::Unavailable | Code::Network | Code::Timeout
        )
    }
}

/// One problem message: a code, a human sentence, and where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The machine-readable code (`typename` on the wire).
    pub code: Code,
    /// A sentence for humans.
    pub message: String,
    /// The offending field, e.g. `events[3].amount`.
    pub path: Option<String>,
    /// Extra machine-readable detail (the server's answers only: the SDK's
    /// own problems carry none, and its build has no JSON values).
    #[cfg(feature = "std")]
    pub data: Option<Value>,
}

/// The `path` of a problem with a request body as a whole (not JSON, not
/// an object, too large, too slow): its fields' paths (`events[0]`) are
/// relative to it.
pub const BODY_PATH: &str = "body";

impl Message {
    /// A message with no path.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Message {
            code,
            message: message.into(),
            path: None,
            #[cfg(feature = "std")]
            data: None,
        }
    }

    /// A message about the field at `path`.
    pub fn at(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Message {
            path: Some(path.into()),
            ..Message::new(code, message)
        }
    }

    /// This message with `data` attached.
    #[cfg(feature = "std")]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The wire form of this message.
    #[cfg(feature = "std")]
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("typename".into(), self.code.typename().into());
        out.insert("message".into(), self.message.clone().into());
        if let Some(path) = &self.path {
            out.insert("path".into(), path.clone().into());
        }
        if let Some(data) = &self.data {
            out.insert("data".into(), data.clone());
        }
        Value::Object(out)
    }
}

/// The most messages a problem's answer lists.
pub const MAX_MESSAGES: usize = 100;

/// A problem: an HTTP status and every message that explains it. Its
/// `Display` is the status and each message (`400 invalid-amount: … (amount)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The HTTP status (repeated in the body).
    pub status: u16,
    /// At least one message.
    pub messages: Vec<Message>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.status)?;
        for (i, m) in self.messages.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}{}: {}", m.code, m.message)?;
            if let Some(path) = &m.path {
                write!(f, " ({path})")?;
            }
        }
        Ok(())
    }
}

impl core::error::Error for Problem {}

impl Problem {
    /// A problem of one message; the status comes from its code.
    pub fn one(message: Message) -> Self {
        Problem {
            status: message.code.status(),
            messages: vec![message],
        }
    }

    /// A problem of several messages; the status is the highest of their codes'.
    ///
    /// An empty list becomes an `internal` problem: a problem always explains itself.
    pub fn many(messages: Vec<Message>) -> Self {
        if messages.is_empty() {
            return Problem::internal();
        }
        let status = messages
            .iter()
            .map(|m| m.code.status())
            .max()
            .unwrap_or(400);
        Problem { status, messages }
    }

    /// A problem of one message built from its parts.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Problem::one(Message::new(code, message))
    }

    /// A problem about the field at `path`.
    pub fn at(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem::one(Message::at(code, path, message))
    }

    /// The problem of a bare HTTP `status` (an error answer whose body is not
    /// a problem): one message of [`Code::for_status`], `status` kept.
    pub fn of_status(status: u16) -> Self {
        let mut message = String::from("The server answered HTTP ");
        wire::push_decimal(&mut message, u64::from(status));
        message.push('.');
        Problem {
            status,
            messages: vec![Message::new(Code::for_status(status), message)],
        }
    }

    /// Reads a problem from its wire form, already parsed (what a client
    /// receives): `None` unless `typename` is `"problem"` and `status` a
    /// number from 100 to 599 (its integer part is taken). Messages that are
    /// not listed read as none; a message's unknown `typename` becomes
    /// [`Code::Internal`], so a newer server never breaks an older client.
    /// Without `data` (see [`Problem::from_json`]).
    pub fn read<J: Json>(value: &J) -> Option<Problem> {
        if value.field("typename").text().as_deref() != Some("problem") {
            return None;
        }
        let status = value.field("status").number()?;
        if !(100.0..600.0).contains(&status) {
            return None;
        }
        let mut messages = Vec::new();
        if let Some(listed) = value.field("messages").items() {
            for m in listed {
                let code = m
                    .field("typename")
                    .text()
                    .and_then(|t| Code::from_typename(&t))
                    .unwrap_or(Code::Internal);
                let mut message = Message::new(code, m.field("message").text().unwrap_or_default());
                message.path = m.field("path").text();
                messages.push(message);
            }
        }
        Some(Problem {
            status: status as u16,
            messages,
        })
    }

    /// The generic internal-failure problem (no detail leaks to the client).
    pub fn internal() -> Self {
        Problem::new(Code::Internal, "The server failed to handle this request.")
    }

    /// The problem when the caller cannot see the experiment (absent, or not theirs).
    #[cfg(feature = "std")]
    pub fn unknown_experiment(uuid: &str) -> Self {
        Problem::one(
            Message::new(Code::UnknownExperiment, "There is no such experiment.")
                .with_data(serde_json::json!({ "uuid": uuid })),
        )
    }

    /// The problem when the experiment exists but the server cannot read it
    /// from its database (a 500: the detail is in the server log, never here).
    #[cfg(feature = "std")]
    pub fn unreadable_experiment(uuid: &str) -> Self {
        Problem::one(
            Message::new(
                Code::Internal,
                "The server cannot read this experiment; its owner may delete it.",
            )
            .with_data(serde_json::json!({ "uuid": uuid })),
        )
    }

    /// The code of the first message (what an SDK error is named after).
    pub fn code(&self) -> Code {
        self.messages
            .first()
            .map(|m| m.code)
            .unwrap_or(Code::Internal)
    }

    /// Whether a client should retry (server unavailable, network, timeout, 5xx).
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || self.status == 429 || self.code().is_retryable()
    }

    /// The wire form, stamped with `now_ms` (milliseconds since the Unix epoch).
    #[cfg(feature = "std")]
    pub fn to_json(&self, now_ms: i64) -> Value {
        json!({
            "typename": "problem",
            "timestamp": timestamp::format_iso(now_ms),
            "status": self.status,
            "messages": self.wire_messages(),
        })
    }

    /// The messages as the answer lists them: at most [`MAX_MESSAGES`], the
    /// last of them then saying how many more there were (a 1 MiB body of
    /// malformed entries would otherwise answer megabytes of problems).
    #[cfg(feature = "std")]
    fn wire_messages(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .messages
            .iter()
            .take(MAX_MESSAGES)
            .map(Message::to_json)
            .collect();
        if self.messages.len() > MAX_MESSAGES {
            let more = self.messages.len() - (MAX_MESSAGES - 1);
            out[MAX_MESSAGES - 1] = Message::new(
                self.messages[MAX_MESSAGES - 1].code,
                format!("…and {more} more problems like those above, not listed."),
            )
            .with_data(json!({ "notListed": more }))
            .to_json();
        }
        out
    }

    /// Reads a problem back from its wire form: [`Problem::read`], with each
    /// message's `data`.
    #[cfg(feature = "std")]
    pub fn from_json(value: &Value) -> Option<Problem> {
        let mut problem = Problem::read(&value)?;
        if let Some(listed) = value.get("messages").and_then(Value::as_array) {
            for (message, m) in problem.messages.iter_mut().zip(listed) {
                message.data = m.get("data").cloned();
            }
        }
        Some(problem)
    }
}

impl Code {
    /// Every code, for lookups and tests.
    pub const ALL: [Code; 29] = [
        Code::InvalidJson,
        Code::MissingField,
        Code::InvalidType,
        Code::InvalidValue,
        Code::UnknownTypename,
        Code::UnknownVariant,
        Code::InvalidAmount,
        Code::InvalidTimestamp,
        Code::FutureTimestamp,
        Code::InvalidBatchId,
        Code::TooManyEvents,
        Code::BodyTooLarge,
        Code::InvalidCallback,
        Code::InvalidSettingsPath,
        Code::Authentication,
        Code::Authorization,
        Code::UnknownExperiment,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::TooManyAttempts,
        Code::RateLimited,
        Code::Unavailable,
        Code::Internal,
        Code::Network,
        Code::Unsupported,
        Code::Timeout,
        Code::QueueFull,
        Code::NoView,
    ];

    /// The code whose wire `typename` is `name`.
    pub fn from_typename(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.typename() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn an_answer_lists_at_most_max_messages_and_says_how_many_more() {
        let messages = (0..150)
            .map(|i| Message::at(Code::InvalidValue, format!("x[{i}]"), "bad"))
            .collect();
        let answer = Problem::many(messages).to_json(0);
        let listed = answer["messages"].as_array().expect("messages");
        assert_eq!(listed.len(), MAX_MESSAGES);
        assert_eq!(
            listed[MAX_MESSAGES - 2]["path"],
            format!("x[{}]", MAX_MESSAGES - 2)
        );
        assert_eq!(listed[MAX_MESSAGES - 1]["data"]["notListed"], 51);
        let few = Problem::many(vec![Message::at(Code::InvalidValue, "a", "bad")]).to_json(0);
        assert_eq!(few["messages"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn typenames_round_trip_and_match_display() {
        for code in Code::ALL {
            assert_eq!(Code::from_typename(code.typename()), Some(code));
            assert_eq!(code.to_string(), code.typename());
        }
    }

    #[test]
    fn wire_form_matches_spec() {
        let p = Problem::at(Code::UnknownVariant, "events[0].variant", "No variant `x`.");
        let json = p.to_json(1_795_708_773_232);
        assert_eq!(json["typename"], "problem");
        assert_eq!(json["timestamp"], "2026-11-26T15:59:33.232Z");
        assert_eq!(json["status"], 400);
        assert_eq!(json["messages"][0]["typename"], "unknown-variant");
        assert_eq!(json["messages"][0]["path"], "events[0].variant");
        assert_eq!(Problem::from_json(&json), Some(p));
    }

    #[test]
    fn status_is_the_worst_message() {
        let p = Problem::many(vec![
            Message::new(Code::InvalidAmount, "a"),
            Message::new(Code::TooManyEvents, "b"),
        ]);
        assert_eq!(p.status, 413);
        assert_eq!(Problem::many(vec![]).code(), Code::Internal);
    }
}
