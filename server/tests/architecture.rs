//! The server's shape, read from its source: every module file is in
//! ARCHITECTURE.md's code map, and the layers hold (dashboard and routes
//! call service; nothing below them imports them). `cargo test -p
//! myna-server --test architecture`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A source file: its path under `server/src` (`/`-separated) and its text.
type Source = (String, String);

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<Source>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read server/src")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let name = relative.to_string_lossy().replace('\\', "/");
                out.push((name, std::fs::read_to_string(&path).expect("read a source")));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out
}

fn architecture() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    std::fs::read_to_string(path).expect("read ARCHITECTURE.md")
}

/// The server's part of ARCHITECTURE.md (from `### \`server/\`` to the
/// next section).
fn server_section(text: &str) -> &str {
    let start = text.find("### `server/`").expect("a server section");
    let rest = &text[start + 3..];
    let end = rest.find("\n### ").map_or(text.len(), |i| start + 3 + i);
    &text[start..end]
}

/// The text between backticks, as module paths: `routes/`, `sqlite.rs`,
/// `listen/mod.rs` → `routes`, `sqlite`, `listen`.
fn names(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|name| {
            let name = name.trim_end_matches('/');
            let name = name.strip_suffix(".rs").unwrap_or(name);
            let name = name.strip_suffix("/mod").unwrap_or(name);
            name.to_owned()
        })
        .collect()
}

/// The module path of a file: `auth.rs` → `auth`, `listen/mod.rs` →
/// `listen`, `auth/throttle/client.rs` → `auth/throttle/client`.
fn module(file: &str) -> String {
    let module = file.strip_suffix(".rs").unwrap_or(file);
    module.strip_suffix("/mod").unwrap_or(module).to_owned()
}

/// Files of `sources` the code map does not name. A file is named by a row
/// of a table of the server's section whose first cell names it or one of
/// its parents and which mentions it by its path's last components
/// (`connection` in the `listen/` row, `postgres/counts.rs` in the
/// `storage/postgres.rs` row). Test modules (`tests.rs`) are exempt.
fn unmapped(sources: &[Source], architecture: &str) -> Vec<String> {
    let rows: Vec<(Vec<String>, Vec<String>)> = server_section(architecture)
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line.split('|').skip(1);
            let first = names(cells.next()?);
            Some((first, names(line)))
        })
        .collect();
    let mapped = |module: &str| {
        let parts: Vec<&str> = module.split('/').collect();
        rows.iter().any(|(heads, mentions)| {
            heads.iter().any(|head| {
                let inside = module == head || module.starts_with(&format!("{head}/"));
                inside
                    && (module == head
                        || (0..parts.len()).any(|i| mentions.contains(&parts[i..].join("/"))))
            })
        })
    };
    sources
        .iter()
        .map(|(file, _)| file)
        .filter(|file| !file.ends_with("tests.rs"))
        .filter(|file| !mapped(&module(file)))
        .cloned()
        .collect()
}

/// The top modules a source refers to by `crate::` paths (in `use` items,
/// `use crate::{…}` groups included, and in code; comments are not read).
fn crate_refs(text: &str) -> BTreeSet<String> {
    fn ident(text: &str) -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    }
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        let Some(group) = after.strip_prefix('{') else {
            refs.insert(ident(after));
            continue;
        };
        // The group's items at depth 0: `a`, `b::c`, `d::{e, f}`.
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    refs.insert(ident(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    refs.insert(ident(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    refs.remove("");
    refs
}

/// The layer rules broken by `sources`, one line each:
/// - the entry (`lib.rs`, `main.rs`, `serve`, `commands`, `listen/`) may
///   use anything;
/// - `routes` uses neither the entry nor (but for `routes/mod.rs`, where
///   `app` mounts the pages) `dashboard`;
/// - `dashboard` uses neither the entry nor `routes`;
/// - `service` and every module below it use none of the entry, `routes`
///   and `dashboard`; `service` knows nothing of HTTP (no `poem`);
/// - nothing below `service` uses `service`.
fn violations(sources: &[Source]) -> Vec<String> {
    const ENTRY: [&str; 5] = ["lib", "main", "serve", "commands", "listen"];
    let mut broken = Vec::new();
    for (file, text) in sources {
        let top = module(file);
        let top = top.split('/').next().unwrap_or_default();
        if ENTRY.contains(&top) {
            continue;
        }
        let mut refused: Vec<&str> = vec!["serve", "listen"];
        match top {
            "routes" if file == "routes/mod.rs" => {}
            "routes" => refused.push("dashboard"),
            "dashboard" => refused.push("routes"),
            "service" => refused.extend(["routes", "dashboard"]),
            _ => refused.extend(["routes", "dashboard", "service"]),
        }
        for used in crate_refs(text) {
            if refused.contains(&used.as_str()) {
                broken.push(format!("{file} uses crate::{used}"));
            }
        }
        if top == "service" && text.lines().any(|l| l.contains("poem::")) {
            broken.push(format!("{file} uses poem"));
        }
    }
    broken
}

#[test]
fn every_server_module_is_in_the_code_map() {
    let missing = unmapped(&sources(), &architecture());
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's server code map does not name {missing:?}"
    );
}

#[test]
fn the_layers_hold() {
    let broken = violations(&sources());
    assert!(broken.is_empty(), "layer rules broken: {broken:#?}");
}

#[test]
fn the_checks_see_what_they_look_for() {
    let file = |name: &str, text: &str| (name.to_owned(), text.to_owned());
    let sources = [
        file(
            "service/keys.rs",
            "use crate::routes::apikey;\nuse crate::state::AppState;\n",
        ),
        file("service/accounts.rs", "use poem::Request;\n"),
        file("storage/mod.rs", "use crate::{cache, service::keys};\n"),
        file(
            "cache.rs",
            "// crate::dashboard in a comment\nuse crate::clock::Clock;\n",
        ),
        file("dashboard/keys.rs", "use crate::service::keys;\n"),
        file("dashboard/mod.rs", "fn f() { crate::routes::nosniff(r) }\n"),
        file(
            "routes/user.rs",
            "use crate::{\n    dashboard,\n    state::AppState,\n};\n",
        ),
        file("routes/mod.rs", "use crate::dashboard;\n"),
        file("serve.rs", "use crate::routes::app;\n"),
    ];
    assert_eq!(
        violations(&sources),
        [
            "service/keys.rs uses crate::routes",
            "service/accounts.rs uses poem",
            "storage/mod.rs uses crate::service",
            "dashboard/mod.rs uses crate::routes",
            "routes/user.rs uses crate::dashboard",
        ]
    );
    let map = "### `server/`\n\n| module | owns |\n| --- | --- |\n\
               | `listen/` | `mod.rs`: accepting; `io`: the stream |\n\
               | `storage/postgres.rs` | `postgres/counts.rs`: counts |\n\
               | `cache` | the cache, `io` |\n\n### `wasm-sdk/`\n\n| `service/` | not here |\n";
    let files = [
        "listen/mod.rs",
        "listen/io.rs",
        "listen/frames.rs",
        "storage/postgres.rs",
        "storage/postgres/counts.rs",
        "storage/postgres/calls.rs",
        "cache.rs",
        "io.rs",
        "service/mod.rs",
        "listen/tests.rs",
    ]
    .map(|name| file(name, ""));
    assert_eq!(
        unmapped(&files, map),
        [
            "listen/frames.rs",
            "storage/postgres/calls.rs",
            "io.rs",
            "service/mod.rs"
        ]
    );
}
