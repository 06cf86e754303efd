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
    let here = format!("{}.b[0]", key_path("settingsUpdates", &path));
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

/// A path of plain names names the setting however it is stored (flat,
/// nested or between), as the readers take it (core's decision rules, the
/// SDK, the original myna-js): an update goes where they read it, and a
/// removal removes every spelling (an outside probe found a flat
/// `"myna.web.sticky": false` kept beside a nested update, and the original
/// client then read the nested object over it).
#[test]
fn a_plain_path_updates_the_setting_where_it_is_stored_and_null_removes_every_spelling() {
    let mut settings = json!({"myna.web.sticky": false, "myna.html.cssClass": "custom-cta"});
    let update = json!({"myna.html.cssClass": "cta2", "myna.web.sticky": null});
    assert_eq!(problems(&mut settings, update), vec![]);
    assert_eq!(settings, json!({"myna.html.cssClass": "cta2"}));
    // Between flat and nested.
    let mut settings = json!({"myna": {"html.cssClass": "a"}, "x.y": {"z": 1}});
    let update = json!({"myna.html.cssClass": "b", "x.y.z": 2});
    assert_eq!(problems(&mut settings, update), vec![]);
    assert_eq!(
        settings,
        json!({"myna": {"html.cssClass": "b"}, "x.y": {"z": 2}})
    );
    // Stored twice: the spelling readers take (shortest names first) is
    // updated; removing removes both.
    let mut settings = json!({"a.b": 1, "a": {"b": 2}});
    assert_eq!(problems(&mut settings, json!({"a.b": 3})), vec![]);
    assert_eq!(settings, json!({"a.b": 1, "a": {"b": 3}}));
    assert_eq!(problems(&mut settings, json!({"a.b": null})), vec![]);
    assert_eq!(settings, json!({"a": {}}));
    // Not stored: nested, as before; quoted names and indexes as written.
    let mut settings = json!({});
    let update = json!({"p.q": 1, "labels[\"a.b\"]": 2, "list[0]": 3});
    assert_eq!(problems(&mut settings, update), vec![]);
    assert_eq!(
        settings,
        json!({"p": {"q": 1}, "labels": {"a.b": 2}, "list": [3]})
    );
}

/// A problem's path names a key as JSON quotes it (`["\u0001"]`): such a
/// path, given back as a settings path, names the same key (an outside
/// probe's `["k\u0001"].z` was refused as a bad escape).
#[test]
fn quoted_names_take_json_escapes_as_problem_paths_write_them() {
    for k in [
        "\u{1}",
        "k\"d",
        "back\\slash",
        "a.b",
        "tab\there",
        "é",
        "😀",
        "line\n",
        "/",
    ] {
        let path = key_path("", k);
        assert_eq!(parse_path(&path), Ok(vec![key(k)]), "{path}");
        let nested = key_path("settings", k);
        assert_eq!(
            parse_path(&nested),
            Ok(vec![key("settings"), key(k)]),
            "{nested}"
        );
    }
    assert_eq!(
        parse_path(r#"["\/\b\f\r"]"#),
        Ok(vec![key("/\u{8}\u{c}\r")])
    );
    for bad in [
        r#"["\x"]"#,
        r#"["\u12"]"#,
        r#"["\uD83D"]"#,
        r#"["\uDE00"]"#,
        r#"["\uZZZZ"]"#,
    ] {
        assert!(parse_path(bad).is_err(), "{bad} should be refused");
    }
}

/// `null` removes; inside what is no container there is nothing to remove,
/// however the path's names are spelled (`n["k.d"]` was a 400 where
/// `n.x` and `n["x"]` changed nothing); a value there is still refused.
#[test]
fn removing_inside_a_scalar_is_nothing_to_do_for_every_spelling() {
    for path in [
        "n.x",
        r#"n["x"]"#,
        r#"n["k d"]"#,
        r#"n["k.d"]"#,
        r#"n["k.d"].z"#,
        "n[0]",
        "n[0].a",
    ] {
        let mut settings = json!({"n": 1});
        let updates = json!({ path: null });
        let updates = updates.as_object().cloned().unwrap_or_default();
        assert_eq!(
            apply_updates(&mut settings, &updates, "settingsUpdates"),
            Ok(()),
            "{path}"
        );
        assert_eq!(settings, json!({"n": 1}), "{path}");
        let mut settings = json!({"n": 1});
        let updates = json!({ path: 2 });
        let updates = updates.as_object().cloned().unwrap_or_default();
        assert!(
            apply_updates(&mut settings, &updates, "settingsUpdates").is_err(),
            "{path}: a value through a number is refused"
        );
    }
}

/// A message names a place as problem paths write it: a key that is no
/// plain name JSON-quoted (a control character was written raw).
#[test]
fn messages_quote_keys_as_problem_paths_do() {
    let mut settings = json!({"k\u{1}": {"z": 1}});
    let updates = json!({ r#"["k\u0001"].z.q"#: 5 });
    let updates = updates.as_object().cloned().unwrap_or_default();
    let Err(problems) = apply_updates(&mut settings, &updates, "settingsUpdates") else {
        panic!("a value through a number is refused");
    };
    assert!(
        problems[0]
            .message
            .contains(r#"`["k\u0001"].z` is a number"#),
        "{}",
        problems[0].message
    );
}
