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
/// names take `\"` and `\\` escapes.
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
                Some('\\') => match chars.get(i + 1) {
                    Some(c @ ('"' | '\\')) => {
                        key.push(*c);
                        i += 2;
                    }
                    _ => return Err(format!("a bad escape at character {i}")),
                },
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

/// The path of a key inside an object field, as problems name it: `settingsUpdates["a.b"]`.
pub fn key_path(base: &str, key: &str) -> String {
    let quoted = serde_json::to_string(key).unwrap_or_default();
    format!("{base}[{quoted}]")
}

/// The path of a place inside the value at `base`, as problems name it:
/// keys quoted, indexes bare (`settings["a"][0]["b.c"]`).
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
    for (path, value) in updates {
        let here = key_path(base, path);
        let segments = match parse_path(path) {
            Ok(segments) => segments,
            Err(error) => {
                problems.push(path_problem(&here, path, error));
                continue;
            }
        };
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
        if let Err(reason) = set(&mut next, &segments, value) {
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

/// Formats segments back into path text (`a.b[0]["c.d"]`).
pub fn format_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) if is_plain(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
                out.push_str(&format!("[\"{escaped}\"]"));
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn is_plain(key: &str) -> bool {
    !key.is_empty() && !key.contains(['.', '[', ']', '"'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn parses_names_indexes_and_quoted() {
        assert_eq!(
            parse_path(r#"a.b[2]["c.d\"e"].f"#),
            Ok(vec![
                key("a"),
                key("b"),
                Segment::Index(2),
                key("c.d\"e"),
                key("f")
            ])
        );
        assert_eq!(parse_path("[0]"), Ok(vec![Segment::Index(0)]));
        assert_eq!(
            format_path(&parse_path(r#"a["x.y"][3].b"#).unwrap_or_default()),
            r#"a["x.y"][3].b"#
        );
    }

    #[test]
    fn refuses_malformed_paths() {
        for bad in [
            "", "a..b", ".a", "a.", "a[", "a[x]", "a[-1]", "a[\"x]", "a]", "a\"b", "a[1]b",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn updates_set_create_and_remove() {
        let mut settings = json!({"buttons": {"color": "red", "size": 2}, "keep": true});
        let updates = json!({
            "buttons.color": "blue",
            "buttons.size": null,
            "new.deep[0]": 1,
            "missing.entry": null,
        });
        let updates = updates.as_object().cloned().unwrap_or_default();
        assert_eq!(
            apply_updates(&mut settings, &updates, "settingsUpdates"),
            Ok(())
        );
        assert_eq!(
            settings,
            json!({"buttons": {"color": "blue"}, "keep": true, "new": {"deep": [1]}})
        );
    }

    #[test]
    fn bad_updates_change_nothing_and_name_every_path() {
        let before = json!({"n": 1});
        let mut settings = before.clone();
        let updates = json!({"a..b": 1, "n.x": 2, "ok": 3});
        let updates = updates.as_object().cloned().unwrap_or_default();
        let problems = apply_updates(&mut settings, &updates, "settingsUpdates").err();
        let paths: Vec<_> = problems
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.code, m.path.unwrap_or_default()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (
                    Code::InvalidSettingsPath,
                    r#"settingsUpdates["a..b"]"#.to_owned()
                ),
                (
                    Code::InvalidSettingsPath,
                    r#"settingsUpdates["n.x"]"#.to_owned()
                ),
            ]
        );
        assert_eq!(settings, before);
    }

    fn updates(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn problems(settings: &mut Value, value: Value) -> Vec<(Code, String, Option<Value>)> {
        apply_updates(settings, &updates(value), "settingsUpdates")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|m| (m.code, m.path.unwrap_or_default(), m.data))
            .collect()
    }

    #[test]
    fn path_length_and_segments_are_limited_before_parsing_them() {
        let longest = "a".repeat(MAX_SETTINGS_PATH_CHARS);
        assert!(parse_path(&longest).is_ok());
        assert_eq!(parse_path(&format!("{longest}b")), Err(PathError::TooLong));
        // Characters, not bytes.
        assert!(parse_path(&"é".repeat(MAX_SETTINGS_PATH_CHARS)).is_ok());
        let deepest = vec!["a"; MAX_SETTINGS_DEPTH].join(".");
        assert_eq!(
            parse_path(&deepest).map(|s| s.len()),
            Ok(MAX_SETTINGS_DEPTH)
        );
        assert_eq!(parse_path(&format!("{deepest}.a")), Err(PathError::TooDeep));
        assert_eq!(
            parse_path(&format!("{deepest}[0]")),
            Err(PathError::TooDeep)
        );
        // The review's 129 segments, and 10,000 (a 20 KB body that used to
        // overflow the stack): refused, nothing built.
        let path = vec!["a"; 129].join(".");
        assert_eq!(parse_path(&path), Err(PathError::TooDeep));
        let path = vec!["a"; 10_000].join(".");
        assert_eq!(parse_path(&path), Err(PathError::TooLong));
        let path = "[0]".repeat(300);
        assert_eq!(parse_path(&path), Err(PathError::TooDeep));
    }

    #[test]
    fn updates_may_not_nest_deeper_than_the_limit() {
        let limit = Some(json!({ "limit": MAX_SETTINGS_DEPTH }));
        let deepest = vec!["a"; MAX_SETTINGS_DEPTH].join(".");
        let mut settings = json!({});
        assert_eq!(
            problems(&mut settings, json!({ deepest.clone(): 1 })),
            vec![]
        );
        // A container there would be one level too many.
        let mut settings = json!({});
        let found = problems(&mut settings, json!({ deepest.clone(): {} }));
        let here = key_path("settingsUpdates", &deepest);
        assert_eq!(found, vec![(Code::InvalidValue, here, limit.clone())]);
        assert_eq!(settings, json!({}));
        // Depth of the path plus depth of the value.
        let mut settings = json!({});
        let value = json!({"b": [[1]]});
        assert_eq!(
            problems(&mut settings, json!({ "x.y": value.clone() })),
            vec![]
        );
        let path = vec!["x"; MAX_SETTINGS_DEPTH - 3].join(".");
        assert_eq!(
            problems(&mut settings, json!({ path.clone(): value.clone() })),
            vec![]
        );
        let path = format!("{path}.x");
        let found = problems(&mut settings, json!({ path.clone(): value }));
        let here = format!(r#"{}["b"][0]"#, key_path("settingsUpdates", &path));
        assert_eq!(found, vec![(Code::InvalidValue, here, limit.clone())]);
        // Too many segments: a path problem, with the limit.
        let path = vec!["a"; 129].join(".");
        let found = problems(&mut json!({}), json!({ path.clone(): 1 }));
        let here = key_path("settingsUpdates", &path);
        assert_eq!(found, vec![(Code::InvalidSettingsPath, here, limit)]);
        let path = "x".repeat(MAX_SETTINGS_PATH_CHARS + 1);
        let found = problems(&mut json!({}), json!({ path.clone(): 1 }));
        let here = key_path("settingsUpdates", &path);
        let limit = Some(json!({ "limit": MAX_SETTINGS_PATH_CHARS }));
        assert_eq!(found, vec![(Code::InvalidSettingsPath, here, limit)]);
    }

    #[test]
    fn updates_may_not_store_nul() {
        let mut settings = json!({"keep": 1});
        let found = problems(
            &mut settings,
            json!({"a\u{0}b": 1, "[\"q\u{0}\"]": 2, "ok": "x\u{0}", "v": {"k\u{0}": 1}, "fine": "\u{1}"}),
        );
        assert_eq!(
            found,
            vec![
                (
                    Code::InvalidValue,
                    key_path("settingsUpdates", "a\u{0}b"),
                    None
                ),
                (
                    Code::InvalidValue,
                    key_path("settingsUpdates", "[\"q\u{0}\"]"),
                    None
                ),
                (Code::InvalidValue, key_path("settingsUpdates", "ok"), None),
                (
                    Code::InvalidValue,
                    key_path(&key_path("settingsUpdates", "v"), "k\u{0}"),
                    None
                ),
            ]
        );
        assert_eq!(settings, json!({"keep": 1}));
    }

    #[test]
    fn updates_may_not_make_settings_too_large_but_may_shrink_them() {
        let limit = Some(json!({ "limit": MAX_SETTINGS_BYTES }));
        let half = "x".repeat(MAX_SETTINGS_BYTES / 2);
        let mut settings = json!({ "a": half.clone() });
        assert_eq!(problems(&mut settings, json!({"b": "y"})), vec![]);
        let found = problems(&mut settings, json!({ "c": half.clone() }));
        assert_eq!(
            found,
            vec![(
                Code::InvalidValue,
                "settingsUpdates".to_owned(),
                limit.clone()
            )]
        );
        assert_eq!(settings, json!({ "a": half.clone(), "b": "y" }));
        // Settings stored before the limit: smaller is fine, larger is not.
        let mut legacy = json!({ "a": half.clone(), "b": half.clone(), "c": 1 });
        assert_eq!(problems(&mut legacy, json!({"c": null})), vec![]);
        let found = problems(&mut legacy, json!({"d": 1}));
        assert_eq!(
            found,
            vec![(Code::InvalidValue, "settingsUpdates".to_owned(), limit)]
        );
    }
}
