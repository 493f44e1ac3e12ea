//! AMQP over TLS to the sandbox, as a partner reaches the real service on
//! port 5671: direct TLS, the sandbox's server certificate verified against
//! its CA, never with verification turned off.
//!
//! azure_core_amqp's TCP transport trusts the platform's store (through
//! rustls-platform-verifier), which reads `SSL_CERT_FILE`. This test lives in
//! its own binary with a single test so it can point `SSL_CERT_FILE` at the
//! sandbox CA before any runtime thread starts.
#![cfg(all(feature = "amqp", feature = "https"))]

use crosstenant::eventhubs::{EventHubSender, SendOptions, Transport};
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use crosstenant_sandbox::tls::SandboxCa;

#[path = "common/demo.rs"]
mod demo;
use demo::DemoCredential;

#[test]
fn amqp_over_tls_is_refused_until_the_sandbox_ca_is_trusted_then_delivers() {
    let ca = SandboxCa::generate().expect("CA");
    let dir = std::env::temp_dir().join(format!("crosstenant-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("sandbox-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // The only test in this process on a current-thread runtime: no other
    // thread reads the environment while it changes.
    std::env::remove_var("SSL_CERT_FILE");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let world = DemoWorld::start_with_ca(ca).await.unwrap();
        let endpoint = world.sandbox.eventhubs().amqps_endpoint();
        assert_eq!(endpoint.scheme(), "amqps");

        // Not trusted yet: the handshake fails, nothing is sent.
        let untrusted = async {
            let sender = EventHubSender::<serde_json::Value>::builder(
                &world.namespace,
                HUB,
                world.credential()?,
            )
            .transport(Transport::Amqp)
            .endpoint(endpoint.as_str())
            .open()
            .await?;
            sender.send(&serde_json::json!({"n": 0})).await
        }
        .await;
        assert!(untrusted.is_err(), "an unknown CA must not be trusted");
        assert_eq!(world.sandbox.eventhubs().event_count(), 0);

        std::env::set_var("SSL_CERT_FILE", &ca_file);
        let sender = EventHubSender::<serde_json::Value>::builder(
            &world.namespace,
            HUB,
            world.credential().unwrap(),
        )
        .transport(Transport::Amqp)
        .endpoint(endpoint.as_str())
        .open()
        .await
        .unwrap();
        sender
            .send_batch(
                &[
                    serde_json::json!({"over": "tls"}),
                    serde_json::json!({"n": 2}),
                ],
                SendOptions::partition_key("tls"),
            )
            .await
            .unwrap();
        let events = world.sandbox.eventhubs().events(&world.namespace, HUB);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].partition_key.as_deref(), Some("tls"));

        // azure_messaging_eventhubs' own ProducerClient over the same
        // TLS endpoint closes: the sandbox answers its detach, end and
        // close handshake as a namespace does.
        let producer = azure_messaging_eventhubs::ProducerClient::builder()
            .with_transport(azure_core_amqp::AmqpTransport::Tcp)
            .with_custom_endpoint(endpoint.as_str().trim_end_matches('/').to_string())
            .open(&world.namespace, HUB, world.credential().unwrap())
            .await
            .expect("producer opens");
        producer
            .get_eventhub_properties()
            .await
            .expect("properties");
        tokio::time::timeout(std::time::Duration::from_secs(30), producer.close())
            .await
            .expect("close within 30 s")
            .expect("close");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
