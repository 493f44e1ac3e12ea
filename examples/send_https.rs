//! Send typed events to the resource owner's Event Hub over the HTTPS REST
//! API (port 443), with a token from the resource owner's tenant: one event
//! with `BrokerProperties`, then a batch.
//!
//! On the embedded sandbox (no network needed):
//!
//! ```sh
//! cargo run --example send_https
//! ```
//!
//! Against a live namespace, set `EVENTHUBS_NAMESPACE`, `EVENTHUBS_HUB` and
//! the credential's `AZURE_*` variables (`AZURE_TENANT_ID` is the **resource
//! owner's** tenant).

use crosstenant::eventhubs::{EventHubSender, SendOptions, Transport};
use crosstenant_sandbox::demo::{DemoWorld, HUB};

#[path = "../tests/common/demo.rs"]
mod demo;
use crosstenant::CrossTenantCredential;
use demo::DemoCredential;
use serde::Serialize;

#[derive(Serialize)]
struct Reading {
    device: String,
    celsius: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = match std::env::var("EVENTHUBS_NAMESPACE") {
        Ok(_) => None,
        Err(_) => Some(DemoWorld::start().await?),
    };
    let (namespace, hub, credential, endpoint) = match &world {
        Some(w) => (
            w.namespace.clone(),
            HUB.to_string(),
            w.credential()?,
            Some(w.sandbox.eventhubs().https_endpoint().to_string()),
        ),
        None => (
            std::env::var("EVENTHUBS_NAMESPACE")?,
            std::env::var("EVENTHUBS_HUB")?,
            CrossTenantCredential::from_env()?,
            std::env::var("EVENTHUBS_HTTPS_ENDPOINT").ok(),
        ),
    };
    // HTTPS trusts the roots it is handed: the credential's (the sandbox CA
    // on the sandbox).
    let http = credential.http_settings().clone();
    let mut builder = EventHubSender::<Reading>::builder(&namespace, &hub, credential)
        .http_settings(http)
        .transport(Transport::Https);
    if let Some(e) = endpoint {
        builder = builder.endpoint(e);
    }
    let sender = builder.open().await?;
    let one = Reading {
        device: "device-7".into(),
        celsius: 21.5,
    };
    sender.send(&one).await?;
    println!("1 reading: 201 Created");
    let many: Vec<Reading> = (0..100)
        .map(|i| Reading {
            device: format!("device-{}", i % 5),
            celsius: 20.0 + f64::from(i) / 100.0,
        })
        .collect();
    sender
        .send_batch(
            &many,
            SendOptions::partition_key("fleet-a").property("site", "plant-3"),
        )
        .await?;
    println!("100 readings in one batch request: 201 Created");
    if let Some(w) = &world {
        let stored = w.sandbox.eventhubs().events(&namespace, &hub).len();
        println!("the sandbox stored {stored} events");
        if stored != 101 {
            return Err(format!("expected 101 stored events, found {stored}").into());
        }
    }
    Ok(())
}
