//! The tables of README.md, ARCHITECTURE.md and docs/*.md render as tables (issue 18, row 14):
//! no row cut off from its table by a blank line (it would render as text), and every row with
//! the cells of its header (an unescaped `|` inside a cell, even in a code span, splits it).

use std::path::{Path, PathBuf};

/// The separators of a table row: `|` not escaped with a backslash.
fn separators(line: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for c in line.trim().chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => n += 1,
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    n
}

fn is_delimiter(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.contains('-') && t.chars().all(|c| "|:- ".contains(c))
}

/// What is wrong with the tables of `text`, one line per problem.
fn table_problems(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    let mut fenced = false;
    let mut header: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            header = None;
            continue;
        }
        if fenced || !line.starts_with('|') {
            header = None;
            continue;
        }
        match header {
            None if lines.get(i + 1).is_some_and(|next| is_delimiter(next)) => {
                header = Some(separators(line));
            }
            None => problems.push(format!(
                "line {}: a table row outside a table (a blank line above splits the table?): {line}",
                i + 1
            )),
            Some(n) if separators(line) != n => problems.push(format!(
                "line {}: {} cells where the header has {} (escape | inside cells as \\|): {line}",
                i + 1,
                separators(line).saturating_sub(1),
                n - 1
            )),
            Some(_) => {}
        }
    }
    problems
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_table_of_the_docs_renders_as_one_table() {
    let root = repo_root();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for p in table_problems(&text) {
            problems.push(format!("{}: {p}", f.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_split_table_and_a_stray_pipe_are_found() {
    let split = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n";
    assert_eq!(
        table_problems(split).len(),
        1,
        "{:?}",
        table_problems(split)
    );
    let stray = "| a | b |\n|---|---|\n| `x [list|show]` | 2 |\n| `x [list\\|show]` | 2 |\n";
    let problems = table_problems(stray);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("line 3: 3 cells where the header has 2"),
        "{problems:?}"
    );
    let fine = "text\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n```\n| not | a table\n```\n";
    assert!(table_problems(fine).is_empty());
}
