//! Unit tests of the secretless proofs against a fake token service:
//! GitHub Actions' request, the shared assertion cache and its single
//! flight, an expired assertion refused before sending, Entra's federation
//! codes as typed errors, and a [`PartnerApp`] keeping tenants apart.
//! (The managed identity reads the process environment; its tests run on
//! the sandbox, in their own test binary: `tests/secretless_mi.rs`.)

use super::fake::{jwt, Answer, FakeTransport, CLIENT, OWNER};
use super::PartnerApp;
use crate::error::{Error, FederationError, Mismatch};
use crate::{CrossTenantCredential, HttpSettings, Party};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const OTHER: &str = "11112222-bbbb-3333-cccc-4444dddd5555";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assertion(exp_in: i64) -> String {
    jwt(serde_json::json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": "repo:fabrikam/integration:ref:refs/heads/main",
        "aud": "api://AzureADTokenExchange",
        "exp": now() + exp_in,
    }))
}

fn token_for(tid: &str, aud: &str) -> Answer {
    Answer::token(&jwt(
        serde_json::json!({"tid": tid, "aud": aud, "appid": CLIENT}),
    ))
}

fn settings(fake: Arc<FakeTransport>) -> HttpSettings {
    let mut http = HttpSettings::default();
    http.set_transport(fake);
    http.set_retry(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(10),
        max_retries: 0,
        max_total_elapsed: azure_core::time::Duration::seconds(5),
        max_delay: azure_core::time::Duration::milliseconds(10),
    });
    http
}

fn entra_error(code: u32) -> Answer {
    Answer::new(
        400,
        serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS{code}: refused.\r\nTrace ID: t\r\nCorrelation ID: c"),
            "error_codes": [code], "trace_id": "t", "correlation_id": "c",
        })
        .to_string(),
    )
    .header("content-type", "application/json")
}

/// A callback handing out `value()` and counting its calls.
fn counting_callback(
    calls: Arc<AtomicUsize>,
    value: impl Fn() -> String + Send + Sync + 'static,
) -> impl Fn() -> super::AssertionFuture + Send + Sync + 'static {
    let value = Arc::new(value);
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        let v = value();
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(v)
        })
    }
}

#[tokio::test]
async fn github_oidc_is_asked_once_with_the_audience_and_bearer_then_cached_for_every_scope() {
    let fake = FakeTransport::new(vec![
        Answer::new(
            200,
            serde_json::json!({"value": assertion(600)}).to_string(),
        ),
        token_for(OWNER, "api://one"),
        token_for(OWNER, "api://two"),
    ]);
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .github_actions_oidc_endpoint(
            "https://pipelines.example/idtoken?api-version=2.0",
            "req-T0KEN-9f",
        )
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    assert_eq!(credential.proof(), super::ProofKind::GitHubActionsOidc);
    credential.token("api://one/.default").await.unwrap();
    credential.token("api://two/.default").await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(
        requests[0],
        "GET https://pipelines.example/idtoken?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange"
    );
    assert!(
        requests[1..].iter().all(|r| r.starts_with("POST ")),
        "{requests:?}"
    );
    let auth = fake.authorizations.lock().unwrap().clone();
    assert_eq!(auth[0].as_deref(), Some("bearer req-T0KEN-9f"));
    // The request token is a secret: nowhere in Debug.
    assert!(!format!("{credential:?}").contains("req-T0KEN-9f"));
    let info = credential.federated_assertion().await.unwrap().unwrap();
    assert_eq!(
        info.subject,
        "repo:fabrikam/integration:ref:refs/heads/main"
    );
    assert_eq!(fake.requests().len(), 3, "the claims come from the cache");
}

#[tokio::test]
async fn a_refused_github_request_names_the_permission_and_never_the_request_token() {
    let fake = FakeTransport::new(vec![Answer::new(403, "forbidden")]);
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .github_actions_oidc_endpoint("https://pipelines.example/idtoken?x=1", "req-T0KEN-9f")
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let err = credential.token("api://one/.default").await.unwrap_err();
    let Some(FederationError::GitHubTokenRefused { status, .. }) = err.as_federation() else {
        panic!("{err:?}")
    };
    assert_eq!(*status, Some(403));
    assert_eq!(err.remedy().unwrap().party, Party::Partner);
    assert!(err.to_string().contains("id-token: write"), "{err}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            !text.contains("req-T0KEN-9f") && !text.contains("x=1"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn concurrent_requests_for_many_scopes_share_one_assertion_fetch() {
    let fake = FakeTransport::new(vec![token_for(OWNER, "x")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls.clone(), || assertion(3600)))
        .check_audience(false)
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let c = credential.clone();
            tokio::spawn(async move { c.token(&format!("api://s{i}/.default")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "single flight, then cached"
    );
    assert_eq!(fake.requests().len(), 16, "one token request per scope");
}

#[tokio::test]
async fn an_assertion_near_its_exp_is_fetched_again_and_an_opaque_one_is_never_cached() {
    let fake = FakeTransport::new(vec![token_for(OWNER, "x")]);
    let calls = Arc::new(AtomicUsize::new(0));
    // 3 s left: its last quarter starts in about 2 s, so after 2.5 s it is
    // renewed even though it has not expired yet.
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls.clone(), || assertion(3)))
        .check_audience(false)
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    credential.token("api://a/.default").await.unwrap();
    credential.token("api://b/.default").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    credential.token("api://c/.default").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let opaque_calls = Arc::new(AtomicUsize::new(0));
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(counting_callback(opaque_calls.clone(), || "opaque".into()))
        .check_audience(false)
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    credential.token("api://a/.default").await.unwrap();
    credential.token("api://b/.default").await.unwrap();
    assert_eq!(opaque_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_assertion_past_its_exp_is_refused_before_anything_is_sent() {
    let fake = FakeTransport::new(vec![token_for(OWNER, "x")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls, || assertion(-330)))
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let err = credential.token("api://a/.default").await.unwrap_err();
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::AssertionExpired { entra: None, .. })
        ),
        "{err:?}"
    );
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    assert_eq!(err.remedy().unwrap().party, Party::Partner);
}

#[tokio::test]
async fn entra_federation_codes_become_typed_errors_naming_what_was_presented() {
    for (code, mismatch) in [
        (700211, Mismatch::Issuer),
        (700212, Mismatch::Audience),
        (700213, Mismatch::Subject),
        (70021, Mismatch::Unspecified),
        (70025, Mismatch::NoneConfigured),
    ] {
        let fake = FakeTransport::new(vec![entra_error(code)]);
        let credential = CrossTenantCredential::builder()
            .resource_tenant(OWNER)
            .client_id(CLIENT)
            .client_assertion(|| async { Ok(assertion(3600)) })
            .http_settings(settings(fake))
            .build()
            .unwrap();
        let err = credential.token("api://a/.default").await.unwrap_err();
        let Some(FederationError::NoMatchingCredential {
            mismatch: m,
            presented,
            ..
        }) = err.as_federation()
        else {
            panic!("{code}: {err:?}")
        };
        assert_eq!(*m, mismatch);
        assert_eq!(
            presented.as_ref().unwrap().issuer,
            "https://token.actions.githubusercontent.com"
        );
        assert_eq!(err.as_entra().unwrap().code(), Some(code));
        let remedy = err.remedy().unwrap();
        assert_eq!(remedy.party, Party::Partner);
        assert!(
            remedy.action.contains("federated-credential create"),
            "{remedy}"
        );
        assert!(remedy.action.contains("resource owner has nothing to do"));
    }
    // A secret's refusal is not a federation error.
    let fake = FakeTransport::new(vec![entra_error(700213)]);
    let err = super::fake::credential(OWNER, fake)
        .token("api://a/.default")
        .await
        .unwrap_err();
    assert!(err.as_federation().is_none() && err.as_entra().is_some());
}

#[tokio::test]
async fn an_assertion_entra_calls_expired_is_dropped_from_the_cache() {
    let fake = FakeTransport::new(vec![entra_error(700024), token_for(OWNER, "api://a")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls.clone(), || assertion(3600)))
        .http_settings(settings(fake))
        .build()
        .unwrap();
    let err = credential.token("api://a/.default").await.unwrap_err();
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::AssertionExpired { entra: Some(_), .. })
        ),
        "{err:?}"
    );
    credential.token("api://a/.default").await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a new assertion after 700024"
    );
}

#[tokio::test]
async fn one_partner_app_shares_its_assertion_but_never_a_token_across_tenants() {
    // Tenant OWNER gets its token; then the service answers OTHER's request
    // with a token of OWNER: refused, never cached, never served.
    let fake = FakeTransport::new(vec![
        token_for(OWNER, "api://a"),
        token_for(OWNER, "api://a"),
        token_for(OTHER, "api://a"),
    ]);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = PartnerApp::builder()
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls.clone(), || assertion(3600)))
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let owner = app.credential(OWNER).unwrap();
    let other = app.credential(OTHER).unwrap();
    assert!(Arc::ptr_eq(
        &owner,
        &app.credential(&OWNER.to_uppercase()).unwrap()
    ));
    let a = owner.token("api://a/.default").await.unwrap();
    let err = other.token("api://a/.default").await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongTenant { expected, actual, .. } if expected == OTHER && actual == OWNER),
        "{err:?}"
    );
    let b = other.token("api://a/.default").await.unwrap();
    let tid = |t: &azure_core::credentials::AccessToken| {
        crate::TokenClaims::decode(t.token.secret())
            .unwrap()
            .tenant_id()
            .unwrap()
            .to_string()
    };
    assert_eq!((tid(&a), tid(&b)), (OWNER.to_string(), OTHER.to_string()));
    assert_eq!(tid(&owner.token("api://a/.default").await.unwrap()), OWNER);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one assertion for both tenants"
    );
    assert_eq!(app.assertion_fetches(), 1);
    let posts: Vec<String> = fake.requests();
    assert_eq!(posts.len(), 3, "{posts:?}");
    assert!(posts[0].contains(OWNER) && posts[1].contains(OTHER) && posts[2].contains(OTHER));
}

#[test]
fn from_env_selects_a_managed_identity_or_github_and_names_a_bad_value() {
    let base = |extra: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            extra
                .iter()
                .chain([("AZURE_TENANT_ID", OWNER), ("AZURE_CLIENT_ID", CLIENT)].iter())
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = CrossTenantCredential::builder()
        .with_vars(base(&[(
            "CROSSTENANT_MANAGED_IDENTITY",
            "object_id=11112222-bbbb-3333-cccc-4444dddd5555",
        )]))
        .build()
        .unwrap();
    assert_eq!(c.proof(), super::ProofKind::ManagedIdentity);
    let err = CrossTenantCredential::builder()
        .with_vars(base(&[("CROSSTENANT_MANAGED_IDENTITY", "clientid=abc")]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CROSSTENANT_MANAGED_IDENTITY") && err.contains("clientid=abc"),
        "{err}"
    );
    let c = CrossTenantCredential::builder()
        .with_vars(base(&[
            ("CROSSTENANT_GITHUB_OIDC", "1"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://gh.example/t?a=1"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "req-T0KEN-9f"),
        ]))
        .build()
        .unwrap();
    assert_eq!(c.proof(), super::ProofKind::GitHubActionsOidc);
    assert!(!format!("{c:?}").contains("req-T0KEN-9f"));
    let err = CrossTenantCredential::builder()
        .with_vars(base(&[("CROSSTENANT_GITHUB_OIDC", "1")]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ACTIONS_ID_TOKEN_REQUEST_URL") && err.contains("id-token: write"),
        "{err}"
    );
    let err = CrossTenantCredential::builder()
        .with_vars(base(&[
            ("CROSSTENANT_MANAGED_IDENTITY", "system"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("client secret + managed identity"), "{err}");
}

#[tokio::test]
async fn callers_waiting_on_a_failed_fetch_get_its_error_instead_of_asking_again() {
    let fake = FakeTransport::new(vec![token_for(OWNER, "x")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let credential = CrossTenantCredential::builder()
        .resource_tenant(OWNER)
        .client_id(CLIENT)
        .client_assertion(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err::<String, _>("the workload has no token yet".into())
            }
        })
        .check_audience(false)
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let c = credential.clone();
            tokio::spawn(async move { c.token(&format!("api://f{i}/.default")).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("no token yet"), "{err}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one attempt for the waiting callers"
    );
    assert!(fake.requests().is_empty());
    // Failures are not cached: the next caller tries again.
    let _ = credential.token("api://g/.default").await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn sovereign_clouds_ask_for_their_own_token_exchange_audience() {
    for (cloud, audience) in [
        (crate::Cloud::Public, "api%3A%2F%2FAzureADTokenExchange"),
        (
            crate::Cloud::UsGovernment,
            "api%3A%2F%2FAzureADTokenExchangeUSGov",
        ),
        (crate::Cloud::China, "api%3A%2F%2FAzureADTokenExchangeChina"),
    ] {
        let fake = FakeTransport::new(vec![
            Answer::new(
                200,
                serde_json::json!({"value": assertion(600)}).to_string(),
            ),
            token_for(OWNER, "api://one"),
        ]);
        let credential = CrossTenantCredential::builder()
            .resource_tenant(OWNER)
            .client_id(CLIENT)
            .cloud(cloud.clone())
            .github_actions_oidc_endpoint("https://pipelines.example/idtoken?api-version=2.0", "t")
            .http_settings(settings(fake.clone()))
            .build()
            .unwrap();
        credential.token("api://one/.default").await.unwrap();
        let requests = fake.requests();
        assert!(
            requests[0].ends_with(&format!("&audience={audience}")),
            "{cloud:?}: {requests:?}"
        );
        assert!(
            requests[1].starts_with(&format!("POST {}", cloud.authority_host())),
            "{requests:?}"
        );
    }
}

#[tokio::test]
async fn a_partner_app_counts_each_time_its_source_is_asked_and_none_for_a_secret() {
    // An opaque assertion is never cached: each token request asks the
    // source again, and the app's counter says so.
    let fake = FakeTransport::new(vec![token_for(OWNER, "x")]);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = PartnerApp::builder()
        .client_id(CLIENT)
        .client_assertion(counting_callback(calls.clone(), || "opaque".into()))
        .check_audience(false)
        .http_settings(settings(fake.clone()))
        .build()
        .unwrap();
    let owner = app.credential(OWNER).unwrap();
    owner.token("api://a/.default").await.unwrap();
    owner.token("api://b/.default").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(app.assertion_fetches(), 2);

    // A secret has no source to ask and no assertion to describe.
    let app = PartnerApp::builder()
        .client_id(CLIENT)
        .client_secret("not-a-real-secret")
        .check_audience(false)
        .http_settings(settings(fake))
        .build()
        .unwrap();
    app.credential(OWNER)
        .unwrap()
        .token("api://a/.default")
        .await
        .unwrap();
    assert_eq!(app.assertion_fetches(), 0);
    assert!(app.federated_assertion().await.unwrap().is_none());
    assert_eq!(app.proof(), super::ProofKind::ClientSecret);
}
