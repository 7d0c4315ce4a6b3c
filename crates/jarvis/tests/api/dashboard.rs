//! The web dashboard (docs/api.md, Dashboard): its embedded files, sign-in with the token into
//! an HttpOnly session cookie, the CSRF check of state changes made with that cookie, sign-out,
//! and the server-sent events of `GET /api/v1/events`.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::*;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The session cookie a right sign-in sets, and the session's CSRF token.
async fn sign_in(app: &TestApp) -> (String, String) {
    let r = app
        .client
        .post(app.url("/ui/login"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .expect("a cookie")
        .to_str()
        .unwrap()
        .to_string();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("jarvis_session=")
        .expect("the session cookie")
        .to_string();
    let body: Value = r.json().await.unwrap();
    (value, body["data"]["csrf"].as_str().unwrap().to_string())
}

fn with_cookie(session: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("theme=dark; jarvis_session={session}")).unwrap(),
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_embedded_validated_by_etag_and_under_300_kb() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Skip to content"));
    // Everything the first load fetches: the page, the files it names, the modules they import.
    let mut files: Vec<String> = Vec::new();
    let mut queue: Vec<String> = vec![html.clone()];
    let mut total = html.len();
    while let Some(text) = queue.pop() {
        for part in text.split(['"', '\'']) {
            let name = part
                .strip_prefix("/ui/")
                .or_else(|| part.strip_prefix("./"))
                .unwrap_or("");
            if (name.ends_with(".js") || name.ends_with(".css")) && !files.iter().any(|f| f == name)
            {
                files.push(name.to_string());
                let r = app
                    .client
                    .get(app.url(&format!("/ui/{name}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{name}");
                assert_eq!(r.headers()["cache-control"], "no-cache");
                let etag = r.headers()["etag"].to_str().unwrap().to_string();
                let body = r.text().await.unwrap();
                total += body.len();
                queue.push(body);
                let again = app
                    .client
                    .get(app.url(&format!("/ui/{name}")))
                    .header("if-none-match", &etag)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(again.status(), 304, "{name} revalidated");
                assert!(again.bytes().await.unwrap().is_empty());
            }
        }
    }
    for expected in ["style.css", "app.js", "api.js", "pages.js", "charts.js"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} in {files:?}"
        );
    }
    assert!(total < 300 * 1024, "first load: {total} bytes");
    // No file outside the embedded set, and the files need no token.
    for path in ["/ui/nothing.js", "/ui/..%2FCargo.toml", "/ui/index.html"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_opaque_httponly_cookie_that_the_api_accepts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // No cookie, no bearer: 401.
    let r = app
        .client
        .get(app.url("/api/v1/circuit-breakers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app.client.get(app.url("/ui/session")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A wrong token: 401, and no cookie.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .json(&json!({"token": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // The right token.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(TOKEN));
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("jarvis_session=")
        .unwrap();
    assert_eq!(value.len(), 64);
    assert!(value.chars().all(|c| c.is_ascii_hexdigit()));
    let body: Value = r.json().await.unwrap();
    let csrf = body["data"]["csrf"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["signedIn"], true);

    // The cookie stands in for the bearer header on reads.
    let r = app
        .client
        .get(app.url("/api/v1/circuit-breakers"))
        .headers(with_cookie(value))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/ui/session"))
        .headers(with_cookie(value))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["csrf"], csrf.as_str());
    // Two sign-ins are two sessions.
    let (other, other_csrf) = sign_in(&app).await;
    assert_ne!(other, value);
    assert_ne!(other_csrf, csrf);
    // Behind a TLS-terminating proxy the cookie is Secure.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    // A made-up cookie is no session.
    let r = app
        .client
        .get(app.url("/api/v1/circuit-breakers"))
        .headers(with_cookie(&"a".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sign in again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_made_with_the_cookie_needs_the_csrf_header_and_the_same_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (session, csrf) = sign_in(&app).await;
    let put = |headers: HeaderMap| {
        app.client
            .put(app.url("/api/v1/services/csrf-probe"))
            .headers(with_cookie(&session))
            .headers(headers)
            .json(&json!({"url": "tcp://127.0.0.1:9", "intervalMs": 60000}))
            .send()
    };
    let header = |pairs: &[(&'static str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    };
    let host = app.address.trim_start_matches("http://").to_string();
    let refused = [
        header(&[]),
        header(&[("x-jarvis-csrf", "0123")]),
        header(&[("x-jarvis-csrf", &session)]),
        header(&[("x-jarvis-csrf", &csrf), ("origin", "https://evil.example")]),
        header(&[("x-jarvis-csrf", &csrf), ("sec-fetch-site", "cross-site")]),
        header(&[("x-jarvis-csrf", &csrf), ("sec-fetch-site", "same-site")]),
    ];
    for (i, h) in refused.into_iter().enumerate() {
        let r = put(h).await.unwrap();
        assert_eq!(r.status(), 403, "case {i}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed", "case {i}");
        assert!(body["error"]["correlationId"].is_string());
    }
    let r = app.get("/api/v1/services/csrf-probe").await;
    assert_eq!(r.status(), 404, "nothing was stored");
    // With the session's token, from the page's own origin.
    let r = put(header(&[
        ("x-jarvis-csrf", &csrf),
        ("origin", &format!("http://{host}")),
        ("sec-fetch-site", "same-origin"),
    ]))
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    // Reads need no CSRF header; bearer callers never do.
    let r = app
        .client
        .get(app.url("/api/v1/services/csrf-probe"))
        .headers(with_cookie(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.delete_service("csrf-probe").await;
    // Signing in from another site is refused too.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .header("origin", "http://evil.example")
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_on_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (session, csrf) = sign_in(&app).await;
    let (other, _) = sign_in(&app).await;
    let logout = |csrf: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/ui/logout"))
            .headers(with_cookie(&session));
        if let Some(c) = csrf {
            req = req.header("x-jarvis-csrf", c);
        }
        req.send()
    };
    // Without the CSRF header another site could sign a person out: refused.
    assert_eq!(logout(None).await.unwrap().status(), 403);
    let r = logout(Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), 200);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("jarvis_session=;") && cleared.contains("Max-Age=0"));
    // The old cookie no longer works, even if the browser kept it.
    let r = app
        .client
        .get(app.url("/api/v1/tasks"))
        .headers(with_cookie(&session))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(logout(Some(&csrf)).await.unwrap().status(), 401);
    // Another session is untouched.
    let r = app
        .client
        .get(app.url("/api/v1/tasks"))
        .headers(with_cookie(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.state().sessions.len(), 1);
}

/// Reads server-sent events until one of `name` whose data satisfies `wanted`.
async fn next_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    name: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if event == name {
                let value: Value = serde_json::from_str(&data).unwrap();
                if wanted(&value) {
                    return value;
                }
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within 20 s"))
            .unwrap()
            .expect("the stream goes on");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

both_backends!(
    the_event_stream_tells_breaker_changes_service_changes_and_settled_tasks,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let r = app
            .client
            .get(app.url("/api/v1/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "the stream needs the token or a session");
        let (session, csrf) = sign_in(&app).await;
        let mut events = app
            .client
            .get(app.url("/api/v1/events"))
            .headers(with_cookie(&session))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let mut buf = String::new();
        let hello = next_event(&mut events, &mut buf, "hello", |_| true).await;
        assert!(hello["instanceId"].is_string());

        // A settled task.
        let task = app
            .run_task(json!({"domain": "noop", "action": "sse"}))
            .await;
        let id = task["taskId"].as_str().unwrap().to_string();
        next_event(&mut events, &mut buf, "task", |v| {
            v["taskIds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == id.as_str())
        })
        .await;

        // A breaker an operator opens.
        let r = app
            .send_json(
                reqwest::Method::POST,
                "/api/v1/circuit-breakers/noop/open",
                &json!(null),
            )
            .await;
        assert_eq!(r.status(), 200);
        let change = next_event(&mut events, &mut buf, "breaker", |v| v["name"] == "noop").await;
        assert_eq!(change["from"], "CLOSED");
        assert_eq!(change["to"], "OPEN");
        assert_eq!(change["origin"], "manual");
        assert!(change["at"].as_str().unwrap().ends_with('Z'));

        // A service that cannot be reached goes from unknown to down.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        app.put_service(
            "sse-down",
            json!({"url": format!("http://127.0.0.1:{port}/"), "intervalMs": 200}),
        )
        .await;
        let change = next_event(&mut events, &mut buf, "service", |v| {
            v["name"] == "sse-down"
        })
        .await;
        assert_eq!(change["from"], "unknown");
        assert_eq!(change["to"], "down");
        assert!(change["message"]
            .as_str()
            .unwrap()
            .contains("connection failed"));

        // Signing out ends the stream the session opened.
        let r = app
            .client
            .post(app.url("/ui/logout"))
            .headers(with_cookie(&session))
            .header("x-jarvis-csrf", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(_)) = events.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "the stream outlived its session");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_still_answers_404_and_the_page_needs_no_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app
        .client
        .get(app.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = app.client.head(app.url("/ui/app.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_serve_prints_the_dashboard_url_and_never_the_token() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let p = TestProcess::start(&env).await;
    let stderr = p.stderr();
    let url = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Jarvis dashboard: "))
        .unwrap_or_else(|| panic!("no dashboard URL in: {stderr}"));
    assert_eq!(url, format!("http://127.0.0.1:{}/", p.port));
    let page = reqwest::get(url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>Jarvis</title>"));
    // Signing in and out writes log lines, none of which holds the token or the session ID.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{url}ui/login"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("jarvis_session=")
        .to_string();
    client
        .post(format!("{url}ui/login"))
        .json(&json!({"token": "wrong-token-value"}))
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the sign-in log lines", || async {
        let out = std::fs::read_to_string(&p.stdout_path).unwrap_or_default();
        out.contains("dashboard sign-in refused") && out.contains("\"dashboard sign-in\"")
    })
    .await;
    let out = std::fs::read_to_string(&p.stdout_path).unwrap();
    assert!(!out.contains(TOKEN) && !out.contains(&id) && !out.contains("wrong-token-value"));
}
