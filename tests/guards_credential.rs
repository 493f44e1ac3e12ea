//! Guards of the credential found by mutation testing (docs/MUTANTS.md):
//! each test here kills a mutant that survived the rest of the suite.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{world, EVENTHUBS_SCOPE};
use crosstenant::{CrossTenantCredential, HttpSettings};
use crosstenant_sandbox::faults::{Fault, Service};
use std::time::Duration;

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

/// During an Entra outage a token in its refresh window is still served,
/// and a failed background refresh backs off: the calls that follow within
/// the backoff make no token request, so a busy service does not hammer
/// the authority it cannot reach with one request per call. Kills `replace
/// || with && in TokenCache::refresh_in_background`, which dropped the
/// backoff whenever no refresh was in flight.
#[tokio::test]
async fn a_failed_background_refresh_backs_off_instead_of_retrying_on_every_call() {
    let w = world().await;
    // 4 s tokens: refreshed ahead from 2 s, served without waiting until 3 s.
    w.sandbox.identity().set_token_lifetime(4);
    let mut settings = HttpSettings::default();
    settings
        .add_root_certificates_pem(w.sandbox.ca_pem())
        .unwrap();
    let mut retry = settings.retry().clone();
    retry.max_retries = 0;
    settings.set_retry(retry);
    let cred = w
        .builder(&w.owner.id)
        .http_settings(settings)
        .client_secret(&w.secret)
        .build()
        .unwrap();
    let first = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Entra is down from now on.
    w.sandbox.faults().inject(
        Service::Identity,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        100,
    );
    // 15 calls over 300 ms, well inside the 500 ms minimum backoff.
    for _ in 0..15 {
        let served = cred.token(EVENTHUBS_SCOPE).await.unwrap();
        assert_eq!(served.token.secret(), first.token.secret());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        w.sandbox.faults().fired(),
        1,
        "one background refresh tried and failed; the rest waited for the backoff"
    );
}
