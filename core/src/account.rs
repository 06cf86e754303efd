//! Accounts on the wire: the login body, the token answer, the API key create
//! body and answers, and the `ok` answer of deletes and logout.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::event::{MAX_BODY_BYTES, body_too_large, invalid_json};
use crate::model::MAX_NAME_CHARS;
use crate::problem::{Code, Message, Problem};
use crate::timestamp::format_iso;

/// Email and password from a login body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The email, normalized by [`normalize_email`].
    pub email: String,
    /// The password, as given.
    pub password: String,
}

/// The canonical form of an email (trimmed, lower-case): accounts are found by it.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large(body.len()));
    }
    match serde_json::from_slice::<Value>(body).map_err(|e| invalid_json(&e))? {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::new(
            Code::InvalidType,
            "The body must be a JSON object.",
        )),
    }
}

/// Parses a login body `{ "email": "…", "password": "…" }`, every problem listed.
pub fn parse_login(body: &[u8]) -> Result<Login, Problem> {
    let root = object(body)?;
    let mut problems = Vec::new();
    let mut field = |name: &str| match root.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) => {
            problems.push(Message::at(
                Code::MissingField,
                name,
                format!("A login needs a `{name}`."),
            ));
            None
        }
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                name,
                format!("`{name}` must be a non-empty string."),
            ));
            None
        }
    };
    let email = field("email");
    let password = field("password");
    match (email, password) {
        (Some(email), Some(password)) => Ok(Login {
            email: normalize_email(&email),
            password,
        }),
        _ => Err(Problem::many(problems)),
    }
}

/// Parses an API key create body: empty, or `{ "name": "…" }` (optional, at
/// most 256 characters). Answers the name.
pub fn parse_api_key_create(body: &[u8]) -> Result<Option<String>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = object(body)?;
    match root.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS => {
            Ok(Some(s.clone()))
        }
        Some(Value::String(_)) => Err(Problem::at(
            Code::InvalidValue,
            "name",
            format!("A name must be 1 to {MAX_NAME_CHARS} characters, not blank."),
        )),
        Some(_) => Err(Problem::at(
            Code::InvalidType,
            "name",
            "A name must be a string.",
        )),
    }
}

/// The login answer: `{ "typename": "token", "token", "expires" }` (ISO 8601).
pub fn token_answer(token: Uuid, expires_ms: i64) -> Value {
    json!({ "typename": "token", "token": token, "expires": format_iso(expires_ms) })
}

/// One API key on the wire: `{ "typename": "apikey", "uuid", "name"?, "created" }`.
pub fn api_key_answer(uuid: Uuid, name: Option<&str>, created_ms: i64) -> Value {
    let mut out = Map::new();
    out.insert("typename".into(), "apikey".into());
    out.insert("uuid".into(), json!(uuid));
    if let Some(name) = name {
        out.insert("name".into(), name.into());
    }
    out.insert("created".into(), format_iso(created_ms).into());
    Value::Object(out)
}

/// A list answer: `{ "results": [ … ] }`.
pub fn results_answer(results: Vec<Value>) -> Value {
    json!({ "results": results })
}

/// The answer of a delete or a logout: `{ "typename": "ok" }`.
pub fn ok_answer() -> Value {
    json!({ "typename": "ok" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_normalizes_email_and_lists_problems() {
        let login = parse_login(br#"{"email": " Me@Example.COM ", "password": "pw"}"#);
        assert_eq!(
            login.ok(),
            Some(Login {
                email: "me@example.com".into(),
                password: "pw".into()
            })
        );
        let problem = parse_login(br#"{"password": 5}"#)
            .err()
            .unwrap_or_else(Problem::internal);
        let found: Vec<_> = problem
            .messages
            .iter()
            .map(|m| (m.code, m.path.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (Code::MissingField, Some("email")),
                (Code::InvalidType, Some("password"))
            ]
        );
        assert_eq!(
            parse_login(b"{").err().map(|p| p.code()),
            Some(Code::InvalidJson)
        );
    }

    #[test]
    fn api_key_body_is_optional() {
        assert_eq!(parse_api_key_create(b""), Ok(None));
        assert_eq!(parse_api_key_create(b"{}"), Ok(None));
        assert_eq!(
            parse_api_key_create(br#"{"name": "site"}"#),
            Ok(Some("site".into()))
        );
        assert_eq!(
            parse_api_key_create(br#"{"name": 1}"#)
                .err()
                .map(|p| p.code()),
            Some(Code::InvalidType)
        );
        assert_eq!(
            parse_api_key_create(br#"{"name": " "}"#)
                .err()
                .map(|p| p.code()),
            Some(Code::InvalidValue)
        );
    }

    #[test]
    fn answers_have_their_typename() {
        let uuid = Uuid::from_u128(7);
        let token = token_answer(uuid, 1_795_708_773_232);
        assert_eq!(token["typename"], "token");
        assert_eq!(token["token"], uuid.to_string());
        assert_eq!(token["expires"], "2026-11-26T15:59:33.232Z");
        let key = api_key_answer(uuid, None, 0);
        assert_eq!(key["typename"], "apikey");
        assert!(key.get("name").is_none());
        assert_eq!(api_key_answer(uuid, Some("a"), 0)["name"], "a");
        assert_eq!(ok_answer()["typename"], "ok");
        assert_eq!(results_answer(vec![key.clone()])["results"][0], key);
    }
}
