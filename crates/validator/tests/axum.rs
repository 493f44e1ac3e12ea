//! The axum integration over real HTTPS: the extractor and the middleware
//! answer as the validator decides (200, 401 with a challenge, 403 with a
//! `ForbidReason`), with tokens from the sandbox identity provider.

mod common;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Router};
use common::*;
use crosstenant_sandbox::tls::serve_https;
use crosstenant_validator::axum::require_two_tokens;
use crosstenant_validator::{Authorized, Validator};
use serde_json::Value;

async fn read(ok: Authorized) -> String {
    format!("{} reads {}", ok.caller_id(), ok.client().name())
}

async fn read_behind_layer(Extension(ok): Extension<Authorized>) -> String {
    format!("{} reads {} (layer)", ok.caller_id(), ok.client().name())
}

async fn whoami(State(_): State<Validator>, ok: Authorized) -> String {
    ok.caller_id().to_string()
}

#[tokio::test]
async fn the_extractor_and_the_middleware_answer_as_the_validator_decides() {
    let world = World::start().await;
    let v = world.builder().realm("secure-api").build().unwrap();
    let app = Router::new()
        .route("/api/{client}/data", get(read).put(read))
        .route("/api/{client}/whoami", get(whoami))
        .merge(
            Router::new()
                .route("/layered/{client}/data", get(read_behind_layer))
                .route_layer(axum::middleware::from_fn_with_state(
                    v.clone(),
                    require_two_tokens,
                )),
        )
        .route("/noclient", get(read))
        .with_state(v);
    let ca = world.w.sandbox.shared().ca.clone();
    let server = serve_https(&ca, app).await.unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let (a, b) = (world.caller_token().await, world.secondary_token().await);
    let url = |p: &str| format!("{}{p}", server.url());

    for path in ["api/clientXYZ/data", "layered/clientXYZ/data"] {
        let resp = http
            .get(url(path))
            .bearer_auth(&a)
            .header("X-Secondary-Token", &b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let text = resp.text().await.unwrap();
        assert!(
            text.starts_with(&format!("{} reads clientXYZ", world.w.app.app_id)),
            "{text}"
        );

        // No token: 401 with a bare challenge.
        let resp = http.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(
            resp.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"secure-api\""
        );
        // The secondary token as caller token: 401 invalid_token.
        let resp = http.get(url(path)).bearer_auth(&b).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("audience"),
            "{body}"
        );
        // No secondary token: 403 with the reason.
        let resp = http.get(url(path)).bearer_auth(&a).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let reason = body["ForbidReason"].as_str().unwrap();
        assert!(reason.contains("X-Secondary-Token"), "{reason}");
        assert!(!reason.contains(&a) && !reason.contains("eyJ"), "{reason}");
    }
    // PUT needs clientXYZ.Write, which the app was not granted.
    let resp = http
        .put(url("api/clientXYZ/data"))
        .bearer_auth(&a)
        .header("X-Secondary-Token", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(
        body["ForbidReason"]
            .as_str()
            .unwrap()
            .contains("clientXYZ.Write"),
        "{body}"
    );
    // The extractor beside other extractors.
    let resp = http
        .get(url("api/clientXYZ/whoami"))
        .bearer_auth(&a)
        .header("X-Secondary-Token", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), world.w.app.app_id);
    // A route without a client parameter is a wiring mistake: 500.
    let resp = http
        .get(url("noclient"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
}
