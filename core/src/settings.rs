//! Settings: free JSON objects, and `settingsUpdates` that set or remove
//! single entries by path (`buttons.color`, `items[2]`, `labels["a.b"]`).

use serde_json::{Map, Value};

use crate::limits::{
    MAX_SETTINGS_BYTES, MAX_SETTINGS_DEPTH, MAX_SETTINGS_PATH_CHARS, has_nul, json_bytes,
    nul_problem, over_limit, scan, settings_too_large, too_deep,
};
use crate::problem::{Code, Message};

/// One step of a settings path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Why a settings path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not a path: the reason, for humans.
    Malformed(String),
    /// Longer than [`MAX_SETTINGS_PATH_CHARS`] characters.
    TooLong,
    /// More than [`MAX_SETTINGS_DEPTH`] segments.
    TooDeep,
}

impl From<String> for PathError {
    fn from(reason: String) -> Self {
        PathError::Malformed(reason)
    }
}

/// Parses a settings path: dot-separated names with `[n]` or `["quoted"]`
/// segments. Names may hold any character but `.`, `[`, `]` and `"`; quoted
/// names take JSON's escapes (`\"`, `\\`, `\n`, `\u0001`…), as every
/// problem's path is written ([`key_path`]).
///
/// Its length is checked before anything else ([`MAX_SETTINGS_PATH_CHARS`]),
/// and its segments are counted as they are read: parsing stops at the first
/// past [`MAX_SETTINGS_DEPTH`].
pub fn parse_path(text: &str) -> Result<Vec<Segment>, PathError> {
    if text.chars().nth(MAX_SETTINGS_PATH_CHARS).is_some() {
        return Err(PathError::TooLong);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    if chars.is_empty() {
        return Err(PathError::Malformed("the path is empty".into()));
    }
    while i < chars.len() {
        if segments.len() == MAX_SETTINGS_DEPTH {
            return Err(PathError::TooDeep);
        }
        match chars[i] {
            '[' => {
                let (segment, next) = parse_bracket(&chars, i)?;
                segments.push(segment);
                i = next;
            }
            '.' if !segments.is_empty() => {
                i += 1;
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[' | ']' | '"') {
                    i += 1;
                }
                if start == i {
                    return Err(format!("an empty name at character {start}").into());
                }
                segments.push(Segment::Key(chars[start..i].iter().collect()));
            }
            _ if segments.is_empty() => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[' | ']' | '"') {
                    i += 1;
                }
                if start == i {
                    return Err(format!("unexpected `{}` at character {i}", chars[i]).into());
                }
                segments.push(Segment::Key(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected `{c}` at character {i}").into()),
        }
    }
    Ok(segments)
}

/// Parses `[n]` or `["quoted"]` starting at `open`; returns the segment and the
/// index just past `]`.
fn parse_bracket(chars: &[char], open: usize) -> Result<(Segment, usize), String> {
    let mut i = open + 1;
    if chars.get(i) == Some(&'"') {
        i += 1;
        let mut key = String::new();
        loop {
            match chars.get(i) {
                None => return Err(format!("an unterminated quote at character {open}")),
                Some('\\') => {
                    let (c, next) = unescape(chars, i)
                        .ok_or_else(|| format!("a bad escape at character {i}"))?;
                    key.push(c);
                    i = next;
                }
                Some('"') => break,
                Some(c) => {
                    key.push(*c);
                    i += 1;
                }
            }
        }
        if chars.get(i + 1) != Some(&']') {
            return Err(format!("a missing `]` at character {}", i + 1));
        }
        Ok((Segment::Key(key), i + 2))
    } else {
        let start = i;
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        if start == i || chars.get(i) != Some(&']') {
            return Err(format!(
                "`[` at character {open} must hold an index or a quoted name"
            ));
        }
        let digits: String = chars[start..i].iter().collect();
        let index = digits
            .parse()
            .map_err(|_| format!("the index at character {start} is too large"))?;
        Ok((Segment::Index(index), i + 1))
    }
}

/// The character JSON's escape at `at` (a `\\`) stands for, and the index
/// past it; `None` for no escape JSON knows (a lone surrogate included).
fn unescape(chars: &[char], at: usize) -> Option<(char, usize)> {
    let simple = match chars.get(at + 1)? {
        c @ ('"' | '\\' | '/') => *c,
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => {
            let unit = |from: usize| -> Option<u32> {
                let hex: String = chars.get(from..from + 4)?.iter().collect();
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
            };
            let high = unit(at + 2)?;
            if !(0xD800..0xDC00).contains(&high) {
                return char::from_u32(high).map(|c| (c, at + 6));
            }
            // A surrogate pair: `\uD83D\uDE00`.
            if chars.get(at + 6..at + 8)? != ['\\', 'u'] {
                return None;
            }
            let low = unit(at + 8).filter(|low| (0xDC00..0xE000).contains(low))?;
            let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
            return Some((c, at + 12));
        }
        _ => return None,
    };
    Some((simple, at + 2))
}

/// The path of a key inside an object field, as every problem names it
/// ([`crate::json::push_key`]): `variants.a`, `settingsUpdates["a.b"]`.
pub fn key_path(base: &str, key: &str) -> String {
    let mut path = base.to_owned();
    crate::json::push_key(&mut path, key);
    path
}

/// The path of a place inside the value at `base`, as problems name it:
/// a plain name after a dot, any other key quoted, indexes bare
/// (`settings.a[0]["b.c"]`), itself a settings path.
pub fn join_path(base: &str, segments: &[Segment]) -> String {
    let mut out = base.to_owned();
    for segment in segments {
        match segment {
            Segment::Key(key) => out = key_path(&out, key),
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// Applies `updates` (path → value; `null` removes) to `settings`, atomically:
/// on any problem `settings` is left as it was and every problem is returned.
///
/// `base` names the updates object in problem paths (`settingsUpdates`).
/// Each path and value is checked against the limits before it is applied
/// (length, depth, U+0000), and the result against the size limit (unless
/// it is no larger than before: settings stored before the limit may shrink).
pub fn apply_updates(
    settings: &mut Value,
    updates: &Map<String, Value>,
    base: &str,
) -> Result<(), Vec<Message>> {
    let mut next = settings.clone();
    if !next.is_object() {
        next = Value::Object(Map::new());
    }
    let mut problems = Vec::new();
    let mut seen: Vec<(&str, Vec<Segment>)> = Vec::new();
    for (path, value) in updates {
        let here = key_path(base, path);
        let segments = match parse_path(path) {
            Ok(segments) => segments,
            Err(error) => {
                problems.push(path_problem(&here, path, error));
                continue;
            }
        };
        // One path inside another (or the same one spelled twice): the
        // result would depend on the order of the object's keys, which
        // JSON does not keep.
        let overlap = seen.iter().find(|(_, other)| {
            let n = other.len().min(segments.len());
            other[..n] == segments[..n]
        });
        if let Some((other, _)) = overlap {
            problems.push(Message::at(
                Code::InvalidSettingsPath,
                here,
                format!(
                    "The settings paths `{other}` and `{path}` overlap: which applies first is not \
                     defined; give one of them."
                ),
            ));
            continue;
        }
        seen.push((path, segments.clone()));
        if segments
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if has_nul(k)))
        {
            problems.push(nul_problem(&here));
            continue;
        }
        if !value.is_null() {
            // The value lands `segments.len()` levels down (the settings
            // object is level 1): it may add what is left of the limit.
            let found = scan(value, MAX_SETTINGS_DEPTH - segments.len());
            let refused = found.too_deep.is_some() || found.nul.is_some();
            if let Some(at) = found.too_deep {
                problems.push(too_deep(&join_path(&here, &at)));
            }
            if let Some(at) = found.nul {
                problems.push(nul_problem(join_path(&here, &at)));
            }
            if refused {
                continue;
            }
        }
        if let Err(reason) = set_spelled(&mut next, &segments, value) {
            problems.push(Message::at(
                Code::InvalidSettingsPath,
                here,
                format!("The settings path `{path}` is malformed: {reason}."),
            ));
        }
    }
    if problems.is_empty() && json_bytes(&next, MAX_SETTINGS_BYTES).is_none() {
        let before = json_bytes(settings, usize::MAX).unwrap_or(0);
        if json_bytes(&next, before).is_none() {
            problems.push(settings_too_large(base));
        }
    }
    if problems.is_empty() {
        *settings = next;
        Ok(())
    } else {
        Err(problems)
    }
}

fn path_problem(here: &str, path: &str, error: PathError) -> Message {
    match error {
        PathError::Malformed(reason) => Message::at(
            Code::InvalidSettingsPath,
            here,
            format!("The settings path `{path}` is malformed: {reason}."),
        ),
        PathError::TooLong => over_limit(
            Code::InvalidSettingsPath,
            here,
            MAX_SETTINGS_PATH_CHARS,
            format!("A settings path may be at most {MAX_SETTINGS_PATH_CHARS} characters."),
        ),
        PathError::TooDeep => over_limit(
            Code::InvalidSettingsPath,
            here,
            MAX_SETTINGS_DEPTH,
            format!("A settings path may have at most {MAX_SETTINGS_DEPTH} segments."),
        ),
    }
}

/// Sets (or, for `null`, removes) the setting at `segments` inside `root`
/// as readers take it: a path of plain names (`myna.web.sticky`) names the
/// same setting stored flat (`{"myna.web.sticky": …}`), nested, or between,
/// and readers (the decision's, the SDK's) take the first spelling found,
/// shortest names first. A value goes where they read it (nested when no
/// spelling is stored); `null` removes every spelling, so none that was
/// hidden shows instead. Other paths are taken as written.
fn set_spelled(root: &mut Value, segments: &[Segment], value: &Value) -> Result<(), String> {
    let names: Option<Vec<&str>> = segments
        .iter()
        .map(|segment| match segment {
            Segment::Key(key) if !key.contains('.') => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let Some(names) = names.filter(|names| names.len() > 1) else {
        return set(root, segments, value);
    };
    if value.is_null() {
        remove_spellings(root, &names);
        return Ok(());
    }
    match stored_spelling(root, &names) {
        Some(keys) => set(root, &keys, value),
        None => set(root, segments, value),
    }
}

/// The spelling of `names` that readers take in `value` (flat, nested or
/// between, shortest names first), as keys, if one is stored.
fn stored_spelling(value: &Value, names: &[&str]) -> Option<Vec<Segment>> {
    let map = value.as_object()?;
    for taken in 1..=names.len() {
        let key = names[..taken].join(".");
        let Some(inner) = map.get(&key) else {
            continue;
        };
        let rest = if taken == names.len() {
            Some(Vec::new())
        } else {
            stored_spelling(inner, &names[taken..])
        };
        if let Some(mut rest) = rest {
            rest.insert(0, Segment::Key(key));
            return Some(rest);
        }
    }
    None
}

/// Removes every spelling of `names` (flat, nested or between) from
/// `value`, keeping the order of the other keys.
pub(crate) fn remove_spellings(value: &mut Value, names: &[&str]) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    for taken in 1..=names.len() {
        let key = names[..taken].join(".");
        if taken == names.len() {
            map.shift_remove(&key);
        } else if let Some(inner) = map.get_mut(&key) {
            remove_spellings(inner, &names[taken..]);
        }
    }
}

/// Sets (or, for `null`, removes) the entry at `segments` inside `root`.
fn set(root: &mut Value, segments: &[Segment], value: &Value) -> Result<(), String> {
    let Some((last, parents)) = segments.split_last() else {
        return Err("the path is empty".into());
    };
    let mut here = root;
    for (depth, segment) in parents.iter().enumerate() {
        let next_is_index = matches!(segments[depth + 1], Segment::Index(_));
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        here = match (segment, here) {
            (Segment::Key(key), Value::Object(map)) => {
                if value.is_null() && !map.contains_key(key) {
                    return Ok(()); // removing inside something absent: nothing to do
                }
                map.entry(key.clone()).or_insert_with(fresh)
            }
            (Segment::Index(index), Value::Array(items)) => {
                if *index == items.len() && !value.is_null() {
                    items.push(fresh());
                }
                match items.get_mut(*index) {
                    Some(item) => item,
                    None if value.is_null() => return Ok(()),
                    None => return Err(format!("index {index} is past the end of its array")),
                }
            }
            // Removing inside what is no container: nothing to remove.
            _ if value.is_null() => return Ok(()),
            (segment, other) => return Err(mismatch(segments, depth, segment, other)),
        };
    }
    match (last, here) {
        (Segment::Key(key), Value::Object(map)) => {
            if value.is_null() {
                map.shift_remove(key);
            } else {
                map.insert(key.clone(), value.clone());
            }
            Ok(())
        }
        (Segment::Index(index), Value::Array(items)) => {
            if value.is_null() {
                if *index < items.len() {
                    items.remove(*index);
                }
                Ok(())
            } else if *index < items.len() {
                items[*index] = value.clone();
                Ok(())
            } else if *index == items.len() {
                items.push(value.clone());
                Ok(())
            } else {
                Err(format!("index {index} is past the end of its array"))
            }
        }
        _ if value.is_null() => Ok(()),
        (segment, other) => Err(mismatch(segments, parents.len(), segment, other)),
    }
}

fn mismatch(segments: &[Segment], depth: usize, segment: &Segment, found: &Value) -> String {
    let wanted = match segment {
        Segment::Key(_) => "an object",
        Segment::Index(_) => "an array",
    };
    let kind = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    if depth == 0 {
        format!("the settings root is {kind}, not {wanted}")
    } else {
        format!(
            "`{}` is {kind}, not {wanted}",
            format_path(&segments[..depth])
        )
    }
}

/// Formats segments back into path text (`a.b[0]["c.d"]`), as problems
/// write paths ([`join_path`]: a key that is no plain name JSON-quoted).
pub fn format_path(segments: &[Segment]) -> String {
    join_path("", segments)
}

#[cfg(test)]
mod tests;
