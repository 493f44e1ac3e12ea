//! Secretless cross-tenant access with the partner's **managed identity**,
//! on the sandbox's App Service managed identity endpoint: the seed story
//! with no secret or certificate anywhere (managed identity → token from
//! the resource owner's tenant → Event Hubs over HTTPS and AMQP, and the
//! aggregator's two-token call), the managed identity asked once per
//! assertion lifetime, one [`PartnerApp`] serving three resource tenants
//! with one assertion and one connection pool and never a token across
//! tenants, and the managed identity's refusals typed.
//!
//! ## Why this binary has its own `main` (`harness = false`)
//!
//! azure_identity's `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT`
//! and `IDENTITY_HEADER` from the **process environment** (when it is made,
//! and on every request), and the sandbox makes up both only once it runs
//! (a loopback port, a fresh secret). Changing the environment while
//! another thread reads it is a data race in the C library (`setenv`
//! against `getenv`, e.g. inside `getaddrinfo`), which is why
//! `std::env::set_var` is `unsafe` from Rust 2024 on. So:
//!
//! 1. everything runs on one **current-thread** Tokio runtime: the sandbox
//!    and every client are tasks on the main thread, and no worker thread
//!    exists;
//! 2. the world is set up, then `block_on` returns, and the environment is
//!    set **once**, after checking (on Linux, in `/proc/self/task`) that
//!    the main thread is the only thread of the process; it is never
//!    changed again, so threads started later (DNS, blocking pools) only
//!    ever read it;
//! 3. the tests then run one after another on that runtime, each with its
//!    own credentials and counters read as differences, so their order does
//!    not matter. libtest would run them on threads of its own, which is
//!    why this file is its own harness (`cargo test --test secretless_mi
//!    [filter]` works as usual).
//!
//! The cases that need another environment (an unreachable endpoint) run
//! the `crosstenant` CLI as a subprocess with its own environment
//! (`crates/cli/tests/cli.rs`).
#![cfg(all(feature = "amqp", feature = "https"))]

#[path = "common/secretless.rs"]
mod secretless;

use crosstenant::aggregator::AggregatorClient;
use crosstenant::credential::{ManagedIdentity, ProofKind};
use crosstenant::error::{FederationError, Mismatch};
use crosstenant::eventhubs::{EventHubSender, Transport};
use crosstenant::{CrossTenantCredential, Party, TokenClaims};
use crosstenant_sandbox::demo::{API_URI, CLIENT, EVENTHUBS_SCOPE, HUB};
use secretless::{managed_identity_issuer, Secretless};
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

type TestFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;
type Test = for<'a> fn(&'a Secretless) -> TestFuture<'a>;

const TESTS: &[(&str, Test)] = &[
    ("managed_identity_seed_story_with_no_secret_anywhere", |s| {
        Box::pin(seed_story(s))
    }),
    ("one_managed_identity_request_serves_every_token", |s| {
        Box::pin(one_request_per_assertion(s))
    }),
    ("one_partner_app_serves_three_resource_tenants", |s| {
        Box::pin(three_tenants(s))
    }),
    ("from_env_selects_the_managed_identity", |s| {
        Box::pin(from_env(s))
    }),
    ("managed_identity_refusals_are_typed", |s| {
        Box::pin(refusals(s))
    }),
];

fn mi_requests(s: &Secretless) -> u64 {
    s.world.sandbox.managed_identity().token_requests()
}

fn mi_credential(s: &Secretless, tenant: &str) -> Arc<CrossTenantCredential> {
    s.builder(tenant)
        .managed_identity(ManagedIdentity::ClientId(s.identity.client_id.clone()))
        .build()
        .expect("builds")
}

fn tid(token: &azure_core::credentials::AccessToken) -> String {
    TokenClaims::decode(token.token.secret())
        .unwrap()
        .tenant_id()
        .unwrap()
        .to_string()
}

async fn seed_story(s: &Secretless) {
    let before = mi_requests(s);
    let owner = &s.owners[0];
    let credential = mi_credential(s, &owner.tenant.id);
    assert_eq!(credential.proof(), ProofKind::ManagedIdentity);

    for transport in [Transport::Https, Transport::Amqp] {
        let endpoint = match transport {
            Transport::Https => s.world.sandbox.eventhubs().https_endpoint().to_string(),
            _ => s.world.sandbox.eventhubs().amqp_endpoint().to_string(),
        };
        let sender =
            EventHubSender::<serde_json::Value>::builder(&owner.namespace, HUB, credential.clone())
                .http_settings(credential.http_settings().clone())
                .transport(transport)
                .endpoint(endpoint)
                .open()
                .await
                .expect("sender opens");
        sender
            .send(&serde_json::json!({"via": format!("{transport:?}")}))
            .await
            .expect("the owner's hub accepts the event");
        let _ = sender.close().await;
    }
    let events = s.world.sandbox.eventhubs().events(&owner.namespace, HUB);
    assert!(events.len() >= 2, "{} events", events.len());

    let api = AggregatorClient::builder(s.world.sandbox.api().url(), API_URI, credential.clone())
        .http_settings(credential.http_settings().clone())
        .build()
        .unwrap();
    let _: serde_json::Value = api
        .on_behalf_of(CLIENT)
        .unwrap()
        .get("data")
        .await
        .expect("the two-token call is served");

    let info = credential.federated_assertion().await.unwrap().unwrap();
    assert_eq!(info.issuer, managed_identity_issuer(&s.world.partner.id));
    assert_eq!(info.subject, s.identity.object_id);
    assert_eq!(
        info.audiences,
        vec!["api://AzureADTokenExchange".to_string()]
    );
    // Event Hubs (HTTPS and AMQP), the API and the client: one assertion.
    assert_eq!(mi_requests(s) - before, 1);
}

async fn one_request_per_assertion(s: &Secretless) {
    let before = mi_requests(s);
    let credential = mi_credential(s, &s.owners[0].tenant.id);
    let scopes = [
        EVENTHUBS_SCOPE.to_string(),
        format!("{API_URI}/.default"),
        format!("api://{CLIENT}/.default"),
    ];
    let mut tasks = Vec::new();
    for i in 0..30 {
        let c = credential.clone();
        let scope = scopes[i % scopes.len()].clone();
        tasks.push(tokio::spawn(async move { c.token(&scope).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("token");
    }
    // Forced past the token cache: each scope's token dropped and asked
    // again, so each is a new exchange, and still no new assertion.
    for scope in &scopes {
        let token = credential.token(scope).await.unwrap();
        credential.invalidate(scope, &token);
        assert_ne!(
            credential.token(scope).await.unwrap().token.secret(),
            token.token.secret()
        );
    }
    assert_eq!(
        mi_requests(s) - before,
        1,
        "one assertion for 36 tokens over 3 scopes"
    );
}

async fn three_tenants(s: &Secretless) {
    assert_eq!(s.owners.len(), 3);
    let idp = s.world.sandbox.identity();
    let (mi_before, tls_before) = (mi_requests(s), idp.connections());
    let app = s
        .partner_app()
        .managed_identity(ManagedIdentity::ClientId(s.identity.client_id.clone()))
        .build()
        .unwrap();
    for owner in &s.owners {
        let credential = app.credential(&owner.tenant.id).unwrap();
        let token = credential.token(EVENTHUBS_SCOPE).await.unwrap();
        assert_eq!(tid(&token), owner.tenant.id, "each tenant its own token");
        let sender =
            EventHubSender::<serde_json::Value>::builder(&owner.namespace, HUB, credential.clone())
                .http_settings(app.http_settings().clone())
                .transport(Transport::Https)
                .endpoint(s.world.sandbox.eventhubs().https_endpoint().as_str())
                .open()
                .await
                .unwrap();
        sender
            .send(&serde_json::json!({"to": owner.tenant.id}))
            .await
            .unwrap();
    }
    assert_eq!(
        mi_requests(s) - mi_before,
        1,
        "one assertion for three tenants"
    );
    assert_eq!(app.assertion_fetches(), 1);
    let shared = idp.connections() - tls_before;
    assert_eq!(shared, 1, "one TLS connection to the IdP for three tenants");
    // Tokens never cross: each credential's cache holds its own tenant's.
    for owner in &s.owners {
        let credential = app.credential(&owner.tenant.id).unwrap();
        for scope in [EVENTHUBS_SCOPE.to_string(), format!("{API_URI}/.default")] {
            if scope != EVENTHUBS_SCOPE && owner.tenant.id != s.world.owner.id {
                continue; // the API lives in Contoso's tenant only
            }
            assert_eq!(
                tid(&credential.token(&scope).await.unwrap()),
                owner.tenant.id
            );
        }
        let events = s.world.sandbox.eventhubs().events(&owner.namespace, HUB);
        let to = serde_json::json!({"to": owner.tenant.id});
        assert!(events.iter().any(
            |e| serde_json::from_slice::<serde_json::Value>(&e.body).ok() == Some(to.clone())
        ));
    }
    // The same three tenants with a credential each, built apart: a pool
    // each, so a TLS connection each.
    let tls_before = idp.connections();
    for owner in &s.owners {
        let c = mi_credential(s, &owner.tenant.id);
        c.token(EVENTHUBS_SCOPE).await.unwrap();
    }
    assert_eq!(idp.connections() - tls_before, 3);
}

async fn from_env(s: &Secretless) {
    // CROSSTENANT_MANAGED_IDENTITY (set with IDENTITY_ENDPOINT in `main`)
    // names the identity by object id.
    let credential = CrossTenantCredential::builder()
        .from_env()
        .resource_tenant(&s.owners[0].tenant.id)
        .client_id(&s.app.app_id)
        .authority_host(s.world.sandbox.authority_host().as_str())
        .root_certificates_pem(s.world.sandbox.ca_pem())
        .build()
        .expect("builds from the environment");
    assert_eq!(credential.proof(), ProofKind::ManagedIdentity);
    let token = credential.token(EVENTHUBS_SCOPE).await.unwrap();
    assert_eq!(tid(&token), s.owners[0].tenant.id);
}

async fn refusals(s: &Secretless) {
    let owner = s.owners[0].tenant.id.clone();
    // An identity not assigned to this host: the endpoint refuses (400).
    let err = s
        .builder(&owner)
        .managed_identity(ManagedIdentity::ClientId(
            "99998888-aaaa-4bbb-8ccc-777766665555".into(),
        ))
        .build()
        .unwrap()
        .token(EVENTHUBS_SCOPE)
        .await
        .unwrap_err();
    let Some(FederationError::ManagedIdentityRefused { status, .. }) = err.as_federation() else {
        panic!("{err:?}")
    };
    assert_eq!(*status, Some(400));
    let remedy = err.remedy().unwrap();
    assert_eq!(remedy.party, Party::Partner);
    assert!(
        remedy.action.contains("assign the client_id=99998888"),
        "{remedy}"
    );

    // A resource id: azure_identity cannot send it to App Service's
    // endpoint; said before any request, with what to use instead.
    let before = mi_requests(s);
    let err = s
        .builder(&owner)
        .managed_identity(ManagedIdentity::ResourceId(s.identity.resource_id.clone()))
        .build()
        .unwrap()
        .token(EVENTHUBS_SCOPE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::ManagedIdentityRefused { status: None, .. })
        ),
        "{err:?}"
    );
    assert!(err
        .remedy()
        .unwrap()
        .action
        .contains("client_id= or object_id="));
    assert_eq!(mi_requests(s), before);

    // An identity the app has no federated credential for: Entra refuses
    // its subject (AADSTS700213), naming its object id.
    let err = s
        .builder(&owner)
        .managed_identity(ManagedIdentity::ObjectId(s.unfederated.object_id.clone()))
        .build()
        .unwrap()
        .token(EVENTHUBS_SCOPE)
        .await
        .unwrap_err();
    let Some(FederationError::NoMatchingCredential { mismatch, .. }) = err.as_federation() else {
        panic!("{err:?}")
    };
    assert_eq!(*mismatch, Mismatch::Subject);
    let remedy = err.remedy().unwrap();
    assert_eq!(remedy.party, Party::Partner);
    assert!(
        remedy.action.contains(&format!(
            "subject must be exactly {}",
            s.unfederated.object_id
        )),
        "{remedy}"
    );
    assert!(remedy.action.contains("resource owner has nothing to do"));
}

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many threads this process has (Linux), `None` where it cannot tell.
fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, Test)> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        *name == f.as_str()
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();

    // Every crate traces at TRACE into memory: after the tests, no log line
    // may hold the identity header or a JWT (an assertion or a token).
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let world = runtime.block_on(Secretless::start(2));

    // The environment, once, while this is the only thread (module docs).
    match threads() {
        Some(1) => {}
        Some(n) => panic!(
            "{n} threads before setting IDENTITY_ENDPOINT/IDENTITY_HEADER: something started a \
             thread, and changing the environment now could race with it"
        ),
        None => println!("note: cannot count threads here; relying on the current-thread runtime"),
    }
    std::env::set_var("IDENTITY_ENDPOINT", world.host.endpoint.as_str());
    std::env::set_var("IDENTITY_HEADER", world.host.identity_header());
    std::env::set_var(
        "CROSSTENANT_MANAGED_IDENTITY",
        format!("object_id={}", world.identity.object_id),
    );

    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(test(&world))
        }));
        match outcome {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !selected.is_empty() {
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        let name = "no_identity_header_assertion_or_token_in_trace_logs";
        if text.is_empty() {
            println!("test {name} ... FAILED (nothing was logged: the capture is broken)");
            failed.push(name);
        } else if text.contains(world.host.identity_header()) || text.contains("eyJ") {
            println!("test {name} ... FAILED");
            for line in text
                .lines()
                .filter(|l| l.contains(world.host.identity_header()) || l.contains("eyJ"))
            {
                println!("  leaked: {}", &line[..line.len().min(300)]);
            }
            failed.push(name);
        } else {
            println!("test {name} ... ok ({} bytes of TRACE logs)", text.len());
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        (selected.len() + usize::from(!selected.is_empty())) - failed.len(),
        failed.len(),
        TESTS.len() - selected.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
