//! Services and agents CRUD, and bad input on JSON routes: against both backends.

use crate::both_backends;
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

both_backends!(services_crud, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let (s, body) = json(app.get("/api/v1/services").await).await;
    assert_eq!((s, body), (200, json!({"success": true, "data": []})));

    let put = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.send_json(Method::PUT, "/api/v1/services/aiDawgBackend", &body)
                .await
        }
    };
    let (s, body) =
        json(put(json!({"url": "http://127.0.0.1:3001/health", "critical": true})).await).await;
    assert_eq!(s, 201, "{body}");
    let data = &body["data"];
    assert_eq!(data["name"], "aiDawgBackend");
    assert_eq!(data["intervalMs"], 5000);
    assert_eq!(data["timeoutMs"], 3000);
    assert_eq!(data["critical"], true);
    assert_eq!(data["expectedStatus"], json!([]));
    let created = data["createdAt"].clone();

    let (s, body) =
        json(put(json!({"url": "http://127.0.0.1:3002/", "expectedStatus": [200, 204]})).await)
            .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["data"]["createdAt"], created,
        "created_at is kept on replace"
    );
    assert_eq!(body["data"]["critical"], false);

    let (s, body) = json(app.get("/api/v1/services/aiDawgBackend").await).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["url"], "http://127.0.0.1:3002/");
    let (_, body) = json(app.get("/api/v1/services").await).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);

    let r = app
        .send_json(Method::DELETE, "/api/v1/services/aiDawgBackend", &json!({}))
        .await;
    assert_eq!(r.status(), 204);
    assert_error(
        app.get("/api/v1/services/aiDawgBackend").await,
        404,
        "not_found",
    )
    .await;
    let r = app
        .send_json(Method::DELETE, "/api/v1/services/aiDawgBackend", &json!({}))
        .await;
    assert_error(r, 404, "not_found").await;
    app.stop().await;
});

both_backends!(agents_crud, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let r = app
        .send_json(
            Method::PUT,
            "/api/v1/agents/music",
            &json!({"url": "http://127.0.0.1:8001/run"}),
        )
        .await;
    let (s, body) = json(r).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["data"]["timeoutMs"], 30000);
    let r = app
        .send_json(
            Method::PUT,
            "/api/v1/agents/music",
            &json!({"url": "http://127.0.0.1:8001/run", "timeoutMs": 500}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, body) = json(app.get("/api/v1/agents").await).await;
    assert_eq!(body["data"][0]["timeoutMs"], 500);
    let r = app
        .send_json(
            Method::PUT,
            "/api/v1/agents/music",
            &json!({"url": "ftp://x/"}),
        )
        .await;
    let body = assert_error(r, 400, "invalid_agent").await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("url:"));
    let r = app
        .send_json(Method::DELETE, "/api/v1/agents/music", &json!({}))
        .await;
    assert_eq!(r.status(), 204);
    app.stop().await;
});

both_backends!(
    bad_input_gets_a_clear_error_and_changes_nothing,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let path = "/api/v1/services/svc";
        // Malformed JSON: 400 with the parse position.
        let r = app
            .client
            .put(app.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{\"url\": ")
            .send()
            .await
            .unwrap();
        let body = assert_error(r, 400, "malformed_json").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("column"),
            "{body}"
        );
        // Unknown field.
        let r = app
            .send_json(Method::PUT, path, &json!({"url": "http://x/", "bogus": 1}))
            .await;
        let body = assert_error(r, 400, "invalid_body").await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains("bogus"),
            "{body}"
        );
        // Wrong type.
        let r = app
            .send_json(
                Method::PUT,
                path,
                &json!({"url": "http://x/", "intervalMs": "fast"}),
            )
            .await;
        assert_error(r, 400, "invalid_body").await;
        // A field out of range names the field.
        let r = app
            .send_json(
                Method::PUT,
                path,
                &json!({"url": "http://x/", "intervalMs": 1}),
            )
            .await;
        let body = assert_error(r, 400, "invalid_service").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("intervalMs"),
            "{body}"
        );
        // Not JSON.
        let r = app
            .client
            .put(app.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body("url=http://x/")
            .send()
            .await
            .unwrap();
        assert_error(r, 415, "unsupported_media_type").await;
        // Oversized body (the default limit is 1 MiB): announced by Content-Length, answered
        // before the body is sent (a client pushing the whole body may see the connection close
        // before it reads the answer).
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 * 1024 * 1024
        );
        let (status, body) = raw_request(app.port, &head).await;
        assert_eq!(status, 413, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large");
        // A chunked body that grows past the limit gets the same answer.
        let big = json!({"url": "http://x/", "method": "x".repeat(2 * 1024 * 1024)});
        // Its own client: the server closes that connection, which must not be pooled.
        let r = reqwest::Client::new()
            .put(app.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunked(
                serde_json::to_vec(&big).unwrap(),
            )))
            .send()
            .await;
        if let Ok(r) = r {
            assert_error(r, 413, "payload_too_large").await;
        }
        // A bad name.
        let r = app
            .send_json(
                Method::PUT,
                "/api/v1/services/bad%20name",
                &json!({"url": "http://x/"}),
            )
            .await;
        assert_error(r, 400, "invalid_name").await;
        let long = format!("/api/v1/services/{}", "a".repeat(65));
        let r = app
            .send_json(Method::PUT, &long, &json!({"url": "http://x/"}))
            .await;
        assert_error(r, 400, "invalid_name").await;
        // Nothing was stored by any of it.
        let (_, body) = json(app.get("/api/v1/services").await).await;
        assert_eq!(body["data"], json!([]));
        app.stop().await;
    }
);

both_backends!(
    config_file_services_and_agents_are_stored_at_start,
    |backend| async move {
        let mut env = TestEnv::new(backend).await;
        let file = env.dir.path().join("jarvis.toml");
        std::fs::write(
            &file,
            "[services.db]\nurl = \"tcp://127.0.0.1:5432\"\ncritical = true\n\
         [agents.music]\nurl = \"http://127.0.0.1:8001/run\"\ntimeoutMs = 1000\n",
        )
        .unwrap();
        env.set("JARVIS_CONFIG", &file.display().to_string());
        let app = TestApp::spawn_with(env).await;
        let (_, body) = json(app.get("/api/v1/services/db").await).await;
        assert_eq!(body["data"]["critical"], true);
        let (_, body) = json(app.get("/api/v1/agents/music").await).await;
        assert_eq!(body["data"]["timeoutMs"], 1000);
        app.stop().await;
    }
);

/// Sends raw bytes and reads the answer (status, body) until the server closes.
pub(crate) async fn raw_request(port: u16, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A body sent in 64 KiB chunks, without Content-Length.
fn chunked(bytes: Vec<u8>) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

/// Sends one raw HTTP/1.1 request (the path exactly as given: no client normalises `..` away)
/// and returns the status and the body.
async fn raw_put(app: &TestApp, path: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

both_backends!(dot_names_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let service = r#"{"url":"http://127.0.0.1:3001/health"}"#;
    let agent = r#"{"url":"http://127.0.0.1:8001/run"}"#;
    for path in [
        "/api/v1/services/..",
        "/api/v1/services/.",
        "/api/v1/services/%2E%2E",
        "/api/v1/services/%2e",
    ] {
        let (s, body) = raw_put(&app, path, service).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(body["success"], false, "{path}: {body}");
    }
    for path in ["/api/v1/agents/..", "/api/v1/agents/%2E"] {
        let (s, body) = raw_put(&app, path, agent).await;
        assert_eq!(s, 400, "{path}: {body}");
    }
    // A task's domain and action follow the same grammar.
    let r = app
        .send_json(
            Method::POST,
            "/api/v1/execute",
            &json!({"domain": "..", "action": "run"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = app
        .send_json(
            Method::POST,
            "/api/v1/execute",
            &json!({"domain": "noop", "action": "."}),
        )
        .await;
    assert_eq!(r.status(), 400);
    // Names that only contain dots among other characters stay valid.
    let (s, body) = raw_put(&app, "/api/v1/services/...", service).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        app.names("/api/v1/services").await,
        ["..."],
        "no dot-only service was stored"
    );
    app.stop().await;
});

both_backends!(
    a_path_that_is_not_utf8_is_answered_in_the_envelope,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let (s, body) = raw_put(
            &app,
            "/api/v1/services/%FF",
            r#"{"url":"http://127.0.0.1:1/"}"#,
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{body}");
        app.stop().await;
    }
);

both_backends!(
    a_degraded_latency_at_or_above_the_timeout_is_refused,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        // The default timeout is min(3000, intervalMs): 1000 here, so `degraded` could never be
        // reached.
        let r = app
            .send_json(
                Method::PUT,
                "/api/v1/services/x",
                &json!({"url": "http://127.0.0.1:3001/health", "intervalMs": 1000,
                        "degradedLatencyMs": 1000}),
            )
            .await;
        let body = assert_error(r, 400, "invalid_service").await;
        assert_eq!(
            body["error"]["message"],
            "degradedLatencyMs: must be from 1 to below timeoutMs (1000, the default: the \
             smaller of 3000 and intervalMs): a check slower than the timeout is down, not \
             degraded; lower degradedLatencyMs or raise timeoutMs"
        );
        let r = app.get("/api/v1/services/x").await;
        assert_error(r, 404, "not_found").await;
        // Below the timeout it is stored.
        let (s, body) = json(
            app.send_json(
                Method::PUT,
                "/api/v1/services/x",
                &json!({"url": "http://127.0.0.1:3001/health", "intervalMs": 1000,
                        "timeoutMs": 2000, "degradedLatencyMs": 1000}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["data"]["degradedLatencyMs"], 1000);
    }
);
