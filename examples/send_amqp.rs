//! Send typed events to the resource owner's Event Hub over AMQP 1.0 (TLS,
//! port 5671), with a token from the resource owner's tenant.
//!
//! ```sh
//! cargo run --example send_amqp
//! ```
//!
//! With `EVENTHUBS_NAMESPACE` set (`contoso.servicebus.windows.net`), it
//! sends to `EVENTHUBS_HUB` there with the credential from the `AZURE_*`
//! variables (`AZURE_TENANT_ID` is the **resource owner's** tenant), through
//! `EVENTHUBS_AMQP_ENDPOINT` if set (a proxy, `amqps://proxy:5671`).
//! Otherwise it sends to the demo world's hub.

#[path = "../tests/common/demo.rs"]
mod demo;

use crosstenant::eventhubs::{EventHubSender, SendOptions, Transport};
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use crosstenant_sandbox::tls::SandboxCa;
use demo::DemoCredential;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Serialize)]
struct Reading {
    device: String,
    celsius: f64,
}

fn main() -> ExitCode {
    let ca_file =
        std::env::temp_dir().join(format!("crosstenant-amqp-ca-{}.pem", std::process::id()));
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        // AMQP over TLS trusts the platform's store, which reads SSL_CERT_FILE:
        // on the demo world its CA goes there before any thread starts.
        let ca = match std::env::var_os("EVENTHUBS_NAMESPACE") {
            Some(_) => None,
            None => {
                let ca = SandboxCa::generate()?;
                std::fs::write(&ca_file, ca.pem())?;
                std::env::set_var("SSL_CERT_FILE", &ca_file);
                Some(ca)
            }
        };
        tokio::runtime::Runtime::new()?.block_on(run(ca))
    })();
    let _ = std::fs::remove_file(&ca_file);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("send failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(ca: Option<SandboxCa>) -> Result<(), Box<dyn std::error::Error>> {
    let world = match ca {
        Some(ca) => Some(DemoWorld::start_with_ca(ca).await?),
        None => None,
    };
    let (namespace, hub, credential, endpoint) = match &world {
        Some(w) => (
            w.namespace.clone(),
            HUB.to_string(),
            w.credential()?,
            Some(w.sandbox.eventhubs().amqps_endpoint().to_string()),
        ),
        None => (
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
    // One partition key: one partition, so the readings stay in order.
    sender
        .send_batch(&readings, SendOptions::partition_key("device-7"))
        .await?;
    println!("10 readings accepted by {namespace}/{hub} over AMQP");
    sender.close().await?;
    if let Some(w) = &world {
        let stored = w.sandbox.eventhubs().events(&namespace, &hub).len();
        if stored != 10 {
            return Err(format!("expected 10 stored events, found {stored}").into());
        }
        println!("the sandbox stored {stored} events");
    }
    Ok(())
}
