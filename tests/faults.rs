//! Reliability under faults: the sandbox's services misbehave on purpose and
//! the SDK must keep its promises.
//!
//! - Event Hubs, on both transports: what the SDK reports as sent (every `Ok`
//!   call, plus the first `accepted` events of a `NotAccepted` error) is
//!   exactly what the sandbox stored, by message id: nothing lost, nothing
//!   phantom, nothing stored twice; events not accepted are reported to the
//!   caller; the same sender works for the next call.
//! - Identity: throttling, 5xx and slow answers are retried with bounded
//!   backoff, given up on with a clear error after the budget, and never
//!   hammer the token endpoint (requests are counted); a signing-key
//!   rotation is survived.
//! - Aggregator API: 5xx and 401 mid-run; every call ends in a result.
//!
//! Every test body runs under a deadline so a stall fails the test instead of
//! hanging CI.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{eventhubs_namespace, world, World, EVENTHUBS_SCOPE};
use crosstenant::eventhubs::{Event, EventHubSender, EventHubsError, SendOptions, Transport};
use crosstenant::{CrossTenantCredential, Error, HttpSettings};
use crosstenant_sandbox::faults::{Fault, Service};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HUB: &str = "telemetry";

/// AMQP stalls, as found by this suite. Most were fe2o3-amqp 0.16.2's settle
/// race: its sender records a delivery as unsettled only after handing the
/// transfer to the session, so the in-process sandbox's settlement could
/// arrive first and be dropped. The workspace builds fe2o3-amqp with that
/// fixed (vendor/README.md), and the sandbox settles after a 10 ms stand-in
/// for the round trip (`EventHubsSandbox::set_settle_delay`). What remains: when the namespace
/// force-detaches a link (`Fault::Drop`) with a transfer in flight, the
/// client never hears of that transfer again, and the call ends at the
/// sender's operation timeout (`EventHubSenderBuilder::operation_timeout`,
/// 60 s by default) as a transient `NotAccepted`, with nothing lost or
/// phantom. The test of it sets a 2 s timeout so it runs in CI.
pub const AMQP_STALL: () = ();
/// Small enough that a dozen 1 KB events need several service batches, so a
/// fault can land in the middle of one call.
const SMALL_LIMIT: u64 = 4096;
/// The AMQP operation timeout of the stall test: short, so CI runs it.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The AMQP operation timeout of every other test here: far below the
/// default 60 s, so a stall still ends within the test's deadline, and
/// long enough for a fresh connection's attach (TLS, a token from the
/// identity provider, CBS put-token) on a 2-core machine under a load
/// average of 12 to 17. 2 s was not: a whole-suite stress run timed out an
/// attach in the rotation test that way, with nothing stuck.
const LOADED_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails the test instead of hanging CI if a scenario stalls (see the AMQP
/// operation deadline in `src/eventhubs/amqp.rs`).
async fn within<F: Future>(what: &str, body: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), body)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 120 s"))
}

fn status(status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: None,
    }
}

/// A fault that does nothing: queued ahead of real faults so they hit the
/// second operation (the second batch of a call) rather than the first.
fn pass() -> Fault {
    Fault::Delay(Duration::ZERO)
}

/// Fast, bounded retries for HTTPS (3 retries, waits of 10 to 50 ms), with
/// the sandbox CA trusted.
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

async fn small_batch_sender(w: &World, ns: &str, transport: Transport) -> EventHubSender {
    let endpoint = match transport {
        Transport::Https => w.sandbox.eventhubs().https_endpoint().to_string(),
        _ => w.sandbox.eventhubs().amqp_endpoint().to_string(),
    };
    EventHubSender::builder(ns, HUB, fast_credential(w))
        .http_settings(fast_http(w))
        .transport(transport)
        .endpoint(endpoint)
        .max_message_size(SMALL_LIMIT)
        .open()
        .await
        .unwrap()
}

/// An AMQP sender like [`small_batch_sender`]'s with an operation timeout
/// of seconds ([`STALL_TIMEOUT`] or [`LOADED_TIMEOUT`]), so a
/// force-detached link costs seconds, not a minute.
///
/// Opening is not what these tests time, and it runs under the same
/// timeout: a 2 s open timed out in a stress run at a load average of 12 on
/// 2 cores. A timed-out open is tried again, up to three times in all.
async fn amqp_sender_timing_out_after(w: &World, ns: &str, timeout: Duration) -> EventHubSender {
    let mut tries = 0;
    loop {
        tries += 1;
        let opened = EventHubSender::builder(ns, HUB, fast_credential(w))
            .transport(Transport::Amqp)
            .endpoint(w.sandbox.eventhubs().amqp_endpoint().to_string())
            .max_message_size(SMALL_LIMIT)
            .operation_timeout(timeout)
            .open()
            .await;
        match opened {
            Ok(sender) => return sender,
            Err(e)
                if tries < 3
                    && matches!(e.as_eventhubs(), Some(EventHubsError::Timeout { .. })) =>
            {
                eprintln!("opening timed out ({e}); trying again");
            }
            Err(e) => panic!("the AMQP sender did not open in {tries} tries: {e}"),
        }
    }
}

/// `n` events of about 1 KB with message ids `{tag}-{i}`.
fn events(tag: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(format!("{tag}-{i}:{}", "x".repeat(1000)))
                .with_content_type("text/plain")
                .with_message_id(format!("{tag}-{i}"))
        })
        .collect()
}

/// What the SDK told the caller, by message id.
#[derive(Debug, Default)]
struct Ledger {
    reported_sent: BTreeSet<String>,
    reported_not_sent: BTreeSet<String>,
    /// Reported not accepted by an error whose `outcome_unknown()` is true
    /// (an operation timeout): the service may or may not have stored them.
    reported_unknown: BTreeSet<String>,
    calls: usize,
    failed_calls: usize,
}

impl Ledger {
    /// Records one call's outcome: an `Ok` reports every event sent; an
    /// Event Hubs error reports the range it names as not accepted (all
    /// events unless it is `NotAccepted`); any other error, none sent.
    fn record(&mut self, batch: &[Event], result: &Result<(), Error>) {
        self.calls += 1;
        let ids = batch.iter().map(|e| e.message_id.clone().unwrap());
        let not_accepted = match result {
            Ok(()) => 0..0,
            Err(Error::EventHubs(e)) => e.not_accepted(batch.len()),
            Err(_) => 0..batch.len(),
        };
        if result.is_err() {
            self.failed_calls += 1;
            assert!(
                !not_accepted.is_empty(),
                "a failed call names no event as not accepted: {result:?}"
            );
        }
        let unknown = matches!(result, Err(Error::EventHubs(e)) if e.outcome_unknown());
        for (i, id) in ids.enumerate() {
            if not_accepted.contains(&i) && unknown {
                self.reported_unknown.insert(id);
            } else if not_accepted.contains(&i) {
                self.reported_not_sent.insert(id);
            } else {
                self.reported_sent.insert(id);
            }
        }
    }

    /// Sends `batch` through `sender` and records the outcome.
    async fn send(&mut self, sender: &EventHubSender, batch: Vec<Event>) -> Result<(), Error> {
        let result = sender.send_raw(batch.clone(), SendOptions::default()).await;
        self.record(&batch, &result);
        result
    }
}

/// The promise: reported sent == stored, by message id, each stored once,
/// and nothing reported as not sent was stored. Only events whose id starts
/// with `tag` are compared.
fn reconcile(w: &World, ns: &str, tag: &str, ledger: &Ledger) {
    let stored: Vec<String> = w
        .sandbox
        .eventhubs()
        .events(ns, HUB)
        .into_iter()
        .filter_map(|e| e.message_id)
        .filter(|id| id.starts_with(tag))
        .collect();
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        stored.len(),
        "{tag}: an event was stored twice"
    );
    let lost: Vec<_> = ledger.reported_sent.difference(&unique).collect();
    // Events the SDK said it could not confirm may be stored or not; any
    // other stored event must have been reported sent.
    let phantom: Vec<_> = unique
        .difference(&ledger.reported_sent)
        .filter(|id| !ledger.reported_unknown.contains(*id))
        .collect();
    assert!(
        lost.is_empty() && phantom.is_empty(),
        "{tag}: {} lost (reported sent, not stored): {lost:?}; {} phantom (stored, not \
         reported sent): {phantom:?}",
        lost.len(),
        phantom.len()
    );
    assert!(ledger
        .reported_not_sent
        .iter()
        .all(|id| !unique.contains(id)));
}

/// One fault scenario on one transport, in three calls of 12 events (about
/// four service batches each):
/// 1. `fault` queued `transient` times behind one harmless operation: the
///    SDK's retries absorb it and the call succeeds;
/// 2. `fault` on every operation after the first: the call fails part-way
///    and says which events were not accepted;
/// 3. no fault: the same sender works again.
///
/// After each call, the ledger is reconciled with the store.
async fn mid_batch_scenario(
    transport: Transport,
    service: Service,
    fault: Fault,
    transient: usize,
) -> EventHubsError {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    let sender = small_batch_sender(&w, &ns, transport).await;
    let faults = w.sandbox.faults();
    let tag = format!("{transport:?}-{fault:?}");
    let mut ledger = Ledger::default();

    // 1. Transient: retried, every event lands once.
    faults.inject(service, pass(), 1);
    faults.inject(service, fault.clone(), transient);
    let result = ledger.send(&sender, events(&format!("{tag}-a"), 12)).await;
    assert!(
        result.is_ok(),
        "{tag}: transient fault not absorbed: {result:?}"
    );
    assert_eq!(faults.fired(), 1 + transient as u64, "{tag}: faults fired");
    reconcile(&w, &ns, &tag, &ledger);

    // 2. Persistent after the first operation: reported part-way.
    faults.inject(service, pass(), 1);
    faults.inject_randomly(service, fault.clone(), 1.0);
    let fired_before = faults.fired();
    let started = Instant::now();
    let err = ledger
        .send(&sender, events(&format!("{tag}-b"), 12))
        .await
        .expect_err("a persistent fault fails the call");
    faults.clear();
    let attempts = faults.fired() - fired_before;
    let eh = err.as_eventhubs().expect("an Event Hubs error").clone();
    match &eh {
        EventHubsError::NotAccepted {
            accepted, total, ..
        } => {
            assert_eq!(*total, 12);
            assert!(
                (1..12).contains(accepted),
                "{tag}: the first batch was accepted, the rest not: {err}"
            );
        }
        other => panic!("{tag}: expected NotAccepted after a good first batch, got {other}"),
    }
    assert!(
        attempts <= 8,
        "{tag}: {attempts} attempts at one batch: retries are not bounded"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{tag}: giving up took {:?}",
        started.elapsed()
    );
    reconcile(&w, &ns, &tag, &ledger);

    // 3. Recovered.
    ledger
        .send(&sender, events(&format!("{tag}-c"), 12))
        .await
        .unwrap_or_else(|e| panic!("{tag}: the sender did not recover: {e}"));
    reconcile(&w, &ns, &tag, &ledger);
    assert_eq!(
        ledger.reported_sent.len(),
        24 + 12 - ledger.reported_not_sent.len()
    );
    eh
}

/// A 503 mid-batch: retried, then the rest reported not accepted as
/// `ServerBusy` (transient), with nothing lost or phantom.
async fn server_busy_mid_batch(transport: Transport, service: Service) {
    within("503", async {
        let err = mid_batch_scenario(transport, service, status(503), 2).await;
        let EventHubsError::NotAccepted { cause, .. } = &err else {
            unreachable!()
        };
        assert!(
            matches!(**cause, EventHubsError::ServerBusy { .. }),
            "{transport:?}: {err}"
        );
        assert!(err.is_transient(), "{transport:?}: busy is transient");
        assert!(err.to_string().contains("were not"), "{err}");
    })
    .await;
}

/// A 500 mid-batch: retried, then reported as transient, with nothing lost
/// or phantom.
async fn internal_errors_mid_batch(transport: Transport, service: Service) {
    within("500", async {
        let err = mid_batch_scenario(transport, service, status(500), 1).await;
        assert!(
            err.is_transient(),
            "{transport:?}: a 500 is transient: {err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_server_busy_mid_batch_is_retried_then_reported_with_nothing_lost_or_phantom() {
    server_busy_mid_batch(Transport::Https, Service::EventHubsHttps).await;
}

/// Over AMQP (once stalled by the settle race, see [`AMQP_STALL`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_server_busy_mid_batch_is_retried_then_reported_with_nothing_lost_or_phantom() {
    server_busy_mid_batch(Transport::Amqp, Service::EventHubsAmqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_internal_errors_mid_batch_are_retried_then_reported_with_nothing_lost_or_phantom() {
    internal_errors_mid_batch(Transport::Https, Service::EventHubsHttps).await;
}

/// Over AMQP (once stalled by the settle race, see [`AMQP_STALL`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_internal_errors_mid_batch_are_retried_then_reported_with_nothing_lost_or_phantom() {
    internal_errors_mid_batch(Transport::Amqp, Service::EventHubsAmqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_https_connection_mid_batch_loses_nothing() {
    within("drop", async {
        let err =
            mid_batch_scenario(Transport::Https, Service::EventHubsHttps, Fault::Drop, 1).await;
        assert!(err.is_transient(), "a drop is transient: {err}");
    })
    .await;
}

/// A peer that accepts the TCP connection and then never says a word: opening
/// the sender ends at the operation timeout with `Timeout`, not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_peer_that_never_answers_fails_the_open_at_the_operation_timeout() {
    within("silent peer", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let started = Instant::now();
        let err = EventHubSender::<serde_json::Value>::builder(&ns, HUB, fast_credential(&w))
            .transport(Transport::Amqp)
            .endpoint(format!("amqp://{addr}"))
            .operation_timeout(Duration::from_secs(1))
            .open()
            .await
            .expect_err("nobody answers");
        let took = started.elapsed();
        held.abort();
        assert!(
            matches!(
                err.as_eventhubs().expect("an Event Hubs error"),
                EventHubsError::Timeout { .. }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("opening the AMQP connection"),
            "{err}"
        );
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{took:?}"
        );
    })
    .await;
}

/// A force-detached link (`detach-forced`) mid-call: the client's pending
/// transfer is never completed by azure_messaging_eventhubs / fe2o3-amqp
/// (no log line after the sandbox's "transfer received"), so the call ends
/// at the sender's operation timeout (2 s here, 60 s by default) as
/// `NotAccepted` (transient). A transfer rejected as `unauthorized-access`
/// mid-call is answered at once, as `NotAccepted` caused by `Unauthorized`.
/// Either way the batches before are reported and stored, the rest are
/// neither, and the next call works on a new connection (it used to
/// deadlock: the re-open waited for a write lock while the same statement
/// held a read guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_mid_batch_detach_and_rejection_end_at_the_deadline_with_nothing_lost() {
    within("amqp stall", async {
        for fault in [Fault::Drop, Fault::RefuseToken] {
            let w = world().await;
            let ns = eventhubs_namespace(&w);
            let sender = amqp_sender_timing_out_after(&w, &ns, STALL_TIMEOUT).await;
            let tag = format!("amqp-{fault:?}");
            let mut ledger = Ledger::default();
            w.sandbox.faults().inject(Service::EventHubsAmqp, pass(), 1);
            w.sandbox.faults().inject(Service::EventHubsAmqp, fault.clone(), 1);
            let started = Instant::now();
            let err = ledger
                .send(&sender, events(&tag, 12))
                .await
                .expect_err("the call fails");
            let took = started.elapsed();
            eprintln!("{tag}: after {took:?}: {err}");
            if fault == Fault::Drop {
                assert!(
                    took >= STALL_TIMEOUT && took < STALL_TIMEOUT * 10,
                    "{tag}: the call ends at the operation timeout, not before and not much after: {took:?}"
                );
                assert!(
                    err.to_string().contains("operation timeout"),
                    "{tag}: the error names the timeout: {err}"
                );
                assert!(
                    err.as_eventhubs().expect("an Event Hubs error").outcome_unknown(),
                    "{tag}: a timeout cannot know whether the batch was stored: {err}"
                );
            } else {
                assert!(took < STALL_TIMEOUT, "{tag}: a rejection is answered at once: {took:?}");
                assert!(!err.as_eventhubs().expect("an Event Hubs error").outcome_unknown(), "{tag}: {err}");
                assert!(
                    matches!(err.as_eventhubs().expect("an Event Hubs error"), EventHubsError::NotAccepted { cause, .. } if matches!(**cause, EventHubsError::Unauthorized { .. })),
                    "{tag}: the rejection is the cause: {err}"
                );
            }
            assert!(
                matches!(err.as_eventhubs().expect("an Event Hubs error"), EventHubsError::NotAccepted { accepted, .. } if (1..12).contains(accepted)),
                "{tag}: {err}"
            );
            reconcile(&w, &ns, &tag, &ledger);
            ledger
                .send(&sender, events(&format!("{tag}-next"), 5))
                .await
                .unwrap();
            reconcile(&w, &ns, &tag, &ledger);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_mid_batch_over_https_is_reported_and_the_rest_kept_back() {
    // The refusal is a 401 SubCode=40100 on the second request.
    within("refused", async {
        // AMQP: see the mid-batch detach test above.
        for (transport, service) in [(Transport::Https, Service::EventHubsHttps)] {
            let w = world().await;
            let ns = eventhubs_namespace(&w);
            let sender = small_batch_sender(&w, &ns, transport).await;
            let tag = format!("{transport:?}-refused");
            let mut ledger = Ledger::default();
            w.sandbox.faults().inject(service, pass(), 1);
            w.sandbox.faults().inject(service, Fault::RefuseToken, 1);
            let err = ledger
                .send(&sender, events(&tag, 12))
                .await
                .expect_err("a refused token fails the call");
            let e = err.as_eventhubs().expect("an Event Hubs error");
            assert!(
                matches!(e, EventHubsError::NotAccepted { accepted, .. } if (1..12).contains(accepted)),
                "{transport:?}: {err}"
            );
            assert!(!e.is_transient(), "{transport:?}: a refusal is not retried");
            reconcile(&w, &ns, &tag, &ledger);
            ledger
                .send(&sender, events(&format!("{tag}-next"), 5))
                .await
                .unwrap();
            reconcile(&w, &ns, &tag, &ledger);
        }
    })
    .await;
}

/// The send after the refusal is lifted once stalled here (see [`AMQP_STALL`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cbs_put_token_is_reported_and_nothing_is_sent() {
    within("cbs", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let faults = w.sandbox.faults();
        let tag = "cbs";
        let mut ledger = Ledger::default();
        // Every put-token refused: opening or the first send fails, clearly.
        faults.inject_randomly(Service::EventHubsCbs, Fault::RefuseToken, 1.0);
        let endpoint = w.sandbox.eventhubs().amqp_endpoint().to_string();
        let opened = EventHubSender::builder(&ns, HUB, fast_credential(&w))
            .transport(Transport::Amqp)
            .endpoint(&endpoint)
            .max_message_size(SMALL_LIMIT)
            .open()
            .await;
        let put_tokens = w.sandbox.eventhubs().put_tokens();
        match opened {
            Err(err) => {
                let text = err.to_string();
                assert!(matches!(err, Error::EventHubs(_)), "{text}");
                assert!(text.contains(&ns), "names the namespace: {text}");
            }
            Ok(sender) => {
                let err = ledger
                    .send(&sender, events(tag, 6))
                    .await
                    .expect_err("no send without an authorized put-token");
                let e = err.as_eventhubs().expect("an Event Hubs error");
                assert!(
                    matches!(e, EventHubsError::Unauthorized { .. }),
                    "a refused put-token is explained as a refusal: {err}"
                );
                assert!(err.to_string().contains(&w.app.app_id), "{err}");
            }
        }
        assert!(faults.fired() >= 1);
        assert!(
            w.sandbox.eventhubs().put_tokens() <= put_tokens + 10,
            "put-token is not hammered"
        );
        faults.clear();
        reconcile(&w, &ns, tag, &ledger);
        assert_eq!(w.sandbox.eventhubs().event_count(), 0);

        // With the refusal lifted, a sender works.
        let sender = small_batch_sender(&w, &ns, Transport::Amqp).await;
        ledger
            .send(&sender, events(&format!("{tag}-after"), 6))
            .await
            .unwrap();
        reconcile(&w, &ns, tag, &ledger);
    })
    .await;
}

/// A connection lost after the put-token and before the sender's link
/// attaches (where a fresh connection was once lost in CI: the quickstart's
/// first AMQP send failed with "Connection dropped: Connection must have
/// been closed"). Nothing was sent on it, so the sender opens one new
/// connection and the send succeeds, each event stored once. Lost again on
/// the new connection, the call fails, says so, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_before_the_sender_attaches_is_reopened_up_to_three_times() {
    within("connection lost at attach", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let eh = w.sandbox.eventhubs();
        let connections = || {
            eh.stats()
                .amqp_connections
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let tag = "lost-at-attach";
        let mut ledger = Ledger::default();

        let sender = amqp_sender_timing_out_after(&w, &ns, LOADED_TIMEOUT).await;
        let before = connections();
        eh.drop_connections_after_put_token(3);
        ledger
            .send(&sender, events(tag, 6))
            .await
            .expect("three re-opens on new connections recover three lost ones");
        // At least the re-open's. One more was once seen in a whole-suite
        // stress run at load average 11 on 2 cores: the sandbox counted a
        // connection only after the AMQP open, so the first one could be
        // counted after `before` was read (fixed: it counts before the
        // open). The count is still not pinned: azure_messaging_eventhubs
        // may reconnect on its own.
        assert!(connections() > before, "a new connection");
        reconcile(&w, &ns, tag, &ledger);

        // Lost on every new connection as well: three re-opens only (a
        // fourth would succeed here), then a clear error, and nothing stored.
        let sender = amqp_sender_timing_out_after(&w, &ns, LOADED_TIMEOUT).await;
        let before = connections();
        eh.drop_connections_after_put_token(4);
        let tag2 = "lost-twice";
        let mut ledger = Ledger::default();
        let err = ledger
            .send(&sender, events(tag2, 6))
            .await
            .expect_err("a fourth loss is reported");
        assert!(connections() > before, "it re-opened before giving up");
        let e = err.as_eventhubs().expect("an Event Hubs error");
        assert!(
            matches!(
                e,
                EventHubsError::Service {
                    transient: true,
                    ..
                }
            ),
            "a lost connection is transient: {err}"
        );
        assert!(!e.outcome_unknown(), "nothing was sent: {err}");
        eh.drop_connections_after_put_token(0);
        reconcile(&w, &ns, tag2, &ledger);
        ledger
            .send(&sender, events(&format!("{tag2}-after"), 3))
            .await
            .expect("the same sender works once connections stay up");
        reconcile(&w, &ns, tag2, &ledger);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_during_a_run_lose_nothing_over_https_and_amqp() {
    within("expiry", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        // 3 s tokens: a 4 s run crosses at least one expiry per transport.
        w.sandbox.identity().set_token_lifetime(3);
        let mut runs = Vec::new();
        for transport in [Transport::Https, Transport::Amqp] {
            let sender = if transport == Transport::Amqp {
                amqp_sender_timing_out_after(&w, &ns, LOADED_TIMEOUT).await
            } else {
                small_batch_sender(&w, &ns, transport).await
            };
            runs.push(tokio::spawn(async move {
                let tag = format!("{transport:?}-expiry");
                let mut ledger = Ledger::default();
                let started = Instant::now();
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(4) && n < 200 {
                    let _ = ledger.send(&sender, events(&format!("{tag}-{n}"), 5)).await;
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (tag, ledger)
            }));
        }
        for run in runs {
            let (tag, ledger) = run.await.unwrap();
            assert!(ledger.calls >= 5, "{tag}: only {} calls", ledger.calls);
            assert_eq!(
                ledger.failed_calls, 0,
                "{tag}: expiring tokens are renewed without failing a send: {ledger:?}"
            );
            reconcile(&w, &ns, &tag, &ledger);
        }
        assert!(w.sandbox.identity().stats().tokens_issued() >= 2);
    })
    .await;
}

// ---------------------------------------------------------------- identity

fn identity_requests(w: &World) -> u64 {
    w.sandbox.identity().stats().token_requests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_is_waited_out_as_told_then_given_up_within_budget() {
    within("429", async {
        let w = world().await;
        let mut http = fast_http(&w);
        http.set_retry(azure_core::http::ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(10),
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(10),
            max_delay: azure_core::time::Duration::seconds(5),
        });
        let cred = w
            .builder(&w.owner.id)
            .http_settings(http)
            .client_secret(&w.secret)
            .build()
            .unwrap();
        w.sandbox.faults().inject_randomly(
            Service::Identity,
            Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
            1.0,
        );
        let started = Instant::now();
        let err = cred.token(EVENTHUBS_SCOPE).await.unwrap_err();
        let took = started.elapsed();
        // Retry-After: 1 was honoured before each of the 2 retries, though
        // the policy's own waits are 10 ms.
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        assert!(took < Duration::from_secs(8), "{took:?}");
        assert_eq!(identity_requests(&w), 3, "one try and two retries");
        assert!(err.is_transient(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("429"),
            "the error names the throttling: {text}"
        );

        w.sandbox.faults().clear();
        cred.token(EVENTHUBS_SCOPE).await.unwrap();
        assert_eq!(identity_requests(&w), 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_5xx_is_retried_with_bounded_backoff_then_reported() {
    within("identity 5xx", async {
        let w = world().await;
        let cred = fast_credential(&w);
        let faults = w.sandbox.faults();
        faults.inject(Service::Identity, status(500), 1);
        faults.inject(Service::Identity, status(503), 1);
        cred.token(EVENTHUBS_SCOPE).await.unwrap();
        assert_eq!(identity_requests(&w), 3);

        faults.inject_randomly(Service::Identity, status(503), 1.0);
        let err = cred.token("api://other/.default").await.unwrap_err();
        assert_eq!(identity_requests(&w), 3 + 4, "one try and three retries");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("503"), "{err}");
        faults.clear();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_identity_answers_past_the_timeout_are_retried_then_given_up() {
    within("slow identity", async {
        let w = world().await;
        let mut http = fast_http(&w);
        http.set_request_timeout(Duration::from_millis(300));
        let cred = w
            .builder(&w.owner.id)
            .http_settings(http)
            .client_secret(&w.secret)
            .build()
            .unwrap();
        let faults = w.sandbox.faults();
        // What proves the timeout is the count of requests and the error:
        // a client that waited for the slow answer would make one request
        // and get its token. The wall-clock bounds only say the call was
        // not held up by a slow answer (10 s): on a loaded machine the
        // tries themselves take seconds (6.4 s for four tries of 300 ms in
        // a stress run at a load average of 12 on 2 cores, each try a new
        // TLS connection).
        let slow = Duration::from_secs(10);
        faults.inject(Service::Identity, Fault::Delay(slow), 1);
        let started = Instant::now();
        cred.token(EVENTHUBS_SCOPE).await.unwrap();
        let took = started.elapsed();
        assert!(took < slow, "one timed-out try and a retry: {took:?}");
        assert_eq!(identity_requests(&w), 2, "the slow try and one retry");

        faults.inject_randomly(Service::Identity, Fault::Delay(slow), 1.0);
        let started = Instant::now();
        let err = cred.token("api://other/.default").await.unwrap_err();
        let took = started.elapsed();
        faults.clear();
        assert!(took < slow, "4 tries of 300 ms: {took:?}");
        assert_eq!(identity_requests(&w), 2 + 4);
        assert!(err.is_transient(), "{err}");
        let text = err.to_string().to_ascii_lowercase();
        assert!(
            text.contains("timed out") || text.contains("timeout"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_on_a_failing_identity_provider_does_not_hammer_it() {
    within("stampede", async {
        let w = world().await;
        let cred = fast_credential(&w);
        w.sandbox
            .faults()
            .inject_randomly(Service::Identity, status(503), 1.0);
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let cred = cred.clone();
                tokio::spawn(async move { cred.token(EVENTHUBS_SCOPE).await })
            })
            .collect();
        let mut failed = 0;
        for c in callers {
            failed += usize::from(c.await.unwrap().is_err());
        }
        assert_eq!(failed, 50, "every caller is told");
        // One flight of 4 tries serves the callers waiting on it; a caller
        // that arrived after it ended may start one more.
        let requests = identity_requests(&w);
        assert!(
            requests <= 8,
            "{requests} token requests for 50 callers on a failing endpoint"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rotation_is_survived_over_https_and_amqp() {
    within("rotation", async {
        let w = world().await;
        let ns = eventhubs_namespace(&w);
        let mut ledger = Ledger::default();
        let senders = [
            small_batch_sender(&w, &ns, Transport::Https).await,
            amqp_sender_timing_out_after(&w, &ns, LOADED_TIMEOUT).await,
        ];
        for (i, s) in senders.iter().enumerate() {
            ledger
                .send(s, events(&format!("rot-before-{i}"), 3))
                .await
                .unwrap();
        }
        // A routine rotation keeps the old key published: cached tokens
        // stay valid and new ones are signed with the new key.
        w.sandbox.issuer().rotate(false).unwrap();
        for (i, s) in senders.iter().enumerate() {
            ledger
                .send(s, events(&format!("rot-kept-{i}"), 3))
                .await
                .unwrap();
        }
        reconcile(&w, &ns, "rot", &ledger);
    })
    .await;
}

// ---------------------------------------------------------------- aggregator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_calls_under_5xx_and_401_mid_run_all_end_in_a_result() {
    use crosstenant::aggregator::AggregatorClient;
    use crosstenant_sandbox::api::Access;
    use serde_json::Value;
    within("aggregator", async {
        let w = world().await;
        let api = w.sandbox.api();
        api.register_api(&w.owner.id, "api://secure-api").unwrap();
        api.register_client("clientXYZ").unwrap();
        api.grant_api(&w.app.app_id, &[Access::Read, Access::Write])
            .unwrap();
        api.grant_client(&w.app.app_id, "clientXYZ", &[Access::Read])
            .unwrap();
        let agg = AggregatorClient::builder(api.url(), "api://secure-api", w.credential())
            .http_settings(fast_http(&w))
            .build()
            .unwrap();
        let xyz = agg.on_behalf_of("clientXYZ").unwrap();
        let faults = w.sandbox.faults();
        let mut outcomes = (0usize, 0usize);
        let calls = 60;
        for round in 0..3 {
            // 5xx, then 401, then both, each on about a third of requests.
            match round {
                0 => faults.inject_randomly(Service::Api, status(503), 0.35),
                1 => faults.inject_randomly(Service::Api, status(401), 0.35),
                _ => faults.inject_randomly(Service::Api, status(500), 0.35),
            }
            let tasks: Vec<_> = (0..calls / 3)
                .map(|_| {
                    let xyz = xyz.clone();
                    tokio::spawn(async move { xyz.get::<Value>("data").await })
                })
                .collect();
            for t in tasks {
                match t.await.expect("the call's task finished") {
                    Ok(v) => {
                        assert_eq!(v["client"], "clientXYZ");
                        outcomes.0 += 1;
                    }
                    Err(err) => {
                        let status = match &err {
                            Error::Aggregator(e) => e.status(),
                            other => panic!("untyped failure: {other}"),
                        };
                        assert!(matches!(status, Some(401 | 500 | 503)), "{status:?}: {err}");
                        outcomes.1 += 1;
                    }
                }
            }
            faults.clear();
        }
        assert_eq!(outcomes.0 + outcomes.1, calls, "no call silently dropped");
        assert!(outcomes.0 > 0, "retries let most calls through");
        // Bounded: at most one try and three retries (or one refresh retry)
        // per call.
        assert!(api.stats().requests() <= 4 * calls as u64 + 1);
    })
    .await;
}

// ---------------------------------------------------------------- soak

/// How long the soak runs: `CROSSTENANT_SOAK_SECS` (default 10, the CI
/// form). The long form, e.g. ten minutes:
/// `CROSSTENANT_SOAK_SECS=600 cargo test --all-features --test faults soak -- --nocapture`.
fn soak_duration() -> Duration {
    let secs = std::env::var("CROSSTENANT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10);
    Duration::from_secs(secs.max(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_concurrent_sends_and_calls_under_random_faults_reconcile() {
    use crosstenant::aggregator::AggregatorClient;
    use crosstenant_sandbox::api::Access;
    let run_for = soak_duration();
    // Room for a few AMQP operation timeouts (2 s each) after the run, so a
    // stall surfaces as an error rather than a hang.
    let deadline = run_for + Duration::from_secs(110);
    let w = Arc::new(world().await);
    let ns = eventhubs_namespace(&w);
    let api = w.sandbox.api();
    api.register_api(&w.owner.id, "api://secure-api").unwrap();
    api.register_client("clientXYZ").unwrap();
    api.grant_api(&w.app.app_id, &[Access::Read]).unwrap();
    api.grant_client(&w.app.app_id, "clientXYZ", &[Access::Read])
        .unwrap();
    // Short tokens, so renewals (and faults during them) happen in the run.
    w.sandbox.identity().set_token_lifetime(4);

    let result = tokio::time::timeout(deadline, async {
        let amqp = amqp_sender_timing_out_after(&w, &ns, LOADED_TIMEOUT).await;
        let https = small_batch_sender(&w, &ns, Transport::Https).await;
        let agg = AggregatorClient::builder(api.url(), "api://secure-api", fast_credential(&w))
            .http_settings(fast_http(&w))
            .build()
            .unwrap();
        let started = Instant::now();

        // Chaos: every 300 ms, the next fault of a fixed cycle on each
        // service, firing on about one operation in eight.
        let chaos = {
            let w = w.clone();
            tokio::spawn(async move {
                let eh = [status(503), status(500), Fault::Drop, Fault::RefuseToken];
                // A Drop over AMQP costs the sender's operation timeout.
                let amqp = [status(503), status(500), Fault::Drop, Fault::RefuseToken];
                let api = [status(503), status(401), status(500), Fault::Drop];
                let identity = [status(503), status(500), Fault::Drop, status(429)];
                let mut i = 0;
                while started.elapsed() < run_for && i < 100_000 {
                    let f = w.sandbox.faults();
                    f.inject_randomly(Service::EventHubsHttps, eh[i % 4].clone(), 0.12);
                    f.inject_randomly(Service::EventHubsAmqp, amqp[i % 4].clone(), 0.12);
                    f.inject_randomly(Service::Api, api[i % 4].clone(), 0.12);
                    f.inject_randomly(Service::Identity, identity[i % 4].clone(), 0.12);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                w.sandbox.faults().clear();
            })
        };

        let mut senders = Vec::new();
        for (name, sender) in [("https", https.clone()), ("amqp", amqp.clone())] {
            for task in 0..2 {
                let sender = sender.clone();
                senders.push(tokio::spawn(async move {
                    let tag = format!("soak-{name}-{task}");
                    let mut ledger = Ledger::default();
                    let mut n = 0usize;
                    while started.elapsed() < run_for && n < 5_000 {
                        let size = 1 + n % 9;
                        let _ = ledger
                            .send(&sender, events(&format!("{tag}-{n}"), size))
                            .await;
                        n += 1;
                    }
                    (tag, ledger)
                }));
            }
        }
        let calls = {
            let xyz = agg.on_behalf_of("clientXYZ").unwrap();
            tokio::spawn(async move {
                let (mut made, mut ok, mut failed) = (0usize, 0usize, 0usize);
                while started.elapsed() < run_for && made < 20_000 {
                    made += 1;
                    match xyz.get::<serde_json::Value>("data").await {
                        Ok(v) if v["client"] == "clientXYZ" => ok += 1,
                        Ok(v) => panic!("another client's data: {v}"),
                        Err(Error::Aggregator(_)) => failed += 1,
                        Err(other) => panic!("untyped aggregator failure: {other}"),
                    }
                }
                (made, ok, failed)
            })
        };

        chaos.await.unwrap();
        let mut total_calls = 0;
        let mut total_failed = 0;
        for s in senders {
            let (tag, ledger) = s.await.unwrap();
            reconcile(&w, &ns, &tag, &ledger);
            total_calls += ledger.calls;
            total_failed += ledger.failed_calls;
        }
        let (made, ok, failed) = calls.await.unwrap();
        assert_eq!(made, ok + failed, "no aggregator call silently dropped");
        assert!(ok > 0);
        assert!(w.sandbox.faults().fired() > 0, "faults fired");
        assert!(total_calls > 10, "{total_calls} sends");

        // Faults off: both transports still work.
        w.sandbox.faults().clear();
        let mut after = Ledger::default();
        after
            .send(&amqp, events("soak-after-amqp", 5))
            .await
            .unwrap();
        after
            .send(&https, events("soak-after-https", 5))
            .await
            .unwrap();
        reconcile(&w, &ns, "soak-after", &after);
        eprintln!(
            "soak: {:?}, {total_calls} sends ({total_failed} failed), {made} aggregator calls \
             ({failed} failed), {} faults fired, {} events stored",
            run_for,
            w.sandbox.faults().fired(),
            w.sandbox.eventhubs().event_count()
        );
    })
    .await;
    result.unwrap_or_else(|_| panic!("soak: no result within {deadline:?}"));
}
