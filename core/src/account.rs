//! Accounts on the wire: the login body, the token answer, the API key create
//! body and answers, and the `ok` answer of deletes and logout; and the rules
//! a new account's email and password must follow ([`check_new_account`]).

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::event::{MAX_BODY_BYTES, body_too_large};
use crate::model::MAX_NAME_CHARS;
use crate::problem::{BODY_PATH, Code, Message, Problem};
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

/// The fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most bytes (UTF-8) an email may have (the longest address SMTP carries).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Passwords refused whatever else they are: the top of the lists of the
/// most used (and first guessed) passwords that are long enough to pass the
/// other rules, lower-case (the comparison ignores case).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "12341234",
    "11223344",
    "qwertyui",
    "qwertyuiop",
    "qwerty12",
    "qwerty123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjk",
    "asdfghjkl",
    "zxcvbnm1",
    "abcd1234",
    "abc12345",
    "abcdefgh",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "starwars",
    "trustno1",
    "letmein1",
    "welcome1",
    "welcome123",
    "admin123",
    "administrator",
    "changeme",
    "changeme1",
    "whatever",
    "computer",
    "internet",
    "master123",
    "monkey123",
    "dragon123",
    "mustang1",
    "michael1",
    "shadow12",
    "secret123",
    "default1",
    "myna1234",
];

/// Whether `text` holds a control character (U+0000 NUL among them), which
/// no email may hold (and PostgreSQL cannot store NUL in text at all).
fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// What is wrong with a new account's email (already normalized), if
/// anything: it must be one `@` between a non-empty local part and domain,
/// with no `:` (Basic credentials split at the first one, so such an account
/// could never log in with them), no white space or control characters, at
/// most [`MAX_EMAIL_BYTES`] bytes.
pub fn email_problem(email: &str) -> Option<String> {
    let mut parts = email.split('@');
    let (local, domain, more) = (parts.next(), parts.next(), parts.next());
    if email.is_empty() {
        Some("An account needs an email.".into())
    } else if has_control(email) {
        Some("An email may not contain control characters (such as U+0000).".into())
    } else if email.len() > MAX_EMAIL_BYTES {
        Some(format!(
            "An email may have at most {MAX_EMAIL_BYTES} bytes (UTF-8)."
        ))
    } else if email.contains(char::is_whitespace) {
        Some("An email may not contain white space.".into())
    } else if email.contains(':') {
        Some(
            "An email may not contain `:` (Basic credentials could not carry it: \
             they split the email from the password at the first `:`)."
                .into(),
        )
    } else if more.is_some() || local.is_none_or(str::is_empty) || domain.is_none_or(str::is_empty)
    {
        Some("An email needs one `@` between a name and a domain, as in `me@example.com`.".into())
    } else if email.chars().any(crate::limits::is_default_ignorable) {
        Some("An email may not contain invisible characters (such as U+200B).".into())
    } else if domain.is_some_and(|d| d.contains(['\u{3002}', '\u{ff61}'])) {
        Some("An email's domain separates its labels with `.`, not `。`.".into())
    } else if domain.is_some_and(|d| d.starts_with('.') || d.ends_with('.') || d.contains("..")) {
        Some("An email's domain may not begin or end with `.`, nor hold `..`.".into())
    } else {
        let plain = plain_form(email);
        (plain != email).then(|| {
            format!(
                "An email must be written with plain characters: this one reads as `{plain}` (fullwidth and other compatibility forms are refused, so that no two accounts look alike)."
            )
        })
    }
}

/// The email as it reads: NFKC (fullwidth and compatibility forms made
/// plain), lower-case.
fn plain_form(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    email.nfkc().collect::<String>().to_lowercase()
}

/// The problems of a new account's email (already normalized) and password,
/// every one listed (paths `email` and `password`): an email that breaks
/// [`email_problem`]'s rule; a password shorter
/// than [`MIN_PASSWORD_CHARS`], equal to the email or to its part before
/// `@`, made of one repeated character, or among the most common passwords.
pub fn check_new_account(email: &str, password: &str) -> Result<(), Problem> {
    let mut problems = Vec::new();
    if let Some(message) = email_problem(email) {
        problems.push(Message::at(Code::InvalidValue, "email", message));
    }
    let password_problem = |message: String| Message::at(Code::InvalidValue, "password", message);
    let lower = password.to_lowercase();
    let mut chars = password.chars();
    let first = chars.next();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        problems.push(password_problem(format!(
            "A password needs at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if first.is_some() && chars.all(|c| Some(c) == first) {
        problems.push(password_problem(
            "A password may not be one character repeated.".into(),
        ));
    }
    let local = email.split('@').next().unwrap_or_default();
    if !email.is_empty() && (lower == email || (!local.is_empty() && lower == local)) {
        problems.push(password_problem(
            "A password may not be the email, nor its part before `@`.".into(),
        ));
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        problems.push(password_problem(
            "This password is one of the most common ones, which are guessed first; choose another."
                .into(),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problem::many(problems))
    }
}

/// Most JSON values an account body may hold (a login is sent with no
/// credentials: see [`crate::json::parse_limited`]).
pub const MAX_ACCOUNT_VALUES: usize = 1024;

fn object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large(body.len()));
    }
    let parsed = crate::json::parse_limited(body, MAX_ACCOUNT_VALUES);
    match parsed.map_err(crate::json::problem)? {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::at(
            Code::InvalidType,
            BODY_PATH,
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
    if email.as_deref().is_some_and(has_control) {
        return Err(Problem::at(
            Code::InvalidValue,
            "email",
            "An email may not contain control characters (such as U+0000).",
        ));
    }
    match (email, password) {
        (Some(email), Some(password)) => Ok(Login {
            email: normalize_email(&email),
            password,
        }),
        _ => Err(Problem::many(problems)),
    }
}

/// The fields an API key create body reads.
const API_KEY_FIELDS: &[&str] = &["name"];

/// Parses an API key create body: empty, or `{ "name": "…" }` (optional, at
/// most 256 characters, no U+0000; no other field). Answers the name.
pub fn parse_api_key_create(body: &[u8]) -> Result<Option<String>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = object(body)?;
    let mut problems = Vec::new();
    crate::json::unknown_fields(root.keys(), "", API_KEY_FIELDS, "an API key", &mut problems);
    let name = match root.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.contains('\0') => {
            problems.push(Message::at(
                Code::InvalidValue,
                "name",
                "A name may not contain U+0000 (NUL).",
            ));
            None
        }
        Some(Value::String(s))
            if !crate::limits::is_blank(s) && s.chars().count() <= MAX_NAME_CHARS =>
        {
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            problems.push(Message::at(
                Code::InvalidValue,
                "name",
                format!("A name must be 1 to {MAX_NAME_CHARS} characters, not blank."),
            ));
            None
        }
        Some(_) => {
            problems.push(Message::at(
                Code::InvalidType,
                "name",
                "A name must be a string.",
            ));
            None
        }
    };
    if problems.is_empty() {
        Ok(name)
    } else {
        Err(Problem::many(problems))
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
        let nul = parse_api_key_create(br#"{"name": "a\u0000b"}"#).err();
        assert_eq!(
            nul.map(|p| (p.code(), p.messages[0].path.clone())),
            Some((Code::InvalidValue, Some("name".into())))
        );
    }

    fn refusals(email: &str, password: &str) -> Vec<(String, String)> {
        match check_new_account(email, password) {
            Ok(()) => Vec::new(),
            Err(problem) => problem
                .messages
                .into_iter()
                .map(|m| (m.path.unwrap_or_default(), m.message))
                .collect(),
        }
    }

    #[test]
    fn new_passwords_follow_the_policy_with_a_clear_message_each() {
        assert_eq!(refusals("me@example.com", "change-me"), []);
        assert_eq!(refusals("me@example.com", "correct horse"), []);
        let short = refusals("me@example.com", "1");
        assert_eq!(short.len(), 2, "{short:?}");
        assert!(short.iter().all(|(path, _)| path == "password"));
        assert!(short[0].1.contains("at least 8 characters"), "{short:?}");
        assert!(short[1].1.contains("one character repeated"), "{short:?}");
        let cases = [
            ("aaaaaaaaaaaa", "one character repeated"),
            ("longname@example.com", "the email"),
            ("LongName@Example.com", "the email"),
            ("longname", "its part before `@`"),
            ("Password123", "most common"),
            ("12345678", "most common"),
        ];
        for (password, expected) in cases {
            let found = refusals("longname@example.com", password);
            assert_eq!(found.len(), 1, "{password}: {found:?}");
            assert_eq!(found[0].0, "password");
            assert!(found[0].1.contains(expected), "{password}: {found:?}");
        }
        let problem = check_new_account("me@example.com", "short").err();
        assert_eq!(problem.map(|p| p.status), Some(400));
    }

    #[test]
    fn new_account_emails_are_addresses_basic_credentials_can_carry() {
        for (email, expected) in [
            ("", "needs an email"),
            ("me\0@example.com", "control characters"),
            ("me\n@example.com", "control characters"),
            ("c:d@example.com", "may not contain `:`"),
            ("bad email", "white space"),
            ("me@example.com\u{a0}", "white space"),
            ("not-an-email", "one `@`"),
            ("@example.com", "one `@`"),
            ("me@", "one `@`"),
            ("me@you@example.com", "one `@`"),
            ("a@example.com.", "domain may not"),
            ("a@.example.com", "domain may not"),
            ("a@example..com", "domain may not"),
            ("a@ex\u{200b}ample.com", "invisible"),
            ("a@example\u{3002}com", "not `。`"),
            ("\u{ff41}@example.com", "reads as `a@example.com`"),
            ("e\u{301}@example.com", "reads as `\u{e9}@example.com`"),
        ] {
            let found = refusals(email, "a fine password");
            assert_eq!(found.len(), 1, "{email:?}: {found:?}");
            assert_eq!(found[0].0, "email");
            assert!(found[0].1.contains(expected), "{email:?}: {found:?}");
        }
        let longest = format!("{}@example.com", "é".repeat(121));
        assert_eq!(longest.len(), MAX_EMAIL_BYTES);
        assert_eq!(refusals(&longest, "a fine password"), []);
        let long = format!("{}@example.com", "é".repeat(122));
        let found = refusals(&long, "a fine password");
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("254 bytes"), "{found:?}");
        for fine in ["admin@localhost", "me+tag@example.co.uk", "é@exämple.com"] {
            assert_eq!(refusals(fine, "a fine password"), [], "{fine}");
        }
        let login = parse_login(b"{\"email\": \"a\\u0000@b\", \"password\": \"pw\"}");
        assert_eq!(
            login.err().map(|p| (p.code(), p.messages[0].path.clone())),
            Some((Code::InvalidValue, Some("email".into())))
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
