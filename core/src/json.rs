//! Request bodies as JSON values, read strictly: what two readers of the same
//! text could understand differently is refused, with the path to it.
//!
//! - A key twice in one object (`{"variant":"a","variant":"b"}`) is refused:
//!   a proxy or validator that reads the first one would see another request
//!   than the one counted (serde_json alone keeps the last).
//! - A UTF-8 byte order mark before the text is skipped (RFC 8259 lets a
//!   reader ignore it; some proxies and beacon paths add one).
//! - A number too large for a double (`1e400`) is located: its path is given,
//!   so the caller can name the field it was in.

use crate::event::invalid_json;
use crate::problem::BODY_PATH;
use crate::{Code, Message, Problem};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Why a body is not a JSON value Myna reads.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON (or not UTF-8): serde_json's error, and the path of the
    /// value it was reading, if inside one (`events[0].typename`).
    Syntax(serde_json::Error, Option<String>),
    /// A key given twice in one object: the path of its second value.
    DuplicateKey {
        /// `events[0].variant`.
        path: String,
        /// The key.
        key: String,
    },
    /// A number too large for a double, at this path (`None` outside any
    /// field).
    OutOfRange(Option<String>),
    /// More values than the caller's limit ([`parse_limited`]): the path of
    /// the one past it, and the limit.
    TooManyValues {
        /// `x[4096]`.
        path: Option<String>,
        /// The most values allowed.
        limit: usize,
    },
}

/// Parses `body` as one JSON value, strictly (see the module).
pub fn parse(body: &[u8]) -> Result<Value, JsonError> {
    parse_limited(body, usize::MAX)
}

/// [`parse`], refusing a body of more than `limit` values (every object,
/// array, string, number, boolean and null counts one) as soon as it
/// passes it: parsed, a value costs tens of bytes more than its text
/// (`[[0],[0],…]` grows a megabyte into ~90 MB), so bodies that anyone may
/// send are read within a bound that their real use stays far below.
pub fn parse_limited(body: &[u8], limit: usize) -> Result<Value, JsonError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let duplicate = Cell::new(None);
    let left = Cell::new(limit);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Strict {
        duplicate: &duplicate,
        left: &left,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    value.map_err(|error| {
        if left.get() == 0 && error.to_string().starts_with(TOO_MANY) {
            let path = path_at(body, offset(body, &error));
            JsonError::TooManyValues { path, limit }
        } else if let Some(key) = duplicate.take() {
            let path = path_at(body, offset(body, &error)).unwrap_or_default();
            JsonError::DuplicateKey { path, key }
        } else if error.to_string().starts_with("number out of range") {
            JsonError::OutOfRange(path_at(body, offset(body, &error)))
        } else {
            let path = path_at(body, offset(body, &error));
            JsonError::Syntax(error, path)
        }
    })
}

/// [`parse`], its errors as problems: invalid JSON, a key given twice (at
/// its path), a number out of range (at its path).
pub fn parse_body(body: &[u8]) -> Result<Value, Problem> {
    parse(body).map_err(problem)
}

/// The message of a number out of range where no field names it better.
pub const OUT_OF_RANGE: &str = "This number is out of range.";

/// A [`JsonError`] that no field names better, as a problem.
pub fn problem(error: JsonError) -> Problem {
    match error {
        JsonError::Syntax(error, path) => invalid_json(&error, path),
        JsonError::DuplicateKey { path, key } => Problem::one(Message::at(
            Code::InvalidJson,
            path,
            format!("The key `{key}` is given twice in one object: give each key once."),
        )),
        JsonError::OutOfRange(path) => Problem::one(Message::at(
            Code::InvalidValue,
            path.as_deref().unwrap_or(BODY_PATH),
            OUT_OF_RANGE,
        )),
        JsonError::TooManyValues { path, limit } => {
            let text = format!(
                "The body holds more than {limit} JSON values (counting every object, array, \
                 string, number, boolean and null): nothing in it was read."
            );
            let message = Message::at(
                Code::BodyTooLarge,
                path.as_deref().unwrap_or(BODY_PATH),
                text,
            );
            Problem::one(message.with_data(serde_json::json!({ "limit": limit })))
        }
    }
}

/// The start of the error [`Strict`] stops at once past its limit with.
const TOO_MANY: &str = "more values than allowed";

/// A JSON value with no key twice in one object; the first key found twice
/// is put in `duplicate`.
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<Option<String>>,
    /// Values that may still be read.
    left: &'a Cell<usize>,
}

impl Strict<'_> {
    /// Counts one value; an error once more were read than allowed.
    fn count<E: de::Error>(self) -> Result<(), E> {
        match self.left.get() {
            0 => Err(E::custom(TOO_MANY)),
            left => {
                self.left.set(left - 1);
                Ok(())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.count()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(value) = seq.next_element_seed(self)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                self.duplicate.set(Some(key));
                return Err(de::Error::custom("a key twice in one object"));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The byte offset of serde_json's `error` in `body` (its line and column
/// are 1-based, in bytes).
fn offset(body: &[u8], error: &serde_json::Error) -> usize {
    let line_start = body
        .split_inclusive(|b| *b == b'\n')
        .take(error.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    line_start + error.column().saturating_sub(1)
}

/// Refuses the `fields` of an object (at `base`) that `what` does not read,
/// `typename` aside (any body may carry it), each an `invalid-value` at its
/// path: a misspelt field (`varaints`, `nmae`) would otherwise be a silent
/// no-op, and a read form's counts (`views`, `weight`) are the server's,
/// not something a body can set.
pub fn unknown_fields<'a>(
    fields: impl Iterator<Item = &'a String>,
    base: &str,
    known: &[&str],
    what: &str,
    problems: &mut Vec<Message>,
) {
    for field in fields {
        if field == "typename" || known.contains(&field.as_str()) {
            continue;
        }
        let mut path = base.to_owned();
        push_key(&mut path, field);
        let fields = known
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push(Message::at(
            Code::InvalidValue,
            path,
            format!("`{field}` is not a field of {what}, which takes {fields}."),
        ));
    }
}

/// Appends `key` to a problem path as the other problems write keys:
/// `.a` (none at the start) where it is a plain name, `["a.b"]`
/// (JSON-quoted) where it is anything else, so a path names one place.
pub fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(key).unwrap_or_default());
        path.push(']');
    }
}

/// The path (`events[3].amount`) of the value at byte `at` of the JSON
/// text `body`, read up to there; `None` outside any field.
fn path_at(body: &[u8], at: usize) -> Option<String> {
    enum Frame {
        /// An object, and the key of the value being read.
        Object(Option<String>),
        /// An array, and the index of the element being read.
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    let end = at.min(body.len());
    while i < end {
        match body[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(key)) => {
                    *key = None;
                    expect_key = true;
                }
                None => {}
            },
            b':' => expect_key = false,
            b'"' => {
                let start = i;
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    i += usize::from(body[i] == b'\\') + 1;
                }
                if expect_key && let Some(Frame::Object(key)) = stack.last_mut() {
                    *key = body
                        .get(start..=i)
                        .and_then(|text| serde_json::from_slice(text).ok());
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key)) => push_key(&mut path, key),
            Frame::Object(None) => return None,
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    (!path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":[1,-2,3.5,1e300,"x\u00e9",true,false,null,{}],"b":{"c":[]}}"#,
            "  [ ]  ",
            "18446744073709551615",
            r#""\ud83d\ude00""#,
        ] {
            let strict = parse(text.as_bytes()).expect(text);
            let plain: Value = serde_json::from_str(text).expect(text);
            assert_eq!(strict, plain, "{text}");
            assert_eq!(strict.to_string(), plain.to_string(), "{text}");
        }
    }

    #[test]
    fn a_key_twice_in_one_object_is_refused_with_its_path() {
        let cases = [
            (r#"{"events":[],"events":[]}"#, "events", "events"),
            (
                r#"{"events":[{"typename":"view","variant":"a","variant":"b"}]}"#,
                "events[0].variant",
                "variant",
            ),
            (r#"{"s":{"a\"b":1,"a\"b":2}}"#, r#"s["a\"b"]"#, "a\"b"),
            (
                r#"{"variants":{"a.b":{"name":"q","name":"r"}}}"#,
                r#"variants["a.b"].name"#,
                "name",
            ),
            (r#"{"s":{"":{"k":1,"k":2}}}"#, r#"s[""].k"#, "k"),
            (r#"{"a":1,"\u0061":2}"#, "a", "a"),
        ];
        for (text, at, name) in cases {
            match parse(text.as_bytes()) {
                Err(JsonError::DuplicateKey { path, key }) => {
                    assert_eq!((path.as_str(), key.as_str()), (at, name), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // The same key in two objects is no duplicate.
        assert_eq!(
            parse(br#"[{"a":1},{"a":2}]"#).expect("two objects"),
            json!([{"a":1},{"a":2}])
        );
    }

    #[test]
    fn a_syntax_error_names_the_value_it_broke_in() {
        let path = |body: &[u8]| match parse(body) {
            Err(JsonError::Syntax(_, path)) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            path(b"{\"events\":[{\"typename\":\"v\xff\",\"variant\":\"a\"}]}").as_deref(),
            Some("events[0].typename"),
            "not UTF-8"
        );
        assert_eq!(
            path(b"{\"events\":[{\"amount\": 0.5.1}]}").as_deref(),
            Some("events[0].amount")
        );
        assert_eq!(path(b"{} {}"), None, "outside any value");
        let problem = problem(parse(b"{\"name\": tru}").expect_err("refused"));
        assert_eq!(problem.messages[0].path.as_deref(), Some("name"));
        assert_eq!(problem.code(), Code::InvalidJson);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_trailing_text_refused() {
        assert_eq!(
            parse(b"\xEF\xBB\xBF{\"a\":1}").expect("BOM"),
            json!({"a": 1})
        );
        assert!(matches!(parse(b"{} {}"), Err(JsonError::Syntax(..))));
        assert!(matches!(parse(b"\xEF\xBB"), Err(JsonError::Syntax(..))));
        assert!(matches!(
            parse(b"{\"a\":\"\xff\"}"),
            Err(JsonError::Syntax(..))
        ));
    }

    #[test]
    fn a_number_out_of_range_is_located() {
        match parse(br#"{"events":[{"amount":1e400}]}"#) {
            Err(JsonError::OutOfRange(path)) => {
                assert_eq!(path.as_deref(), Some("events[0].amount"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(b"1e400"), Err(JsonError::OutOfRange(None))));
    }

    #[test]
    fn a_limited_parse_stops_past_its_limit_and_says_where() {
        // 3 values: the object, its array, the array's one number.
        let three = br#"{"a":[1]}"#;
        assert_eq!(
            parse_limited(three, 3).expect("3 values"),
            json!({"a": [1]})
        );
        match parse_limited(three, 2) {
            Err(JsonError::TooManyValues { path, limit }) => {
                assert_eq!((path.as_deref(), limit), (Some("a[0]"), 2));
            }
            other => panic!("{other:?}"),
        }
        // A megabyte of one-element arrays stops within the limit, early.
        let mut many = String::from(r#"{"events":[],"x":["#);
        many.push_str(&"[0],".repeat(250_000));
        many.push_str("[0]]}");
        match parse_limited(many.as_bytes(), 1000) {
            Err(JsonError::TooManyValues { path, limit: 1000 }) => {
                assert_eq!(path.as_deref(), Some("x[498][0]"));
            }
            other => panic!("{other:?}"),
        }
        let problem = problem(parse_limited(many.as_bytes(), 1000).expect_err("too many"));
        assert_eq!(
            (problem.status, problem.messages[0].code),
            (413, Code::BodyTooLarge)
        );
        assert_eq!(problem.messages[0].data, Some(json!({"limit": 1000})));
        // Other errors stay theirs near the limit.
        assert!(matches!(
            parse_limited(br#"{"a":1,"a":2}"#, 3),
            Err(JsonError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(deep.as_bytes()), Err(JsonError::Syntax(..))));
    }
}
