//! What every operator command shares: writing to stdout (a closed pipe ends quietly),
//! labelled detail views, the body of a `put`, and the `--since`/`--until` arguments.

use std::fmt::Write as _;
use std::io::Write as _;

/// Writes `text` to stdout as it is. When stdout is a closed pipe (`jarvis … | head -1`), the
/// process ends at once with exit 0 and no message: the reader has what it wanted.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        crate::say!("jarvis: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// [`out`] with a newline after `text`.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
}

/// The body of a `put` command: the `--body` JSON object (if any) with the fields given as
/// options set over it.
pub fn put_body<'a>(
    body: Option<&str>,
    given: impl IntoIterator<Item = (&'a str, Option<serde_json::Value>)>,
) -> anyhow::Result<serde_json::Value> {
    let mut fields = match body {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => anyhow::bail!("--body must be a JSON object"),
            Err(e) => anyhow::bail!("--body is not JSON: {e}"),
        },
    };
    for (k, v) in given {
        if let Some(v) = v {
            fields.insert(k.into(), v);
        }
    }
    Ok(serde_json::Value::Object(fields))
}

/// `label: value` lines, the values aligned.
pub fn labelled(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (label, value) in lines {
        let _ = writeln!(out, "{:<width$} {value}", format!("{label}:"));
    }
    out
}

/// Prints one item: as JSON with `--json`, else as its labelled `detail`.
pub fn print_one<T: serde::Serialize>(
    json: bool,
    one: &T,
    detail: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        outln(&crate::client::json_text(one)?);
    } else {
        out(&detail(one));
    }
    Ok(())
}

/// A `--since`/`--until` value, checked as the API checks it ([`crate::timeparse`]: an RFC 3339
/// time, or a date meaning the whole UTC day) and sent as given, so a date means the same day
/// here and in the API. For clap's `value_parser`, so a wrong value is refused before any
/// request.
pub fn when(raw: &str) -> Result<String, String> {
    crate::timeparse::parse_bound(raw, crate::timeparse::Bound::Since)?;
    Ok(raw.trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_times_are_accepted() {
        assert_eq!(super::when("2026-12-06").unwrap(), "2026-12-06");
        assert_eq!(
            super::when("2026-12-06T09:30:00+01:00").unwrap(),
            "2026-12-06T09:30:00+01:00"
        );
        assert!(super::when("2026-13-06").is_err());
        assert!(super::when("yesterday").is_err());
    }
}
