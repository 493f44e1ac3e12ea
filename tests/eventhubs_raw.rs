//! The sandbox namespace speaks the protocol azure_messaging_eventhubs
//! speaks: its own ProducerClient, with our credential, sends to it.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};

#[tokio::test]
async fn raw_producer_client_sends_through_cbs_to_the_sandbox() {
    let w = common::world().await;
    let ns = common::eventhubs_namespace(&w);
    let producer = ProducerClient::builder()
        .with_custom_endpoint(w.sandbox.eventhubs().amqp_endpoint().to_string())
        .open(&ns, "telemetry", w.credential())
        .await
        .expect("producer opens");
    let batch = producer
        .create_batch(Some(EventDataBatchOptions {
            partition_key: Some("device-7".into()),
            ..Default::default()
        }))
        .await
        .expect("batch");
    for i in 0..10 {
        assert!(batch
            .try_add_event_data(format!("event {i}"), None)
            .unwrap());
    }
    producer.send_batch(batch, None).await.expect("sent");
    producer
        .send_event("single", None)
        .await
        .expect("sent single");
    let events = w.sandbox.eventhubs().events(&ns, "telemetry");
    assert_eq!(events.len(), 11);
    assert_eq!(events[0].body_text(), Some("event 0"));
    assert!(events[..10]
        .iter()
        .all(|e| e.partition == events[0].partition));
    assert_eq!(events[0].partition_key.as_deref(), Some("device-7"));
    assert!(w.sandbox.eventhubs().put_tokens() >= 1);
    let props = producer
        .get_eventhub_properties()
        .await
        .expect("properties");
    assert_eq!(props.partition_ids.len(), 4);
    tokio::time::timeout(std::time::Duration::from_secs(30), producer.close())
        .await
        .expect("close within 30 s")
        .expect("close");
}

/// azure_messaging_eventhubs' own `BufferedProducerClient` sends by
/// partition, reports every batch, and closes: the sandbox answers the
/// detach, end and close handshake as a namespace does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_buffered_producer_client_sends_flushes_and_closes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let w = common::world().await;
    let ns = common::eventhubs_namespace(&w);
    let accepted = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (a, f) = (accepted.clone(), failed.clone());
    let client = azure_messaging_eventhubs::BufferedProducerClient::builder()
        .with_custom_endpoint(w.sandbox.eventhubs().amqp_endpoint().to_string())
        .with_on_send_succeeded(move |ctx| {
            a.fetch_add(ctx.events.len(), Ordering::Relaxed);
            async {}
        })
        .with_on_send_failed(move |ctx| {
            f.fetch_add(ctx.events.len(), Ordering::Relaxed);
            async {}
        })
        .open(&ns, "telemetry", w.credential())
        .await
        .expect("buffered producer opens");
    for i in 0..40 {
        let options = azure_messaging_eventhubs::EnqueueEventOptions {
            partition_id: Some((i % 4).to_string()),
            ..Default::default()
        };
        client
            .enqueue_event(format!("event {i}"), Some(options))
            .await
            .expect("enqueue");
    }
    tokio::time::timeout(std::time::Duration::from_secs(30), client.flush())
        .await
        .expect("flush within 30 s")
        .expect("flush");
    assert_eq!(accepted.load(Ordering::Relaxed), 40);
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert_eq!(w.sandbox.eventhubs().events(&ns, "telemetry").len(), 40);
    tokio::time::timeout(std::time::Duration::from_secs(30), client.close())
        .await
        .expect("close within 30 s")
        .expect("close");
}
