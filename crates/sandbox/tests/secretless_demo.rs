//! The demo world's secretless partner app, end to end over the sandbox's
//! real endpoints: a managed identity token (App Service endpoint) or a
//! GitHub Actions token, exchanged at each resource tenant's token endpoint
//! for the app's own token there, which Event Hubs then accepts.

use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE, HUB};
use crosstenant_sandbox::directory::TOKEN_EXCHANGE_AUDIENCE;
use serde_json::Value;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn client(w: &DemoWorld) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(w.sandbox.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap()
}

fn env<'a>(pairs: &'a [(&'static str, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// The managed identity token, as azure-identity's App Service source asks.
async fn managed_identity_token(w: &DemoWorld) -> String {
    let e = w.managed_identity_environment();
    let url = format!(
        "{}?api-version=2019-08-01&resource={TOKEN_EXCHANGE_AUDIENCE}&client_id={}",
        env(&e, "IDENTITY_ENDPOINT"),
        env(&e, "CROSSTENANT_MANAGED_IDENTITY")
    );
    let body: Value = reqwest::Client::new()
        .get(url)
        .header("X-IDENTITY-HEADER", env(&e, "IDENTITY_HEADER"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().expect("a token").to_string()
}

/// The GitHub Actions token, as `core.getIDToken` asks.
async fn github_token(w: &DemoWorld) -> String {
    let e = w.github_oidc_environment();
    let url = format!(
        "{}&audience={TOKEN_EXCHANGE_AUDIENCE}",
        env(&e, "ACTIONS_ID_TOKEN_REQUEST_URL")
    );
    let body: Value = client(w)
        .get(url)
        .header(
            "authorization",
            format!("Bearer {}", env(&e, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["value"].as_str().expect("a token").to_string()
}

/// The secretless app's token for `scope` in `tenant`, with `assertion`.
async fn exchange(w: &DemoWorld, tenant: &str, scope: &str, assertion: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &w.secretless_app().app_id)
        .append_pair("scope", scope)
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    let r = client(w)
        .post(w.sandbox.identity().token_endpoint(tenant))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn send(w: &DemoWorld, namespace: &str, token: &str, body: &str) -> u16 {
    let url = w
        .sandbox
        .eventhubs()
        .https_endpoint()
        .join(&format!("{HUB}/messages?timeout=60&api-version=2014-01"))
        .unwrap();
    client(w)
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("host", namespace)
        .header(
            "content-type",
            "application/atom+xml;type=entry;charset=utf-8",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_secretless_app_has_no_secret_and_both_ways_reach_contoso() {
    let w = DemoWorld::start().await.unwrap();
    let app = w.secretless_app();
    assert!(app.secrets.is_empty() && app.certificates.is_empty());
    assert_eq!(app.federated.len(), 2);
    for (way, assertion) in [
        ("managed identity", managed_identity_token(&w).await),
        ("github", github_token(&w).await),
    ] {
        let (status, answer) = exchange(&w, &w.owner.id, EVENTHUBS_SCOPE, &assertion).await;
        assert_eq!(status, 200, "{way}: {answer}");
        let token = answer["access_token"].as_str().unwrap();
        let claims = crosstenant_sandbox::jwt::unverified_claims(token).unwrap();
        assert_eq!(claims["tid"], w.owner.id.as_str(), "{way}");
        assert_eq!(claims["appid"], app.app_id.as_str(), "{way}");
        assert_eq!(
            send(&w, &w.namespace, token, &format!("via {way}")).await,
            201,
            "{way}"
        );
        // The same grants as the secret app on the aggregator API.
        let (status, answer) =
            exchange(&w, &w.owner.id, "api://secure-api/.default", &assertion).await;
        assert_eq!(status, 200, "{way}: {answer}");
        let roles =
            crosstenant_sandbox::jwt::unverified_claims(answer["access_token"].as_str().unwrap())
                .unwrap()["roles"]
                .clone();
        assert_eq!(roles, serde_json::json!(["API.Read", "API.Write"]), "{way}");
    }
    assert_eq!(w.sandbox.managed_identity().token_requests(), 1);
    assert_eq!(w.sandbox.github_actions().token_requests(), 1);
}

#[tokio::test]
async fn one_partner_app_serves_three_resource_tenants() {
    let w = DemoWorld::start().await.unwrap();
    let northwind = w.add_resource_tenant("northwind").unwrap();
    let tailspin = w.add_resource_tenant("tailspin").unwrap();
    let assertion = managed_identity_token(&w).await;
    for (tenant, namespace) in [
        (w.owner.id.clone(), w.namespace.clone()),
        (northwind.tenant.id.clone(), northwind.namespace.clone()),
        (tailspin.tenant.id.clone(), tailspin.namespace.clone()),
    ] {
        let (status, answer) = exchange(&w, &tenant, EVENTHUBS_SCOPE, &assertion).await;
        assert_eq!(status, 200, "{answer}");
        let token = answer["access_token"].as_str().unwrap();
        let claims = crosstenant_sandbox::jwt::unverified_claims(token).unwrap();
        assert_eq!(claims["tid"], tenant.as_str());
        assert_eq!(send(&w, &namespace, token, "hello").await, 201);
        // A tenant's token does not open another tenant's namespace.
        if namespace != w.namespace {
            assert_eq!(send(&w, &w.namespace, token, "stray").await, 401);
        }
    }
    let (status, answer) = exchange(
        &w,
        &northwind.tenant.id,
        &format!("{}/.default", northwind.api_uri),
        &assertion,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // One managed identity token served all four exchanges.
    assert_eq!(w.sandbox.managed_identity().token_requests(), 1);
}
