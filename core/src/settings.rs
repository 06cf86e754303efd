//! Settings: free JSON objects, and `settingsUpdates` that set or remove
//! single entries by path (`buttons.color`, `items[2]`, `labels["a.b"]`).

use serde_json::{Map, Value};

use crate::problem::{Code, Message};

/// One step of a settings path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Parses a settings path: dot-separated names with `[n]` or `["quoted"]`
/// segments. Names may hold any character but `.`, `[`, `]` and `"`; quoted
/// names take `\"` and `\\` escapes.
pub fn parse_path(text: &str) -> Result<Vec<Segment>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    if chars.is_empty() {
        return Err("the path is empty".into());
    }
    while i < chars.len() {
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
                    return Err(format!("an empty name at character {start}"));
                }
                segments.push(Segment::Key(chars[start..i].iter().collect()));
            }
            _ if segments.is_empty() => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[' | ']' | '"') {
                    i += 1;
                }
                if start == i {
                    return Err(format!("unexpected `{}` at character {i}", chars[i]));
                }
                segments.push(Segment::Key(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected `{c}` at character {i}")),
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

/// Applies `updates` (path → value; `null` removes) to `settings`, atomically:
/// on any problem `settings` is left as it was and every problem is returned.
///
/// `base` names the updates object in problem paths (`settingsUpdates`).
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
        let result = parse_path(path).and_then(|segments| set(&mut next, &segments, value));
        if let Err(reason) = result {
            problems.push(Message::at(
                Code::InvalidSettingsPath,
                here,
                format!("The settings path `{path}` is malformed: {reason}."),
            ));
        }
    }
    if problems.is_empty() {
        *settings = next;
        Ok(())
    } else {
        Err(problems)
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
}
