//! The code cites the protocol by section (`§4.3`); every such citation in the workspace's Rust
//! and Markdown files must lead to a heading of `docs/PROTOCOL.md`, so that renumbering the
//! document, or citing a section it does not have, fails here with the file and line.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The document the citations point into, relative to the workspace root.
const PROTOCOL: &str = "docs/PROTOCOL.md";

/// Directories never scanned: build output, npm packages, the built H5 client. Hidden
/// directories (`.git`) are skipped too.
const SKIPPED_DIRS: [&str; 3] = ["target", "node_modules", "dist"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_owned()
}

/// The section numbers of `doc`'s headings, such as `## 4. Sessions` (→ `4`) and
/// `### 4.3 Duplicate logins` (→ `4.3`), ignoring fenced code blocks. A number used twice, or a
/// subsection whose parent section is missing, is an error.
fn sections(doc: &str) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    let mut in_code = false;
    for (index, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(title) = heading_title(line).filter(|_| !in_code) else {
            continue;
        };
        let number = title
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches('.');
        if !is_section_number(number) {
            continue;
        }
        if !found.insert(number.to_owned()) {
            return Err(format!("line {}: section {number} twice", index + 1));
        }
        if let Some((parent, _)) = number.rsplit_once('.')
            && !found.contains(parent)
        {
            return Err(format!(
                "line {}: section {number} comes before its parent {parent}",
                index + 1
            ));
        }
    }
    Ok(found)
}

/// The text of a Markdown ATX heading (`#` to `######`, then a space), if `line` is one.
fn heading_title(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    line[hashes..].strip_prefix(' ')
}

/// True for `4`, `4.3`, `10.2.1`: digit groups joined by single dots.
fn is_section_number(s: &str) -> bool {
    s.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Every `§N` / `§N.N…` in `text` with its 1-based line number. A dot not followed by a digit
/// ends the citation, so `see §4.` cites section 4.
fn citations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let rest = &line[at + '§'.len_utf8()..];
            let mut end = digits(rest);
            if end == 0 {
                continue;
            }
            while rest[end..].starts_with('.') && digits(&rest[end + 1..]) > 0 {
                end += 1 + digits(&rest[end + 1..]);
            }
            found.push((index + 1, rest[..end].to_owned()));
        }
    }
    found
}

/// The length of the run of ASCII digits that `s` starts with.
fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// The citations in `text` that name no section of `known`.
fn unresolved(text: &str, known: &BTreeSet<String>) -> Vec<(usize, String)> {
    citations(text)
        .into_iter()
        .filter(|(_, section)| !known.contains(section))
        .collect()
}

/// Every `.rs` and `.md` file under `dir`, outside the skipped directories. Symbolic links are
/// not followed.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_ref()) {
                sources(&path, out);
            }
        } else if kind.is_file() && (name.ends_with(".rs") || name.ends_with(".md")) {
            out.push(path);
        }
    }
}

fn protocol_sections(root: &Path) -> BTreeSet<String> {
    let path = root.join(PROTOCOL);
    let doc = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sections(&doc).unwrap_or_else(|e| panic!("{PROTOCOL}: {e}"))
}

#[test]
fn every_section_citation_in_the_workspace_resolves_to_a_protocol_heading() {
    let root = workspace_root();
    let known = protocol_sections(&root);
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();

    let mut cited = 0;
    let mut broken = Vec::new();
    for file in files.iter().filter(|f| **f != root.join(PROTOCOL)) {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        cited += citations(&text).len();
        let shown = file.strip_prefix(&root).unwrap_or(file).display();
        for (line, section) in unresolved(&text, &known) {
            broken.push(format!("{shown}:{line}: §{section}"));
        }
    }
    // The code cites the protocol about 130 times; far fewer means the scan missed files.
    assert!(
        cited >= 100,
        "only {cited} citations in {} files: is the scan looking in the right place ({})?",
        files.len(),
        root.display()
    );
    assert!(
        broken.is_empty(),
        "these citations name no heading of {PROTOCOL}:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_protocol_document_cites_only_its_own_sections() {
    let root = workspace_root();
    let doc = fs::read_to_string(root.join(PROTOCOL)).expect("the document exists");
    let known = protocol_sections(&root);
    assert_eq!(unresolved(&doc, &known), vec![]);
}

/// Test text with `$` standing for the section sign, so that this file's made-up citations are
/// not themselves reported by the scan above.
fn fixture(text: &str) -> String {
    text.replace('$', "\u{a7}")
}

#[test]
fn a_made_up_section_is_reported_with_its_line() {
    let known = protocol_sections(&workspace_root());
    let text =
        fixture("the envelope ($1) and duplicate logins ($4.3),\nbut not $99.9, nor $4.3.7\n");
    assert_eq!(
        unresolved(&text, &known),
        vec![(2, "99.9".to_owned()), (2, "4.3.7".to_owned())]
    );
}

#[test]
fn citations_stop_at_punctuation() {
    assert_eq!(
        citations(&fixture("see $4. Then $6.4, $1.2: and $ alone, $3.1.\n")),
        vec![
            (1, "4".to_owned()),
            (1, "6.4".to_owned()),
            (1, "1.2".to_owned()),
            (1, "3.1".to_owned()),
        ]
    );
}

#[test]
fn headings_are_numbered_once_and_only_outside_code() {
    let doc = "# Title\n## 1. One\n```\n## 7. Not a heading\n```\n### 1.1 Sub\n#### Plain\n";
    assert_eq!(
        sections(doc),
        Ok(BTreeSet::from(["1".to_owned(), "1.1".to_owned()]))
    );
    assert!(sections("## 1. One\n## 1. Again\n").is_err());
    assert!(sections("## 1. One\n### 2.1 Orphan\n").is_err());
}
