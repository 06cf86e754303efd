//! The shape of `wasm-sdk/src`, read from the source: its modules form a
//! DAG (no module reaches itself through `crate::` paths), the pure ones
//! hold no JS value, every import is in `glue.rs`, and no file passes 500
//! lines besides its tests (nor any hand-written file of `js/`). Prints the module graph (one `from -> to` line per
//! edge, then an order in which each module comes after what it uses):
//!
//!     cargo test -p myna-wasm-sdk --test modules -- --nocapture
//!
//! Native only (it reads the source files).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules that hold the rules: no JS value, tested natively.
const PURE: &[&str] = &[
    "api", "claims", "delivery", "host", "lock", "persist", "queue", "retry", "sticky", "storage",
    "stored", "tab", "testing",
];

/// Every source file under `src`, by path, and the top module it belongs to
/// (`lib` for `lib.rs`).
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let module = relative.split(['/', '.']).next().unwrap().to_string();
            out.push((relative, module, fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (`//` to the end of a line;
/// a `//` inside a string cuts the line short, which only loses edges
/// written after a URL on the same line).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names through `crate::` paths (`crate::a::b`,
/// `crate::{a, b::c}`); `lib` for an item of the crate root.
fn uses(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut name = |segment: &str| {
        let segment = segment.trim();
        let ident: String = segment
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            return;
        }
        out.insert(if modules.contains(&ident) {
            ident
        } else {
            "lib".into()
        });
    };
    for rest in code.split("crate::").skip(1) {
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        name(&item);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || c != '{' {
                    item.push(c);
                }
            }
            name(&item);
        } else {
            name(rest);
        }
    }
    out
}

/// The module graph of `src`.
fn graph() -> Graph {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(_, m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (_, module, text) in &files {
        let edges = graph.entry(module.clone()).or_default();
        for used in uses(&code(text), &modules) {
            if &used != module {
                edges.insert(used);
            }
        }
    }
    graph
}

/// A cycle of `graph` (its modules in order, the first repeated at the
/// end), if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.into());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.into());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.into());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// The modules in an order where each comes after every module it uses.
fn order(graph: &Graph) -> Vec<String> {
    let mut placed: Vec<String> = Vec::new();
    while placed.len() < graph.len() {
        let next = graph
            .iter()
            .find(|(m, uses)| !placed.contains(m) && uses.iter().all(|u| placed.contains(u)))
            .map(|(m, _)| m.clone())
            .unwrap();
        placed.push(next);
    }
    placed
}

#[test]
fn the_modules_form_a_dag() {
    let graph = graph();
    for (from, uses) in &graph {
        for to in uses {
            println!("{from} -> {to}");
        }
    }
    assert_eq!(
        cycle(&graph),
        None,
        "wasm-sdk/src's modules import each other in a circle"
    );
    println!("order: {}", order(&graph).join(" "));
    // The shell sits on the rules, never the other way round.
    for pure in PURE {
        for used in &graph[*pure] {
            assert!(
                PURE.contains(&used.as_str()),
                "the pure module {pure} uses {used}"
            );
        }
    }
}

#[test]
fn a_cycle_is_found() {
    // The old shape: the queue was the codec, and it imported transport back.
    let mut graph = Graph::new();
    let mut edge = |from: &str, to: &str| {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    };
    edge("client", "queue");
    edge("queue", "transport");
    edge("transport", "storage");
    edge("storage", "queue");
    assert_eq!(
        cycle(&graph),
        Some(vec![
            "queue".into(),
            "transport".into(),
            "storage".into(),
            "queue".into()
        ])
    );
    graph.get_mut("storage").unwrap().clear();
    assert_eq!(cycle(&graph), None);
    assert_eq!(order(&graph), ["storage", "transport", "queue", "client"]);
}

#[test]
fn crate_paths_are_read_in_every_form() {
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|m| m.to_string()).collect();
    let found = uses(
        "use crate::a::X;\nuse crate::{b::{Y, Z}, self};\nfn f() { crate::c::g(); crate::Root; }",
        &modules,
    );
    assert_eq!(
        found,
        ["a", "b", "c", "lib"]
            .iter()
            .map(|m| m.to_string())
            .collect()
    );
}

#[test]
fn the_rules_hold_no_js_values_and_every_import_is_in_glue() {
    for (path, module, text) in sources() {
        let code = code(&text);
        if PURE.contains(&module.as_str()) {
            for js in ["JsValue", "wasm_bindgen", "js_sys"] {
                assert!(!code.contains(js), "the pure {path} uses {js}");
            }
        }
        if module != "glue" {
            assert!(!code.contains("extern \"C\""), "{path} declares imports");
        }
        // Tests aside: a file of tests, or a file's test module.
        let lines = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap()
            .lines()
            .count();
        assert!(
            lines <= 500 || path.ends_with("tests.rs"),
            "{path} is {lines} lines besides its tests"
        );
    }
}

#[test]
fn no_hand_written_js_file_passes_500_lines() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let mut seen = 0;
    for entry in fs::read_dir(&js).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "js") {
            let lines = fs::read_to_string(&path).unwrap().lines().count();
            assert!(lines <= 500, "{} is {lines} lines", path.display());
            seen += 1;
        }
    }
    // glue.js, transport.js, storage.js, index.js, boot.js.
    assert!(seen >= 5, "only {seen} files in {}", js.display());
}
