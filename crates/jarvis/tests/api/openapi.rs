//! The OpenAPI document (docs/api.md, OpenAPI document): served behind the token, the same as
//! the committed `docs/openapi.json`, and covering the router: every route of `api::router`
//! (the dashboard's page, files and sign-in included) is in it, and every operation in it is a
//! route.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

fn repo_file(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(METHOD, path)` of every operation of the document, path parameters written `{}`.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), generic(path)));
        }
    }
    ops
}

/// `/a/{name}/b` → `/a/{}/b`.
fn generic(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// `(METHOD, path)` of every `.route("path", get(..).put(..))` in `source`, with `prefix`.
fn routes_in(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        let rest = &source[at + ".route(".len()..];
        // The route's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap();
        let args = &rest[..end];
        let path = args.split('"').nth(1).unwrap();
        for method in ["get", "put", "post", "delete"] {
            let called = args.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0 || !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if called {
                routes.insert((method.to_uppercase(), generic(&format!("{prefix}{path}"))));
            }
        }
    }
    routes
}

/// Every route the router serves, read from its source: `api::router`, the gateway's
/// `api::ai::router` and the dashboard's `api::dashboard::router` (`/`, `/ui/*`).
fn router_routes() -> BTreeSet<(String, String)> {
    let api = repo_file("src/api/mod.rs");
    // The `/api/v1` router is `let api = Router::new()…` up to its first fallback; every other
    // `.route` of the file is at the root.
    let start = api
        .find("let api = Router::new()")
        .expect("the /api/v1 router");
    let end = start + api[start..].find(".fallback(").expect("its fallback");
    let mut routes = routes_in(&api[start..end], "/api/v1");
    routes.extend(routes_in(&api[..start], ""));
    routes.extend(routes_in(&api[end..], ""));
    routes.extend(routes_in(&repo_file("src/api/ai.rs"), "/v1"));
    // Merged at the root.
    let dashboard = routes_in(&repo_file("src/api/dashboard.rs"), "");
    assert!(
        dashboard.contains(&("POST".to_string(), "/ui/login".to_string())),
        "the scan found the dashboard's routes: {dashboard:?}"
    );
    routes.extend(dashboard);
    routes
}

#[tokio::test]
async fn the_document_is_served_behind_the_token_and_is_the_committed_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anonymous = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "unauthorized").await;

    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.unwrap();
    let committed: Value = serde_json::from_str(&repo_file("../../docs/openapi.json")).unwrap();
    assert_eq!(served, committed, "docs/openapi.json is stale");
    assert_eq!(served["openapi"], "3.1.0");
    app.stop().await;
}

#[test]
fn every_route_of_the_router_is_documented() {
    let doc: Value = serde_json::from_str(&repo_file("../../docs/openapi.json")).unwrap();
    let routes = router_routes();
    assert!(routes.len() > 40, "the scan found the routes: {routes:?}");
    let ops = documented(&doc);
    let missing: Vec<_> = routes.difference(&ops).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let extra: Vec<_> = ops.difference(&routes).collect();
    assert!(extra.is_empty(), "operations that are no route: {extra:?}");
}

/// Every documented operation reaches a handler: not the router's 404 (`no such route`) or 405.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = serde_json::from_str(&repo_file("../../docs/openapi.json")).unwrap();
    for (method, path) in documented(&doc) {
        if path == "/api/v1/events" {
            // An event stream that does not end; routed (tests/api/dashboard.rs reads it).
            continue;
        }
        let concrete = path.replace("{}", "0190b2a4-0000-7000-8000-000000000000");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(&concrete))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {concrete}: {text}");
        assert!(
            !(status == 404 && text.contains("no such route")),
            "{method} {concrete}: {text}"
        );
    }
    app.stop().await;
}
