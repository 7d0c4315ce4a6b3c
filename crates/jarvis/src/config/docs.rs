//! The settings table of README.md and docs/api.md, made from the declarations so that it
//! cannot drift: a test compares the table between `<!-- settings:begin -->` and
//! `<!-- settings:end -->` in each file with [`table`], and rewrites it when run with
//! `JARVIS_UPDATE_DOCS=1 cargo test -p jarvis --lib config::docs`.

use super::all_settings;
use super::setting::Setting;

/// The Markdown table of every setting: names (the first wins), meaning, default, accepted.
pub fn table() -> String {
    let mut out = String::from("| variable | meaning | default | accepted |\n|---|---|---|---|\n");
    for s in all_settings() {
        out.push_str(&row(s));
        out.push('\n');
    }
    out
}

fn row(s: &Setting) -> String {
    let names: Vec<String> = s.names().map(|n| format!("`{n}`")).collect();
    let mut meaning = s.help.to_string();
    if let Some(key) = &s.file {
        meaning.push_str(&format!(" (then `[{}] {}`)", key.table, key.key));
    }
    format!(
        "| {} | {} | {} | {} |",
        names.join(", "),
        meaning,
        s.default.doc(),
        s.kind.accepted()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- settings:begin -->\n";
    const END: &str = "<!-- settings:end -->";

    /// Checks (or with `JARVIS_UPDATE_DOCS=1` rewrites) the table in one file of the repository.
    fn check(relative: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = start + text[start..].find(END).expect("the end marker");
        let expected = table();
        if text[start..end] == expected {
            return;
        }
        if std::env::var_os("JARVIS_UPDATE_DOCS").is_some() {
            let updated = format!("{}{expected}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "the settings table of {relative} is not the declarations' \
             (JARVIS_UPDATE_DOCS=1 cargo test -p jarvis --lib config::docs rewrites it):\n{expected}"
        );
    }

    #[test]
    fn readme_table_is_the_declarations() {
        check("../../README.md");
    }

    #[test]
    fn api_reference_table_is_the_declarations() {
        check("../../docs/api.md");
    }

    #[test]
    fn cells_hold_no_pipe() {
        for s in all_settings() {
            let cells = [s.help, s.default.doc(), &s.kind.accepted()].concat();
            assert!(!cells.contains('|'), "{}: a | would split the row", s.var);
        }
    }
}
