//! AMQP over WebSockets to the sandbox, as a partner behind a firewall that
//! opens only port 443 reaches the real service:
//! `wss://{namespace}/$servicebus/websocket`, the sandbox's server
//! certificate verified against its CA, never with verification turned off.
//!
//! azure_core_amqp tunnels AMQP through fe2o3-amqp-ws, whose rustls
//! connector trusts the platform's roots (rustls-native-certs, which reads
//! `SSL_CERT_FILE`). This test lives in its own binary with a single test so
//! it can point `SSL_CERT_FILE` at the sandbox CA before any runtime thread
//! starts.
#![cfg(all(feature = "amqp", feature = "https"))]

use crosstenant::eventhubs::{EventHubSender, SendOptions, Transport};
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use crosstenant_sandbox::eventhubs::Protocol;
use crosstenant_sandbox::tls::SandboxCa;

#[path = "common/demo.rs"]
mod demo;
use demo::DemoCredential;

#[test]
fn amqp_over_websockets_is_refused_until_the_sandbox_ca_is_trusted_then_delivers() {
    let ca = SandboxCa::generate().expect("CA");
    let dir = std::env::temp_dir().join(format!("crosstenant-wss-{}", std::process::id()));
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
        let eh = world.sandbox.eventhubs();
        let endpoint = eh.websocket_endpoint();
        assert_eq!(endpoint.scheme(), "wss");
        assert_eq!(endpoint.path(), "/$servicebus/websocket");

        let open = || async {
            EventHubSender::<serde_json::Value>::builder(&world.namespace, HUB, world.credential()?)
                .transport(Transport::AmqpWebSockets)
                .endpoint(endpoint.as_str())
                .open()
                .await
        };

        // Not trusted yet: the TLS handshake under the WebSocket fails.
        let untrusted = async { open().await?.send(&serde_json::json!({"n": 0})).await }.await;
        assert!(untrusted.is_err(), "an unknown CA must not be trusted");
        assert_eq!(eh.event_count(), 0);

        std::env::set_var("SSL_CERT_FILE", &ca_file);
        let sender = open().await.unwrap();
        sender
            .send_batch(
                &[
                    serde_json::json!({"over": "websockets"}),
                    serde_json::json!({"n": 2}),
                ],
                SendOptions::partition_key("wss"),
            )
            .await
            .unwrap();
        let events = eh.events(&world.namespace, HUB);
        assert_eq!(events.len(), 2);
        assert!(events
            .iter()
            .all(|e| e.partition_key.as_deref() == Some("wss") && e.protocol == Protocol::Amqp));
        assert_eq!(events[0].body_text(), Some(r#"{"over":"websockets"}"#));

        // The buffered sender over WebSockets: azure_messaging_eventhubs'
        // BufferedProducerClient has no transport option, so this transport
        // keeps the lanes engine on the one-batch sender, with the same
        // promises: every event reported, accepted == stored, key order.
        let (buffered, mut reports) = sender
            .buffered(crosstenant::eventhubs::BufferedOptions::default())
            .await
            .unwrap();
        assert!(format!("{buffered:?}").contains("lanes"), "{buffered:?}");
        for n in 0..200 {
            buffered
                .enqueue(
                    &serde_json::json!({ "buffered": n }),
                    crosstenant::eventhubs::EnqueueOptions::partition_key("wss-buffered")
                        .message_id(format!("wss-{n}")),
                )
                .await
                .unwrap();
        }
        buffered.close().await;
        let mut reported = Vec::new();
        while let Some(r) = reports.recv().await {
            assert!(r.accepted(), "{:?}", r.outcome);
            reported.push(r.message_id);
        }
        let expected: Vec<String> = (0..200).map(|n| format!("wss-{n}")).collect();
        assert_eq!(reported, expected);
        let stored: Vec<String> = eh
            .events(&world.namespace, HUB)
            .into_iter()
            .filter(|e| e.partition_key.as_deref() == Some("wss-buffered"))
            .filter_map(|e| e.message_id)
            .collect();
        assert_eq!(stored, expected, "stored once each, in order");

        // azure_messaging_eventhubs' own ProducerClient over the same
        // WebSocket endpoint closes: the sandbox answers its detach, end and
        // close handshake as a namespace does.
        let producer = azure_messaging_eventhubs::ProducerClient::builder()
            .with_transport(azure_core_amqp::AmqpTransport::WebSocket)
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
