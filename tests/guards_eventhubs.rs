//! Guards of the Event Hubs sender found by mutation testing
//! (docs/MUTANTS.md): each test here kills a mutant that survived the rest
//! of the suite.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{eventhubs_namespace, sender, world};
use crosstenant::eventhubs::{Event, SendOptions, Transport};
use crosstenant::Error;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// An HTTPS sender on the sandbox's endpoint with the given operation
/// timeout and message size limit.
async fn https_sender(
    w: &common::World,
    ns: &str,
    timeout: Duration,
    max_message_size: u64,
) -> Result<crosstenant::eventhubs::EventHubSender<serde_json::Value>, Error> {
    let credential = w.credential();
    let http = credential.http_settings().clone();
    crosstenant::eventhubs::EventHubSender::<serde_json::Value>::builder(
        ns,
        "telemetry",
        credential,
    )
    .http_settings(http)
    .transport(Transport::Https)
    .endpoint(w.sandbox.eventhubs().https_endpoint().to_string())
    .operation_timeout(timeout)
    .max_message_size(max_message_size)
    .open()
    .await
}

/// A partition key is 1 to 128 characters without control characters (the
/// Event Hubs limit; over HTTPS it travels in the `BrokerProperties`
/// header, where CR/LF would inject headers). A bad key is refused naming
/// `partition_key`, before any request; a key of exactly 128 characters is
/// sent. Kills the `||`/`>` mutants of `SendOptions::check`'s key check.
#[tokio::test]
async fn a_bad_partition_key_is_refused_before_any_request_and_128_characters_are_sent() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let s = sender::<serde_json::Value>(&w, &ns, w.credential(), Transport::Https)
        .await
        .unwrap();
    let requests = || {
        w.sandbox
            .eventhubs()
            .stats()
            .https_requests
            .load(Ordering::Relaxed)
    };
    let too_long = "k".repeat(129);
    for bad in ["", "tenant-1\r\nInjected: yes", too_long.as_str()] {
        let err = s
            .send_raw(vec![Event::new("x")], SendOptions::partition_key(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(i) if i.to_string().contains("partition_key")),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(requests(), 0, "refused before any request");
    let longest = "k".repeat(128);
    s.send_raw(vec![Event::new("x")], SendOptions::partition_key(&longest))
        .await
        .unwrap();
    assert_eq!(requests(), 1);
}

/// One event over HTTPS goes in the single-event form, its partition key
/// and message id in the `BrokerProperties` header. The event must land on
/// the key's partition with its key, as a batch would. Kills `delete ! in
/// HttpsBackend::send`, which sent that header only when it was empty.
#[tokio::test]
async fn a_single_event_over_https_keeps_its_partition_key() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let s = sender::<serde_json::Value>(&w, &ns, w.credential(), Transport::Https)
        .await
        .unwrap();
    s.send_raw(
        vec![Event::new("reading").with_message_id("m-1")],
        SendOptions::partition_key("device-7"),
    )
    .await
    .unwrap();
    let stored = w.sandbox.eventhubs().events(&ns, "telemetry");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].partition_key.as_deref(), Some("device-7"));
    assert_eq!(
        stored[0].partition,
        crosstenant_sandbox::eventhubs::partition_for_key("device-7", 4)
    );
}

/// The size limit is inclusive: an event of exactly `max_message_size`
/// bytes is sent (one byte more is refused before any request, see
/// tests/eventhubs.rs). Kills `replace > with >= in HttpsBackend::send`.
#[tokio::test]
async fn a_single_event_of_exactly_the_size_limit_is_sent() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let s = https_sender(&w, &ns, Duration::from_secs(60), 2048)
        .await
        .unwrap();
    s.send_raw(vec![Event::new(vec![b'a'; 2048])], SendOptions::default())
        .await
        .unwrap();
    let err = s
        .send_raw(vec![Event::new(vec![b'a'; 2049])], SendOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2049"), "{err}");
    assert_eq!(w.sandbox.eventhubs().events(&ns, "telemetry").len(), 1);
}

/// Over HTTPS a batch is one JSON array, `[item,item,…]`, and the size limit
/// applies to the whole request body and is inclusive, as for one event.
/// With `max_message_size(2048)` an item is `{"Body":"…"}` (11 bytes + the
/// body): two events whose bodies sum to 2023 bytes make a body of exactly
/// 2048 bytes and go in one request; one byte more and they go in two. An
/// item that alone fills a batch to exactly the limit (`[item]`, a 2035-byte
/// body) is sent; one byte more is refused naming the event and the size the
/// batch would have had, before any request. Kills the `>`/`+` mutants of
/// `HttpsBackend::plan_batches`' two size checks and its accepted count.
#[tokio::test]
async fn a_batch_of_exactly_the_size_limit_is_one_request_and_one_byte_more_is_two() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let s = https_sender(&w, &ns, Duration::from_secs(60), 2048)
        .await
        .unwrap();
    let requests = || {
        w.sandbox
            .eventhubs()
            .stats()
            .https_requests
            .load(Ordering::Relaxed)
    };
    let two = |a: usize, b: usize| vec![Event::new(vec![b'a'; a]), Event::new(vec![b'b'; b])];
    let stored = || w.sandbox.eventhubs().events(&ns, "telemetry").len();

    // 1 + (11 + 1000) + 1 + (11 + 1023) + 1 = 2048: one request.
    let before = requests();
    s.send_raw(two(1000, 1023), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        requests() - before,
        1,
        "a body of exactly the limit is one request"
    );
    assert_eq!(stored(), 2);

    // One byte more: two requests, each event stored once.
    let before = requests();
    s.send_raw(two(1000, 1024), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(requests() - before, 2, "one byte over the limit is split");
    assert_eq!(stored(), 4);

    // An event that alone fills a batch to the limit: `[` + 2046 + `]`.
    let before = requests();
    s.send_raw(two(2035, 1), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(requests() - before, 2);
    assert_eq!(stored(), 6);

    // One byte more cannot be sent in any batch: refused before any request,
    // naming the event (index 0) and 2049 bytes.
    let before = requests();
    let err = s
        .send_raw(two(2036, 1), SendOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::EventHubs(e) if matches!(
                **e,
                crosstenant::eventhubs::EventHubsError::TooLarge { index: 0, size: 2049, limit: 2048 }
            )
        ),
        "{err}"
    );
    assert_eq!(requests(), before, "nothing is sent");
    assert_eq!(stored(), 6, "nothing is half-sent");
}

/// In an HTTPS batch each event carries its own application properties
/// (`UserProperties`) and message id (`BrokerProperties.MessageId`), and an
/// event without properties carries none. Kills `delete !` in
/// `HttpsBackend::plan_batches`, which sent the properties only when there
/// were none.
#[tokio::test]
async fn each_event_of_an_https_batch_keeps_its_own_properties() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let s = sender::<serde_json::Value>(&w, &ns, w.credential(), Transport::Https)
        .await
        .unwrap();
    s.send_raw(
        vec![
            Event::new("with")
                .with_property("site", "lyon")
                .with_message_id("m-with"),
            Event::new("without").with_message_id("m-without"),
        ],
        SendOptions::default(),
    )
    .await
    .unwrap();
    let stored = w.sandbox.eventhubs().events(&ns, "telemetry");
    let by_body = |b: &str| {
        stored
            .iter()
            .find(|e| e.body_text() == Some(b))
            .unwrap_or_else(|| panic!("{b} stored"))
    };
    let with = by_body("with");
    assert_eq!(
        with.properties.get("site").map(String::as_str),
        Some("lyon")
    );
    assert_eq!(with.message_id.as_deref(), Some("m-with"));
    let without = by_body("without");
    assert!(without.properties.is_empty(), "{:?}", without.properties);
    assert_eq!(without.message_id.as_deref(), Some("m-without"));
}

/// The builder's lower bounds are inclusive: a 1 s operation timeout and a
/// 1,024-byte message size are accepted, just below is refused naming the
/// setting. Kills the `<` → `<=` mutants of `EventHubSenderBuilder::open`.
#[tokio::test]
async fn the_smallest_operation_timeout_and_message_size_are_accepted() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let second = Duration::from_secs(1);
    https_sender(&w, &ns, second, 1024)
        .await
        .expect("1 s and 1024 bytes");
    let err = https_sender(&w, &ns, second - Duration::from_millis(1), 1024)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("operation_timeout"), "{err}");
    let err = https_sender(&w, &ns, second, 1023).await.unwrap_err();
    assert!(err.to_string().contains("max_message_size"), "{err}");
}
