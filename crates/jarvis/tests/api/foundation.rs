//! Auth, the envelope on every error, correlation IDs: against both backends.

use crate::both_backends;
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

both_backends!(
    health_is_public_and_reports_the_store,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let r = app.client.get(app.url("/health")).send().await.unwrap();
        // The IETF health check response format (draft-inadarei-api-health-check).
        assert_eq!(r.headers()["content-type"], "application/health+json");
        let text = r.text().await.unwrap();
        assert!(text.starts_with(r#"{"success":true,"data":{"#), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["status"], "pass");
        assert!(
            body["data"].get("output").is_none(),
            "no output on pass: {body}"
        );
        let store = &body["data"]["checks"]["store:responseTime"][0];
        assert_eq!(store["status"], "pass", "{body}");
        assert_eq!(store["componentType"], "datastore", "{body}");
        assert_eq!(store["observedUnit"], "ms", "{body}");
        assert!(store["observedValue"].is_u64(), "{body}");
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(store["backend"], expected);
        let process = &body["data"]["checks"]["process:uptime"][0];
        assert_eq!(process["status"], "pass", "{body}");
        assert_eq!(process["observedUnit"], "s", "{body}");
        assert_eq!(
            body["data"]["checks"]["breakers:storeSync"][0]["status"], "pass",
            "{body}"
        );
        app.stop().await;
    }
);

both_backends!(api_routes_need_the_token, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // No token.
    let r = app
        .client
        .get(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"jarvis\"");
    assert_error(r, 401, "unauthorized").await;
    // Wrong token, same length and different length.
    for wrong in ["test-token-0123456789abcdeX", "nope", ""] {
        let r = app
            .client
            .get(app.url("/api/v1/nothing-here"))
            .header("authorization", format!("Bearer {wrong}"))
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "unauthorized").await;
    }
    // Another scheme.
    let r = app
        .client
        .get(app.url("/api/v1/nothing-here"))
        .basic_auth("user", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized").await;
    // The right token reaches the router (here: an unknown route, so 404 in the envelope).
    assert_error(app.get("/api/v1/nothing-here").await, 404, "not_found").await;
    app.stop().await;
});

both_backends!(errors_use_the_envelope, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // 404 outside the API.
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
    // 405 on a known route.
    let r = app.client.post(app.url("/health")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    app.stop().await;
});

both_backends!(a_given_correlation_id_is_echoed, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let r = app
        .client
        .get(app.url("/health"))
        .header("x-correlation-id", "req-abc123xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "req-abc123xyz");
    // X-Request-ID is accepted too.
    let r = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace.42:a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "trace.42:a");
    // A hostile one is replaced by a generated ID.
    let r = app
        .client
        .get(app.url("/health"))
        .header("x-correlation-id", "\"},{\"level\":\"ERROR\"")
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(echoed.starts_with("req-") && echoed.len() == 16, "{echoed}");
    // None given: one is generated.
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(r.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));
    let _ = json!({});
    let _ = Method::GET;
    app.stop().await;
});
