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
}
