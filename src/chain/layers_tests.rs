//! The modules of `chain` depend downwards only: no file under `src/chain/` imports a module
//! that imports it back, directly or through others. Reads the sources and follows every
//! `super::` and `crate::chain::` path outside comments and unit-test modules (a name
//! re-exported by `mod.rs` counts as its defining module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module names each file's code refers to through `super::` or `crate::chain::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// `text` without line comments and without the unit tests that close the file.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segments of the paths that follow each occurrence of `prefix` in `code`
/// (`prefix{a, b::c}` gives `a` and `b`).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.push(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found
}

/// The import graph of the modules under `dir`.
fn import_graph(dir: &Path) -> Graph {
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("src/chain") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            sources.insert(name, std::fs::read_to_string(&path).expect("source"));
        }
    }
    // What mod.rs re-exports, by item name.
    let mut reexports = BTreeMap::new();
    for line in code_of(&sources["mod"]).lines() {
        if let Some(path) = line.trim().strip_prefix("pub use ") {
            let (module, items) = path.split_once("::").expect("pub use module::item");
            let items = items.trim_end_matches(';');
            let items = items.trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',') {
                reexports.insert(item.trim().to_owned(), module.to_owned());
            }
        }
    }
    let mut graph = Graph::new();
    for (name, text) in sources.iter().filter(|(name, _)| *name != "mod") {
        let code = code_of(text);
        let mut uses: BTreeSet<String> = paths_after(&code, "super::")
            .into_iter()
            .chain(paths_after(&code, "crate::chain::"))
            .filter_map(|segment| {
                if sources.contains_key(&segment) {
                    Some(segment)
                } else {
                    reexports.get(&segment).cloned()
                }
            })
            .collect();
        uses.remove(name);
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A cycle through `from`, if there is one: the modules along it.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty");
        for next in &graph[last] {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_chain_module_imports_one_that_imports_it_back() {
    let graph = import_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/chain"));
    for (module, uses) in &graph {
        println!(
            "{module} -> {}",
            Vec::from_iter(uses.iter().cloned()).join(", ")
        );
    }
    assert!(graph["sync"].contains("source"), "the check sees imports");
    assert!(
        graph["source"].contains("fetcher"),
        "the check sees imports"
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_through(&graph, module))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_check_finds_a_cycle_through_grouped_and_inline_paths() {
    let code = "use super::{a, b::C};\nfn f() { crate::chain::d::g() } // super::e";
    assert_eq!(paths_after(&code_of(code), "super::"), ["a", "b"]);
    assert_eq!(paths_after(&code_of(code), "crate::chain::"), ["d"]);
    let graph: Graph = [("x", "y"), ("y", "z"), ("z", "x"), ("w", "x")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(
        cycle_through(&graph, "x").map(|cycle| cycle.join(" -> ")),
        Some("x -> y -> z -> x".to_owned())
    );
    assert_eq!(cycle_through(&graph, "w"), None);
}
