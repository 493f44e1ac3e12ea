//! The cross-tenant stories against **real tenants**. Every test here is
//! `#[ignore]`d, so a plain `cargo test` reports them as *ignored* (a skip the
//! test runner shows, never a pass): they need live tenants and the network.
//! Run them by asking for the ignored tests, with the environment naming the
//! tenants; a test asked to run without its variables **fails**, naming the
//! missing ones.
//!
//! ```sh
//! CROSSTENANT_LIVE_TENANT=contoso.onmicrosoft.com \
//! CROSSTENANT_LIVE_CLIENT_ID=00001111-aaaa-2222-bbbb-3333cccc4444 \
//! CROSSTENANT_LIVE_CLIENT_SECRET=... \
//!     cargo test --test live -- --ignored --nocapture --test-threads 1
//! ```
//!
//! | variable | what it is | needed by |
//! |---|---|---|
//! | `CROSSTENANT_LIVE_TENANT` | the **resource owner's** tenant (GUID or verified domain) | every test |
//! | `CROSSTENANT_LIVE_CLIENT_ID` | the partner's multi-tenant app | every test |
//! | `CROSSTENANT_LIVE_CLIENT_SECRET` | its secret, or instead… | every test |
//! | `CROSSTENANT_LIVE_CLIENT_CERTIFICATE_PATH` | …a PEM or PFX certificate (+ `CROSSTENANT_LIVE_CLIENT_CERTIFICATE_PASSWORD`) | every test |
//! | `CROSSTENANT_LIVE_AUTHORITY_HOST` | optional: another cloud's authority | – |
//! | `CROSSTENANT_LIVE_HOME_TENANT` | the partner's **home** tenant, where the app is registered | the 40100 story |
//! | `CROSSTENANT_LIVE_EVENTHUBS_NAMESPACE` | the resource owner's namespace (`contoso-telemetry` or its host) | Event Hubs stories |
//! | `CROSSTENANT_LIVE_EVENTHUB` | an Event Hub in it, on which the app holds "Azure Event Hubs Data Sender" | Event Hubs stories |
//! | `CROSSTENANT_LIVE_EVENTHUBS_HTTPS_ENDPOINT`, `…_AMQP_ENDPOINT` | optional: connect there instead (a private endpoint, a proxy) | Event Hubs stories |
//! | `SSL_CERT_FILE` | optional: extra trusted roots (PEM), e.g. a TLS-inspecting proxy's CA | every test |
//! | `CROSSTENANT_LIVE_API_URL` | the protected API's base URL | aggregator stories |
//! | `CROSSTENANT_LIVE_API_SCOPE` | its App ID URI (`api://secure-api`) | aggregator stories |
//! | `CROSSTENANT_LIVE_API_CLIENT` | the client to act for (`clientXYZ`, `api://clientXYZ`) | aggregator stories |
//! | `CROSSTENANT_LIVE_API_PATH` | optional: the path to read under `/api/{client}/` (default `data`) | aggregator stories |
//!
//! The Event Hubs stories send a few small events marked
//! `"crosstenant_live_test": true`; the aggregator stories only read. A
//! write on a read-only grant is not tried live: with a grant wider than
//! expected it would write.
#![cfg(all(feature = "amqp", feature = "https"))]

use crosstenant::aggregator::AggregatorClient;
use crosstenant::eventhubs::{EventHubSender, EventHubsError, SendOptions, Transport};
use crosstenant::{CrossTenantCredential, Error, TokenClaims};
use serde_json::{json, Value};
use std::sync::Arc;

const EVENTHUBS_SCOPE: &str = "https://eventhubs.azure.net/.default";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The live configuration a test asked to run needs.
struct Live;

impl Live {
    fn require(test: &str, names: &[&str]) -> Self {
        let mut missing: Vec<&str> = names.iter().copied().filter(|n| var(n).is_none()).collect();
        if var("CROSSTENANT_LIVE_CLIENT_SECRET").is_none()
            && var("CROSSTENANT_LIVE_CLIENT_CERTIFICATE_PATH").is_none()
        {
            missing.push("CROSSTENANT_LIVE_CLIENT_SECRET (or _CLIENT_CERTIFICATE_PATH)");
        }
        if missing.is_empty() {
            return Live;
        }
        panic!(
            "{test} runs against live tenants and was asked to run, but {} is not set (see \
             the table at the top of tests/live.rs)",
            missing.join(", ")
        );
    }

    fn get(&self, name: &str) -> String {
        var(name).unwrap_or_else(|| panic!("{name} was checked by require"))
    }

    /// The partner app's credential at `tenant`.
    fn credential_at(&self, tenant: &str) -> Arc<CrossTenantCredential> {
        let mut builder = CrossTenantCredential::builder()
            .resource_tenant(tenant)
            .client_id(self.get("CROSSTENANT_LIVE_CLIENT_ID"));
        if let Some(secret) = var("CROSSTENANT_LIVE_CLIENT_SECRET") {
            builder = builder.client_secret(secret);
        } else if let Some(path) = var("CROSSTENANT_LIVE_CLIENT_CERTIFICATE_PATH") {
            let password = var("CROSSTENANT_LIVE_CLIENT_CERTIFICATE_PASSWORD").unwrap_or_default();
            builder = if path.to_ascii_lowercase().ends_with(".pem") {
                builder.certificate_pem_file(path)
            } else {
                builder.certificate_pfx_file(path, &password)
            };
        }
        if let Some(host) = var("CROSSTENANT_LIVE_AUTHORITY_HOST") {
            builder = builder.authority_host(&host);
        }
        if let Some(path) = var("SSL_CERT_FILE") {
            let pem = std::fs::read_to_string(&path).expect("SSL_CERT_FILE is readable");
            builder = builder.root_certificates_pem(&pem);
        }
        builder.build().expect("the live credential builds")
    }

    /// The credential at the resource owner's tenant: the right way.
    fn credential(&self) -> Arc<CrossTenantCredential> {
        self.credential_at(&self.get("CROSSTENANT_LIVE_TENANT"))
    }

    async fn sender(
        &self,
        credential: Arc<CrossTenantCredential>,
        transport: Transport,
    ) -> EventHubSender<Value> {
        let builder = EventHubSender::builder(
            self.get("CROSSTENANT_LIVE_EVENTHUBS_NAMESPACE"),
            self.get("CROSSTENANT_LIVE_EVENTHUB"),
            credential.clone(),
        )
        .http_settings(credential.http_settings().clone())
        .transport(transport);
        let endpoint = match transport {
            Transport::Https => var("CROSSTENANT_LIVE_EVENTHUBS_HTTPS_ENDPOINT"),
            _ => var("CROSSTENANT_LIVE_EVENTHUBS_AMQP_ENDPOINT"),
        };
        let builder = match endpoint {
            Some(e) => builder.endpoint(e),
            None => builder,
        };
        builder.open().await.expect("the sender opens")
    }

    fn api(&self) -> AggregatorClient {
        AggregatorClient::builder(
            self.get("CROSSTENANT_LIVE_API_URL"),
            self.get("CROSSTENANT_LIVE_API_SCOPE"),
            self.credential(),
        )
        .http_settings(self.credential().http_settings().clone())
        .build()
        .expect("the aggregator client builds")
    }

    fn api_path(&self) -> String {
        var("CROSSTENANT_LIVE_API_PATH").unwrap_or_else(|| "data".into())
    }
}

const BASE: &[&str] = &["CROSSTENANT_LIVE_TENANT", "CROSSTENANT_LIVE_CLIENT_ID"];
const EVENTHUBS: &[&str] = &[
    "CROSSTENANT_LIVE_TENANT",
    "CROSSTENANT_LIVE_CLIENT_ID",
    "CROSSTENANT_LIVE_EVENTHUBS_NAMESPACE",
    "CROSSTENANT_LIVE_EVENTHUB",
];
const API: &[&str] = &[
    "CROSSTENANT_LIVE_TENANT",
    "CROSSTENANT_LIVE_CLIENT_ID",
    "CROSSTENANT_LIVE_API_URL",
    "CROSSTENANT_LIVE_API_SCOPE",
    "CROSSTENANT_LIVE_API_CLIENT",
];

fn probe(n: usize) -> Value {
    json!({ "crosstenant_live_test": true, "n": n })
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn token_comes_from_the_resource_tenant_for_the_partner_app() {
    let live = Live::require(
        "token_comes_from_the_resource_tenant_for_the_partner_app",
        BASE,
    );
    let credential = live.credential();
    let tenant_id = credential
        .resolved_tenant_id()
        .await
        .expect("the resource tenant resolves");
    let token = credential
        .token(EVENTHUBS_SCOPE)
        .await
        .expect("the resource tenant issues a token");
    let claims = TokenClaims::decode(token.token.secret()).expect("an Entra access token");
    assert_eq!(claims.tenant_id(), Some(tenant_id.as_str()));
    assert_eq!(
        claims.app_id().map(str::to_ascii_lowercase),
        Some(live.get("CROSSTENANT_LIVE_CLIENT_ID").to_ascii_lowercase())
    );
    assert_eq!(
        claims.audience().map(|a| a.trim_end_matches('/')),
        Some("https://eventhubs.azure.net")
    );
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn resource_tenant_token_sends_over_https() {
    let live = Live::require("resource_tenant_token_sends_over_https", EVENTHUBS);
    let sender = live.sender(live.credential(), Transport::Https).await;
    sender
        .send_batch(&[probe(1), probe(2)], SendOptions::default())
        .await
        .expect("the namespace accepts both events (201 Created)");
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn resource_tenant_token_sends_over_amqp() {
    let live = Live::require("resource_tenant_token_sends_over_amqp", EVENTHUBS);
    let sender = live.sender(live.credential(), Transport::Amqp).await;
    sender
        .send_batch(&[probe(1), probe(2)], SendOptions::default())
        .await
        .expect("the namespace accepts both events over AMQP");
    sender.close().await.expect("the connection closes");
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn home_tenant_token_is_rejected_with_40100() {
    let mut needs = EVENTHUBS.to_vec();
    needs.push("CROSSTENANT_LIVE_HOME_TENANT");
    let live = Live::require("home_tenant_token_is_rejected_with_40100", &needs);
    let home = live.credential_at(&live.get("CROSSTENANT_LIVE_HOME_TENANT"));
    let sender = live.sender(home, Transport::Https).await;
    let err = sender
        .send(&probe(0))
        .await
        .expect_err("the resource owner's namespace refuses a home-tenant token");
    let Error::EventHubs(e) = &err else {
        panic!("expected an Event Hubs error, got {err}");
    };
    let cause = match &**e {
        EventHubsError::NotAccepted { cause, .. } => &**cause,
        other => other,
    };
    assert!(
        matches!(cause, EventHubsError::Unauthorized { .. }),
        "expected 401 SubCode=40100, got {err}"
    );
    assert!(err.to_string().contains("40100"), "{err}");
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn aggregator_reads_on_behalf_of_the_client() {
    let live = Live::require("aggregator_reads_on_behalf_of_the_client", API);
    let api = live.api();
    let _: Value = api
        .on_behalf_of(&live.get("CROSSTENANT_LIVE_API_CLIENT"))
        .expect("a valid client id")
        .get(&live.api_path())
        .await
        .expect("the API answers the read with both tokens");
}

#[tokio::test]
#[ignore = "needs live tenants: set CROSSTENANT_LIVE_* (tests/live.rs) and run with --ignored"]
async fn aggregator_without_the_secondary_token_is_forbidden() {
    let live = Live::require("aggregator_without_the_secondary_token_is_forbidden", API);
    let api = live.api();
    // `as_client` sends only the API token, as if the aggregator were the
    // client itself; it is not, so the API must refuse.
    let client = live.get("CROSSTENANT_LIVE_API_CLIENT");
    let path_id = client.strip_prefix("api://").unwrap_or(&client).to_string();
    let err = api
        .as_client(&path_id)
        .expect("a valid client id")
        .get::<Value>(&live.api_path())
        .await
        .expect_err("the API refuses an aggregator without the client's token");
    match &err {
        Error::Aggregator(e) => assert_eq!(e.status(), Some(403), "{err}"),
        other => panic!("expected a 403 from the API, got {other}"),
    }
}
