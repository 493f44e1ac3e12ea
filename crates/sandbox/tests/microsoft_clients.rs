//! The compatibility suite: Microsoft's own Python clients (msal,
//! azure-identity, azure-eventhub) and plain HTTP run against the sandbox,
//! one test per check, so a sandbox answer that only our own client accepts
//! shows up here. The harness (`python/mod.rs`) builds a pinned virtual
//! environment once and skips, saying why, where Python is missing; see
//! crates/sandbox/README.md. Run with `-- --nocapture` to see which client
//! and version ran each check.

mod python;

use python::check;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_token_by_guid_tenant() {
    check("msal_checks.py", &["token-guid"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_token_by_domain_tenant() {
    check("msal_checks.py", &["token-domain"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_certificate_credential() {
    check("msal_checks.py", &["certificate"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_wrong_secret_is_refused_with_aadsts7000215() {
    check("msal_checks.py", &["wrong-secret"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_client_secret_credential() {
    check("azure_identity_checks.py", &["client-secret"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_client_secret_credential_by_domain() {
    check("azure_identity_checks.py", &["client-secret-domain"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_certificate_credential() {
    check("azure_identity_checks.py", &["certificate"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_eventhubs_send_is_created() {
    let Some((setup, _)) = check("rest_checks.py", &["eventhubs-send"]).await else {
        return;
    };
    let w = &setup.world;
    let events = w.sandbox.eventhubs().events(&w.namespace, "telemetry");
    assert_eq!(events.len(), 1, "the 201 stored exactly one event");
    assert_eq!(events[0].body_text(), Some(r#"{"celsius": 21.5}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_eventhubs_home_tenant_token_is_refused_40100() {
    let Some((setup, out)) = check("rest_checks.py", &["eventhubs-home-tenant"]).await else {
        return;
    };
    assert!(out.contains("form: "), "the script names the 401's form");
    let w = &setup.world;
    assert!(w
        .sandbox
        .eventhubs()
        .events(&w.namespace, "telemetry")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_two_tokens_200_and_403_without_the_second() {
    check("rest_checks.py", &["api-two-tokens"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_token_by_client_secret_basic() {
    check("rest_checks.py", &["token-basic"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_v1_and_v2_discovery_and_jwks_certificates() {
    check("rest_checks.py", &["discovery-v1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_v2_token_for_the_v2_api() {
    check("rest_checks.py", &["api-v2-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_v2_token_for_the_v2_api() {
    check("msal_checks.py", &["v2-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_v2_token_for_the_v2_api() {
    check("azure_identity_checks.py", &["v2-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_managed_identity_as_the_secretless_apps_credential() {
    check("azure_identity_checks.py", &["managed-identity"]).await;
}
