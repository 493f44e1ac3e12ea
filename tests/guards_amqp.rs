//! Guards of the AMQP sender found by mutation testing (docs/MUTANTS.md):
//! each test here kills mutants of `src/eventhubs/amqp.rs` that survived
//! the rest of the suite.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{eventhubs_namespace, world, World};
use crosstenant::eventhubs::{Event, EventHubSender, EventHubsError, SendOptions, Transport};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A credential whose every token has already expired, while it says the
/// token is good for an hour (a clock-skewed or broken token source): the
/// namespace refuses each put-token with sub-code 40106.
#[derive(Debug)]
struct AlwaysExpired {
    issuer: crosstenant_sandbox::jwt::TokenIssuer,
    claims: AccessClaims,
    calls: AtomicUsize,
}

impl AlwaysExpired {
    /// The partner app's claims at the resource owner's tenant, as Entra
    /// would issue them for Event Hubs.
    fn for_world(w: &World) -> Self {
        let sp = w
            .sandbox
            .directory()
            .service_principal(&w.owner.id, &w.app.app_id)
            .expect("service principal");
        Self {
            issuer: w.sandbox.issuer().clone(),
            claims: AccessClaims {
                aud: "https://eventhubs.azure.net".into(),
                iss: AccessClaims::issuer_for(&w.owner.id),
                appid: w.app.app_id.clone(),
                azp: w.app.app_id.clone(),
                oid: sp.object_id.clone(),
                sub: sp.object_id.clone(),
                tid: w.owner.id.clone(),
                roles: vec![],
                idtyp: "app".into(),
                ver: "1.0".into(),
                appidacr: "1".into(),
                iat: 0,
                nbf: 0,
                exp: 0,
                uti: "expired".into(),
            },
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for AlwaysExpired {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = now_secs();
        let mut claims = self.claims.clone();
        (claims.iat, claims.nbf, claims.exp) = (now - 3600, now - 3600, now - 60);
        let token = self.issuer.sign(&claims).expect("signs");
        Ok(azure_core::credentials::AccessToken::new(
            token,
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// An expired token gets one re-open with a fresh token, not more: when
/// the namespace keeps refusing the token as expired, the send ends with
/// the typed 40106 refusal (nothing was accepted, so not wrapped as
/// `NotAccepted`) instead of re-opening connections for ever. Kills
/// `replace match guard !reopened with true` and `replace == with !=` in
/// `AmqpBackend::send`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_as_expired_again_after_the_reopen_is_a_typed_40106() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let credential = Arc::new(AlwaysExpired::for_world(&w));
    let any: Arc<dyn azure_core::credentials::TokenCredential> = credential.clone();
    let connections = || {
        w.sandbox
            .eventhubs()
            .stats()
            .amqp_connections
            .load(Ordering::Relaxed)
    };
    let sender = EventHubSender::<serde_json::Value>::builder(&ns, "telemetry", any)
        .transport(Transport::Amqp)
        .endpoint(w.sandbox.eventhubs().amqp_endpoint().as_str())
        .open()
        .await
        .expect("opening needs no token yet");
    let opened = connections();

    let err = tokio::time::timeout(
        Duration::from_secs(90),
        sender.send_raw(vec![Event::new("x")], SendOptions::default()),
    )
    .await
    .expect("the send re-opened without end")
    .expect_err("no token the namespace accepts");
    match err.as_eventhubs() {
        Some(EventHubsError::TokenRejected { subcode, .. }) => assert_eq!(*subcode, 40106),
        other => panic!("expected the 40106 refusal itself, got {other:?}: {err}"),
    }
    assert_eq!(
        connections() - opened,
        1,
        "exactly one re-open on a new connection"
    );
    assert!(w.sandbox.eventhubs().events(&ns, "telemetry").is_empty());
}
