//! The whole cross-tenant story on the embedded sandbox, step by step.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Starts the sandbox's demo world in-process (two tenants, no network
//! needed), then walks through it and shows each outcome with a mark: the token from the resource owner's tenant, sends to
//! their Event Hub over AMQP (TLS) and HTTPS, the partner's home-tenant token
//! refused with `401 SubCode=40100`, and an aggregator call on behalf of a
//! client with two tokens. Exits non-zero if any expected outcome did not
//! happen.

#[path = "../tests/common/demo.rs"]
mod demo;

use crosstenant::aggregator::AggregatorClient;
use crosstenant::credential::entra::Party;
use crosstenant::eventhubs::{EventHubSender, EventHubsError, SendOptions, Transport};
use crosstenant::{Error, TokenClaims};
use crosstenant_sandbox::demo::{DemoWorld, API_URI, CLIENT, EVENTHUBS_SCOPE, HUB};
use crosstenant_sandbox::tls::SandboxCa;
use demo::DemoCredential;
use serde::Serialize;
use std::process::ExitCode;

struct Report {
    failures: usize,
}

impl Report {
    fn step(&self, title: &str) {
        println!("\n== {title}");
    }
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("  [ok]   {what}");
        } else {
            self.failures += 1;
            println!("  [FAIL] {what}");
        }
    }
}

#[derive(Serialize)]
struct Reading {
    device: &'static str,
    celsius: f64,
}

fn main() -> ExitCode {
    // AMQP over TLS trusts the platform store, which reads SSL_CERT_FILE: the
    // sandbox CA goes there before any thread starts. (HTTPS clients get it
    // as an extra root through the credential instead.)
    let ca = match SandboxCa::generate() {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("could not generate the sandbox CA: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ca_file = std::env::temp_dir().join(format!(
        "crosstenant-quickstart-ca-{}.pem",
        std::process::id()
    ));
    if let Err(e) = std::fs::write(&ca_file, ca.pem()) {
        eprintln!("could not write {}: {e}", ca_file.display());
        return ExitCode::FAILURE;
    }
    std::env::set_var("SSL_CERT_FILE", &ca_file);
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(report(ca)),
        Err(e) => {
            eprintln!("could not start the runtime: {e}");
            ExitCode::FAILURE
        }
    };
    let _ = std::fs::remove_file(&ca_file);
    code
}

async fn report(ca: SandboxCa) -> ExitCode {
    match run(ca).await {
        Ok(0) => {
            println!("\nEvery expected outcome happened.");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("\n{n} expected outcome(s) did not happen.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nquickstart could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(ca: SandboxCa) -> Result<usize, Box<dyn std::error::Error>> {
    let mut report = Report { failures: 0 };
    report.step("Starting the sandbox: two tenants, offline, real HTTPS and JWTs");
    // The demo world: Fabrikam (the partner) and Contoso (the resource
    // owner), set up as the steps below tell.
    let world = DemoWorld::start_with_ca(ca).await?;
    let (partner, owner, app) = (&world.partner, &world.owner, &world.app);
    let d = world.sandbox.directory();
    println!("  identity provider: {}", world.sandbox.authority_host());
    println!(
        "  partner tenant:    {} (fabrikam.onmicrosoft.com)",
        partner.id
    );
    println!(
        "  resource tenant:   {} (contoso.onmicrosoft.com)",
        owner.id
    );

    report.step("The partner registers a multi-tenant app and hands over its client id");
    println!(
        "  client id: {} (the secret stays with the partner)",
        app.app_id
    );

    report.step("Before a resource owner acts: no service principal in their tenant");
    // Northwind has not onboarded the app yet (Contoso has, below).
    d.add_tenant("Northwind (not onboarded)", &["northwind.onmicrosoft.com"]);
    let early = world.credential_at("northwind.onmicrosoft.com")?;
    match early.token(EVENTHUBS_SCOPE).await {
        Err(Error::Entra(e)) => {
            report.check(
                e.code() == Some(7000229)
                    && e.hint().map(|h| h.party) == Some(Party::ResourceOwner),
                "refused with AADSTS7000229, explained as the resource owner's step",
            );
            println!("         {e}");
        }
        other => report.check(false, &format!("expected AADSTS7000229, got {other:?}")),
    }

    report.step("The resource owner creates a service principal for that client id");
    let sp = d
        .service_principal(&owner.id, &app.app_id)
        .ok_or("the demo world has no service principal in Contoso")?;
    println!(
        "  service principal {} in tenant {}",
        sp.object_id, owner.id
    );

    report.step("The partner app asks the RESOURCE OWNER's authority for a token");
    let credential = world.credential()?;
    let token = credential.token(EVENTHUBS_SCOPE).await?;
    let claims = TokenClaims::decode(token.token.secret())?;
    println!(
        "  claims: tid={} appid={} aud={} expires_on={} (the token itself is never printed)",
        claims.tenant_id().unwrap_or("-"),
        claims.app_id().unwrap_or("-"),
        claims.audience().unwrap_or("-"),
        token.expires_on
    );
    report.check(
        claims.tenant_id() == Some(owner.id.as_str()),
        "tid is the resource owner's tenant",
    );
    report.check(
        claims.app_id() == Some(app.app_id.as_str()),
        "appid is the partner's app",
    );
    let verified =
        world
            .sandbox
            .issuer()
            .verify(token.token.secret(), &["https://eventhubs.azure.net"], 0);
    report.check(
        verified.is_ok(),
        "the token verifies against the resource tenant's JWKS",
    );

    report.step("A token from the partner's HOME tenant is not one the resource owner accepts");
    let home = world
        .credential_at(&partner.id)?
        .token(EVENTHUBS_SCOPE)
        .await?;
    let home_claims = TokenClaims::decode(home.token.secret())?;
    report.check(
        home_claims.tenant_id() == Some(partner.id.as_str()),
        &format!(
            "home-tenant token carries tid={} (services of tenant {} answer it with 401 SubCode=40100)",
            home_claims.tenant_id().unwrap_or("-"),
            owner.id
        ),
    );

    report.step(
        "The resource owner grants the app \"Azure Event Hubs Data Sender\" on their namespace",
    );
    let eh = world.sandbox.eventhubs();
    let namespace = &world.namespace;
    println!("  namespace {namespace} (tenant {}), hub {HUB}", owner.id);

    let readings = [
        Reading {
            device: "device-7",
            celsius: 21.5,
        },
        Reading {
            device: "device-7",
            celsius: 21.7,
        },
    ];
    for (transport, endpoint) in [
        (Transport::Amqp, eh.amqps_endpoint().to_string()),
        (Transport::Https, eh.https_endpoint().to_string()),
    ] {
        report.step(&format!(
            "The partner sends to the resource owner's Event Hub over {transport:?}"
        ));
        let sender = EventHubSender::<Reading>::builder(namespace, HUB, credential.clone())
            .http_settings(credential.http_settings().clone())
            .transport(transport)
            .endpoint(&endpoint)
            .open()
            .await?;
        let before = eh.events(namespace, HUB).len();
        let sent = sender
            .send_batch(&readings, SendOptions::partition_key("device-7"))
            .await;
        let stored = eh.events(namespace, HUB).len() - before;
        if let Err(e) = &sent {
            println!("         {e}");
        }
        report.check(
            sent.is_ok() && stored == 2,
            &format!(
                "2 readings accepted ({}) and stored by the namespace",
                match transport {
                    Transport::Https => "HTTP 201 Created",
                    _ => "AMQP accepted, after CBS put-token",
                }
            ),
        );

        let home_sender =
            EventHubSender::<Reading>::builder(namespace, HUB, world.credential_at(&partner.id)?)
                .http_settings(credential.http_settings().clone())
                .transport(transport)
                .endpoint(&endpoint)
                .open()
                .await?;
        match home_sender.send(&readings[0]).await {
            Err(Error::EventHubs(e)) if matches!(*e, EventHubsError::Unauthorized { .. }) => {
                report.check(
                    e.to_string().contains("40100"),
                    "the home-tenant token is refused: 401 SubCode=40100, explained",
                );
                println!("         {e}");
            }
            other => report.check(false, &format!("expected 40100, got {other:?}")),
        }
    }

    report.step(&format!(
        "An aggregator calls the resource owner's API on behalf of {CLIENT}"
    ));
    let api = world.sandbox.api();
    println!(
        "  {API_URI} grants the app API.Read + API.Write; {CLIENT} grants it {CLIENT}.Read only"
    );
    let aggregator = AggregatorClient::builder(api.url(), API_URI, credential.clone())
        .http_settings(credential.http_settings().clone())
        .build()?;
    let read = aggregator
        .on_behalf_of(CLIENT)?
        .get::<serde_json::Value>("data")
        .await;
    report.check(
        read.is_ok(),
        "read with two tokens (Authorization + X-Secondary-Token): allowed",
    );
    let forbid = |r: &Result<serde_json::Value, Error>| match r {
        Err(Error::Aggregator(e)) if e.status() == Some(403) => {
            Some(e.forbid_reason().unwrap_or("").to_string())
        }
        _ => None,
    };
    let bare = aggregator
        .as_client(CLIENT)?
        .get::<serde_json::Value>("data")
        .await;
    report.check(
        forbid(&bare).is_some(),
        "the same read without the secondary token: 403",
    );
    if let Some(reason) = forbid(&bare) {
        println!("         ForbidReason: {reason}");
    }
    let write = aggregator
        .on_behalf_of(CLIENT)?
        .put::<_, serde_json::Value>("data", &serde_json::json!({"items": ["x"]}))
        .await;
    report.check(
        forbid(&write).is_some(),
        &format!("a write with {CLIENT}'s read-only grant: 403"),
    );
    if let Some(reason) = forbid(&write) {
        println!("         ForbidReason: {reason}");
    }

    Ok(report.failures)
}
