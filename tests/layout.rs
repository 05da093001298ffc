//! The file list is the architecture: every file in `src/` stays under 600
//! lines, and the files' imports form no circle (each step of the reply path
//! and of the bench only looks below itself). Run with `--nocapture` to see the
//! import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// `src/a/b.rs` is `a::b`, `src/a/mod.rs` is `a`, `src/lib.rs` is the root ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The file's code without its unit tests and comments.
fn code_of(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..cut].lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Paths named in `use` items (braces expanded) and inline `crate::`/`super::` paths.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` items start a line; they may run over several lines to the `;`.
    let mut item: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim_start();
        if item.is_none() {
            let rest = ["use ", "pub use ", "pub(crate) use "]
                .iter()
                .find_map(|p| trimmed.strip_prefix(p));
            item = rest.map(String::from);
        } else if let Some(text) = item.as_mut() {
            text.push_str(trimmed);
        }
        if let Some(text) = item.take_if(|t| t.contains(';')) {
            let flat: String = text[..text.find(';').unwrap()].split_whitespace().collect();
            expand(&flat, "", &mut out);
        }
    }
    for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let tail: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        // `use super::{...}` leaves a bare `super::`: the `use` scan above has it.
        if !tail.ends_with("::") {
            out.push(tail);
        }
    }
    out
}

/// `a::{b, c::{d, e}}` under `prefix` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(item: &str, prefix: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| if p.is_empty() { s.to_string() } else { format!("{p}::{s}") };
    match item.find('{') {
        None => out.push(join(prefix, item.trim_end_matches("::"))),
        Some(open) => {
            let head = join(prefix, item[..open].trim_end_matches("::"));
            let close = item.rfind('}').filter(|&c| c > open).unwrap_or(item.len());
            let inner = &item[open + 1..close];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], &head, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                expand(&inner[start..], &head, out);
            }
        }
    }
}

#[test]
fn files_are_small_and_imports_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.ends_with("main.rs"));

    let mut too_long = Vec::new();
    let mut modules = BTreeMap::new(); // module path -> code
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        if lines > MAX_LINES {
            too_long.push(format!("{} ({lines} lines)", file.display()));
        }
        modules.insert(module_of(&src, file), code_of(&text));
    }
    assert!(too_long.is_empty(), "files over {MAX_LINES} lines: {too_long:?}");

    // `pub use child::Name` in a module: `module::Name` lives in `module::child`.
    let mut reexports = BTreeMap::new();
    for (module, code) in &modules {
        for line in code.lines().filter(|l| l.trim_start().starts_with("pub use ")) {
            let mut paths = Vec::new();
            let item: String = line.trim_start()["pub use ".len()..].split_whitespace().collect();
            expand(item.trim_end_matches(';'), "", &mut paths);
            for path in paths {
                let (from, name) = path.rsplit_once("::").unwrap_or(("", &path));
                let from = from.trim_start_matches("self::").trim_start_matches("crate::");
                let owner = if module.is_empty() || path.starts_with("crate::") {
                    from.to_string()
                } else {
                    format!("{module}::{from}")
                };
                let key =
                    if module.is_empty() { name.to_string() } else { format!("{module}::{name}") };
                reexports.insert(key, owner);
            }
        }
    }
    let resolve = |module: &str, path: &str| -> Option<String> {
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = match segs.first() {
            Some(&"crate") => {
                segs.remove(0);
                Vec::new()
            }
            Some(&"super") => {
                let mut b: Vec<String> = module.split("::").map(String::from).collect();
                while segs.first() == Some(&"super") {
                    segs.remove(0);
                    b.pop();
                }
                b.retain(|s| !s.is_empty());
                b
            }
            Some(&"self") => {
                segs.remove(0);
                module.split("::").filter(|s| !s.is_empty()).map(String::from).collect()
            }
            Some(first)
                if modules.contains_key(&format!("{module}::{first}")) && !module.is_empty() =>
            {
                module.split("::").map(String::from).collect()
            }
            _ => return None,
        };
        // Walk down as far as the path names modules, then follow one re-export.
        let mut target = base.join("::");
        for seg in segs {
            base.push(seg.to_string());
            let next = base.join("::");
            if modules.contains_key(&next) {
                target = next;
            } else {
                if let Some(owner) = reexports.get(&next) {
                    target = owner.clone();
                }
                break;
            }
        }
        Some(target)
    };

    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        let deps = edges.entry(module.clone()).or_default();
        for path in paths_in(code) {
            if let Some(target) = resolve(module, &path) {
                // A module naming its own descendants is how a folder wires its parts.
                let own_child = module.is_empty() || target.starts_with(&format!("{module}::"));
                if &target != module && modules.contains_key(&target) && !own_child {
                    deps.insert(target);
                }
            }
        }
    }
    for (module, deps) in &edges {
        let name = if module.is_empty() { "lib" } else { module };
        println!("{name} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "));
    }

    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut circle = stack[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(_) => {}
                None => {
                    if let Some(circle) = visit(next, edges, state, stack) {
                        return Some(circle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node) {
            let circle = visit(node, &edges, &mut state, &mut Vec::new());
            assert!(circle.is_none(), "import circle: {}", circle.unwrap().join(" -> "));
        }
    }
}
