//! Send typed events to the resource owner's Event Hub over AMQP (TLS, port
//! 5671), with a token from the resource owner's tenant.
//!
//! On the embedded sandbox (no network needed):
//!
//! ```sh
//! cargo run --example send_amqp
//! ```
//!
//! Against a live namespace, set `EVENTHUBS_NAMESPACE`
//! (`contoso.servicebus.windows.net`), `EVENTHUBS_HUB`, and the credential's
//! `AZURE_TENANT_ID` (the **resource owner's** tenant), `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET` (or `AZURE_CLIENT_CERTIFICATE_PATH`,
//! `AZURE_FEDERATED_TOKEN_FILE`). Optionally `EVENTHUBS_AMQP_ENDPOINT` for a
//! proxy (`amqps://proxy:5671`).

use crosstenant::eventhubs::{EventHubSender, SendOptions, Transport};
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use crosstenant_sandbox::tls::SandboxCa;

#[path = "../tests/common/demo.rs"]
mod demo;
use crosstenant::CrossTenantCredential;
use demo::DemoCredential;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Serialize)]
struct Reading {
    device: String,
    celsius: f64,
}

fn main() -> ExitCode {
    // RUST_LOG=debug shows what the SDK and azure_messaging_eventhubs do.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let live = std::env::var("EVENTHUBS_NAMESPACE").ok();
    // The sandbox's CA must be in the trust store AMQP over TLS reads
    // (SSL_CERT_FILE) before any thread starts, so it is made here, first.
    let sandbox_ca = if live.is_none() {
        match trust_a_new_sandbox_ca() {
            Ok(ca) => Some(ca),
            Err(e) => {
                eprintln!("could not prepare the sandbox CA: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(sandbox_ca)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("send failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trust_a_new_sandbox_ca() -> Result<SandboxCa, Box<dyn std::error::Error>> {
    let ca = SandboxCa::generate()?;
    let path =
        std::env::temp_dir().join(format!("crosstenant-sandbox-ca-{}.pem", std::process::id()));
    std::fs::write(&path, ca.pem())?;
    std::env::set_var("SSL_CERT_FILE", &path);
    Ok(ca)
}

async fn run(sandbox_ca: Option<SandboxCa>) -> Result<(), Box<dyn std::error::Error>> {
    let (_world, namespace, hub, credential, endpoint) = match sandbox_ca {
        Some(ca) => {
            let world = DemoWorld::start_with_ca(ca).await?;
            let endpoint = world.sandbox.eventhubs().amqps_endpoint().to_string();
            let (ns, cred) = (world.namespace.clone(), world.credential()?);
            println!("sandbox namespace {ns}, AMQP over TLS at {endpoint}");
            (Some(world), ns, HUB.to_string(), cred, Some(endpoint))
        }
        None => (
            None,
            std::env::var("EVENTHUBS_NAMESPACE")?,
            std::env::var("EVENTHUBS_HUB")?,
            CrossTenantCredential::from_env()?,
            std::env::var("EVENTHUBS_AMQP_ENDPOINT").ok(),
        ),
    };
    let mut builder =
        EventHubSender::<Reading>::builder(&namespace, &hub, credential).transport(Transport::Amqp);
    if let Some(e) = endpoint {
        builder = builder.endpoint(e);
    }
    let sender = builder.open().await?;
    let readings: Vec<Reading> = (0..10)
        .map(|i| Reading {
            device: "device-7".into(),
            celsius: 20.0 + f64::from(i) / 10.0,
        })
        .collect();
    sender
        .send_batch(&readings, SendOptions::partition_key("device-7"))
        .await?;
    println!("10 readings accepted by {namespace}/{hub} over AMQP");
    if let Some(world) = &_world {
        let stored = world.sandbox.eventhubs().events(&namespace, &hub).len();
        println!("the sandbox stored {stored} events");
        if stored != 10 {
            return Err(format!("expected 10 stored events, found {stored}").into());
        }
    }
    sender.close().await?;
    Ok(())
}
