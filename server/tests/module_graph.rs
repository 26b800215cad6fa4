//! No module of the server library imports a module that imports it back.
//!
//! Each file under `src/` is a module (`core/mod.rs` is `crate::core`, `core/login.rs` is
//! `crate::core::login`), and so is each inline module in it (`mod tests { … }`); every
//! `crate::…`, `super::…` and `self::…` path in its code — `use` declarations and paths written
//! inline alike, comments and strings excluded — is an edge to the longest module that path
//! names. A cycle in that graph fails the test with its path.
//! Declaring a child (`mod login;`) is containment, not an import: a parent may hold its
//! children, but if it also imports from a child that imports from it, that is a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`crate::core::login`) → the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_server_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = library_sources(&src);
    assert!(sources.len() > 20, "found only {} files", sources.len());
    let graph = module_graph(&sources);
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "module cycles (a → b means a imports b):\n{}",
        cycles
            .iter()
            .map(|c| format!("  {}", c.join(" → ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_made_up_cyclic_graph_is_reported_with_its_path() {
    let mut graph = Graph::new();
    let mut edge = |a: &str, b: &str| {
        graph.entry(a.into()).or_default().insert(b.into());
        graph.entry(b.into()).or_default();
    };
    edge("crate::a", "crate::b");
    edge("crate::b", "crate::c");
    edge("crate::c", "crate::a");
    edge("crate::c", "crate::d");
    edge("crate::e", "crate::d");
    assert_eq!(
        cycles(&graph),
        [["crate::a", "crate::b", "crate::c", "crate::a"]]
    );
}

#[test]
fn a_child_using_its_parent_that_uses_it_back_is_a_cycle() {
    let sources = [
        (
            "gateway/mod.rs",
            "//! Docs naming crate::core::Core do not count.\n\
             mod driver;\n\
             pub(crate) use self::driver::drive;\n\
             pub(crate) trait Link {}\n",
        ),
        (
            "gateway/driver.rs",
            "use super::Link;\n\
             pub(crate) fn drive() { let _ = \"crate::http::x\"; }\n",
        ),
        (
            "core/mod.rs",
            "mod s2c;\n\
             pub(crate) struct Core { queue: s2c::Queue }\n",
        ),
        (
            "core/s2c.rs",
            "impl super::Core {}\npub(crate) struct Queue;\n",
        ),
        (
            "http.rs",
            "use crate::{gateway::{self, driver::drive}, core};\n",
        ),
        ("lib.rs", "mod core;\nmod gateway;\nmod http;\n"),
    ]
    .map(|(path, text)| (PathBuf::from(path), text.to_owned()));
    let graph = module_graph(&sources);
    assert_eq!(
        graph["crate::http"],
        BTreeSet::from([
            "crate::core".to_owned(),
            "crate::gateway".to_owned(),
            "crate::gateway::driver".to_owned()
        ])
    );
    assert!(
        !graph["crate::gateway::driver"].contains("crate::http"),
        "comments and strings are not imports"
    );
    assert_eq!(
        cycles(&graph),
        [
            ["crate::core", "crate::core::s2c", "crate::core"],
            ["crate::gateway", "crate::gateway::driver", "crate::gateway"]
        ]
    );
}

#[test]
fn an_inline_module_is_a_module_of_its_own() {
    let sources = [
        (
            "core/mod.rs",
            "mod login;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::registry::R;\n}\n",
        ),
        ("core/login.rs", "fn f() { crate::registry::register(); }\n"),
        ("registry.rs", "pub(crate) struct R;\n#[cfg(test)]\nmod tests { use crate::core::login; }\n"),
        ("lib.rs", "mod core;\nmod registry;\n"),
    ]
    .map(|(path, text)| (PathBuf::from(path), text.to_owned()));
    let graph = module_graph(&sources);
    assert_eq!(
        graph["crate::core::tests"],
        BTreeSet::from(["crate::core".to_owned(), "crate::registry".to_owned()]),
        "`super` in `core::tests` is `core`, `super::super` the crate"
    );
    assert!(graph["crate::core"].is_empty());
    assert_eq!(
        graph["crate::registry::tests"],
        BTreeSet::from(["crate::core::login".to_owned()])
    );
    assert!(
        cycles(&graph).is_empty(),
        "a test module using what uses its parent is no cycle"
    );
}

/// Every `.rs` file of the library under `src`, relative to it, with its text. `main.rs` is
/// the binary, another crate.
fn library_sources(src: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("src is readable").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).expect("under src").to_path_buf();
                if relative != Path::new("main.rs") {
                    let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                    files.push((relative, text));
                }
            }
        }
    }
    files.sort();
    files
}

/// The module a file under `src` defines: `lib.rs` → `crate`, `a/mod.rs` and `a.rs` →
/// `crate::a`, `a/b.rs` → `crate::a::b`.
fn module_of(file: &Path) -> Vec<String> {
    let mut path = vec!["crate".to_owned()];
    let parts: Vec<String> = file
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            path.push(part.clone());
        } else {
            let stem = part.trim_end_matches(".rs");
            if stem != "mod" && stem != "lib" {
                path.push(stem.to_owned());
            }
        }
    }
    path
}

/// What one file declares and imports.
struct ParsedFile {
    /// The module the file defines.
    module: Vec<String>,
    /// Its inline modules, relative to it.
    inline: Vec<Vec<String>>,
    /// Each path it names, with the inline module it appears in.
    paths: Vec<(Vec<String>, Vec<String>)>,
}

fn module_graph(sources: &[(PathBuf, String)]) -> Graph {
    // Every module: each file's, and each inline module (`mod tests { … }`) within it.
    let parsed: Vec<ParsedFile> = sources
        .iter()
        .map(|(file, text)| {
            let code = strip_comments_and_strings(text);
            ParsedFile {
                module: module_of(file),
                inline: inline_modules(&code),
                paths: imported_paths(&code),
            }
        })
        .collect();
    let mut modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for file in &parsed {
        modules.insert(file.module.clone());
        for scope in &file.inline {
            modules.insert([file.module.clone(), scope.clone()].concat());
        }
    }
    let mut graph = Graph::new();
    for module in &modules {
        graph.entry(module.join("::")).or_default();
    }
    for file in &parsed {
        for (scope, path) in &file.paths {
            let from = [file.module.clone(), scope.clone()].concat();
            let Some(absolute) = absolute(&from, path) else {
                continue;
            };
            // The longest prefix that is a module of the crate.
            let target = (1..=absolute.len())
                .rev()
                .map(|n| absolute[..n].to_vec())
                .find(|prefix| modules.contains(prefix));
            if let Some(target) = target
                && target != from
            {
                graph
                    .entry(from.join("::"))
                    .or_default()
                    .insert(target.join("::"));
            }
        }
    }
    graph
}

/// The inline modules of a file (`mod tests { … }` → `["tests"]`), nested ones as paths.
fn inline_modules(code: &str) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let mut found = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "{" => depth += 1,
            "}" => {
                if open.last().is_some_and(|(_, d)| *d == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                open.push((tokens[i + 1].clone(), depth + 1));
                found.push(open.iter().map(|(m, _)| m.clone()).collect());
            }
            _ => {}
        }
    }
    found
}

/// Makes `path` (starting with `crate`, `super` or `self`) absolute from module `base`.
fn absolute(base: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut segments = path.iter().peekable();
    let mut out: Vec<String> = match segments.peek()?.as_str() {
        "crate" => {
            segments.next();
            vec!["crate".to_owned()]
        }
        "self" => {
            segments.next();
            base.to_vec()
        }
        "super" => base.to_vec(),
        _ => return None,
    };
    while segments.peek().is_some_and(|s| *s == "super") {
        segments.next();
        out.pop();
        if out.is_empty() {
            return None;
        }
    }
    out.extend(segments.cloned());
    Some(out)
}

/// Source text with comments and string and character literals blanked out (newlines kept).
fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br#"…"#: ends at a quote followed by as many hashes.
            i += chars[i..].iter().position(|&c| c == '"').expect("a quote") + 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('x', '\n', '\''), not a lifetime.
            i += 1;
            if chars[i] == '\\' {
                i += 1;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If a raw string literal starts at `i`, how many `#` delimit it.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let preceded_by_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    if preceded_by_ident {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Every `crate`/`super`/`self` path in the (stripped) code, with the inline module it
/// appears in (`mod tests { … }` → `["tests"]`).
fn imported_paths(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let tokens = tokenize(code);
    // Child modules declared in files (`mod login;`): a path may start with their bare name.
    let children: BTreeSet<&str> = tokens
        .windows(3)
        .filter(|w| w[0] == "mod" && w[2] == ";")
        .map(|w| w[1].as_str())
        .collect();
    let from_child = |path: Vec<String>| -> (Vec<String>, Vec<String>) {
        let mut rooted = vec!["self".to_owned()];
        rooted.extend(path);
        (Vec::new(), rooted)
    };
    let mut paths = Vec::new();
    // Inline modules open at a brace depth; the innermost is last.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i].as_str();
        let scope = || inline.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
        match token {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth + 1));
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |p| i + p);
                let scope = scope();
                for path in expand_use_tree(&tokens[i + 1..end]) {
                    if children.contains(path[0].as_str()) {
                        paths.push(from_child(path));
                    } else {
                        paths.push((scope.clone(), path));
                    }
                }
                i = end;
                continue;
            }
            "crate" | "super" | "self" if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let preceded_by_dollar = i > 0 && tokens[i - 1] == "$";
                let mut path = vec![token.to_owned()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t == "::")
                    && tokens.get(j + 1).is_some_and(|t| is_ident(t))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                if !preceded_by_dollar {
                    paths.push((scope(), path));
                }
                i = j;
                continue;
            }
            child
                if children.contains(child)
                    && tokens.get(i + 1).is_some_and(|t| t == "::")
                    && (i == 0 || tokens[i - 1] != "::") =>
            {
                let mut path = vec![child.to_owned()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t == "::")
                    && tokens.get(j + 1).is_some_and(|t| is_ident(t))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                paths.push(from_child(path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

fn is_ident(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokenize(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `r#type` is the identifier `type`.
            tokens.push(word);
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_owned());
            i += 2;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

/// The paths a `use` tree names: `crate::{a::{self, b}, c as d}` → `crate::a`, `crate::a::b`,
/// `crate::c`. Paths not starting with `crate`, `super` or `self` are kept too and dropped by
/// [`absolute`].
fn expand_use_tree(tokens: &[String]) -> Vec<Vec<String>> {
    fn tree(tokens: &[String], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        while *i < tokens.len() {
            match tokens[*i].as_str() {
                "::" => *i += 1,
                "{" => {
                    *i += 1;
                    loop {
                        tree(tokens, i, &path, out);
                        match tokens.get(*i).map(String::as_str) {
                            Some(",") => *i += 1,
                            Some("}") => {
                                *i += 1;
                                break;
                            }
                            _ => break,
                        }
                        if tokens.get(*i).is_some_and(|t| t == "}") {
                            *i += 1;
                            break;
                        }
                    }
                    return;
                }
                "," | "}" => break,
                "as" => *i += 2,
                "*" => *i += 1,
                "self" if !path.is_empty() => *i += 1,
                segment => {
                    path.push(segment.to_owned());
                    *i += 1;
                }
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    let mut out = Vec::new();
    let start = usize::from(tokens.first().is_some_and(|t| t == "::"));
    let mut i = start;
    tree(tokens, &mut i, &[], &mut out);
    out
}

/// One cycle per strongly connected component of more than one module (modules that all reach
/// each other), as a path that starts and ends at its smallest module; fixing it may leave
/// another cycle in the same component, which the next run reports.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut seen: BTreeSet<&String> = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        // Modules reachable from `start` that reach it back form its component.
        let forward = reachable(graph, start);
        let component: BTreeSet<&String> = forward
            .iter()
            .copied()
            .filter(|m| reachable(graph, m).contains(start))
            .collect();
        seen.extend(component.iter().copied());
        if component.len() > 1 {
            found.push(cycle_through(graph, start, &component));
        }
    }
    found
}

fn reachable<'a>(graph: &'a Graph, from: &'a String) -> BTreeSet<&'a String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(m) = stack.pop() {
        for next in graph.get(m).into_iter().flatten() {
            if out.insert(next) {
                stack.push(next);
            }
        }
    }
    out
}

/// A shortest path from `start` back to itself within `component` (breadth first).
fn cycle_through(graph: &Graph, start: &String, component: &BTreeSet<&String>) -> Vec<String> {
    let mut parent: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(m) = queue.pop_front() {
        for next in &graph[m] {
            if !component.contains(next) {
                continue;
            }
            if next == start {
                // Walk back from `m` to `start`, then read it forwards and close the loop.
                let mut path = vec![m.clone()];
                let mut at = m;
                while at != start {
                    at = parent[at];
                    path.push(at.clone());
                }
                path.reverse();
                path.push(start.clone());
                return path;
            }
            if !parent.contains_key(next) && next != start {
                parent.insert(next, m);
                queue.push_back(next);
            }
        }
    }
    vec![start.clone(), start.clone()]
}
