//! The buffered sender against one batch at a time, on the sandbox's hub
//! with 4 partitions, over AMQP and HTTPS: the same 1 KB events, spread
//! over the 4 partitions by partition id, either sent as 100-event
//! `send_raw` calls one after the other, or enqueued on a `BufferedSender`
//! and closed (every event reported). Every event carries a message id on
//! both sides. Rounds alternate so a noisy
//! neighbour hits both; the median round counts.
//!
//! Plain bounded timing rather than criterion's open-ended iteration: the
//! sandbox's AMQP listener stalls after a few thousand transfers on one
//! session (see BENCHMARKS.md).
//!
//! Run: `env -u RUST_BACKTRACE cargo bench -p crosstenant --bench buffered`.

mod common;

use common::{result, DemoCredential};
use crosstenant::eventhubs::{
    BufferedOptions, EnqueueOptions, Event, EventHubSender, SendOptions, Transport,
};
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use std::time::{Duration, Instant};

/// Events per round.
const EVENTS: usize = 4_000;
/// Events per `send_raw` call of the one-at-a-time side.
const BATCH: usize = 100;
const PARTITIONS: usize = 4;
const ROUNDS: usize = 3;
const EVENT_BYTES: usize = 1024;

fn body() -> Vec<u8> {
    (0..EVENT_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A bench never hangs: a round that takes 120 s names itself and stops it.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over 120 s"))
}

async fn sender(world: &DemoWorld, transport: Transport) -> EventHubSender {
    let eh = world.sandbox.eventhubs();
    let endpoint = match transport {
        Transport::Https => eh.https_endpoint(),
        _ => eh.amqp_endpoint(),
    };
    let credential = world.credential().unwrap();
    EventHubSender::builder(&world.namespace, HUB, credential.clone())
        .http_settings(credential.http_settings().clone())
        .transport(transport)
        .endpoint(endpoint.as_str().trim_end_matches('/'))
        .open()
        .await
        .expect("sender opens")
}

/// One batch at a time, cycling over the partitions.
async fn one_at_a_time(sender: &EventHubSender, body: &[u8]) -> Duration {
    let start = Instant::now();
    for call in 0..EVENTS / BATCH {
        // Message ids on both sides: the buffered sender assigns one to
        // every event (the reports need it), and over HTTPS it costs a
        // `BrokerProperties` object per event.
        let events = (0..BATCH)
            .map(|i| Event::new(body.to_vec()).with_message_id(format!("one-{call}-{i}")))
            .collect();
        let partition = (call % PARTITIONS).to_string();
        sender
            .send_raw(events, SendOptions::partition_id(partition))
            .await
            .expect("send");
    }
    start.elapsed()
}

/// Everything through a buffered sender, until every event is reported.
async fn buffered(sender: &EventHubSender, body: &[u8]) -> Duration {
    let start = Instant::now();
    let (b, mut reports) = sender
        .buffered(BufferedOptions::default())
        .expect("buffered");
    let counter = tokio::spawn(async move {
        let mut accepted = 0;
        while let Some(r) = reports.recv().await {
            assert!(r.accepted(), "{:?}", r.outcome);
            accepted += 1;
        }
        accepted
    });
    for i in 0..EVENTS {
        let partition = (i % PARTITIONS).to_string();
        b.enqueue_raw(
            Event::new(body.to_vec()),
            EnqueueOptions::partition_id(partition),
        )
        .await
        .expect("enqueue");
    }
    b.close().await;
    drop(b);
    assert_eq!(counter.await.unwrap(), EVENTS);
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn compare(rt: &tokio::runtime::Runtime, world: &DemoWorld, transport: Transport) {
    let s = rt.block_on(sender(world, transport));
    let body = body();
    let (mut single, mut buf) = (Vec::new(), Vec::new());
    rt.block_on(async {
        // Warm: links attach (one per partition) and CBS runs.
        for p in 0..PARTITIONS {
            s.send_raw(
                vec![Event::new(body.clone())],
                SendOptions::partition_id(p.to_string()),
            )
            .await
            .expect("warm");
        }
        for _ in 0..ROUNDS {
            single.push(bounded("one at a time", one_at_a_time(&s, &body)).await);
            buf.push(bounded("buffered", buffered(&s, &body)).await);
        }
    });
    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    let (o, b) = (rate(median(single)), rate(median(buf)));
    result(
        &format!("buffered_{transport:?}").to_lowercase(),
        format!(
            "{EVENTS} x 1 KB over {PARTITIONS} partitions, median of {ROUNDS} rounds: one \
             {BATCH}-event batch at a time = {o:.0} events/s, buffered = {b:.0} events/s, \
             buffered/one-at-a-time = {:.2} (goal >= 3)",
            b / o
        ),
    );
    rt.block_on(async {
        let _ = s.close().await;
    });
}

fn main() {
    let rt = common::runtime();
    let world = common::world(&rt);
    compare(&rt, &world, Transport::Amqp);
    compare(&rt, &world, Transport::Https);
}
