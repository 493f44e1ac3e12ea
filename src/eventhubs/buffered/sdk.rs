//! The AMQP engine of the buffered sender: azure_messaging_eventhubs'
//! `BufferedProducerClient`, with this crate's credential, endpoint and
//! retry policy, and a ledger of its own around it so that the promises of
//! [`BufferedSender`](super::BufferedSender) hold:
//!
//! - the client reports outcomes per batch (`on_send_succeeded` /
//!   `on_send_failed`, each with the batch's events); the ledger turns them
//!   into one [`DeliveryReport`] per event, by message id, with the typed
//!   error (sub-codes, the refused token's tenant and app) of a one-batch
//!   send;
//! - the client bounds its buffer by events per partition only; the ledger
//!   bounds it in events and bytes over all partitions before the client
//!   sees an event, so `try_enqueue` can say "full" without waiting;
//! - the client's `abort` drops what it buffered with only a logged count;
//!   the ledger reports every event still without an outcome after the abort
//!   as [`EventHubsError::Aborted`] (whose outcome is unknown: the client
//!   cancels a batch in flight, which the service may have stored);
//! - the client has no operation timeout: a transfer the peer never settles
//!   (seen when the link is force-detached under it) holds its partition
//!   for ever. A watchdog gives the client the sender's operation timeout:
//!   when an event has had no outcome for `max_wait` + the retry policy's
//!   waits (3 s) + the operation timeout, it opens a new client for what comes next, aborts the stuck
//!   one, and reports each of its events without an outcome as
//!   [`EventHubsError::Timeout`] (outcome unknown), as a one-batch send
//!   reports a timed-out transfer.
//!
//! The client renews its CBS token itself, 6 minutes (± 5 s) before it
//! expires (azure_messaging_eventhubs 0.16, `common/authorizer.rs`,
//! `TOKEN_REFRESH_BIAS`). Entra access tokens live 60–90 minutes and at
//! least 10 (Microsoft identity platform, "Configurable token lifetimes"),
//! so that is always in time; tokens shorter than 6 minutes (only the
//! sandbox issues them) expire under it, and their events are reported with
//! sub-code 40106.

use super::{DeliveryReport, DeliveryReports, Routed};
use crate::error::Error;
use crate::eventhubs::amqp::into_event_data;
use crate::eventhubs::{BufferedOptions, EventHubSender, EventHubsError, Target};
use azure_messaging_eventhubs::models::{EventData, MessageId};
use azure_messaging_eventhubs::{
    BufferedProducerClient, EnqueueEventOptions, SendBatchFailedContext, SendBatchSucceededContext,
};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, RwLock};

/// One event the client holds: what its report and the limits need.
struct Pending {
    size: u64,
    partition_key: Option<String>,
    partition_id: Option<String>,
    /// The client it was handed to.
    generation: u64,
    enqueued: Instant,
}

/// The events outstanding under one message id: one, unless a caller
/// reused an id (the sender gives every other event an id of its own), so
/// the common case needs no queue.
enum Held {
    One(Pending),
    Many(VecDeque<Pending>),
}

impl Held {
    fn iter(&self) -> impl Iterator<Item = &Pending> {
        let (one, many) = match self {
            Held::One(p) => (Some(p), None),
            Held::Many(q) => (None, Some(q.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn into_vec(self) -> Vec<Pending> {
        match self {
            Held::One(p) => vec![p],
            Held::Many(q) => q.into(),
        }
    }
}

#[derive(Default)]
struct State {
    /// By message id, oldest first.
    outstanding: HashMap<String, Held>,
    count: usize,
    bytes: u64,
    closed: bool,
}

impl State {
    /// Holds `p` under `id`, behind any event already held under it.
    fn hold(&mut self, id: String, p: Pending) {
        match self.outstanding.entry(id) {
            Entry::Vacant(v) => {
                v.insert(Held::One(p));
            }
            Entry::Occupied(mut o) => {
                let held = std::mem::replace(o.get_mut(), Held::Many(VecDeque::new()));
                let mut q = match held {
                    Held::One(first) => VecDeque::from([first]),
                    Held::Many(q) => q,
                };
                q.push_back(p);
                *o.get_mut() = Held::Many(q);
            }
        }
    }

    /// Takes the oldest (or the newest) event held under `id`, with the id.
    fn take(&mut self, id: &str, newest: bool) -> Option<(String, Pending)> {
        if let Held::Many(q) = self.outstanding.get_mut(id)? {
            if q.len() > 1 {
                let p = if newest { q.pop_back() } else { q.pop_front() };
                return p.map(|p| (id.to_owned(), p));
            }
        }
        let (id, held) = self.outstanding.remove_entry(id)?;
        held.into_vec().pop().map(|p| (id, p))
    }

    fn pending(&self) -> impl Iterator<Item = &Pending> {
        self.outstanding.values().flat_map(Held::iter)
    }
}

/// What the client's handlers and the sender's calls share.
pub(super) struct Ledger {
    target: Target,
    options: BufferedOptions,
    /// The sender whose AMQP backend explains errors and opens clients.
    sender: EventHubSender<()>,
    state: Mutex<State>,
    /// Room was freed or the sender closed.
    progress: Notify,
    /// Taken when the sender closed and every report was given.
    reports: Mutex<Option<mpsc::UnboundedSender<DeliveryReport>>>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports `events` (one batch of the client's) with `outcome`, and
    /// frees their room.
    fn settle(&self, events: &[EventData], outcome: &Result<(), Error>) {
        {
            let mut st = self.lock();
            // Reported under the state lock, so a close that finds nothing
            // outstanding cannot end the stream before them.
            let reports = self.reports();
            for e in events {
                let id = message_id(e);
                match st.take(&id, false) {
                    Some((id, p)) => {
                        st.count -= 1;
                        st.bytes -= p.size;
                        report(&reports, id, p, outcome.clone());
                    }
                    // Already reported: its client was given up on.
                    None => tracing::debug!(
                        message_id = %id,
                        "an outcome for an event already reported as timed out or aborted"
                    ),
                }
            }
        }
        self.progress.notify_waiters();
    }

    /// Where reports go; `None` once the stream has ended. Taken after the
    /// state lock, never before it.
    fn reports(&self) -> std::sync::MutexGuard<'_, Option<mpsc::UnboundedSender<DeliveryReport>>> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn failed(&self, ctx: SendBatchFailedContext) {
        let error = match self.sender.amqp_backend() {
            Some(amqp) => amqp.explain(&ctx.error).await,
            None => self.target.error(None, ctx.error.to_string(), false),
        };
        self.settle(&ctx.events, &Err(Error::EventHubs(Box::new(error))));
    }

    fn succeeded(&self, ctx: SendBatchSucceededContext) {
        self.settle(&ctx.events, &Ok(()));
    }

    /// Reports every event still outstanding from `generation` (every one,
    /// if `None`) with `error`. Returns how many there were.
    fn give_up(&self, generation: Option<u64>, error: impl Fn() -> EventHubsError) -> usize {
        let mut n = 0;
        {
            let mut st = self.lock();
            let mut left = Vec::new();
            st.outstanding.retain(|id, held| {
                let all = std::mem::replace(held, Held::Many(VecDeque::new()));
                let (gone, kept): (Vec<Pending>, Vec<Pending>) = all
                    .into_vec()
                    .into_iter()
                    .partition(|p| generation.is_none_or(|g| p.generation == g));
                left.extend(gone.into_iter().map(|p| (id.clone(), p)));
                let keep = !kept.is_empty();
                *held = Held::Many(kept.into());
                keep
            });
            let reports = self.reports();
            for (id, p) in left {
                st.count -= 1;
                st.bytes -= p.size;
                n += 1;
                report(&reports, id, p, Err(Error::EventHubs(Box::new(error()))));
            }
        }
        self.progress.notify_waiters();
        n
    }

    /// Ends the stream: every report was given.
    fn end(&self) {
        let _st = self.lock();
        self.reports().take();
    }

    /// Whether an event of `generation` has waited longer than `limit`.
    fn stuck(&self, generation: u64, limit: Duration) -> bool {
        let st = self.lock();
        let stuck = st
            .pending()
            .any(|p| p.generation == generation && p.enqueued.elapsed() > limit);
        stuck
    }

    /// Takes room for an event of `size` bytes in `st`: `false` when there
    /// is none yet, an error once the sender is closed.
    fn take_room(&self, st: &mut State, size: u64) -> Result<bool, Error> {
        if st.closed {
            return Err(self.not_sent("it is closed; enqueue on a new sender".into()));
        }
        if !self.options.fits(st.count, st.bytes, size) {
            return Ok(false);
        }
        st.count += 1;
        st.bytes += size;
        Ok(true)
    }

    fn not_sent(&self, reason: String) -> Error {
        Error::EventHubs(Box::new(EventHubsError::NotSent {
            namespace: self.target.namespace.clone(),
            hub: self.target.hub.clone(),
            reason,
        }))
    }

    fn aborted(&self) -> EventHubsError {
        EventHubsError::Aborted {
            namespace: self.target.namespace.clone(),
            hub: self.target.hub.clone(),
        }
    }
}

/// Sends one report, unless the stream has ended. The receiver may be
/// gone: the caller chose not to read reports.
fn report(
    to: &Option<mpsc::UnboundedSender<DeliveryReport>>,
    message_id: String,
    p: Pending,
    outcome: Result<(), Error>,
) {
    if let Some(tx) = to {
        let _ = tx.send(DeliveryReport {
            message_id,
            partition_key: p.partition_key,
            partition_id: p.partition_id,
            outcome,
        });
    }
}

fn message_id(e: &EventData) -> Cow<'_, str> {
    match e.message_id() {
        Some(MessageId::String(s)) => Cow::Borrowed(s),
        // Every event gets a string id before it is enqueued.
        Some(other) => Cow::Owned(format!("{other:?}")),
        None => Cow::Borrowed(""),
    }
}

/// One client, and its number.
struct Generation {
    n: u64,
    client: BufferedProducerClient,
}

/// The engine: the current client, and the ledger.
pub(super) struct SdkEngine {
    current: RwLock<Arc<Generation>>,
    ledger: Arc<Ledger>,
    /// An event without an outcome for this long marks its client stuck.
    stuck_after: Duration,
}

impl SdkEngine {
    /// Opens the client for `sender`'s hub; `None` when the sender's
    /// transport is not one the client speaks (AMQP over WebSockets).
    pub(super) async fn open(
        sender: &EventHubSender<()>,
        options: &BufferedOptions,
    ) -> Option<Result<(Arc<Self>, DeliveryReports), Error>> {
        let amqp = sender.amqp_backend()?;
        if amqp.websockets() {
            return None;
        }
        // As long as a one-batch send may take: its batch's wait, the
        // retry policy's waits, and the operation timeout.
        let stuck_after =
            options.max_wait + crate::eventhubs::amqp::retry_waits() + amqp.operation_timeout();
        let (tx, rx) = mpsc::unbounded_channel();
        let ledger = Arc::new(Ledger {
            target: sender.inner.target.clone(),
            options: options.clone(),
            sender: sender.clone(),
            state: Mutex::new(State::default()),
            progress: Notify::new(),
            reports: Mutex::new(Some(tx)),
        });
        let client = match open_client(&ledger).await {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let engine = Arc::new(Self {
            current: RwLock::new(Arc::new(Generation { n: 0, client })),
            ledger,
            stuck_after,
        });
        tokio::spawn(watch(Arc::downgrade(&engine)));
        Some(Ok((engine, rx)))
    }

    /// Takes room for the event (waiting for it if `wait`), then hands it
    /// to the current client.
    pub(super) async fn enqueue(&self, routed: Routed, wait: bool) -> Result<String, Error> {
        let ledger = &self.ledger;
        let opts = &ledger.options;
        let Routed {
            event,
            size,
            partition_key,
            partition_id,
        } = routed;
        let id = event.message_id.clone().unwrap_or_default();
        let options = EnqueueEventOptions {
            partition_key: partition_key.clone(),
            partition_id: partition_id.clone(),
        };
        let mut pending = Pending {
            size,
            partition_key,
            partition_id,
            generation: 0,
            enqueued: Instant::now(),
        };
        // The event is handed to the client under the client's read lock,
        // so a recycle never gives up on a client that is still being handed
        // an event. When there is room, it is taken and the event held in
        // one step; otherwise the read lock is let go while waiting, so a
        // recycle never waits on an enqueue that waits for room.
        let mut generation = self.current.read().await;
        let held = {
            let mut st = ledger.lock();
            if ledger.take_room(&mut st, size)? {
                pending.generation = generation.n;
                st.hold(id.clone(), pending);
                None
            } else if !wait {
                return Err(opts.full(&ledger.target.hub, st.count, st.bytes));
            } else {
                Some(pending)
            }
        };
        if let Some(mut pending) = held {
            drop(generation);
            loop {
                let notified = ledger.progress.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if ledger.take_room(&mut ledger.lock(), size)? {
                    break;
                }
                notified.await;
            }
            generation = self.current.read().await;
            pending.generation = generation.n;
            pending.enqueued = Instant::now();
            ledger.lock().hold(id.clone(), pending);
        }
        let result = generation
            .client
            .enqueue_event(into_event_data(event), Some(options))
            .await;
        drop(generation);
        match result {
            Ok(()) => Ok(id),
            Err(e) => {
                // Not buffered: give its room back (unless an abort already
                // reported it).
                {
                    let mut st = ledger.lock();
                    if let Some((_, p)) = st.take(&id, true) {
                        st.count -= 1;
                        st.bytes -= p.size;
                    }
                }
                ledger.progress.notify_waiters();
                Err(ledger.not_sent(format!("azure_messaging_eventhubs did not buffer it: {e}")))
            }
        }
    }

    pub(super) async fn flush(&self) {
        let generation = self.current.read().await.clone();
        // An error means the client is closing; close and abort report. A
        // stuck client is given up on by the watchdog, which ends this.
        tokio::select! {
            _ = generation.client.flush() => {}
            _ = self.given_up(generation.n) => {}
        }
    }

    /// Resolves once nothing of `generation` is outstanding.
    async fn given_up(&self, generation: u64) {
        loop {
            let notified = self.ledger.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let any = {
                let st = self.ledger.lock();
                let any = st.pending().any(|p| p.generation == generation);
                any
            };
            if !any {
                return;
            }
            notified.await;
        }
    }

    pub(super) async fn close(&self) {
        self.ledger.lock().closed = true;
        let generation = self.current.read().await.clone();
        let closed = tokio::select! {
            r = generation.client.close() => Some(r),
            _ = self.given_up(generation.n) => None,
        };
        if let Some(Err(e)) = &closed {
            tracing::warn!(error = %e, "closing azure_messaging_eventhubs' buffered producer");
        }
        if closed.is_none() {
            // Everything was reported (the watchdog gave up on a stuck
            // client); the client still has to let go of its connection.
            let _ = generation.client.abort().await;
        }
        // The client reported everything it sent; anything left never got
        // an outcome from it.
        let left = self.ledger.give_up(None, || self.ledger.aborted());
        if left > 0 {
            tracing::warn!(
                events = left,
                "azure_messaging_eventhubs' buffered producer closed without an outcome for \
                 these events; reported as aborted (outcome unknown)"
            );
        }
        self.ledger.end();
    }

    pub(super) async fn abort(&self) -> usize {
        self.ledger.lock().closed = true;
        let generation = self.current.read().await.clone();
        if let Err(e) = generation.client.abort().await {
            tracing::warn!(error = %e, "aborting azure_messaging_eventhubs' buffered producer");
        }
        let n = self.ledger.give_up(None, || self.ledger.aborted());
        self.ledger.end();
        n
    }

    pub(super) fn buffered_events(&self) -> usize {
        self.ledger.lock().count
    }

    fn timed_out(&self) -> EventHubsError {
        EventHubsError::Timeout {
            namespace: self.ledger.target.namespace.clone(),
            hub: self.ledger.target.hub.clone(),
            operation: "a buffered batch (no outcome from azure_messaging_eventhubs)".into(),
            after: self.stuck_after,
        }
    }

    /// Replaces a stuck client with a new one, then aborts the stuck one
    /// and reports its events without an outcome as timed out.
    async fn recycle(&self) -> Result<(), Error> {
        let fresh = open_client(&self.ledger).await?;
        let old = {
            let mut current = self.current.write().await;
            let n = current.n + 1;
            std::mem::replace(&mut *current, Arc::new(Generation { n, client: fresh }))
        };
        // The ledger reports first, so that callers waiting on this client
        // (flush, close) go on at once; then the client is cancelled.
        let gave_up = self.ledger.give_up(Some(old.n), || self.timed_out());
        tracing::warn!(
            namespace = %self.ledger.target.namespace,
            events = gave_up,
            after = ?self.stuck_after,
            "azure_messaging_eventhubs' buffered producer gave no outcome in time; \
             reported its events as timed out (outcome unknown) and opened a new one"
        );
        let _ = old.client.abort().await;
        Ok(())
    }
}

/// Opens a client whose handlers report to `ledger`.
async fn open_client(ledger: &Arc<Ledger>) -> Result<BufferedProducerClient, Error> {
    let options = &ledger.options;
    // The client's minimum; 0 means "send at once".
    let max_wait =
        azure_core::time::Duration::try_from(options.max_wait.max(Duration::from_millis(1)))
            .unwrap_or(azure_core::time::Duration::milliseconds(100));
    let (ok, failed) = (Arc::downgrade(ledger), Arc::downgrade(ledger));
    let builder = BufferedProducerClient::builder()
        .with_max_wait_time(max_wait)
        // Above the ledger's total bound: the client never makes an enqueue
        // wait on its own, and never sends a batch because it reached this
        // count (it sends at its byte limit, at `max_wait`, on flush and
        // close), as the lanes engine does.
        .with_max_buffered_event_count_per_partition(options.max_buffered_events.saturating_add(1))
        .with_on_send_succeeded(move |ctx| {
            let ledger = ok.upgrade();
            async move {
                if let Some(l) = ledger {
                    l.succeeded(ctx);
                }
            }
        })
        .with_on_send_failed(move |ctx| {
            let ledger = failed.upgrade();
            async move {
                if let Some(l) = ledger {
                    l.failed(ctx).await;
                }
            }
        });
    match ledger.sender.amqp_backend() {
        Some(amqp) => amqp.open_buffered(builder).await,
        None => Err(ledger.not_sent("the sender is not an AMQP sender".into())),
    }
}

/// The watchdog: every tenth of the limit (at most every second), whether
/// the current client holds an event longer than the limit.
async fn watch(engine: Weak<SdkEngine>) {
    let every = match engine.upgrade() {
        Some(e) => (e.stuck_after / 10).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        {
            let st = engine.ledger.lock();
            if st.closed && st.count == 0 {
                return;
            }
        }
        let n = engine.current.read().await.n;
        if !engine.ledger.stuck(n, engine.stuck_after) {
            continue;
        }
        if engine.ledger.lock().closed {
            // Closing: nothing more will be sent, so no new client; the
            // close aborts this one once its events are reported.
            engine.ledger.give_up(Some(n), || engine.timed_out());
        } else if let Err(e) = engine.recycle().await {
            tracing::warn!(error = %e, "could not open a new buffered producer; trying again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(size: u64, generation: u64) -> Pending {
        Pending {
            size,
            partition_key: None,
            partition_id: Some(size.to_string()),
            generation,
            enqueued: Instant::now(),
        }
    }

    /// A caller may reuse a message id: the events held under it come out
    /// oldest first for outcomes, newest first for an enqueue that failed,
    /// and the id is gone once the last one is taken.
    #[test]
    fn events_under_a_reused_id_are_taken_in_order_and_the_id_then_forgotten() {
        let mut st = State::default();
        st.hold("a".into(), pending(1, 0));
        st.hold("b".into(), pending(9, 0));
        st.hold("a".into(), pending(2, 0));
        st.hold("a".into(), pending(3, 1));
        assert_eq!(st.pending().count(), 4);
        let sizes = |st: &State| {
            let mut v: Vec<u64> = st.pending().map(|p| p.size).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(sizes(&st), [1, 2, 3, 9]);
        let (id, p) = st.take("a", true).expect("newest");
        assert_eq!((id.as_str(), p.size), ("a", 3));
        let (id, p) = st.take("a", false).expect("oldest");
        assert_eq!((id.as_str(), p.size), ("a", 1));
        assert!(st.outstanding.contains_key("a"), "one is still held");
        let (_, p) = st.take("a", false).expect("the last one");
        assert_eq!(p.size, 2);
        assert!(!st.outstanding.contains_key("a"), "the id is forgotten");
        assert!(st.take("a", false).is_none());
        assert!(st.take("unknown", false).is_none());
        let (id, p) = st.take("b", false).expect("the only one");
        assert_eq!((id.as_str(), p.size), ("b", 9));
        assert!(st.outstanding.is_empty());
    }
}
