use super::*;
use crate::limits::MAX_SETTINGS_DEPTH;
use serde_json::json;

fn created(body: Value) -> Result<NewExperiment, Problem> {
    parse_create(body.to_string().as_bytes())
}

fn paths(problem: Problem) -> Vec<(Code, String)> {
    problem
        .messages
        .into_iter()
        .map(|m| (m.code, m.path.unwrap_or_default()))
        .collect()
}

#[test]
fn create_defaults_and_order() {
    let new = created(
        json!({"name": "Headline", "variants": {"b": {}, "a": {"name": "A", "settings": {"x": 1}}}}),
    );
    let new = new.unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(new.visibility, Visibility::Draft);
    assert_eq!(new.settings, json!({}));
    let ids: Vec<_> = new.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(new.variants[0].name, "b");
    assert_eq!(new.variants[1].settings, json!({"x": 1}));
}

#[test]
fn create_lists_every_problem() {
    let long = "x".repeat(129);
    let problem = created(json!({
        "visibility": "live", "settings": [], "uuid": "nope",
        "variants": {"": {}, long.clone(): {}, "ok": {"name": 5}}
    }))
    .err()
    .unwrap_or_else(Problem::internal);
    assert_eq!(problem.status, 400);
    assert_eq!(
        paths(problem),
        vec![
            (Code::InvalidValue, "uuid".to_owned()),
            (Code::MissingField, "name".to_owned()),
            (Code::InvalidValue, "visibility".to_owned()),
            (Code::InvalidType, "settings".to_owned()),
            (Code::InvalidValue, r#"variants[""]"#.to_owned()),
            (Code::InvalidValue, format!("variants.{long}")),
            (Code::InvalidType, "variants.ok.name".to_owned()),
        ]
    );
}

#[test]
fn update_changes_definition_and_keeps_counts() {
    let mut exp = created(
        json!({"name": "e", "settings": {"a": {"b": 1}}, "variants": {"v1": {}, "v2": {}}}),
    )
    .unwrap_or_else(|p| panic!("{p}"))
    .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    exp.variants[0].views = 7;
    let body = json!({
        "name": "renamed", "visibility": "published",
        "settingsUpdates": {"a.c": 2},
        "variantUpdates": {"v2": null, "v3": {"name": "three"}, "v1": {"settingsUpdates": {"color": "red"}}}
    });
    let next = apply_update(&exp, body.to_string().as_bytes()).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(next.name, "renamed");
    assert_eq!(next.visibility, Visibility::Published);
    assert_eq!(next.settings, json!({"a": {"b": 1, "c": 2}}));
    let ids: Vec<_> = next.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["v1", "v3"]);
    assert_eq!(next.variants[0].views, 7);
    assert_eq!(next.variants[0].settings, json!({"color": "red"}));
    assert_eq!(next.variants[1].name, "three");
}

#[test]
fn bad_update_changes_nothing() {
    let exp = created(json!({"name": "e"}))
        .unwrap_or_else(|p| panic!("{p}"))
        .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    let body = json!({"name": "ok", "settingsUpdates": {"a..b": 1}, "variantUpdates": {"v": 3}});
    let problem = apply_update(&exp, body.to_string().as_bytes())
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![
            (
                Code::InvalidSettingsPath,
                r#"settingsUpdates["a..b"]"#.to_owned()
            ),
            (Code::InvalidType, "variantUpdates.v".to_owned()),
        ]
    );
}

#[test]
fn overlapping_settings_paths_are_refused_whatever_their_order() {
    let exp = created(json!({"name": "e", "settings": {"a": {"b": 0}}}))
        .unwrap_or_else(|p| panic!("{p}"))
        .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    // JSON keeps no key order: both orders, and one path spelled twice.
    for (body, at) in [
        (
            r#"{"settingsUpdates": {"a.b": 2, "a": 1}}"#,
            "settingsUpdates.a",
        ),
        (
            r#"{"settingsUpdates": {"a": 1, "a.b": 2}}"#,
            r#"settingsUpdates["a.b"]"#,
        ),
        (
            r#"{"settingsUpdates": {"a.b": 1, "a[\"b\"]": 2}}"#,
            r#"settingsUpdates["a[\"b\"]"]"#,
        ),
    ] {
        let problem = apply_update(&exp, body.as_bytes())
            .err()
            .unwrap_or_else(Problem::internal);
        assert_eq!(
            paths(problem),
            vec![(Code::InvalidSettingsPath, at.to_owned())],
            "{body}"
        );
    }
    // Paths side by side are fine.
    let body = r#"{"settingsUpdates": {"a.b": 2, "a.c": 3, "ab": 4}}"#;
    assert!(apply_update(&exp, body.as_bytes()).is_ok());
}

fn problems_of(
    result: Result<impl std::fmt::Debug, Problem>,
) -> Vec<(Code, String, Option<Value>)> {
    result
        .err()
        .unwrap_or_else(|| Problem::many(vec![]))
        .messages
        .into_iter()
        .map(|m| (m.code, m.path.unwrap_or_default(), m.data))
        .collect()
}

fn experiment_with(body: Value) -> Experiment {
    created(body)
        .unwrap_or_else(|p| panic!("{p}"))
        .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2))
}

#[test]
fn nul_is_refused_in_every_stored_text_with_every_path() {
    let body = json!({
        "name": "a\u{0}",
        "settings": {"k": ["\u{0}"]},
        "variants": {
            "v\u{0}": {},
            "ok": {"name": "n\u{0}", "settings": {"x\u{0}": 1},
                   "settingsUpdates": {"p": "\u{0}"}},
        }
    });
    let none = None;
    assert_eq!(
        problems_of(created(body)),
        vec![
            (Code::InvalidValue, "name".to_owned(), none.clone()),
            (Code::InvalidValue, "settings.k[0]".to_owned(), none.clone()),
            (
                Code::InvalidValue,
                "variants[\"v\\u0000\"]".to_owned(),
                none.clone()
            ),
            (
                Code::InvalidValue,
                "variants.ok.name".to_owned(),
                none.clone()
            ),
            (
                Code::InvalidValue,
                "variants.ok.settings[\"x\\u0000\"]".to_owned(),
                none.clone()
            ),
            (
                Code::InvalidValue,
                "variants.ok.settingsUpdates.p".to_owned(),
                none.clone()
            ),
        ]
    );
    let exp = experiment_with(json!({"name": "e", "variants": {"a": {}}}));
    let body = json!({
        "name": "\u{0}", "settingsUpdates": {"s": "\u{0}"},
        "variantUpdates": {"a": {"name": "\u{0}"}, "b\u{0}": {}}
    });
    assert_eq!(
        problems_of(apply_update(&exp, body.to_string().as_bytes())),
        vec![
            (Code::InvalidValue, "name".to_owned(), none.clone()),
            (
                Code::InvalidValue,
                "settingsUpdates.s".to_owned(),
                none.clone()
            ),
            (
                Code::InvalidValue,
                "variantUpdates.a.name".to_owned(),
                none.clone()
            ),
            (
                Code::InvalidValue,
                "variantUpdates[\"b\\u0000\"]".to_owned(),
                none
            ),
        ]
    );
    // Other control characters are text like any other (a name of only
    // them is blank).
    let fine =
        json!({"name": "x\u{1}\t", "variants": {"x\u{7f}": {"settings": {"\u{1}": "\u{2028}"}}}});
    assert!(created(fine).is_ok());
}

#[test]
fn deep_settings_paths_are_refused_on_create_and_update() {
    // The review's body: 129 segments (and 10,000) through both routes.
    for segments in [129, 10_000] {
        let path = vec!["a"; segments].join(".");
        let body = json!({"name": "e", "variants": {"v": {"settingsUpdates": {path.clone(): 1}}}});
        let found = problems_of(created(body));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Code::InvalidSettingsPath);
        assert_eq!(
            found[0].1,
            format!(r#"variants.v.settingsUpdates["{path}"]"#)
        );
        let exp = experiment_with(json!({"name": "e"}));
        let body = json!({"settingsUpdates": {path.clone(): 1}});
        let found = problems_of(apply_update(&exp, body.to_string().as_bytes()));
        assert_eq!(found[0].1, format!(r#"settingsUpdates["{path}"]"#));
    }
    // Deep settings given whole.
    let mut deep = json!(1);
    for _ in 0..=MAX_SETTINGS_DEPTH {
        deep = json!({ "d": deep });
    }
    let found = problems_of(created(json!({"name": "e", "settings": deep})));
    let limit = Some(json!({ "limit": MAX_SETTINGS_DEPTH }));
    let path = format!("settings{}", ".d".repeat(MAX_SETTINGS_DEPTH));
    assert_eq!(found, vec![(Code::InvalidValue, path, limit)]);
}

#[test]
fn variants_are_limited_in_number() {
    let variants = |n: usize| {
        (0..n)
            .map(|i| (format!("v{i}"), json!({})))
            .collect::<Map<String, Value>>()
    };
    assert!(created(json!({"name": "e", "variants": variants(MAX_VARIANTS)})).is_ok());
    let found = problems_of(created(
        json!({"name": "e", "variants": variants(MAX_VARIANTS + 1)}),
    ));
    let limit = Some(json!({ "limit": MAX_VARIANTS }));
    assert_eq!(
        found,
        vec![(Code::InvalidValue, "variants".to_owned(), limit.clone())]
    );
    let exp = experiment_with(json!({"name": "e", "variants": variants(MAX_VARIANTS)}));
    let body = json!({"variantUpdates": {"new": {}}});
    let found = problems_of(apply_update(&exp, body.to_string().as_bytes()));
    assert_eq!(
        found,
        vec![(Code::InvalidValue, "variantUpdates".to_owned(), limit)]
    );
    // Replacing one is fine.
    let body = json!({"variantUpdates": {"v0": null, "new": {}}});
    assert!(apply_update(&exp, body.to_string().as_bytes()).is_ok());
    // Far past the limit (a 1 MiB body holds tens of thousands), one
    // problem, and the variants are not checked one against another (that
    // took seconds of CPU at 60,000): the same answer for 20,000 as for 101.
    let many = variants(20_000);
    let found = problems_of(created(json!({"name": "e", "variants": many.clone()})));
    assert_eq!(
        found,
        vec![(
            Code::InvalidValue,
            "variants".to_owned(),
            Some(json!({ "limit": MAX_VARIANTS }))
        )]
    );
    let body = json!({"variantUpdates": many});
    let found = problems_of(apply_update(&exp, body.to_string().as_bytes()));
    assert_eq!(
        found,
        vec![(
            Code::InvalidValue,
            "variantUpdates".to_owned(),
            Some(json!({ "limit": MAX_VARIANTS }))
        )]
    );
}

#[test]
fn the_whole_definition_is_limited_in_size() {
    // Each variant well under the settings limit; together over 1 MiB.
    let big = json!({ "text": "x".repeat(60_000) });
    let mut exp = experiment_with(json!({"name": "e"}));
    let limit = Some(json!({ "limit": MAX_DEFINITION_BYTES }));
    for i in 0.. {
        let body = json!({"variantUpdates": { format!("v{i}"): {"settings": big.clone()} }});
        match apply_update(&exp, body.to_string().as_bytes()) {
            Ok(next) => exp = next,
            Err(problem) => {
                assert_eq!(
                    problems_of(Err::<(), _>(problem)),
                    vec![(Code::InvalidValue, "variantUpdates".to_owned(), limit)]
                );
                break;
            }
        }
    }
    let size = definition_bytes(&exp, usize::MAX).unwrap_or(usize::MAX);
    assert!(
        size <= MAX_DEFINITION_BYTES && size > MAX_DEFINITION_BYTES - 61_000,
        "{size}"
    );
    // Shrinking it is always fine.
    let body = json!({"variantUpdates": {"v0": {"settings": {}}}});
    assert!(apply_update(&exp, body.to_string().as_bytes()).is_ok());
}

#[test]
fn the_id_is_chosen_or_made_from_the_name() {
    let new = created(json!({"name": "Hero banner!", "variants": {"a": {}}}));
    let new = new.unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(new.id, None);
    let experiment = new.into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    assert_eq!(experiment.id, "hero-banner");
    let chosen = created(json!({"name": "Hero", "id": "Hero_2"}));
    let chosen = chosen.unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(chosen.id.as_deref(), Some("Hero_2"));
    assert_eq!(
        chosen
            .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2))
            .id,
        "Hero_2"
    );
}

#[test]
fn a_bad_id_is_a_problem_at_id() {
    for bad in [
        json!(""),
        json!("hero banner"),
        json!("héro"),
        json!("x".repeat(65)),
    ] {
        let problem = created(json!({"name": "n", "id": bad}))
            .err()
            .unwrap_or_else(Problem::internal);
        assert_eq!(
            paths(problem),
            [(Code::InvalidValue, "id".to_owned())],
            "{bad}"
        );
    }
    let problem = created(json!({"name": "n", "id": 5}))
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(paths(problem), [(Code::InvalidType, "id".to_owned())]);
    assert!(created(json!({"name": "n", "id": "x".repeat(64)})).is_ok());
}

#[test]
fn update_sets_the_id_and_checks_it() {
    let exp = created(json!({"name": "Hero", "variants": {"a": {}}}))
        .unwrap_or_else(|p| panic!("{p}"))
        .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    let next = apply_update(&exp, br#"{"id": "banner"}"#).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(next.id, "banner");
    let kept = apply_update(&exp, br#"{"name": "Other"}"#).unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(kept.id, "hero", "renaming keeps the id");
    let problem = apply_update(&exp, br#"{"id": "a b", "name": "ok"}"#)
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(paths(problem), [(Code::InvalidValue, "id".to_owned())]);
}

#[test]
fn a_published_experiment_keeps_at_least_one_variant() {
    // Created published with none: refused; as a draft: fine (filled in later).
    let refused = created(json!({"name": "e", "visibility": "published"})).expect_err("refused");
    assert_eq!(paths(refused), [(Code::InvalidValue, "variants".into())]);
    let refused = created(json!({"name": "e", "visibility": "published", "variants": {}}));
    assert_eq!(
        paths(refused.expect_err("refused")),
        [(Code::InvalidValue, "variants".into())]
    );
    let draft = experiment_with(json!({"name": "e"}));
    // Published while it has none: refused, at `visibility`.
    let publish = apply_update(&draft, br#"{"visibility": "published"}"#).expect_err("refused");
    assert_eq!(paths(publish), [(Code::InvalidValue, "visibility".into())]);
    let filled = apply_update(
        &draft,
        br#"{"visibility": "published", "variantUpdates": {"a": {}}}"#,
    )
    .expect("published with a variant");
    // Its last variant deleted: refused, at `variantUpdates`.
    let emptied =
        apply_update(&filled, br#"{"variantUpdates": {"a": null}}"#).expect_err("refused");
    assert_eq!(
        paths(emptied),
        [(Code::InvalidValue, "variantUpdates".into())]
    );
    // Archived first, it may lose them.
    let archived = apply_update(
        &filled,
        br#"{"visibility": "archived", "variantUpdates": {"a": null}}"#,
    );
    assert!(archived.is_ok_and(|e| e.variants.is_empty()));
    // One stored published with none (before this rule) may still be fixed.
    let mut old = filled.clone();
    old.variants.clear();
    assert!(apply_update(&old, br#"{"name": "renamed"}"#).is_ok());
}

#[test]
fn a_field_that_is_not_read_is_refused_at_its_path_not_ignored() {
    let problem = created(json!({
        "typename": "experiment",
        "name": "Typo",
        "visiblity": "published",
        "varaints": {"a": {}},
        "variants": {"b": {"setings": {}, "weight": 0.9}},
        "odd key": 1
    }))
    .err()
    .unwrap_or_else(Problem::internal);
    let mut found = paths(problem);
    found.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        found,
        vec![
            (Code::InvalidValue, r#"["odd key"]"#.to_owned()),
            (Code::InvalidValue, "varaints".to_owned()),
            (Code::InvalidValue, "variants.b.setings".to_owned()),
            (Code::InvalidValue, "variants.b.weight".to_owned()),
            (Code::InvalidValue, "visiblity".to_owned()),
        ]
    );
    let exp = created(
        json!({"name": "e", "variants": [{"typename": "variant", "id": "a", "name": "A"}]}),
    )
    .unwrap_or_else(|p| panic!("{p}"))
    .into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    let update = |body: Value| {
        apply_update(&exp, body.to_string().as_bytes())
            .err()
            .map(paths)
            .unwrap_or_default()
    };
    assert_eq!(
        update(json!({"settingUpdates": {"a": 1}})),
        vec![(Code::InvalidValue, "settingUpdates".to_owned())]
    );
    assert_eq!(
        update(json!({"variants": {"a": {"name": "B"}}})),
        vec![(Code::InvalidValue, "variants".to_owned())],
        "an update's variants go by variantUpdates"
    );
    assert_eq!(
        update(json!({"variantUpdates": {"a": {"views": 10}}})),
        vec![(Code::InvalidValue, "variantUpdates.a.views".to_owned())]
    );
    assert_eq!(
        update(json!({"typename": "experiment", "name": "f"})),
        vec![]
    );
}

#[test]
fn a_variant_id_is_its_key_and_a_null_variant_at_create_is_none() {
    let problem = created(json!({"name": "u", "variants": {"a": {"id": "b"}}}))
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![(Code::InvalidValue, "variants.a.id".to_owned())]
    );
    let new = created(json!({"name": "u", "variants": {"a": {"id": "a"}, "b": null}}))
        .unwrap_or_else(|p| panic!("{p}"));
    let ids: Vec<&str> = new.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a"], "same id: fine; null: nothing to create");
    let problem = created(json!({"name": "u", "visibility": "published", "variants": {"b": null}}))
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![(Code::InvalidValue, "variants".to_owned())]
    );
    let exp = new.into_experiment(Uuid::from_u128(1), Uuid::from_u128(2));
    let problem = apply_update(&exp, br#"{"variantUpdates": {"a": {"id": "zzz"}}}"#)
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![(Code::InvalidValue, "variantUpdates.a.id".to_owned())]
    );
}

#[test]
fn a_variants_array_element_that_is_no_object_is_invalid_type_and_null_is_none() {
    let problem = created(json!({"name": "u", "variants": [1, "x", null, [], {"name": "n"}]}))
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![
            (Code::InvalidType, "variants[0]".to_owned()),
            (Code::InvalidType, "variants[1]".to_owned()),
            (Code::InvalidType, "variants[3]".to_owned()),
            (Code::MissingField, "variants[4].id".to_owned()),
        ]
    );
    let new = created(json!({"name": "u", "variants": [null, {"id": "a"}]}))
        .unwrap_or_else(|p| panic!("{p}"));
    let ids: Vec<&str> = new.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a"], "null: nothing to create");
    let problem = created(json!({"name": "u", "visibility": "published", "variants": [null]}))
        .err()
        .unwrap_or_else(Problem::internal);
    assert_eq!(
        paths(problem),
        vec![(Code::InvalidValue, "variants".to_owned())],
        "a published experiment needs a variant; null is none"
    );
}

#[test]
fn a_field_has_one_path_whichever_check_refuses_it() {
    let at = |value: &str| {
        let body =
            format!(r#"{{"name": "e", "variants": {{"x.y": {{"settings": {{"k": {value}}}}}}}}}"#);
        parse_create(body.as_bytes())
            .err()
            .map(paths)
            .unwrap_or_default()
    };
    let expected = r#"variants["x.y"].settings.k"#.to_owned();
    assert_eq!(
        at("1e400"),
        [(Code::InvalidValue, expected.clone())],
        "the JSON reader's"
    );
    assert_eq!(
        at(r#""\u0000""#),
        [(Code::InvalidValue, expected)],
        "the validator's"
    );
    let update = apply_update(
        &experiment_with(json!({"name": "e", "variants": {"a": {}}})),
        br#"{"settingsUpdates": {"a.b": "\u0000"}, "variantUpdates": {"a": {"name": 1}}}"#,
    )
    .err()
    .map(paths)
    .unwrap_or_default();
    assert_eq!(
        update,
        [
            (Code::InvalidValue, r#"settingsUpdates["a.b"]"#.to_owned()),
            (Code::InvalidType, "variantUpdates.a.name".to_owned()),
        ],
        "a settings path that is no plain name stays quoted"
    );
}

#[test]
fn variant_ids_that_read_alike_or_show_nothing_are_refused() {
    // `é` as one character and as `e` with a combining accent: one id to a
    // reader. The second is refused at its path, naming the first.
    let (nfc, nfd) = ("\u{e9}", "e\u{301}");
    let problems = paths(
        created(json!({ "name": "n", "variants": { nfc: {}, nfd: {} } })).expect_err("refused"),
    );
    assert_eq!(problems, [(Code::InvalidValue, key_path("variants", nfd))]);
    let problems = paths(
        created(json!({ "name": "n", "variants": [{ "id": nfd }, { "id": nfc }] }))
            .expect_err("refused"),
    );
    assert_eq!(problems, [(Code::InvalidValue, "variants[1]".to_owned())]);
    // Ids made of nothing visible: spaces, a zero-width space, a lone mark.
    for blank in [" ", "\u{200b}", "\u{301}", "\t\u{2060}"] {
        let problems =
            paths(created(json!({ "name": "n", "variants": { blank: {} } })).expect_err("refused"));
        assert_eq!(problems.len(), 1, "{blank:?}");
        assert_eq!(problems[0].0, Code::InvalidValue, "{blank:?}");
    }
    // Invisible characters and bidi controls do not tell ids apart either:
    // `ok\u{202e}dab` reads as `okdab` in the decision's sentence.
    let problems = paths(
        created(json!({ "name": "n", "variants": { "okdab": {}, "ok\u{202e}dab": {} } }))
            .expect_err("refused"),
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(created(json!({ "name": "n", "variants": { "ab": {}, "a\u{200b}b": {} } })).is_err());
    // Nor do compatibility forms: fullwidth letters, ligatures.
    assert!(created(json!({ "name": "n", "variants": { "A": {}, "\u{ff21}": {} } })).is_err());
    assert!(created(json!({ "name": "n", "variants": { "fi": {}, "\u{fb01}": {} } })).is_err());
    // Case still tells ids apart.
    assert!(created(json!({ "name": "n", "variants": { "Blue": {}, "blue": {} } })).is_ok());

    // An update adding a look-alike is refused likewise, and nothing changes.
    let experiment = experiment_with(json!({ "name": "n", "variants": { nfc: {} } }));
    let update = json!({ "variantUpdates": { nfd: {} } }).to_string();
    let problem = apply_update(&experiment, update.as_bytes()).expect_err("refused");
    assert_eq!(
        problem.messages[0].path,
        Some(key_path("variantUpdates", nfd))
    );
    assert_eq!(problem.messages[0].data, Some(json!({ "variant": nfc })));
    let update = json!({ "variantUpdates": { "\u{200b}": {} } }).to_string();
    assert!(apply_update(&experiment, update.as_bytes()).is_err());
}

#[test]
fn a_create_takes_settings_updates_after_its_settings() {
    let made = experiment_with(json!({
        "name": "n",
        "settings": { "a": 1, "keep": true },
        "settingsUpdates": { "b.c": 2, "a": null },
    }));
    assert_eq!(made.settings, json!({ "keep": true, "b": { "c": 2 } }));
    // Alone, or after settings that are not an object (refused at settings).
    let made = experiment_with(json!({ "name": "n", "settingsUpdates": { "x.y": "z" } }));
    assert_eq!(made.settings, json!({ "x": { "y": "z" } }));
    let refused = created(json!({ "name": "n", "settings": 5, "settingsUpdates": { "x": 1 } }));
    assert_eq!(
        paths(refused.expect_err("refused"))[0],
        (Code::InvalidType, "settings".to_owned())
    );
    let refused = created(json!({ "name": "n", "settingsUpdates": 5 }));
    assert_eq!(
        paths(refused.expect_err("refused")),
        [(Code::InvalidType, "settingsUpdates".to_owned())]
    );
}
