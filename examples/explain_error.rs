//! Explaining an error: the classic mistake, and who must fix it.
//!
//! The partner asks for a token at its **own** home tenant instead of the
//! resource owner's. The token is fine in itself, so nothing fails until the
//! resource owner's Event Hub refuses it (`401 SubCode=40100`). The error's
//! [`remedy`](crosstenant::Error::remedy) says who must act and what to do.
//!
//! On the embedded sandbox (no network needed):
//!
//! ```sh
//! cargo run --example explain_error
//! ```
//!
//! Against live tenants, set `EVENTHUBS_NAMESPACE`, `EVENTHUBS_HUB` and the
//! credential's `AZURE_*` variables, with `AZURE_TENANT_ID` set to the
//! partner's **home** tenant to reproduce the mistake.

use crosstenant::eventhubs::{EventHubSender, Transport};
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::demo::{DemoWorld, HUB};

// Only `credential_at` is needed here: the mistake is the point.
#[allow(dead_code)]
#[path = "../tests/common/demo.rs"]
mod demo;
use demo::DemoCredential;

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
            // The mistake: the partner's own tenant as the resource tenant.
            w.credential_at(&w.partner.id)?,
            Some(w.sandbox.eventhubs().https_endpoint().to_string()),
        ),
        None => (
            std::env::var("EVENTHUBS_NAMESPACE")?,
            std::env::var("EVENTHUBS_HUB")?,
            CrossTenantCredential::from_env()?,
            std::env::var("EVENTHUBS_HTTPS_ENDPOINT").ok(),
        ),
    };
    println!(
        "Token asked at tenant {} for app {}",
        credential.resource_tenant(),
        credential.client_id()
    );
    let http = credential.http_settings().clone();
    let mut builder = EventHubSender::<serde_json::Value>::builder(&namespace, &hub, credential)
        .http_settings(http)
        .transport(Transport::Https);
    if let Some(e) = endpoint {
        builder = builder.endpoint(e);
    }
    let sender = builder.open().await?;
    match sender
        .send(&serde_json::json!({"device": "device-7"}))
        .await
    {
        Ok(()) => println!("Sent: the tenant asked was the namespace's after all."),
        Err(e) => {
            println!("The send failed:\n  {e}\n");
            match e.remedy() {
                Some(remedy) => {
                    println!("Who must act: {}", remedy.party);
                    println!("What to do:   {}", remedy.action);
                }
                None => println!("No remedy known; the message above says all there is."),
            }
        }
    }
    Ok(())
}
