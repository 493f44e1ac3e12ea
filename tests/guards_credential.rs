//! Guards of the credential found by mutation testing (docs/MUTANTS.md):
//! each test here kills a mutant that survived the rest of the suite.
#![cfg(feature = "https")]

use crosstenant::{CrossTenantCredential, HttpSettings};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const APP: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";

/// A loopback port nothing listens on: bound, then released.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// An authority that cannot be reached (connection refused) is a transport
/// failure the caller may retry later, not a permanent refusal: a service
/// that treats it as permanent would give up on a partner during a network
/// blip. Kills `replace || with && in Inner::explain`.
#[tokio::test]
async fn an_unreachable_authority_is_a_transient_transport_error() {
    let port = closed_port().await;
    let mut http = HttpSettings::default();
    let mut retry = http.retry().clone();
    retry.max_retries = 0;
    http.set_retry(retry);
    let credential = CrossTenantCredential::builder()
        .resource_tenant(TENANT)
        .client_id(APP)
        .client_secret("not-sent-anywhere")
        .authority_host(&format!("https://127.0.0.1:{port}"))
        .http_settings(http)
        .build()
        .unwrap();
    let err = credential
        .token("https://eventhubs.azure.net/.default")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, crosstenant::Error::Transport { .. }),
        "expected a transport error, got {err:?}"
    );
    assert!(
        err.is_transient(),
        "connection refused is transient: {text}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}
