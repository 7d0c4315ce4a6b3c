//! Outbound URLs (issue 17): agent, health-check, service and model group URLs that point at a
//! link-local or cloud metadata address are refused at registration (400, naming the field and
//! the address, never calling it), unless `JARVIS_OUTBOUND_ALLOW` names it.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    json(app.send_json(Method::PUT, path, &body).await).await
}

both_backends!(
    metadata_and_link_local_urls_are_refused_at_registration,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        for (path, body, code, field) in [
            (
                "/api/v1/agents/creds",
                json!({"url": "http://169.254.170.2/v2/credentials"}),
                "invalid_agent",
                "url",
            ),
            (
                "/api/v1/agents/creds",
                json!({"url": "http://127.0.0.1:9/run",
                       "healthUrl": "http://[fd00:ec2::254]/latest/meta-data/"}),
                "invalid_agent",
                "healthUrl",
            ),
            (
                "/api/v1/services/meta",
                json!({"url": "http://169.254.169.254/latest/meta-data/"}),
                "invalid_service",
                "url",
            ),
            (
                "/api/v1/services/meta",
                json!({"url": "http://metadata.google.internal/computeMetadata/v1/"}),
                "invalid_service",
                "url",
            ),
            (
                "/api/v1/ai/models/meta",
                json!({"deployments": [{"provider": "openai", "model": "m",
                                         "baseUrl": "http://169.254.169.254/v1"}]}),
                "invalid_model_group",
                "baseUrl",
            ),
        ] {
            let (s, body) = put(&app, path, body.clone()).await;
            assert_eq!(s, 400, "{path} {body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(field) && message.contains("JARVIS_OUTBOUND_ALLOW"),
                "{message}"
            );
        }
        // Nothing was stored.
        assert_eq!(app.data("/api/v1/agents").await, json!([]));
        let (s, _) = json(app.get("/api/v1/services/meta").await).await;
        assert_eq!(s, 404);
        // An ordinary address is accepted.
        let (s, body) = put(
            &app,
            "/api/v1/agents/local",
            json!({"url": "http://127.0.0.1:9/run"}),
        )
        .await;
        assert_eq!(s, 201, "{body}");
        app.stop().await;
    }
);

// The operator may allow an address after all (a sidecar on a link-local address, say).
#[tokio::test]
async fn an_allowed_address_is_accepted() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.set(
        "JARVIS_OUTBOUND_ALLOW",
        "169.254.170.0/24, metadata.google.internal",
    );
    let p = TestProcess::start(&env).await;
    let (s, body) = p
        .put_agent("creds", json!({"url": "http://169.254.170.2/v2/run"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = p
        .put_agent("other", json!({"url": "http://169.254.169.254/run"}))
        .await;
    assert_eq!(s, 400, "outside the allowed range: {body}");
    p.signal("TERM");
}
