//! Microsoft's Rust `ManagedIdentityCredential` (azure_identity), unchanged,
//! against the sandbox's App Service managed identity endpoint; then its
//! token, as a federated assertion, exchanged for the partner app's token in
//! the resource owner's tenant ("Configure an application to trust a
//! managed identity").
//!
//! azure_identity reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the
//! process environment, so this binary holds one test that sets them once.

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE};
use crosstenant_sandbox::directory::{ManagedIdentityKind, TOKEN_EXCHANGE_AUDIENCE};
use crosstenant_sandbox::jwt::AccessClaims;
use serde_json::Value;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE_SCOPE: &str = "api://AzureADTokenExchange/.default";

async fn exchange(w: &DemoWorld, assertion: &str) -> (u16, Value) {
    let ca = reqwest::Certificate::from_pem(w.sandbox.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &w.app.app_id)
        .append_pair("scope", EVENTHUBS_SCOPE)
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    let r = client
        .post(w.sandbox.identity().token_endpoint(&w.owner.id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn raw_get(url: &str, header: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(h) = header {
        req = req.header("X-IDENTITY-HEADER", h);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn azure_identity_gets_a_managed_identity_token_that_the_apps_credential_accepts() {
    let w = DemoWorld::start().await.expect("sandbox starts");
    let d = w.sandbox.directory();
    let uami = d
        .add_managed_identity(
            &w.partner.id,
            "fabrikam-sender",
            ManagedIdentityKind::UserAssigned,
        )
        .unwrap();
    let system = d
        .add_managed_identity(
            &w.partner.id,
            "fabrikam-web",
            ManagedIdentityKind::SystemAssigned,
        )
        .unwrap();
    let mi = w.sandbox.managed_identity();
    let host = mi.add_host("fabrikam-web", &[system.clone(), uami.clone()]);
    std::env::set_var("IDENTITY_ENDPOINT", host.endpoint.as_str());
    std::env::set_var("IDENTITY_HEADER", host.identity_header());

    // The user-assigned identity, by client id.
    let cred = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(uami.client_id.clone())),
        ..Default::default()
    }))
    .unwrap();
    let token = cred.get_token(&[EXCHANGE_SCOPE], None).await.unwrap();
    assert_eq!(mi.token_requests(), 1);
    let assertion = token.token.secret().to_string();
    let claims = w
        .sandbox
        .issuer()
        .verify(&assertion, &[TOKEN_EXCHANGE_AUDIENCE], 0)
        .expect("signed by the sandbox's Entra keys");
    assert_eq!(claims.iss, AccessClaims::v2_issuer_for(&w.partner.id));
    assert_eq!(claims.sub, uami.object_id);
    assert_eq!(claims.oid, uami.object_id);
    assert_eq!(claims.azp, uami.client_id);
    assert_eq!(claims.tid, w.partner.id);
    assert!(token.expires_on > azure_core::time::OffsetDateTime::now_utc());

    // By object (principal) id too.
    let by_oid = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ObjectId(uami.object_id.clone())),
        ..Default::default()
    }))
    .unwrap();
    let t = by_oid.get_token(&[EXCHANGE_SCOPE], None).await.unwrap();
    assert_eq!(
        w.sandbox
            .issuer()
            .verify(t.token.secret(), &[TOKEN_EXCHANGE_AUDIENCE], 0)
            .unwrap()
            .sub,
        uami.object_id
    );

    // Without a federated credential naming it, the token is no credential.
    let (_, answer) = exchange(&w, &assertion).await;
    assert_eq!(answer["error_codes"][0], 70025, "{answer}");
    // With one (issuer: Fabrikam's v2.0 authority, subject: its principal
    // id), it is exchanged for the app's token in Contoso.
    d.add_federated_credential(
        &w.app.app_id,
        &AccessClaims::v2_issuer_for(&w.partner.id),
        &uami.object_id,
    )
    .unwrap();
    let (status, answer) = exchange(&w, &assertion).await;
    assert_eq!(status, 200, "{answer}");
    // The cached managed identity token serves again (Entra accepts a
    // federated assertion for its whole lifetime).
    let (status, answer) = exchange(&w, &assertion).await;
    assert_eq!(status, 200, "{answer}");

    // The system-assigned identity (no id): a token, but no app credential
    // even with a credential naming it ("system-assigned identities aren't
    // supported").
    let sys_cred = ManagedIdentityCredential::new(None).unwrap();
    let sys_token = sys_cred.get_token(&[EXCHANGE_SCOPE], None).await.unwrap();
    d.add_federated_credential(
        &w.app.app_id,
        &AccessClaims::v2_issuer_for(&w.partner.id),
        &system.object_id,
    )
    .unwrap();
    let (status, answer) = exchange(&w, sys_token.token.secret()).await;
    assert_eq!(
        (status, answer["error_codes"][0].as_u64()),
        (401, Some(70021)),
        "{answer}"
    );

    // An identity not assigned to the host is an error.
    let stranger = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(uuid::Uuid::new_v4().to_string())),
        ..Default::default()
    }))
    .unwrap();
    let err = stranger
        .get_token(&[EXCHANGE_SCOPE], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not been assigned"), "{err}");

    // The secret header is required and must match.
    let url = format!(
        "{}?api-version=2019-08-01&resource={TOKEN_EXCHANGE_AUDIENCE}",
        host.endpoint
    );
    assert_eq!(raw_get(&url, None).await.0, 401);
    assert_eq!(raw_get(&url, Some("WRONG")).await.0, 401);
    let (status, body) = raw_get(&url, Some(host.identity_header())).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_on"].is_string(), "{body}");
    // Other resources are not modelled, and say so.
    let other = format!(
        "{}?api-version=2019-08-01&resource=https://vault.azure.net",
        host.endpoint
    );
    let (status, body) = raw_get(&other, Some(host.identity_header())).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("token exchange"),
        "{body}"
    );
    // Every request counted, refused ones included: three credentials'
    // tokens, the stranger, four raw requests.
    assert_eq!(mi.token_requests(), 8);
    assert_eq!(mi.tokens_issued(), 4);
}
