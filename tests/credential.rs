//! The cross-tenant credential against the sandbox identity provider: the
//! seed story, every Entra failure with its hint, each way to authenticate,
//! tenant resolution, the stampede and refresh-ahead behaviour of the cache.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;
#[path = "common/demo.rs"]
mod demo;

use common::{pfx, rsa_certificate, world, EVENTHUBS_SCOPE};
use crosstenant::credential::entra::Party;
use crosstenant::credential::AssertionAlgorithm;
use crosstenant::{Error, TokenClaims};
use crosstenant_sandbox::faults::{Fault, Service};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn token_from_the_resource_tenant_carries_its_tid_and_the_partner_appid() {
    let w = world().await;
    let token = w.credential().token(EVENTHUBS_SCOPE).await.unwrap();
    let claims = TokenClaims::decode(token.token.secret()).unwrap();
    assert_eq!(claims.tenant_id(), Some(w.owner.id.as_str()));
    assert_ne!(claims.tenant_id(), Some(w.partner.id.as_str()));
    assert_eq!(claims.app_id(), Some(w.app.app_id.as_str()));
    assert_eq!(claims.audience(), Some("https://eventhubs.azure.net"));
    let sp = w
        .sandbox
        .directory()
        .service_principal(&w.owner.id, &w.app.app_id)
        .unwrap();
    assert_eq!(claims.object_id(), Some(sp.object_id.as_str()));
    assert_eq!(
        claims.issuer(),
        Some(format!("https://sts.windows.net/{}/", w.owner.id).as_str())
    );
    // It verifies against the sandbox JWKS, as the resource will check it.
    w.sandbox
        .issuer()
        .verify(token.token.secret(), &["https://eventhubs.azure.net"], 0)
        .unwrap();
}

#[tokio::test]
async fn the_credential_works_through_azure_core_token_credential() {
    use azure_core::credentials::TokenCredential;
    let w = world().await;
    let as_dyn: Arc<dyn TokenCredential> = w.credential();
    let token = as_dyn.get_token(&[EVENTHUBS_SCOPE], None).await.unwrap();
    assert!(!token.token.secret().is_empty());
    // Our typed error survives the trip through azure_core::Error.
    let err = as_dyn
        .get_token(&["https://eventhubs.azure.net"], None)
        .await
        .unwrap_err();
    let ours = Error::from_azure(&err).expect("crosstenant error inside");
    assert_eq!(
        ours.as_entra().expect("an Entra error").code(),
        Some(1002012)
    );
}

#[tokio::test]
async fn a_domain_is_resolved_once_to_the_tenant_guid() {
    let w = world().await;
    let cred = w
        .builder("Contoso.onmicrosoft.com")
        .client_secret(&w.secret)
        .build()
        .unwrap();
    assert_eq!(cred.resolved_tenant_id().await.unwrap(), w.owner.id);
    let t = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    assert_eq!(
        TokenClaims::decode(t.token.secret()).unwrap().tenant_id(),
        Some(w.owner.id.as_str())
    );
    w.sandbox
        .directory()
        .add_app_role(&w.app.app_id, "unused")
        .unwrap();
    assert_eq!(w.sandbox.identity().stats().discovery_requests(), 1);
}

#[tokio::test]
async fn an_unknown_tenant_is_explained_as_90002() {
    let w = world().await;
    for tenant in [
        "nobody.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
    ] {
        let cred = w.builder(tenant).client_secret(&w.secret).build().unwrap();
        let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
        let e = err.as_entra().expect("an Entra error");
        assert_eq!(e.code(), Some(90002), "{err}");
        assert_eq!(e.hint().unwrap().party, Party::Partner);
        assert!(err.to_string().contains(tenant), "{err}");
    }
}

#[tokio::test]
async fn a_missing_service_principal_is_the_resource_owners_to_create() {
    let w = world().await;
    let d = w.sandbox.directory();
    let other = d.register_app(&w.partner.id, "other-app", true).unwrap();
    d.create_service_principal(&w.owner.id, &other.app_id)
        .unwrap();
    d.delete_service_principal(&w.owner.id, &w.app.app_id);
    // Only that one goes: the app's own in its home tenant and another
    // app's in the owner's tenant stay.
    assert!(d.service_principal(&w.owner.id, &w.app.app_id).is_none());
    assert!(d.service_principal(&w.partner.id, &w.app.app_id).is_some());
    assert!(d.service_principal(&w.owner.id, &other.app_id).is_some());
    let err = w.credential().token(EVENTHUBS_SCOPE).await.unwrap_err();
    let e = err.as_entra().expect("an Entra error");
    assert_eq!(e.code(), Some(7000229));
    assert_eq!(e.hint().unwrap().party, Party::ResourceOwner);
    let text = err.to_string();
    assert!(
        text.contains(&format!("az ad sp create --id {}", w.app.app_id)),
        "{text}"
    );
    assert!(text.contains(&w.owner.id), "{text}");
}

#[tokio::test]
async fn a_single_tenant_app_is_not_found_in_the_resource_tenant() {
    let w = world().await;
    let d = w.sandbox.directory();
    let single = d
        .register_app(&w.partner.id, "internal-only", false)
        .unwrap();
    let secret = d.add_secret(&single.app_id, 3600).unwrap();
    let cred = crosstenant::CrossTenantCredential::builder()
        .resource_tenant(&w.owner.id)
        .client_id(&single.app_id)
        .client_secret(secret)
        .authority_host(w.sandbox.authority_host().as_str())
        .root_certificates_pem(w.sandbox.ca_pem())
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert_eq!(err.as_entra().expect("an Entra error").code(), Some(700016));
    assert!(err.to_string().contains("AzureADMultipleOrgs"), "{err}");
}

#[tokio::test]
async fn a_wrong_secret_and_an_expired_secret_are_told_apart() {
    let w = world().await;
    let wrong = w
        .builder(&w.owner.id)
        .client_secret("not-the-secret")
        .build()
        .unwrap();
    let err = wrong.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert_eq!(
        err.as_entra().expect("an Entra error").code(),
        Some(7000215)
    );
    assert!(!err.to_string().contains("not-the-secret"));

    let expired = w
        .sandbox
        .directory()
        .add_secret(&w.app.app_id, -60)
        .unwrap();
    let cred = w
        .builder(&w.owner.id)
        .client_secret(&expired)
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert_eq!(
        err.as_entra().expect("an Entra error").code(),
        Some(7000222)
    );
    assert!(!err.to_string().contains(&expired));
}

#[tokio::test]
async fn bad_scopes_and_unknown_resources_are_explained() {
    let w = world().await;
    let cred = w.credential();
    let err = cred.token("https://eventhubs.azure.net").await.unwrap_err();
    assert_eq!(
        err.as_entra().expect("an Entra error").code(),
        Some(1002012)
    );
    assert!(err.to_string().contains("/.default"), "{err}");

    let err = cred.token("api://no-such-api/.default").await.unwrap_err();
    assert_eq!(err.as_entra().expect("an Entra error").code(), Some(500011));
    assert!(err.to_string().contains("api://no-such-api"), "{err}");
}

#[tokio::test]
async fn a_resource_that_requires_assignment_refuses_an_unassigned_app() {
    let w = world().await;
    let d = w.sandbox.directory();
    let api = d.register_app(&w.owner.id, "owner-api", false).unwrap();
    d.add_identifier_uri(&api.app_id, "api://owner-api")
        .unwrap();
    d.add_app_role(&api.app_id, "API.Read").unwrap();
    d.set_assignment_required(&api.app_id, true).unwrap();
    let cred = w.credential();
    let err = cred.token("api://owner-api/.default").await.unwrap_err();
    let e = err.as_entra().expect("an Entra error");
    assert_eq!(e.code(), Some(501051));
    assert_eq!(e.hint().unwrap().party, Party::ResourceOwner);

    d.grant_app_role(&w.owner.id, &w.app.app_id, &api.app_id, "API.Read")
        .unwrap();
    let token = cred.token("api://owner-api/.default").await.unwrap();
    let claims = TokenClaims::decode(token.token.secret()).unwrap();
    assert_eq!(claims.roles(), vec!["API.Read"]);
}

#[tokio::test]
async fn pem_certificates_sign_assertions_entra_accepts() {
    let w = world().await;
    let cert = rsa_certificate("fabrikam-telemetry");
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, &cert.cert_der)
        .unwrap();
    let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
    for alg in [AssertionAlgorithm::Rs256, AssertionAlgorithm::Ps256] {
        let cred = w
            .builder(&w.owner.id)
            .certificate_pem(&pem)
            .assertion_algorithm(alg)
            .send_certificate_chain(true)
            .build()
            .unwrap();
        let token = cred.token(EVENTHUBS_SCOPE).await.unwrap();
        let claims = TokenClaims::decode(token.token.secret()).unwrap();
        assert_eq!(claims.tenant_id(), Some(w.owner.id.as_str()));
        assert_eq!(claims.get("appidacr").and_then(|v| v.as_str()), Some("2"));
    }
}

#[tokio::test]
async fn pfx_certificates_load_with_their_password_and_refuse_a_wrong_one() {
    let w = world().await;
    let cert = rsa_certificate("fabrikam-pfx");
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, &cert.cert_der)
        .unwrap();
    let archive = pfx(&cert, "correct horse");
    let cred = w
        .builder(&w.owner.id)
        .certificate_pfx(&archive, "correct horse")
        .build()
        .unwrap();
    cred.token(EVENTHUBS_SCOPE).await.unwrap();

    let err = w
        .builder(&w.owner.id)
        .certificate_pfx(&archive, "wrong")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("password is wrong"), "{err}");
    assert!(!err.contains("correct horse"), "{err}");
}

#[tokio::test]
async fn an_unregistered_certificate_is_700027() {
    let w = world().await;
    let cert = rsa_certificate("never-uploaded");
    let cred = w
        .builder(&w.owner.id)
        .certificate_pem(format!("{}{}", cert.cert_pem, cert.key_pem))
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert_eq!(err.as_entra().expect("an Entra error").code(), Some(700027));
    assert!(err.to_string().contains("--cert"), "{err}");
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_is_refused_at_build() {
    let w = world().await;
    let a = rsa_certificate("a");
    let b = rsa_certificate("b");
    let err = w
        .builder(&w.owner.id)
        .certificate_pem(format!("{}{}", a.cert_pem, b.key_pem))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match its certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY-----\n"), "{err}");
}

#[tokio::test]
async fn a_stale_assertion_is_700024() {
    let w = world().await;
    let cert = rsa_certificate("clock-skewed");
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, &cert.cert_der)
        .unwrap();
    let loaded = crosstenant::credential::ClientCertificate::from_pem(
        format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes(),
    )
    .unwrap();
    let endpoint = w.sandbox.identity().token_endpoint(&w.owner.id);
    let client_id = w.app.app_id.clone();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(cert.key_pem.as_bytes()).unwrap();
    let x5t = loaded.x5t().to_string();
    let sign = move |nbf_in: i64, exp_in: i64| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(x5t.clone());
        let now = crosstenant_sandbox::jwt::now_secs();
        let claims = serde_json::json!({
            "aud": endpoint, "iss": client_id, "sub": client_id,
            "jti": azure_core::Uuid::new_v4().to_string(),
            "nbf": now + nbf_in, "exp": now + exp_in,
        });
        jsonwebtoken::encode(&header, &claims, &key)
    };
    // Valid from an hour ahead: a machine whose clock is far ahead. Sent,
    // and Entra answers 700024.
    let ahead = sign.clone();
    let cred = w
        .builder(&w.owner.id)
        .client_assertion(move || {
            let signed = ahead(3600, 4000);
            async move { signed.map_err(|e| e.into()) }
        })
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert_eq!(err.as_entra().expect("an Entra error").code(), Some(700024));
    assert!(
        matches!(
            err.as_federation(),
            Some(crosstenant::error::FederationError::AssertionExpired { entra: Some(_), .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("clock"), "{err}");
    // Expired an hour ago by this machine's own clock: refused before it
    // is sent, with the same advice.
    let before = w.sandbox.identity().stats().token_requests();
    let cred = w
        .builder(&w.owner.id)
        .client_assertion(move || {
            let signed = sign(-3600, -3000);
            async move { signed.map_err(|e| e.into()) }
        })
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert!(
        matches!(
            err.as_federation(),
            Some(crosstenant::error::FederationError::AssertionExpired { entra: None, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("clock"), "{err}");
    assert_eq!(w.sandbox.identity().stats().token_requests(), before);
}

#[tokio::test]
async fn the_federated_token_file_is_read_again_on_every_request() {
    let w = world().await;
    // Entra lets a federated assertion be presented again within its
    // lifetime; this test needs a second use refused, so that success after
    // the file rotates proves the file was read again.
    w.sandbox
        .identity()
        .set_federated_assertions_single_use(true);
    let issuer = w.sandbox.identity().federated_issuer("aks-westeurope");
    w.sandbox
        .directory()
        .add_federated_credential(
            &w.app.app_id,
            &issuer,
            "system:serviceaccount:telemetry:sender",
        )
        .unwrap();
    let dir = std::env::temp_dir().join(format!("crosstenant-fic-{}", azure_core::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    let mint = || {
        w.sandbox
            .identity()
            .mint_federated_assertion(
                "aks-westeurope",
                "system:serviceaccount:telemetry:sender",
                600,
            )
            .unwrap()
    };
    std::fs::write(&file, mint()).unwrap();
    let cred = w
        .builder(&w.owner.id)
        .federated_token_file(&file)
        .build()
        .unwrap();
    let first = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    assert_eq!(
        TokenClaims::decode(first.token.secret())
            .unwrap()
            .tenant_id(),
        Some(w.owner.id.as_str())
    );
    // A second scope needs a second request; the kubelet has rotated the
    // file meanwhile. Re-sending the old assertion would be refused as a
    // replayed jti, so success proves the file was read again.
    let d = w.sandbox.directory();
    let api = d.register_app(&w.owner.id, "owner-api", false).unwrap();
    d.add_identifier_uri(&api.app_id, "api://owner-api")
        .unwrap();
    std::fs::write(&file, mint()).unwrap();
    cred.token("api://owner-api/.default").await.unwrap();

    std::fs::remove_file(&file).unwrap();
    let err = cred
        .token("api://another/.default")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_on_a_cold_cache_makes_one_token_request() {
    let w = world().await;
    let cred = w.credential();
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let cred = cred.clone();
        tasks.push(tokio::spawn(
            async move { cred.token(EVENTHUBS_SCOPE).await },
        ));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().unwrap().token.secret().to_string());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        w.sandbox
            .identity()
            .stats()
            .token_requests_for(EVENTHUBS_SCOPE),
        1
    );
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_without_making_callers_wait() {
    let w = world().await;
    // 8 s tokens: refreshed from 4 s on, handed out until 6 s (the last
    // quarter is kept back for the AMQP authorizer's renewal margin).
    w.sandbox.identity().set_token_lifetime(8);
    let cred = w.credential();
    let first = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4200)).await;
    // Slow down the identity provider: a caller that waited for the refresh
    // would take a second; the refresh still lands inside the serving window.
    w.sandbox.faults().inject(
        Service::Identity,
        Fault::Delay(Duration::from_millis(1000)),
        1,
    );
    let started = std::time::Instant::now();
    let during = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(during.token.secret(), first.token.secret());
    // The background refresh lands, and no caller waits for it: every call
    // until then is served from the cache. (Were the refresh not started in
    // the background, the first call past the serving window would fetch
    // itself at 6 s and sit out the delay.)
    let mut refreshed = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let t = cred.token(EVENTHUBS_SCOPE).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a caller waited {:?} for the refresh",
            started.elapsed()
        );
        if t.token.secret() != first.token.secret() {
            refreshed = Some(t);
            break;
        }
    }
    assert!(refreshed.is_some(), "token was refreshed ahead of expiry");
    assert_eq!(
        w.sandbox
            .identity()
            .stats()
            .token_requests_for(EVENTHUBS_SCOPE),
        2
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_valid_token_and_recovers() {
    let w = world().await;
    w.sandbox.identity().set_token_lifetime(4);
    let mut settings = crosstenant::HttpSettings::default();
    settings
        .add_root_certificates_pem(w.sandbox.ca_pem())
        .unwrap();
    settings.set_retry(azure_core::http::ExponentialRetryOptions {
        max_retries: 0,
        ..Default::default()
    });
    let cred = w
        .builder(&w.owner.id)
        .http_settings(settings)
        .client_secret(&w.secret)
        .build()
        .unwrap();
    let first = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    w.sandbox.faults().inject(
        Service::Identity,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    let served = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    assert_eq!(served.token.secret(), first.token.secret());
    // After the backoff, the next refresh succeeds: the failure was not kept.
    let mut recovered = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = cred.token(EVENTHUBS_SCOPE).await.unwrap();
        if t.token.secret() != first.token.secret() {
            recovered = true;
            break;
        }
    }
    assert!(recovered);
    assert_eq!(w.sandbox.faults().fired(), 1);
}

#[tokio::test]
async fn throttling_is_retried_as_told_and_permanent_errors_are_not() {
    let w = world().await;
    w.sandbox.faults().inject(
        Service::Identity,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        1,
    );
    let started = std::time::Instant::now();
    w.credential().token(EVENTHUBS_SCOPE).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After"
    );
    assert_eq!(w.sandbox.identity().stats().token_requests(), 2);

    let wrong = w
        .builder(&w.owner.id)
        .client_secret("nope")
        .build()
        .unwrap();
    wrong.token("api://x/.default").await.unwrap_err();
    assert_eq!(w.sandbox.identity().stats().token_requests(), 3);
}

#[tokio::test]
async fn the_credential_trusts_the_sandbox_only_through_its_ca() {
    let w = world().await;
    // Without the sandbox CA the TLS handshake fails: verification is on.
    let cred = crosstenant::CrossTenantCredential::builder()
        .resource_tenant(&w.owner.id)
        .client_id(&w.app.app_id)
        .client_secret(&w.secret)
        .authority_host(w.sandbox.authority_host().as_str())
        .http_settings({
            let mut s = crosstenant::HttpSettings::default();
            s.set_retry(azure_core::http::ExponentialRetryOptions {
                max_retries: 0,
                ..Default::default()
            });
            s
        })
        .build()
        .unwrap();
    let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(w.sandbox.identity().stats().token_requests(), 0);
}

#[tokio::test]
async fn a_v2_token_naming_the_api_by_its_client_id_is_accepted() {
    // The resource owner's API asks for v2.0 tokens: Entra answers a request
    // for its App ID URI with `ver` 2.0 and `aud` = the API's client id.
    let world = crosstenant_sandbox::demo::DemoWorld::start().await.unwrap();
    let credential = demo::DemoCredential::credential(&world).unwrap();
    let scope = format!("{}/.default", crosstenant_sandbox::demo::API_V2_URI);
    let token = credential
        .token(&scope)
        .await
        .expect("a v2.0 token is accepted");
    let claims = crosstenant::TokenClaims::decode(token.token.secret()).unwrap();
    assert_eq!(claims.get("ver").and_then(|v| v.as_str()), Some("2.0"));
    assert_eq!(claims.audience(), Some(world.api_v2.app_id.as_str()));
    assert_eq!(claims.tenant_id(), Some(world.owner.id.as_str()));
    // Asked by its client id, the same API's token is accepted too.
    let by_id = format!("api://{}/.default", world.api_v2.app_id);
    credential.token(&by_id).await.expect("asked by client id");
}
