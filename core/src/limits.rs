//! Limits on every stored input, checked where the input is accepted (create
//! and update bodies) so that whatever the API accepts can be stored by every
//! backend and read back after a restart.
//!
//! Each limit is far beyond real use; each violation is a 400 problem
//! (`invalid-value`, or `invalid-settings-path` for a path) with the `path`
//! of the field and `data: { "limit": n }`. The checks run before the work
//! they protect against (a path's length before its segments are built, a
//! depth before a nested value is created) and none of them recurses.

use std::io;
use std::iter::Enumerate;
use std::slice;

use serde_json::{Value, json};

use crate::model::{Experiment, Variant};
use crate::problem::{Code, Message, Problem};
use crate::settings::{Segment, join_path};

/// Longest variant id, in characters.
pub const MAX_VARIANT_ID_CHARS: usize = 128;
/// Longest experiment id (the short name pages use: `myna-{id}`), in
/// characters (ASCII letters, digits, `-`, `_`).
pub const MAX_EXPERIMENT_ID_CHARS: usize = 64;
/// Longest experiment or variant name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Deepest nesting of a settings object: the object itself is level 1, an
/// object or array inside it level 2, and so on. Scalars add no level.
/// Far under the 128 levels JSON parsers (serde_json's included) accept.
pub const MAX_SETTINGS_DEPTH: usize = 32;
/// Longest settings path (`a.b[0]["c"]`) in `settingsUpdates`, in characters.
/// A path also has at most [`MAX_SETTINGS_DEPTH`] segments.
pub const MAX_SETTINGS_PATH_CHARS: usize = 1024;
/// Largest settings object (an experiment's or a variant's), in bytes of
/// compact JSON, as stored.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;
/// Most variants an experiment has.
pub const MAX_VARIANTS: usize = 100;
/// Largest definition of an experiment, in bytes: its name and settings
/// (compact JSON) and each variant's id, name and settings.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// Longest webhook URL, in bytes (ASCII only).
pub const MAX_WEBHOOK_URL_BYTES: usize = 2048;
/// Most webhooks an account has.
pub const MAX_WEBHOOKS: usize = 10;
/// Most API keys an account has.
pub const MAX_API_KEYS: usize = 100;
/// Most login tokens of each kind (API Bearer tokens, dashboard sessions)
/// an account has: a login past it ends the one that would expire first.
pub const MAX_TOKENS: usize = 1_000;
/// Most experiments an account has (of every visibility): creating one
/// more is a 409 `conflict` until one is deleted.
pub const MAX_EXPERIMENTS: usize = 10_000;

/// Whether a name is blank: nothing a reader would see. Every character is
/// white space, a control character, a combining mark (which alone marks
/// nothing), or one of Unicode's default-ignorable code points (format
/// characters such as zero-width space and joiners, the bidi controls,
/// the soft hyphen, variation selectors, Hangul fillers, tags: what a
/// font shows nothing for), or a noncharacter. Private-use characters are
/// not blank (icon fonts draw them).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || unicode_normalization::char::is_combining_mark(c)
            || is_default_ignorable(c)
            || is_noncharacter(c)
    })
}

/// Unicode's noncharacters (U+FDD0 to U+FDEF, and the last two of every
/// plane): never shown.
fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xfdd0..=0xfdef).contains(&c) || c & 0xfffe == 0xfffe
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt):
/// never shown by itself (zero-width spaces and joiners, bidi controls,
/// variation selectors...).
pub fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// Whether `text` holds U+0000, which no stored text may (PostgreSQL's
/// text types refuse it; every backend must accept the same inputs).
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The problem of a text holding U+0000, at `path`.
pub fn nul_problem(path: impl Into<String>) -> Message {
    Message::at(
        Code::InvalidValue,
        path,
        "Text may not hold the character U+0000 (NUL).",
    )
}

/// A problem of a value over `limit`, at `path`, with `data: {"limit": limit}`.
pub fn over_limit(code: Code, path: impl Into<String>, limit: usize, message: String) -> Message {
    Message::at(code, path, message).with_data(json!({ "limit": limit }))
}

/// The 409 of an account that has `limit` of something already (`what`,
/// plural: "API keys"), saying what to do first (`remedy`: "revoke one
/// first"), with `data: {"limit": limit}`.
pub fn account_full(what: &str, limit: usize, remedy: &str) -> Problem {
    Problem::one(
        Message::new(
            Code::Conflict,
            format!("An account has at most {limit} {what}: {remedy}."),
        )
        .with_data(json!({ "limit": limit })),
    )
}

/// What a scan of a settings value found: where it first nests too deep and
/// where it first holds U+0000 (as segments from the scanned value).
#[derive(Debug, Default, PartialEq)]
pub struct Scan {
    /// The first object or array beyond the depth allowed (not looked into).
    pub too_deep: Option<Vec<Segment>>,
    /// The first key or string holding U+0000.
    pub nul: Option<Vec<Segment>>,
}

enum Children<'a> {
    Object(serde_json::map::Iter<'a>),
    Array(Enumerate<slice::Iter<'a, Value>>),
}

impl<'a> Children<'a> {
    fn of(value: &'a Value) -> Option<Children<'a>> {
        match value {
            Value::Object(map) => Some(Children::Object(map.iter())),
            Value::Array(items) => Some(Children::Array(items.iter().enumerate())),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<(Step<'a>, &'a Value)> {
        match self {
            Children::Object(entries) => entries.next().map(|(k, v)| (Step::Key(k), v)),
            Children::Array(items) => items.next().map(|(i, v)| (Step::Index(i), v)),
        }
    }
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &[Step<'_>], last: Option<Step<'_>>) -> Vec<Segment> {
    path.iter()
        .chain(last.as_ref())
        .map(|step| match *step {
            Step::Key(key) => Segment::Key(key.to_owned()),
            Step::Index(index) => Segment::Index(index),
        })
        .collect()
}

/// Scans `value` without recursion: objects and arrays count one level each
/// (a scalar none), and nothing deeper than `depth` levels is looked into;
/// keys and strings are checked for U+0000. Stops once both are found.
pub fn scan(value: &Value, depth: usize) -> Scan {
    let mut found = Scan::default();
    if let Value::String(s) = value
        && has_nul(s)
    {
        found.nul = Some(Vec::new());
    }
    let Some(children) = Children::of(value) else {
        return found;
    };
    if depth == 0 {
        found.too_deep = Some(Vec::new());
        return found;
    }
    // `stack[i]` walks the children of the container at `path[..i]`.
    let mut stack = vec![children];
    let mut path: Vec<Step<'_>> = Vec::new();
    while let Some(top) = stack.last_mut() {
        let Some((step, child)) = top.next() else {
            stack.pop();
            path.pop();
            continue;
        };
        if found.nul.is_none() {
            let nul = match (step, child) {
                (Step::Key(key), _) if has_nul(key) => true,
                (_, Value::String(s)) => has_nul(s),
                _ => false,
            };
            if nul {
                found.nul = Some(segments(&path, Some(step)));
            }
        }
        if let Some(children) = Children::of(child) {
            if stack.len() < depth {
                path.push(step);
                stack.push(children);
            } else if found.too_deep.is_none() {
                found.too_deep = Some(segments(&path, Some(step)));
            }
        }
        if found.nul.is_some() && found.too_deep.is_some() {
            break;
        }
    }
    found
}

/// Counts bytes written, failing once there are more than `limit`.
struct Counter {
    bytes: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        if self.bytes > self.limit {
            return Err(io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of `value` as compact JSON (as stored), in bytes; `None` as soon
/// as it passes `limit` (the rest is not serialized).
pub fn json_bytes(value: &Value, limit: usize) -> Option<usize> {
    let mut counter = Counter { bytes: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.bytes)
}

/// What [`MAX_DEFINITION_BYTES`] counts of an experiment.
#[derive(Debug, Clone, Copy)]
pub struct Definition<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its settings.
    pub settings: &'a Value,
    /// Its variants (ids, names, settings).
    pub variants: &'a [Variant],
}

impl<'a> From<&'a Experiment> for Definition<'a> {
    fn from(experiment: &'a Experiment) -> Self {
        Definition {
            name: &experiment.name,
            settings: &experiment.settings,
            variants: &experiment.variants,
        }
    }
}

/// The size of a definition in bytes: its name, its settings (compact
/// JSON), each variant's id, name and settings; `None` as soon as it passes
/// `limit`.
pub fn definition_bytes<'a>(definition: impl Into<Definition<'a>>, limit: usize) -> Option<usize> {
    let definition = definition.into();
    let mut total = 0usize;
    let mut add = |text: usize, settings: &Value| {
        total = total.checked_add(text).filter(|t| *t <= limit)?;
        total += json_bytes(settings, limit - total)?;
        Some(())
    };
    add(definition.name.len(), definition.settings)?;
    for variant in definition.variants {
        add(variant.id.len() + variant.name.len(), &variant.settings)?;
    }
    Some(total)
}

/// Checks a whole settings object given at `path` (`settings`,
/// `variants["a"].settings`): depth, U+0000, size. Every problem found is
/// added to `problems`; true if there was none.
pub fn check_settings(value: &Value, path: &str, problems: &mut Vec<Message>) -> bool {
    let before = problems.len();
    let found = scan(value, MAX_SETTINGS_DEPTH);
    if let Some(at) = found.too_deep {
        problems.push(too_deep(&join_path(path, &at)));
    }
    if let Some(at) = found.nul {
        problems.push(nul_problem(join_path(path, &at)));
    }
    if problems.len() == before && json_bytes(value, MAX_SETTINGS_BYTES).is_none() {
        problems.push(settings_too_large(path));
    }
    problems.len() == before
}

/// The problem of settings nested deeper than [`MAX_SETTINGS_DEPTH`], at `path`.
pub fn too_deep(path: &str) -> Message {
    over_limit(
        Code::InvalidValue,
        path,
        MAX_SETTINGS_DEPTH,
        format!("Settings may nest at most {MAX_SETTINGS_DEPTH} levels of objects and arrays."),
    )
}

/// The problem of settings over [`MAX_SETTINGS_BYTES`], at `path`.
pub fn settings_too_large(path: &str) -> Message {
    over_limit(
        Code::InvalidValue,
        path,
        MAX_SETTINGS_BYTES,
        format!("A settings object may be at most {MAX_SETTINGS_BYTES} bytes of JSON."),
    )
}

/// The problem of more than [`MAX_VARIANTS`] variants, at `path`.
pub fn too_many_variants(path: &str) -> Message {
    over_limit(
        Code::InvalidValue,
        path,
        MAX_VARIANTS,
        format!("An experiment may have at most {MAX_VARIANTS} variants."),
    )
}

/// The problem of a definition over [`MAX_DEFINITION_BYTES`], at `path`.
pub fn definition_too_large(path: &str) -> Message {
    over_limit(
        Code::InvalidValue,
        path,
        MAX_DEFINITION_BYTES,
        format!(
            "An experiment's definition (name, settings, variants) may be at most \
             {MAX_DEFINITION_BYTES} bytes."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    /// `levels` objects, one inside the other: `{"k":{"k":…{}}}`.
    fn nested(levels: usize) -> Value {
        let mut value = Value::Object(serde_json::Map::new());
        for _ in 1..levels {
            let mut outer = serde_json::Map::new();
            outer.insert("k".into(), value);
            value = Value::Object(outer);
        }
        value
    }

    #[test]
    fn a_name_of_white_space_or_invisible_characters_is_blank() {
        for blank in [
            "",
            " ",
            "\u{3000}\u{a0}",
            "\u{200b}",
            "\u{feff}\u{2060} \u{200d}",
            // Control characters (ESC, CSI), bidi overrides, a combining
            // mark alone, fillers, a variation selector, a tag, a musical
            // format character: each alone shows nothing.
            "\u{1}",
            "\u{1b}",
            "\u{7f}\u{9b}",
            "\u{202e}",
            "\u{301}",
            "\u{34f}\u{115f}\u{3164}",
            "\u{fe0f}",
            "\u{e0001}",
            "\u{1d173}",
            // Noncharacters.
            "\u{ffff}\u{fdd0}\u{1fffe}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for name in [
            "a",
            " a ",
            "\u{200b}b",
            "😀",
            "e\u{301}",
            "\u{202e}abc",
            "ᄀ",
            "\u{2764}\u{fe0f}",
            // Private use: an icon font's glyph.
            "\u{e000}",
        ] {
            assert!(!is_blank(name), "{name:?}");
        }
    }

    #[test]
    fn depth_counts_containers_not_scalars() {
        assert_eq!(scan(&json!({"a": 1, "b": "x"}), 1), Scan::default());
        assert_eq!(scan(&json!(5), 0), Scan::default());
        assert_eq!(scan(&json!({}), 0).too_deep, Some(vec![]));
        assert_eq!(
            scan(&json!({"a": [1, {"b": 2}]}), 2).too_deep,
            Some(vec![key("a"), Segment::Index(1)])
        );
        assert_eq!(scan(&json!({"a": [1, {"b": 2}]}), 3), Scan::default());
        assert_eq!(
            scan(&nested(MAX_SETTINGS_DEPTH), MAX_SETTINGS_DEPTH),
            Scan::default()
        );
        let deep = scan(&nested(MAX_SETTINGS_DEPTH + 1), MAX_SETTINGS_DEPTH).too_deep;
        assert_eq!(deep.map(|p| p.len()), Some(MAX_SETTINGS_DEPTH));
    }

    #[test]
    fn nul_is_found_in_keys_and_strings_at_any_depth() {
        assert_eq!(scan(&json!("a\u{0}"), 1).nul, Some(vec![]));
        assert_eq!(
            scan(&json!({"a": {"b\u{0}c": 1}}), 32).nul,
            Some(vec![key("a"), key("b\u{0}c")])
        );
        assert_eq!(
            scan(&json!({"a": [1, "x\u{0}"]}), 32).nul,
            Some(vec![key("a"), Segment::Index(1)])
        );
        assert_eq!(scan(&json!({"a": ["\u{1}\u{7f}é😀"]}), 32).nul, None);
    }

    #[test]
    fn a_very_deep_value_is_scanned_without_recursion() {
        // Deeper than any stack would allow a recursive walk (and a recursive
        // drop: it is taken apart level by level below).
        let mut value = Value::Array(Vec::new());
        for _ in 0..200_000 {
            value = Value::Array(vec![value]);
        }
        let found = scan(&value, MAX_SETTINGS_DEPTH);
        assert_eq!(
            found.too_deep.map(|p| p.len()),
            Some(MAX_SETTINGS_DEPTH),
            "stops at the limit"
        );
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn size_is_counted_up_to_the_limit() {
        let value = json!({"a": "é"});
        assert_eq!(json_bytes(&value, 100), Some(value.to_string().len()));
        assert_eq!(json_bytes(&value, 5), None);
        let big = json!({ "x": "y".repeat(MAX_SETTINGS_BYTES) });
        let mut problems = Vec::new();
        assert!(!check_settings(&big, "settings", &mut problems));
        assert_eq!(problems[0].path.as_deref(), Some("settings"));
        assert_eq!(
            problems[0].data,
            Some(json!({ "limit": MAX_SETTINGS_BYTES }))
        );
    }

    #[test]
    fn check_settings_names_where() {
        let mut problems = Vec::new();
        let value = json!({"a b": {"x.y": ["\u{0}"]}});
        assert!(!check_settings(&value, "settings", &mut problems));
        assert_eq!(
            problems[0].path.as_deref(),
            Some(r#"settings["a b"]["x.y"][0]"#)
        );
        assert_eq!(problems[0].code, Code::InvalidValue);
    }
}
