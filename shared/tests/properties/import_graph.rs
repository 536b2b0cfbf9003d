//! The library's modules depend on each other in one direction only: no circle of
//! `crate::` / `super::` paths between files, nor between top-level modules. Read from the
//! sources, so a circle that comes back fails here, naming it.
//!
//! Every path outside `#[cfg(test)]` items counts, doc links included: a module that links
//! to its caller in its docs knows about it. A module and its own submodules are one unit
//! here (a parent declares its children; a child uses its parent's items).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path in the crate: `["release", "store"]` for `src/release/store.rs`.
type Module = Vec<String>;
type Graph = BTreeMap<Module, BTreeSet<Module>>;

#[test]
fn no_file_imports_back_into_a_file_that_imports_it() {
    let graph = file_graph();
    assert!(graph.len() > 20, "read too few modules: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", show(&cycle));
    }
}

#[test]
fn no_top_level_module_imports_back_into_one_that_imports_it() {
    let mut top = Graph::new();
    for (from, tos) in file_graph() {
        let Some(first) = from.first() else { continue };
        let entry = top.entry(vec![first.clone()]).or_default();
        entry.extend(
            tos.iter()
                .filter(|to| to[0] != *first)
                .map(|to| vec![to[0].clone()]),
        );
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!("import circle between top-level modules: {}", show(&cycle));
    }
}

#[test]
fn a_circle_is_found_and_named() {
    let module = |name: &str| vec![name.to_string()];
    let graph = Graph::from([
        (module("a"), BTreeSet::from([module("b")])),
        (module("b"), BTreeSet::from([module("c")])),
        (module("c"), BTreeSet::from([module("a")])),
    ]);
    assert_eq!(
        find_cycle(&graph).map(|c| show(&c)),
        Some("a -> b -> c -> a".into())
    );
    let line = Graph::from([(module("a"), BTreeSet::from([module("b")]))]);
    assert_eq!(find_cycle(&line), None);
}

/// Which modules each file's code names, test code left out.
fn file_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut code = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let (kept, test_children) = without_tests(&text);
        test_only.extend(test_children.into_iter().map(|child| {
            let mut path = module.clone();
            path.push(child);
            path
        }));
        code.insert(module, kept);
    }
    let known: BTreeSet<Module> = code.keys().cloned().collect();
    code.iter()
        .filter(|(module, _)| !test_only.iter().any(|t| module.starts_with(t)))
        .map(|(module, text)| {
            let named = named_paths(module, text)
                .iter()
                .filter_map(|path| longest_module(&known, path))
                .filter(|to| !to.starts_with(module) && !module.starts_with(to))
                .filter(|to| !test_only.iter().any(|t| to.starts_with(t)))
                .collect();
            (module.clone(), named)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// `text` without the items marked `#[cfg(test)]`, and the names of the child modules
/// declared that way (`#[cfg(test)] mod tests;`), whose files are test code too.
fn without_tests(text: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut test_children = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        // Further attributes, then the item: one line ending in `;`, or a braced block.
        let mut depth = 0i32;
        for item in lines.by_ref() {
            let item = item.trim();
            if item.starts_with("#[") && depth == 0 {
                continue;
            }
            depth += braces(item);
            if depth == 0 && item.ends_with(';') {
                if let Some(name) = item.split_whitespace().skip_while(|w| *w != "mod").nth(1) {
                    test_children.push(name.trim_end_matches(';').to_string());
                }
                break;
            }
            if depth == 0 && item.contains('}') {
                break;
            }
        }
    }
    (kept, test_children)
}

fn braces(line: &str) -> i32 {
    line.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// Every crate path `text` names, absolute: `crate::a::b`, `super::c` (from `module`),
/// and each path of a group such as `crate::a::{b, c::d}`.
fn named_paths(module: &Module, text: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    for (start, _) in text.match_indices("crate::") {
        let before = text[..start].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            expand(&text[start + "crate::".len()..], Vec::new(), &mut paths);
        }
    }
    for (start, _) in text.match_indices("super::") {
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `super::super::x` is read from its first `super`
        }
        let mut base = module.clone();
        let mut rest = &text[start..];
        while let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        }
        expand(rest, base, &mut paths);
    }
    paths
}

/// Reads `a::b::{c, d::e}` at the start of `text` into `prefix`-rooted paths.
fn expand(text: &str, prefix: Module, out: &mut Vec<Module>) {
    let mut path = prefix;
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            path.push(rest[..end].to_string());
        }
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(after) if after.starts_with('{') => {
                for item in group_items(&after[1..]) {
                    expand(item, path.clone(), out);
                }
                return;
            }
            Some(after) => rest = after,
            None => break,
        }
    }
    out.push(path);
}

/// The comma-separated items of a `{...}` group whose opening brace precedes `text`.
fn group_items(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(text[start..i].trim());
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

fn longest_module(known: &BTreeSet<Module>, path: &Module) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// One circle of `graph`, its first module repeated at the end, if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<Module>> {
    fn visit(
        graph: &Graph,
        node: &Module,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

fn show(cycle: &[Module]) -> String {
    let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
    names.join(" -> ")
}
