//! docs/api.md's Routes table says what the access table does (issue 17; `api::auth::ROUTES`):
//! every route of the table is in the access table with the role the table gives it, and every
//! entry of the access table has a row.

use jarvis::api::auth::{Access, ROUTES};

/// The rows of the table under `## Routes` (the header and delimiter rows left out), each with
/// its line number.
fn route_rows(markdown: &str) -> Vec<(usize, &str)> {
    let mut lines = markdown.lines().enumerate();
    lines
        .by_ref()
        .find(|(_, line)| line.trim() == "## Routes")
        .expect("docs/api.md has a ## Routes section");
    lines
        .skip_while(|(_, line)| !line.starts_with('|'))
        .take_while(|(_, line)| line.starts_with('|'))
        .skip(2)
        .map(|(i, line)| (i + 1, line))
        .collect()
}

/// The cells of a table row (`|` escaped as `\|` does not split).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

/// The paths of a path cell: each code span, where a one-segment span after another path
/// replaces that path's last segment (`/api/v1/schedules/{name}/pause`, `/resume`).
fn paths(cell: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for span in cell.split('`').skip(1).step_by(2) {
        if !span.starts_with('/') {
            return Err(format!("`{span}` is not a path"));
        }
        let path = match out.last() {
            Some(previous) if span.matches('/').count() == 1 => {
                let (parent, _) = previous.rsplit_once('/').unwrap();
                format!("{parent}{span}")
            }
            _ => span.to_string(),
        };
        out.push(path);
    }
    if out.is_empty() {
        return Err("no path in the path cell".into());
    }
    Ok(out)
}

/// The segments of a path, a parameter (`{id}`) as `None`: the table and the router may name
/// one differently (`{correlationId}`, `{id}`).
fn segments(path: &str) -> Vec<Option<&str>> {
    path.split('/')
        .map(|seg| (!seg.starts_with('{')).then_some(seg))
        .collect()
}

/// The entry of `routes` a documented `method path` is served by, as the router picks it: the
/// same path (parameter names aside), else the pattern with the most literal segments among
/// those whose parameters take the path's literal segments (`/api/v1/circuit-breakers/{name}/open`
/// is served by `…/{name}/{action}`).
fn route_of<'a>(
    routes: &'a [(&'a str, &'a str, Access)],
    method: &str,
    path: &str,
) -> Option<&'a (&'a str, &'a str, Access)> {
    let wanted = segments(path);
    let candidates = routes.iter().filter(|(m, p, _)| {
        let have = segments(p);
        *m == method
            && have.len() == wanted.len()
            && have.iter().zip(&wanted).all(|(h, w)| h.is_none() || h == w)
    });
    candidates.max_by_key(|(_, p, _)| segments(p).iter().filter(|s| s.is_some()).count())
}

/// The role word of an access: what the table's role cell starts with.
fn role_word(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::Needs(role) => role.as_str(),
    }
}

/// What differs between the Routes table of `markdown` and `routes`, one line per problem,
/// naming the row (or the access table's entry).
fn problems(markdown: &str, routes: &[(&str, &str, Access)]) -> Vec<String> {
    let mut problems = Vec::new();
    let rows = route_rows(markdown);
    if rows.len() < 20 {
        problems.push(format!("only {} rows read from ## Routes", rows.len()));
    }
    let mut covered = std::collections::BTreeSet::new();
    for (line, row) in rows {
        let mut problem = |what: String| problems.push(format!("line {line} `{row}`: {what}"));
        let cells = cells(row);
        let [methods, path_cell, role_cell, ..] = cells.as_slice() else {
            problem("fewer than three cells".into());
            continue;
        };
        let paths = match paths(path_cell) {
            Ok(paths) => paths,
            Err(why) => {
                problem(why);
                continue;
            }
        };
        let role = role_cell
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("");
        if !["public", "read", "operate", "admin"].contains(&role) {
            problem(format!(
                "the role `{role}` is none of public, read, operate, admin"
            ));
        }
        for method in methods.split(',').map(str::trim) {
            for path in &paths {
                let Some(entry) = route_of(routes, method, path) else {
                    problem(format!("{method} {path} is not in api::auth::ROUTES"));
                    continue;
                };
                covered.insert((entry.0, entry.1));
                let needs = role_word(entry.2);
                if role != needs {
                    problem(format!(
                        "{method} {path} is `{role}` here, `{needs}` in api::auth::ROUTES"
                    ));
                }
            }
        }
    }
    for (method, pattern, access) in routes {
        if !covered.contains(&(*method, *pattern)) {
            problems.push(format!(
                "api::auth::ROUTES has {method} {pattern} ({}), which no row lists",
                role_word(*access)
            ));
        }
    }
    problems
}

fn api_md() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_routes_table_of_the_docs_is_the_access_table() {
    let doc = api_md();
    let problems = problems(&doc, ROUTES);
    assert!(
        problems.is_empty(),
        "docs/api.md, ## Routes against api::auth::ROUTES:\n{}",
        problems.join("\n")
    );
}

/// The check finds a row whose role differs, a row of a route the access table lacks, and an
/// entry no row lists.
#[test]
fn the_routes_table_check_finds_each_kind_of_difference() {
    let doc = api_md();
    let row = "| PUT, DELETE | `/api/v1/ai/models/{group}` | admin |";
    assert!(doc.contains(row), "docs/api.md has the row {row}");

    let demoted = doc.replace(
        row,
        "| PUT, DELETE | `/api/v1/ai/models/{group}` | operate |",
    );
    let found = problems(&demoted, ROUTES);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().all(|p| p.contains("/api/v1/ai/models/{group}")
            && p.contains("is `operate` here, `admin` in api::auth::ROUTES")),
        "{found:#?}"
    );

    let extra = doc.replace(
        row,
        "| PUT, DELETE, PATCH | `/api/v1/ai/models/{group}`, `/api/v1/nope` | admin |",
    );
    let found = problems(&extra, ROUTES);
    for missing in [
        "PATCH /api/v1/ai/models/{group} is not in api::auth::ROUTES",
        "PUT /api/v1/nope is not in api::auth::ROUTES",
    ] {
        assert!(found.iter().any(|p| p.contains(missing)), "{found:#?}");
    }

    let without: String = doc
        .lines()
        .filter(|line| !line.starts_with(row))
        .map(|line| format!("{line}\n"))
        .collect();
    let found = problems(&without, ROUTES);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|p| p.contains("DELETE /api/v1/ai/models/{group} (admin), which no row lists")),
        "{found:#?}"
    );
}

#[test]
fn a_short_path_replaces_the_last_segment_of_the_one_before() {
    assert_eq!(
        paths("`/api/v1/schedules/{name}/pause`, `/resume`").unwrap(),
        [
            "/api/v1/schedules/{name}/pause",
            "/api/v1/schedules/{name}/resume"
        ]
    );
    assert_eq!(paths("`/`, `/ui/{file}`").unwrap(), ["/", "/ui/{file}"]);
    assert!(paths("no path").is_err());
    assert_eq!(
        cells("| GET | `a\\|b` | read |"),
        ["GET", "`a\\|b`", "read"]
    );
}
