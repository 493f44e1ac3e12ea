//! The buffered sender against the sandbox: every enqueued event gets one
//! delivery report; what is reported accepted is exactly what the sandbox
//! stored (by message id), under faults, on both transports; events of one
//! partition key are stored in enqueue order; back-pressure, flush, close
//! and abort keep their promises.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{eventhubs_namespace, world, World};
use crosstenant::eventhubs::{
    BufferedOptions, BufferedSender, DeliveryReport, DeliveryReports, EnqueueOptions, Event,
    EventHubSender, EventHubsError, Transport,
};
use crosstenant::{CrossTenantCredential, HttpSettings};
use crosstenant_sandbox::faults::{Fault, Service};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const HUB: &str = "telemetry";

/// Fails the test instead of hanging CI if a scenario stalls.
async fn within<F: Future>(what: &str, body: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(180), body)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 180 s"))
}

/// Fast, bounded HTTPS retries (3, waits of 10 to 50 ms), sandbox CA trusted.
fn fast_http(w: &World) -> HttpSettings {
    let mut http = HttpSettings::default();
    http.add_root_certificates_pem(w.sandbox.ca_pem()).unwrap();
    http.set_retry(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(10),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::milliseconds(50),
    });
    http
}

fn fast_credential(w: &World) -> Arc<CrossTenantCredential> {
    w.builder(&w.owner.id)
        .http_settings(fast_http(w))
        .client_secret(&w.secret)
        .build()
        .unwrap()
}

/// A raw sender to the sandbox over `transport`; AMQP with a 2 s operation
/// timeout, so a force-detached link costs seconds (see tests/faults.rs).
async fn raw_sender(w: &World, ns: &str, transport: Transport) -> EventHubSender {
    let endpoint = match transport {
        Transport::Https => w.sandbox.eventhubs().https_endpoint().to_string(),
        _ => w.sandbox.eventhubs().amqp_endpoint().to_string(),
    };
    opened(|| {
        EventHubSender::builder(ns, HUB, fast_credential(w))
            .http_settings(fast_http(w))
            .transport(transport)
            .endpoint(endpoint.clone())
            .operation_timeout(Duration::from_secs(2))
            .open()
    })
    .await
}

/// `sender`'s buffered sender with `options`.
async fn open_buffered(
    sender: &EventHubSender,
    options: BufferedOptions,
) -> (BufferedSender, DeliveryReports) {
    opened(|| sender.buffered(options.clone())).await
}

/// What `open` opens. Opening is not what these tests time, yet over AMQP
/// it runs under the sender's 2 s operation timeout, which a stress run at
/// a load average of 12 on 2 cores outlasted: a timed-out open is tried
/// again, up to three times in all.
async fn opened<T, F, Fut>(open: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, crosstenant::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match open().await {
            Ok(opened) => return opened,
            Err(e)
                if tries < 3
                    && matches!(e.as_eventhubs(), Some(EventHubsError::Timeout { .. })) =>
            {
                eprintln!("opening timed out ({e}); trying again");
            }
            Err(e) => panic!("did not open in {tries} tries: {e}"),
        }
    }
}

/// Event `i` of run `tag`: message id `{tag}-{i}`.
fn event(tag: &str, i: usize) -> Event {
    Event::new(format!("{tag}-{i}:{}", "x".repeat(100)))
        .with_content_type("text/plain")
        .with_message_id(format!("{tag}-{i}"))
}

/// Reads reports until the stream ends (the sender closed or aborted).
async fn drain(mut reports: DeliveryReports) -> Vec<DeliveryReport> {
    let mut all = Vec::new();
    while let Some(r) = reports.recv().await {
        all.push(r);
    }
    all
}

/// Stored message ids starting with `tag`, in stored order per partition,
/// with their partition key.
fn stored(w: &World, ns: &str, tag: &str) -> Vec<(String, Option<String>, u32, u64)> {
    w.sandbox
        .eventhubs()
        .events(ns, HUB)
        .into_iter()
        .filter_map(|e| {
            let id = e.message_id?;
            id.starts_with(tag)
                .then_some((id, e.partition_key, e.partition, e.sequence_number))
        })
        .collect()
}

/// The promises, by message id: one report per enqueued event; reported
/// accepted == stored (except failures whose outcome is unknown, which may
/// be either); stored once; every failure carries a remedy; per-key order.
fn reconcile(
    w: &World,
    ns: &str,
    tag: &str,
    enqueued: &BTreeSet<String>,
    reports: &[DeliveryReport],
) -> (usize, usize) {
    let mut seen = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for r in reports {
        assert!(
            seen.insert(r.message_id.clone()),
            "{tag}: {} reported twice",
            r.message_id
        );
        match &r.outcome {
            Ok(()) => {
                accepted.insert(r.message_id.clone());
            }
            Err(e) => {
                assert!(e.remedy().is_some(), "{tag}: a failure without remedy: {e}");
                let unsure = e
                    .as_eventhubs()
                    .is_some_and(EventHubsError::outcome_unknown);
                if unsure {
                    unknown.insert(r.message_id.clone());
                } else {
                    failed.insert(r.message_id.clone());
                }
            }
        }
    }
    assert_eq!(
        &seen, enqueued,
        "{tag}: reports do not match what was enqueued"
    );
    let stored = stored(w, ns, tag);
    let unique: BTreeSet<String> = stored.iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "{tag}: an event was stored twice"
    );
    let lost: Vec<_> = accepted.difference(&unique).collect();
    let phantom: Vec<_> = unique
        .iter()
        .filter(|id| !accepted.contains(*id) && !unknown.contains(*id))
        .collect();
    assert!(
        lost.is_empty() && phantom.is_empty(),
        "{tag}: {} reported accepted but not stored: {lost:?}; {} stored but not reported \
         accepted: {phantom:?}",
        lost.len(),
        phantom.len()
    );
    // Per-key order: in each partition, a key's events are stored with
    // rising enqueue numbers (unrouted events promise no order).
    // (key, partition) -> [(sequence number, enqueue number)]
    type Lanes = BTreeMap<(Option<String>, u32), Vec<(u64, usize)>>;
    let mut by_key = Lanes::new();
    for (id, key, partition, seq) in &stored {
        if key.is_none() {
            continue; // no order is promised without a key
        }
        let n: usize = id.rsplit('-').next().unwrap().parse().unwrap();
        by_key
            .entry((key.clone(), *partition))
            .or_default()
            .push((*seq, n));
    }
    for ((key, partition), mut events) in by_key {
        events.sort();
        let order: Vec<usize> = events.iter().map(|e| e.1).collect();
        assert!(
            order.windows(2).all(|p| p[0] < p[1]),
            "{tag}: key {key:?} in partition {partition} stored out of order: {order:?}"
        );
    }
    (accepted.len(), failed.len() + unknown.len())
}

/// 4,000 events over 32 keys (all 4 partitions), enqueued in four phases:
/// clean; under a run of 503s; under dropped connections and refused
/// tokens; clean again. Then close, and reconcile.
async fn thousands_under_faults(transport: Transport, data: Service, token: Service) {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let sender = raw_sender(&w, &ns, transport).await;
    let (buffered, reports) = open_buffered(
        &sender,
        BufferedOptions::default()
            .max_buffered_events(500)
            .max_wait(Duration::from_millis(20)),
    )
    .await;
    // Over AMQP it is azure_messaging_eventhubs' BufferedProducerClient.
    let engine = format!("{buffered:?}");
    assert_eq!(
        engine.contains("BufferedProducerClient"),
        transport == Transport::Amqp,
        "{engine}"
    );
    let collector = tokio::spawn(drain(reports));
    let faults = w.sandbox.faults();
    let tag = format!("buf-{transport:?}");
    let mut enqueued = BTreeSet::new();
    for i in 0..4000 {
        match i {
            1000 => faults.inject(
                data,
                Fault::Status {
                    status: 503,
                    retry_after: None,
                },
                40,
            ),
            2000 => {
                faults.inject(data, Fault::Drop, 3);
                faults.inject(token, Fault::RefuseToken, 3);
            }
            _ => {}
        }
        // Every tenth event unrouted (the service picks its partition).
        let options = match i % 10 {
            9 => EnqueueOptions::default(),
            _ => EnqueueOptions::partition_key(format!("device-{}", i % 32)),
        };
        let id = buffered.enqueue_raw(event(&tag, i), options).await.unwrap();
        assert_eq!(id, format!("{tag}-{i}"));
        enqueued.insert(id);
    }
    buffered.close().await;
    assert_eq!(buffered.buffered_events(), 0);
    let reports = collector.await.unwrap();
    assert!(
        faults.fired() > 0,
        "{tag}: no fault fired; the test proved nothing"
    );
    let (accepted, failed) = reconcile(&w, &ns, &tag, &enqueued, &reports);
    // Failures by kind, for the record (each already checked for a remedy).
    let mut kinds = BTreeMap::<String, usize>::new();
    for r in &reports {
        if let Err(e) = &r.outcome {
            let debug = format!("{e:?}");
            let kind = debug
                .split([' ', '{', '('])
                .nth(1)
                .unwrap_or("?")
                .to_string();
            *kinds.entry(kind).or_default() += 1;
        }
    }
    eprintln!("{tag}: failures by kind: {kinds:?}");
    assert!(accepted > 2000, "{tag}: only {accepted} accepted");
    let partitions: BTreeSet<u32> = stored(&w, &ns, &tag).iter().map(|s| s.2).collect();
    assert_eq!(
        partitions.len(),
        4,
        "{tag}: partitions used: {partitions:?}"
    );
    eprintln!(
        "{tag}: {accepted} accepted, {failed} failed, {} faults fired",
        faults.fired()
    );
    // The sender still works after close for a new buffered sender.
    let err = buffered
        .enqueue_raw(event(&tag, 9999), EnqueueOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_under_faults_over_https_reconcile() {
    within(
        "https",
        thousands_under_faults(
            Transport::Https,
            Service::EventHubsHttps,
            Service::EventHubsHttps,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_under_faults_over_amqp_reconcile() {
    within(
        "amqp",
        thousands_under_faults(
            Transport::Amqp,
            Service::EventHubsAmqp,
            Service::EventHubsCbs,
        ),
    )
    .await;
}

/// A buffered sender that holds events (a long `max_wait`) until flushed.
async fn holding(
    w: &World,
    ns: &str,
    transport: Transport,
    options: BufferedOptions,
) -> (BufferedSender, DeliveryReports) {
    let sender = raw_sender(w, ns, transport).await;
    open_buffered(&sender, options.max_wait(Duration::from_secs(600))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_enqueue_wait_and_try_enqueue_fail_over_https() {
    back_pressure(Transport::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_enqueue_wait_and_try_enqueue_fail_over_amqp() {
    back_pressure(Transport::Amqp).await;
}

async fn back_pressure(transport: Transport) {
    within("back-pressure", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let (buffered, reports) = holding(
            &w,
            &ns,
            transport,
            BufferedOptions::default().max_buffered_events(10),
        )
        .await;
        for i in 0..10 {
            buffered
                .try_enqueue_raw(event("bp", i), EnqueueOptions::partition_key("k"))
                .await
                .unwrap();
        }
        let err = buffered
            .try_enqueue_raw(event("bp", 10), EnqueueOptions::partition_key("k"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.as_eventhubs(),
                Some(EventHubsError::BufferFull {
                    max_events: 10,
                    buffered_events: 10,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("limits 10 events"), "{err}");
        // A waiting enqueue stays waiting until room is made.
        let waiter = {
            let b = buffered.clone();
            tokio::spawn(async move {
                b.enqueue_raw(event("bp", 10), EnqueueOptions::partition_key("k"))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "enqueue did not wait for room");
        buffered.flush().await;
        assert_eq!(waiter.await.unwrap().unwrap(), "bp-10");
        buffered.close().await;
        let all = drain(reports).await;
        let enqueued: BTreeSet<String> = (0..11).map(|i| format!("bp-{i}")).collect();
        let (accepted, failed) = reconcile(&w, &ns, "bp-", &enqueued, &all);
        assert_eq!((accepted, failed), (11, 0));

        // The byte limit: three events of about 270 bytes (estimated) fit in
        // 1024 bytes, not four.
        let (bytes, _reports) = holding(
            &w,
            &ns,
            transport,
            BufferedOptions::default().max_buffered_bytes(1024),
        )
        .await;
        let big = |i: usize| Event::new("y".repeat(200)).with_message_id(format!("by-{i}"));
        for i in 0..3 {
            bytes
                .try_enqueue_raw(big(i), EnqueueOptions::default())
                .await
                .unwrap();
        }
        let err = bytes
            .try_enqueue_raw(big(3), EnqueueOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1024 bytes"), "{err}");
        bytes.abort().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_close_deliver_everything_and_end_the_reports_over_https() {
    flush_and_close(Transport::Https).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_close_deliver_everything_and_end_the_reports_over_amqp() {
    flush_and_close(Transport::Amqp).await;
}

async fn flush_and_close(transport: Transport) {
    within("flush/close", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let (buffered, mut reports) = holding(&w, &ns, transport, BufferedOptions::default()).await;
        let mut enqueued = BTreeSet::new();
        for i in 0..50 {
            enqueued.insert(
                buffered
                    .enqueue_raw(event("fc", i), EnqueueOptions::partition_id("2"))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            stored(&w, &ns, "fc").len(),
            0,
            "sent before max_wait or flush"
        );
        buffered.flush().await;
        assert_eq!(
            stored(&w, &ns, "fc").len(),
            50,
            "flush returned before every outcome"
        );
        let mut first = Vec::new();
        for _ in 0..50 {
            first.push(reports.recv().await.unwrap());
        }
        assert!(first
            .iter()
            .all(|r| r.accepted() && r.partition_id.as_deref() == Some("2")));
        for i in 50..80 {
            // Typed events (JSON) through a clone.
            let typed = buffered.clone();
            let value = serde_json::json!({ "n": i });
            enqueued.insert(
                typed
                    .enqueue(
                        &value,
                        EnqueueOptions::default().message_id(format!("fc-{i}")),
                    )
                    .await
                    .unwrap(),
            );
        }
        buffered.close().await;
        let mut all = first;
        all.extend(drain(reports).await);
        let (accepted, failed) = reconcile(&w, &ns, "fc-", &enqueued, &all);
        assert_eq!((accepted, failed), (80, 0));
        assert!(stored(&w, &ns, "fc").iter().take(50).all(|s| s.2 == 2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_reports_every_dropped_event_as_not_sent_over_https() {
    abort(Transport::Https).await;
}

/// azure_messaging_eventhubs' `abort` drops its buffer with only a logged
/// count; the ledger around it reports each event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_reports_every_dropped_event_as_aborted_over_amqp() {
    abort(Transport::Amqp).await;
}

async fn abort(transport: Transport) {
    within("abort", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let (buffered, reports) = holding(&w, &ns, transport, BufferedOptions::default()).await;
        let mut enqueued = BTreeSet::new();
        for i in 0..40 {
            enqueued.insert(
                buffered
                    .enqueue_raw(
                        event("ab", i),
                        EnqueueOptions::partition_key(format!("k{}", i % 4)),
                    )
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(buffered.abort().await, 40);
        let all = drain(reports).await;
        assert_eq!(all.len(), 40);
        for r in &all {
            let err = r.outcome.as_ref().unwrap_err();
            let e = err.as_eventhubs();
            match transport {
                // Held in the lanes: never handed to the service.
                Transport::Https => {
                    assert!(matches!(e, Some(EventHubsError::NotSent { .. })), "{err:?}")
                }
                // The client may cancel a batch in flight: outcome unknown.
                _ => assert!(
                    matches!(e, Some(EventHubsError::Aborted { .. }))
                        && e.is_some_and(EventHubsError::outcome_unknown),
                    "{err:?}"
                ),
            }
            assert!(err.to_string().contains("aborted"), "{err}");
        }
        reconcile(&w, &ns, "ab-", &enqueued, &all);
        assert!(stored(&w, &ns, "ab").is_empty());
        assert_eq!(buffered.buffered_events(), 0);
        let err = buffered
            .try_enqueue_raw(event("ab", 99), EnqueueOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err.as_eventhubs(), Some(EventHubsError::NotSent { .. })),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_error() {
    within("bad input", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let sender = raw_sender(&w, &ns, Transport::Https).await;
        let err = sender
            .buffered(BufferedOptions::default().max_buffered_events(0))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("max_buffered_events"), "{err}");
        let (buffered, _r) = open_buffered(&sender, BufferedOptions::default()).await;
        let both = EnqueueOptions {
            partition_key: Some("k".into()),
            partition_id: Some("0".into()),
            message_id: None,
        };
        assert!(buffered
            .try_enqueue_raw(event("bad", 0), both)
            .await
            .is_err());
        let err = buffered
            .try_enqueue_raw(
                event("bad", 1),
                EnqueueOptions::default().message_id("a\nb"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("message_id"), "{err}");
        let err = buffered
            .enqueue_batch(
                &[serde_json::json!(2)],
                EnqueueOptions::default().message_id("x"),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("message id"), "{err}");
        buffered.close().await;
    })
    .await;
}

/// A typed sender opened from the builder: `enqueue_batch` assigns ids,
/// every event is reported accepted and stored once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_from_the_builder_are_reported_by_assigned_ids() {
    within("typed", async {
        #[derive(serde::Serialize)]
        struct Reading {
            n: usize,
        }
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let (buffered, reports) = EventHubSender::<Reading>::builder(&ns, HUB, fast_credential(&w))
            .http_settings(fast_http(&w))
            .transport(Transport::Https)
            .endpoint(w.sandbox.eventhubs().https_endpoint().to_string())
            .open_buffered(BufferedOptions::default())
            .await
            .unwrap();
        let readings: Vec<Reading> = (0..300).map(|n| Reading { n }).collect();
        let ids = buffered
            .enqueue_batch(&readings, EnqueueOptions::partition_key("meter-7"))
            .await
            .unwrap();
        assert_eq!(ids.len(), 300);
        buffered.close().await;
        let all = drain(reports).await;
        let reported: Vec<&str> = all.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(
            reported,
            ids.iter().map(String::as_str).collect::<Vec<_>>(),
            "one key reports in order"
        );
        assert!(all
            .iter()
            .all(|r| r.accepted() && r.partition_key.as_deref() == Some("meter-7")));
        let stored: Vec<(String, Vec<u8>)> = w
            .sandbox
            .eventhubs()
            .events(&ns, HUB)
            .into_iter()
            .map(|e| (e.message_id.unwrap_or_default(), e.body))
            .collect();
        assert_eq!(stored.len(), 300);
        for (i, (id, body)) in stored.iter().enumerate() {
            assert_eq!(id, &ids[i]);
            assert_eq!(body, format!("{{\"n\":{i}}}").as_bytes());
        }
    })
    .await;
}

/// Tokens that expire during a buffered AMQP run (3 s tokens, a 7 s run).
/// azure_messaging_eventhubs' client renews its CBS token 6 minutes before
/// expiry, in time for every Entra token (they live at least 10 minutes) but
/// not for the sandbox's 3 s ones: what it sends on an expired token is
/// refused with 40106. Each such event is reported with that sub-code and
/// its remedy, and nothing is lost, stored twice or reported accepted
/// without being stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_during_a_buffered_amqp_run_are_reported_and_never_lost() {
    within("expiry", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        w.sandbox.identity().set_token_lifetime(3);
        let sender = raw_sender(&w, &ns, Transport::Amqp).await;
        let (buffered, reports) = open_buffered(
            &sender,
            BufferedOptions::default().max_wait(Duration::from_millis(20)),
        )
        .await;
        let collector = tokio::spawn(drain(reports));
        let mut enqueued = BTreeSet::new();
        let started = std::time::Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(7) {
            let key = EnqueueOptions::partition_key(format!("exp-{}", i % 8));
            enqueued.insert(buffered.enqueue_raw(event("exp", i), key).await.unwrap());
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        buffered.close().await;
        let all = collector.await.unwrap();
        let (accepted, failed) = reconcile(&w, &ns, "exp-", &enqueued, &all);
        assert!(accepted > 0, "nothing accepted before the first expiry");
        assert!(
            failed > 0,
            "no event met an expired token; the test proved nothing"
        );
        for r in all.iter().filter(|r| !r.accepted()) {
            let err = r.outcome.as_ref().unwrap_err();
            assert!(
                matches!(
                    err.as_eventhubs(),
                    Some(EventHubsError::TokenRejected { subcode: 40106, .. })
                ),
                "{err:?}"
            );
        }
        eprintln!("3 s tokens: {accepted} accepted, {failed} refused with 40106, reported");
    })
    .await;
}
