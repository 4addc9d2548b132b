//! The engine's modules form no import loop: a module that the QEMU side,
//! images or the planner use never uses them back (the VM directory and its
//! records are `vmdir`, below all of them; snapshots' records are below the
//! operations that take them). A loop makes every module in it one unit
//! that cannot be understood, tested or moved alone.
//!
//! The check reads the source: each top-level module (a file or a folder of
//! `engine/src`) uses another when its code, tests left out, names
//! `crate::<other>`. A loop fails the test, naming its modules and edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the Rust files it is made of.
fn modules(src: &Path) -> BTreeMap<String, Vec<std::path::PathBuf>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let top = first.to_string_lossy().trim_end_matches(".rs").to_string();
            if top != "lib" {
                out.entry(top).or_default().push(p);
            }
        }
    }
    out
}

/// The code of a file without its `#[cfg(test)] mod tests` (tests may use
/// anything).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Every module name `code` reaches through `crate::`: `crate::a::b`, and
/// each head of a `use crate::{a, b::c}` group.
fn uses(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find("};").or_else(|| group.find('}')).unwrap_or(0)];
            // Heads only: the first name of each comma-separated path at
            // depth one of the braces.
            let mut depth = 0;
            let mut at_head = true;
            let mut word = String::new();
            for c in body.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        at_head = false;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_head = true,
                    c if c.is_alphanumeric() || c == '_' => {
                        if at_head {
                            word.push(c)
                        }
                    }
                    _ => {
                        if !word.is_empty() {
                            out.insert(std::mem::take(&mut word));
                            at_head = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                out.insert(word);
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| known.contains(m));
    out
}

/// The loops of `edges` (strongly connected sets of two or more), each
/// sorted.
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability by search from each module: small graphs, plain code.
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = edges[from].iter().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(edges[m].iter());
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in edges.keys() {
        let mut comp: Vec<String> = reaches[m]
            .iter()
            .filter(|o| *o != m && reaches[*o].contains(m))
            .cloned()
            .collect();
        if comp.is_empty() {
            continue;
        }
        comp.push(m.clone());
        comp.sort();
        if !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

#[test]
fn the_engine_has_no_import_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, files) in &mods {
        let mut to = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            to.extend(uses(without_tests(&text), &known));
        }
        to.remove(m);
        edges.insert(m.clone(), to);
    }
    assert!(edges.len() > 10, "the modules were not found: {edges:?}");
    let found = loops(&edges);
    let shown: Vec<String> = found
        .iter()
        .map(|comp| {
            let inner: Vec<String> = comp
                .iter()
                .map(|a| {
                    let to: Vec<&String> = edges[a].iter().filter(|b| comp.contains(b)).collect();
                    format!("{a} → {to:?}")
                })
                .collect();
            format!("{comp:?}: {}", inner.join(", "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import loops in the engine:\n{}",
        shown.join("\n")
    );
}

#[test]
fn the_check_sees_a_loop_and_the_names_it_uses() {
    let known: BTreeSet<String> = ["a", "b", "c", "lab"].map(String::from).into();
    assert_eq!(
        uses(
            "use crate::{a::X, b::{Y, Z}};\nfn f() { crate::c::g(); crate::nope::h(); }",
            &known
        ),
        ["a", "b", "c"].map(String::from).into()
    );
    assert_eq!(
        uses("use crate::lab::{self, VmDir};", &known),
        ["lab"].map(String::from).into()
    );
    let edge = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(a, to)| (a.to_string(), to.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    let with_loop = edge(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("lab", &["a"])]);
    assert_eq!(loops(&with_loop), vec![vec!["a", "b", "c"]]);
    let without = edge(&[("a", &["b"]), ("b", &["c"]), ("c", &[]), ("lab", &["a"])]);
    assert!(loops(&without).is_empty());
}
