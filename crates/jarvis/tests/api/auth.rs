//! Tokens, roles and rate limits (issue 17; docs/api.md, Authentication and Rate limits): the
//! access table covers every route of the router; every route refuses a call without a token
//! and one of too low a role; a rotated token works without a restart and the old one stops
//! (SIGHUP and timer, tokens file and config file, dashboard sessions too); a token or an address
//! over its rate gets 429 with `Retry-After`; refusals are logged with the correlation ID and the
//! route, never the token.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::*;
use jarvis::api::auth::{Access, ROUTES};
use jarvis::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

const READER: &str = "reader-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

/// An environment with a `read` and an `operate` token beside the admin `TOKEN`.
async fn env_with_roles() -> TestEnv {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set(
        "JARVIS_AUTH_TOKENS",
        &format!("reader:read:{READER},operator:operate:{OPERATOR}"),
    );
    env
}

fn token_of(role: Role) -> &'static str {
    match role {
        Role::Read => READER,
        Role::Operate => OPERATOR,
        Role::Admin => TOKEN,
    }
}

/// The routes the router serves, as `(method, pattern)`, read from its `Debug` form (axum lists
/// each route's pattern and the methods it has a handler for).
fn router_routes(router: &axum::Router) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    // Only the path router: the fallback router's routes are the 404 answers.
    let text = text
        .split("fallback_router:")
        .next()
        .expect("a Router's Debug form");
    let mut paths = std::collections::HashMap::new();
    let node = text.split("paths: {").nth(1).expect("the route patterns");
    for item in node.split("RouteId(").skip(1) {
        let (id, rest) = item.split_once("): \"").unwrap_or(("", ""));
        if let Some((path, _)) = rest.split_once('"') {
            paths.insert(id.to_string(), path.to_string());
        }
    }
    let mut out = BTreeSet::new();
    for item in text.split("RouteId(").skip(1) {
        let Some((id, rest)) = item.split_once("): MethodRouter(MethodRouter { ") else {
            continue;
        };
        let path = paths
            .get(id)
            .unwrap_or_else(|| panic!("route {id} has a pattern"));
        let fields = rest.split("fallback:").next().unwrap();
        for pair in fields.split(", ") {
            if let Some((method, endpoint)) = pair.split_once(": ") {
                if endpoint.trim() != "None" && method != "head" {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_has_an_entry_in_the_access_table() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let routes = router_routes(&jarvis::api::router(app.state().clone()));
    assert!(
        routes.len() > 50
            && routes.contains(&(
                "POST".into(),
                "/api/v1/circuit-breakers/{name}/{action}".into()
            ))
            && routes.contains(&("GET".into(), "/health".into())),
        "the router's routes were not read from its Debug form: {routes:?}"
    );
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in api::auth::ROUTES (they are refused to every token): {missing:?}"
    );
    // The other way round: the table names no route that is gone.
    let stale: Vec<_> = table.difference(&routes).collect();
    assert!(stale.is_empty(), "entries for no route: {stale:?}");
    // The check finds a route added without an entry (here beside the router's own).
    let grown = jarvis::api::router(app.state().clone()).route(
        "/api/v1/unlisted/{x}",
        axum::routing::patch(|| async { "" }).get(|| async { "" }),
    );
    let found = router_routes(&grown);
    for m in ["GET", "PATCH"] {
        let route = (m.to_string(), "/api/v1/unlisted/{x}".to_string());
        assert!(
            found.contains(&route) && !table.contains(&route),
            "{found:?}"
        );
    }
    app.stop().await;
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{action}" => "open".to_string(),
            s if s.starts_with('{') => "walk-x".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = app.client.request(method.clone(), app.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if method == Method::POST || method == Method::PUT {
        r = r.json(&json!({}));
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    if path == "/api/v1/events" && status == 200 {
        return (status, Value::Null); // an endless stream
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_refused_without_a_token_and_below_its_role() {
    let app = TestApp::spawn_with(env_with_roles().await).await;
    let mut walked = 0;
    for (method, pattern, access) in ROUTES {
        let path = concrete(pattern);
        let Access::Needs(role) = access else {
            if *method == "GET" && (*pattern == "/health" || *pattern == "/") {
                let (s, _) = call(&app, method, &path, None).await;
                assert_eq!(s, 200, "{method} {path} is public");
            }
            continue;
        };
        walked += 1;
        let gateway = path.starts_with("/v1/");
        let (s, body) = call(&app, method, &path, None).await;
        assert_eq!(s, 401, "{method} {path} without a token: {body}");
        let (s, body) = call(&app, method, &path, Some("not-a-token-of-this-jarvis")).await;
        assert_eq!(s, 401, "{method} {path} with a wrong token: {body}");
        for lower in Role::ALL.into_iter().filter(|r| r < role) {
            let (s, body) = call(&app, method, &path, Some(token_of(lower))).await;
            assert_eq!(s, 403, "{method} {path} with a {lower} token: {body}");
            let code = &body["error"]["code"];
            assert_eq!(code, "forbidden", "{method} {path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or("");
            assert!(
                message.contains(&format!("needs the {role} role")),
                "{method} {path}: {body}"
            );
            if !gateway {
                assert_eq!(body["success"], false, "{body}");
                assert!(body["error"]["correlationId"].is_string(), "{body}");
            } else {
                assert_eq!(body["error"]["type"], "permission_error", "{body}");
            }
        }
        for enough in Role::ALL.into_iter().filter(|r| r >= role) {
            let (s, body) = call(&app, method, &path, Some(token_of(enough))).await;
            assert!(
                s != 401 && s != 403,
                "{method} {path} with a {enough} token: {s} {body}"
            );
        }
    }
    assert!(walked > 50, "{walked} routes walked");
    // A method the route does not have: 405 with `Allow`, whatever the role.
    let r = app
        .client
        .patch(app.url("/api/v1/tasks/walk-x"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET,HEAD,DELETE");
    assert_error(r, 405, "method_not_allowed").await;
    app.stop().await;
}

/// The session cookie of a sign-in with `token`.
async fn sign_in(client: &reqwest::Client, url: String, token: &str) -> String {
    let r = client
        .post(url)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["role"], "operate", "{body}");
    cookie.split(';').next().unwrap().to_string()
}

async fn status_with(client: &reqwest::Client, url: String, token: &str) -> u16 {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until the log at `log` says a reload was refused and the tokens in force stay.
async fn refused_reload_logged(log: &std::path::Path) {
    eventually(
        Duration::from_secs(10),
        "the refused reload logged",
        || async {
            log_lines(log)
                .iter()
                .any(|l| l["message"] == "auth tokens not reloaded; the tokens in force stay")
        },
    )
    .await;
}

/// The server's log (file, stdout, stderr) of `p` holds none of `secrets`.
fn log_holds_none_of(log: &std::path::Path, p: &TestProcess, secrets: &[&str]) {
    let text = std::fs::read_to_string(log).unwrap() + &p.stdout() + &p.stderr();
    for secret in secrets {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}

fn tokens_file(name: &str, token: &str) -> String {
    format!("[[tokens]]\nname = \"{name}\"\nrole = \"operate\"\ntoken = \"{token}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_the_tokens_file_works_after_sighup_and_the_old_one_stops() {
    const A: &str = "rotation-token-A-0123456789";
    const B: &str = "rotation-token-B-0123456789";
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let file = env.dir.path().join("tokens.toml");
    std::fs::write(&file, tokens_file("ci-a", A)).unwrap();
    env.set("JARVIS_AUTH_TOKENS_FILE", &file.display().to_string());
    env.set("JARVIS_AUTH_RELOAD_MS", "0");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let tasks = p.url("/api/v1/tasks");
    assert_eq!(status_with(&client, tasks.clone(), A).await, 200);
    assert_eq!(status_with(&client, tasks.clone(), B).await, 401);
    let cookie = sign_in(&client, p.url("/ui/login"), A).await;
    let with_cookie = || async {
        client
            .get(p.url("/api/v1/tasks"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(with_cookie().await, 200);
    // An event stream opened with A, and one with the environment's admin token.
    let open_events = |token: &'static str| {
        client
            .get(p.url("/api/v1/events"))
            .bearer_auth(token)
            .send()
    };
    let (mut events_a, mut events_admin) = (
        open_events(A).await.unwrap(),
        open_events(TOKEN).await.unwrap(),
    );
    assert_eq!(
        (events_a.status().as_u16(), events_admin.status().as_u16()),
        (200, 200)
    );
    // Both say hello.
    assert!(events_a.chunk().await.unwrap().is_some());
    assert!(events_admin.chunk().await.unwrap().is_some());

    // Rotate: B replaces A. Without a reload A still works (the timer is off)…
    std::fs::write(&file, tokens_file("ci-b", B)).unwrap();
    assert_eq!(status_with(&client, tasks.clone(), A).await, 200);
    // …and after SIGHUP only B does, without a restart; A's dashboard session ends too.
    p.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "B accepted after SIGHUP",
        || async { status_with(&client, tasks.clone(), B).await == 200 },
    )
    .await;
    assert_eq!(status_with(&client, tasks.clone(), A).await, 401);
    assert_eq!(with_cookie().await, 401);
    // The admin token of the environment is untouched.
    assert_eq!(status_with(&client, tasks.clone(), TOKEN).await, 200);
    // A's event stream ends within its 5 s check; the admin's goes on.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(_)) = events_a.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream outlived its token");
    let still = tokio::time::timeout(Duration::from_secs(6), events_admin.chunk()).await;
    assert!(
        still.is_err() || matches!(still, Ok(Ok(Some(_)))),
        "the admin's stream ended: {still:?}"
    );

    // A file that does not parse (on the token's own line) keeps the set in force.
    const C: &str = "rotation-token-C-0123456789";
    std::fs::write(
        &file,
        format!("[[tokens]]\nname = \"ci-c\"\nrole = \"operate\"\ntoken = \"{C}\n"),
    )
    .unwrap();
    p.signal("HUP");
    let log = env.log_file();
    refused_reload_logged(&log).await;
    assert_eq!(status_with(&client, tasks.clone(), B).await, 200);
    assert_eq!(status_with(&client, tasks.clone(), C).await, 401);
    log_holds_none_of(&log, &p, &[A, B, C, TOKEN]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ci-b"), "token names are logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_the_config_file_is_picked_up_by_the_timer() {
    const A: &str = "timer-token-A-0123456789";
    const B: &str = "timer-token-B-0123456789";
    let config = |name: &str, token: &str| {
        format!("[[auth.tokens]]\nname = \"{name}\"\nrole = \"read\"\ntoken = \"{token}\"\n")
    };
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let file = env.dir.path().join("jarvis.toml");
    std::fs::write(&file, config("dash-a", A)).unwrap();
    env.set("JARVIS_CONFIG", &file.display().to_string());
    env.set("JARVIS_AUTH_RELOAD_MS", "200");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let tasks = p.url("/api/v1/tasks");
    assert_eq!(status_with(&client, tasks.clone(), A).await, 200);
    // A read token cannot submit.
    let r = client
        .post(p.url("/api/v1/tasks"))
        .bearer_auth(A)
        .json(&json!({"domain": "noop", "action": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden").await;

    std::fs::write(&file, config("dash-b", B)).unwrap();
    eventually(
        Duration::from_secs(10),
        "B accepted by the timer",
        || async { status_with(&client, tasks.clone(), B).await == 200 },
    )
    .await;
    assert_eq!(status_with(&client, tasks.clone(), A).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_in_both_shapes() {
    let mut env = env_with_roles().await;
    env.set("JARVIS_RATE_LIMIT_TOKEN_RPS", "1");
    env.set("JARVIS_RATE_LIMIT_TOKEN_BURST", "2");
    env.set("JARVIS_RATE_LIMIT_ADDRESS_RPS", "1");
    env.set("JARVIS_RATE_LIMIT_ADDRESS_BURST", "2");
    let app = TestApp::spawn_with(env).await;
    let get = |path: &'static str, token: Option<&'static str>| {
        let mut r = app.client.get(app.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    // Per token: the burst of 2, then 429 until a token is back.
    for _ in 0..2 {
        assert_eq!(
            get("/api/v1/tasks", Some(READER)).await.unwrap().status(),
            200
        );
    }
    let r = get("/api/v1/tasks", Some(READER)).await.unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let body = assert_error(r, 429, "rate_limited").await;
    assert!(body["error"]["correlationId"].is_string(), "{body}");
    // The same budget on /v1/*, in OpenAI's error shape.
    let r = get("/v1/models", Some(READER)).await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let (s, body) = json(r).await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    // Another token has its own budget.
    assert_eq!(
        get("/api/v1/tasks", Some(OPERATOR)).await.unwrap().status(),
        200
    );

    // Per address, for calls without a valid token: /health, then wrong tokens.
    for _ in 0..2 {
        assert_eq!(get("/health", None).await.unwrap().status(), 200);
    }
    let r = get("/health", None).await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, 429, "rate_limited").await;
    let r = get("/api/v1/tasks", Some("guessing-a-token-000000"))
        .await
        .unwrap();
    assert_error(r, 429, "rate_limited").await;
    // A valid token is not held to the address's budget.
    assert_eq!(
        get("/api/v1/tasks", Some(TOKEN)).await.unwrap().status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_calls_are_logged_with_correlation_id_and_route_never_the_token() {
    let env = env_with_roles().await;
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    const WRONG: &str = "a-wrong-token-never-logged-0";
    let cases = [
        ("req-denied-none", None, "/api/v1/tasks/{id}", 401),
        ("req-denied-wrong", Some(WRONG), "/api/v1/tasks/{id}", 401),
        ("req-denied-role", Some(READER), "/api/v1/tasks/{id}", 403),
    ];
    for (id, token, _, status) in cases {
        let mut r = client
            .delete(p.url("/api/v1/tasks/some-task"))
            .header("x-correlation-id", id);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    let log = env.log_file();
    let lines = eventually_some(Duration::from_secs(10), "the refusals logged", || {
        let lines = log_lines(&log);
        async move {
            let denied: Vec<Value> = lines
                .into_iter()
                .filter(|l| l["message"] == "request denied")
                .collect();
            (denied.len() >= 3).then_some(denied)
        }
    })
    .await;
    for (id, _, route, status) in cases {
        let line = lines
            .iter()
            .find(|l| l["correlationId"] == id)
            .unwrap_or_else(|| panic!("no refusal logged for {id}: {lines:?}"));
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["level"], "WARN", "{line}");
    }
    let role = lines
        .iter()
        .find(|l| l["correlationId"] == "req-denied-role")
        .unwrap();
    assert_eq!(role["tokenName"], "reader", "{role}");
    let text = std::fs::read_to_string(&log).unwrap() + &p.stdout() + &p.stderr();
    for secret in [WRONG, READER, OPERATOR, TOKEN] {
        assert!(!text.contains(secret), "a token reached the log");
    }
}

/// A stand-in for AWS Secrets Manager on 127.0.0.1: `GetSecretValue` of `jarvis-test/app`
/// answers the JSON object `app` holds now; any other secret does not exist. Counts the calls
/// that carried a SigV4 `Authorization`.
struct FakeSecretsManager {
    port: u16,
    app: std::sync::Arc<std::sync::Mutex<Value>>,
    signed_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeSecretsManager {
    async fn start(app: Value) -> FakeSecretsManager {
        use axum::http::{HeaderMap, StatusCode};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        type Shared = (Arc<Mutex<Value>>, Arc<AtomicUsize>);
        async fn get_secret_value(
            axum::extract::State((app, signed)): axum::extract::State<Shared>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, axum::Json<Value>) {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
                signed.fetch_add(1, Ordering::SeqCst);
            }
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
            let id: Value = serde_json::from_str(&body).unwrap_or_default();
            if target != Some("secretsmanager.GetSecretValue")
                || id["SecretId"] != "jarvis-test/app"
            {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({
                        "__type": "ResourceNotFoundException",
                        "message": "Secrets Manager can't find the specified secret."
                    })),
                );
            }
            let text = app.lock().unwrap().to_string();
            (
                StatusCode::OK,
                axum::Json(json!({"Name": "jarvis-test/app", "SecretString": text})),
            )
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Arc::new(Mutex::new(app));
        let signed_calls = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new()
            .route("/", axum::routing::post(get_secret_value))
            .with_state((app.clone(), signed_calls.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeSecretsManager {
            port,
            app,
            signed_calls,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_secrets_manager_works_without_a_restart_and_the_old_one_stops() {
    const A: &str = "secret-token-A-0123456789";
    const B: &str = "secret-token-B-0123456789";
    let sm =
        FakeSecretsManager::start(json!({"JARVIS_AUTH_TOKENS": format!("ci:operate:{A}")})).await;
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set("JARVIS_SECRETS_PREFIX", "jarvis-test");
    env.set("AWS_REGION", "eu-west-1");
    env.set(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        &format!("http://127.0.0.1:{}", sm.port),
    );
    env.set("AWS_ACCESS_KEY_ID", "AKIDTEST");
    env.set("AWS_SECRET_ACCESS_KEY", "aws-secret-key-never-logged");
    env.set("JARVIS_AUTH_RELOAD_MS", "200");
    let p = TestProcess::start(&env).await;
    let client = reqwest::Client::new();
    let tasks = p.url("/api/v1/tasks");
    assert_eq!(status_with(&client, tasks.clone(), A).await, 200);
    // The admin token of the environment is fixed, whatever the secret says.
    assert_eq!(status_with(&client, tasks.clone(), TOKEN).await, 200);

    *sm.app.lock().unwrap() = json!({"JARVIS_AUTH_TOKENS": format!("ci:operate:{B}")});
    eventually(
        Duration::from_secs(10),
        "B accepted after the secret changed",
        || async { status_with(&client, tasks.clone(), B).await == 200 },
    )
    .await;
    assert_eq!(status_with(&client, tasks.clone(), A).await, 401);
    assert_eq!(status_with(&client, tasks.clone(), TOKEN).await, 200);

    // A secret with a bad token keeps the set in force, and says so in the log.
    *sm.app.lock().unwrap() = json!({"JARVIS_AUTH_TOKENS": "ci:operate:short"});
    let log = env.log_file();
    refused_reload_logged(&log).await;
    assert_eq!(status_with(&client, tasks.clone(), B).await, 200);
    assert!(sm.signed_calls.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    log_holds_none_of(&log, &p, &[A, B, TOKEN, "aws-secret-key-never-logged"]);
}
