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
        // Oversized body (the default limit is 1 MiB).
        let big = json!({"url": "http://x/", "method": "x".repeat(2 * 1024 * 1024)});
        let r = app.send_json(Method::PUT, path, &big).await;
        assert_error(r, 413, "payload_too_large").await;
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

#[tokio::test]
async fn config_file_services_and_agents_are_stored_at_start() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
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
