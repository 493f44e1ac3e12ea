//! The buffered mode of the typed sender: enqueue single events, and
//! background work batches them per partition key (or partition id), sends
//! batches of different keys concurrently, and reports every event's outcome
//! by message id.
//!
//! [`BufferedSender<T>`] is opened from the same builder as
//! [`EventHubSender<T>`] ([`EventHubSenderBuilder::open_buffered`]), with the
//! same credential and transports, or from an open sender
//! ([`EventHubSender::buffered`]). It returns a [`DeliveryReports`] stream
//! beside it.
//!
//! Promises:
//! - every enqueued event gets exactly one [`DeliveryReport`], with its
//!   message id (assigned when the caller gave none): `Ok` only when the
//!   service accepted it (HTTP 201, AMQP `accepted`), otherwise the typed
//!   error with its [`remedy`](crate::Error::remedy). An event dropped by
//!   [`abort`](BufferedSender::abort) is reported as
//!   [`EventHubsError::NotSent`] (or [`EventHubsError::Aborted`] when it may
//!   have been in flight); none is silently dropped;
//! - the buffer is bounded in events and estimated bytes: [`enqueue`](BufferedSender::enqueue)
//!   waits for room, [`try_enqueue`](BufferedSender::try_enqueue) returns
//!   [`EventHubsError::BufferFull`] naming the limits;
//! - events of one partition key (or id) are sent in enqueue order, one
//!   batch at a time; batches for different partitions (or keys) go
//!   concurrently;
//! - a batch leaves when it reaches the size limit or its oldest event has
//!   waited [`BufferedOptions::max_wait`], at once on
//!   [`flush`](BufferedSender::flush) and [`close`](BufferedSender::close).
//!
//! # Two engines, one set of promises
//!
//! - **AMQP (TCP/TLS)**: azure_messaging_eventhubs 0.16's
//!   `BufferedProducerClient`, opened with this crate's credential,
//!   endpoint, application id and retry policy (`sdk.rs`). Its per-batch
//!   `on_send_succeeded` / `on_send_failed` handlers carry the events; a
//!   ledger around it turns them into one report per event by message id,
//!   with the typed error of a one-batch send, and bounds the buffer in
//!   events and bytes over all partitions (the client bounds events per
//!   partition only). The client's `abort` drops its events with only a
//!   logged count; the ledger reports each of them as
//!   [`EventHubsError::Aborted`] (outcome unknown: the client cancels a
//!   batch in flight). The client has one worker per partition, hashes
//!   partition keys to partitions itself, and opens a connection of its
//!   own. It has no operation timeout on a transfer and no re-open after an
//!   expired token (it renews its CBS token before expiry);
//!   [`BufferedOptions::max_concurrent_sends`] does not apply.
//! - **HTTPS, and AMQP over WebSockets** (the client's builder has no
//!   transport option): this crate's engine below, on the one-batch sender
//!   (the path of [`EventHubSender::send_raw`]): one lane per partition key
//!   or id, batches of different lanes concurrently.
//!
//! In the lanes engine each batch is sent with the one-batch sender, which retries busy answers
//! and dropped connections with bounded backoff; this module does not retry
//! again (a retry after a lost answer could store an event twice). A failure
//! part-way through one call reports the accepted prefix as accepted and the
//! rest as failed. An [`outcome_unknown`](EventHubsError::outcome_unknown)
//! failure (an AMQP operation timeout) may still have been stored.
//!
//! Not here: retrying failed events (the caller decides, with the reports),
//! client-side hashing of partition keys to partition ids (the service
//! routes keys; each key is its own lane), idempotent publishing.

use super::{Event, EventHubSender, EventHubSenderBuilder, EventHubsError, SendOptions};
use crate::error::{Error, InvalidInput};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, Semaphore};

#[cfg(feature = "amqp")]
mod sdk;

/// Limits and timing of a [`BufferedSender`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferedOptions {
    /// How many events may wait for an outcome at once (queued or in
    /// flight). Default 10,000.
    pub max_buffered_events: usize,
    /// How many bytes (estimated encoded size) may wait at once. Default
    /// 64 MB.
    pub max_buffered_bytes: u64,
    /// How long an event may wait for its batch to fill before the batch is
    /// sent anyway. Default 100 ms.
    pub max_wait: Duration,
    /// How many batches may be in flight at once, across keys. Default 8.
    pub max_concurrent_sends: usize,
}

impl Default for BufferedOptions {
    fn default() -> Self {
        Self {
            max_buffered_events: 10_000,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_wait: Duration::from_millis(100),
            max_concurrent_sends: 8,
        }
    }
}

impl BufferedOptions {
    /// Sets [`max_buffered_events`](Self::max_buffered_events).
    pub fn max_buffered_events(mut self, n: usize) -> Self {
        self.max_buffered_events = n;
        self
    }

    /// Sets [`max_buffered_bytes`](Self::max_buffered_bytes).
    pub fn max_buffered_bytes(mut self, n: u64) -> Self {
        self.max_buffered_bytes = n;
        self
    }

    /// Sets [`max_wait`](Self::max_wait).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets [`max_concurrent_sends`](Self::max_concurrent_sends).
    pub fn max_concurrent_sends(mut self, n: usize) -> Self {
        self.max_concurrent_sends = n;
        self
    }

    /// Whether an event of `size` bytes fits beside `count` buffered events
    /// of `bytes` bytes. An event larger than the whole byte budget still
    /// goes alone.
    fn fits(&self, count: usize, bytes: u64, size: u64) -> bool {
        count < self.max_buffered_events && (bytes + size <= self.max_buffered_bytes || count == 0)
    }

    /// The refusal of an event that does not fit, for `try_enqueue`.
    fn full(&self, hub: &str, count: usize, bytes: u64) -> Error {
        Error::EventHubs(Box::new(EventHubsError::BufferFull {
            hub: hub.to_string(),
            buffered_events: count,
            buffered_bytes: bytes,
            max_events: self.max_buffered_events,
            max_bytes: self.max_buffered_bytes,
        }))
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |name: &str, value: String, fix: &str| -> Result<(), Error> {
            Err(InvalidInput::new(name, &value, fix).into())
        };
        if self.max_buffered_events == 0 {
            return bad(
                "max_buffered_events",
                "0".into(),
                "give at least 1 (default 10000)",
            );
        }
        if self.max_buffered_bytes < 1024 {
            return bad(
                "max_buffered_bytes",
                self.max_buffered_bytes.to_string(),
                "give at least 1024 bytes (default 64 MB)",
            );
        }
        if self.max_concurrent_sends == 0 {
            return bad(
                "max_concurrent_sends",
                "0".into(),
                "give at least 1 (default 8)",
            );
        }
        if self.max_wait > Duration::from_secs(3600) {
            return bad(
                "max_wait",
                format!("{:?}", self.max_wait),
                "give at most an hour (default 100 ms)",
            );
        }
        Ok(())
    }
}

/// Where one enqueued event goes, and its message id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Events with one key land in one partition, in order.
    pub partition_key: Option<String>,
    /// Send straight to this partition (`"0"`, `"1"`, …).
    pub partition_id: Option<String>,
    /// The event's message id, reported back in its [`DeliveryReport`];
    /// one is assigned when `None`. Only for single events.
    pub message_id: Option<String>,
}

impl EnqueueOptions {
    /// Options routing by partition key.
    pub fn partition_key(key: impl Into<String>) -> Self {
        Self {
            partition_key: Some(key.into()),
            ..Default::default()
        }
    }

    /// Options sending to one partition.
    pub fn partition_id(id: impl Into<String>) -> Self {
        Self {
            partition_id: Some(id.into()),
            ..Default::default()
        }
    }

    /// Sets the message id.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }
}

/// The outcome of one enqueued event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// The event's message id (the caller's, or the one assigned).
    pub message_id: String,
    /// The partition key it was enqueued with.
    pub partition_key: Option<String>,
    /// The partition id it was enqueued with.
    pub partition_id: Option<String>,
    /// `Ok` once the service accepted it; otherwise why not.
    pub outcome: Result<(), Error>,
}

impl DeliveryReport {
    /// Whether the service accepted the event.
    pub fn accepted(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// The stream of [`DeliveryReport`]s of one [`BufferedSender`]: one per
/// enqueued event, in the order outcomes arrive. It ends once the sender is
/// closed (or aborted, or every handle dropped) and every report was given.
/// Unbounded, so a slow reader never stalls sending; read it as you go.
/// At high rates, reading it in chunks (`recv_many`) wakes the reader once
/// per chunk rather than once per report.
pub type DeliveryReports = mpsc::UnboundedReceiver<DeliveryReport>;

/// The lane of an event: events of one lane are sent in order, one batch at
/// a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lane {
    Key(String),
    Id(String),
    /// Events with neither: the service picks the partition and no order
    /// is promised, so they spread over several lanes to go concurrently.
    Any(usize),
}

struct Item {
    seq: u64,
    event: Event,
    size: u64,
    enqueued: Instant,
}

#[derive(Default)]
struct LaneQueue {
    queue: VecDeque<Item>,
    bytes: u64,
    sending: bool,
}

#[derive(Default)]
struct State {
    lanes: HashMap<Lane, LaneQueue>,
    /// Sequence numbers of events without an outcome yet.
    outstanding: BTreeSet<u64>,
    bytes: u64,
    next_seq: u64,
    /// Flushes waiting: batches leave without waiting for `max_wait`.
    flushing: usize,
    /// No more events are accepted.
    closed: bool,
    /// The background task ends once nothing is outstanding.
    stopping: bool,
}

/// Untyped: events are encoded before they get here, and the task must
/// not depend on the caller's `T`.
struct Shared {
    sender: EventHubSender<()>,
    options: BufferedOptions,
    state: Mutex<State>,
    /// Wakes the dispatcher: an event arrived, a send ended, a flush began.
    work: Notify,
    /// Wakes enqueuers waiting for room, and flushes waiting for outcomes.
    progress: Notify,
    permits: Arc<Semaphore>,
    /// Taken when the background task ends, which ends the stream.
    reports: Mutex<Option<mpsc::UnboundedSender<DeliveryReport>>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not stop reports: the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_sent(&self, reason: &str) -> Error {
        Error::EventHubs(Box::new(EventHubsError::NotSent {
            namespace: self.sender.inner.target.namespace.clone(),
            hub: self.sender.inner.target.hub.clone(),
            reason: reason.to_string(),
        }))
    }

    fn report(&self, lane: &Lane, message_id: String, outcome: Result<(), Error>) {
        let (partition_key, partition_id) = match lane {
            Lane::Key(k) => (Some(k.clone()), None),
            Lane::Id(i) => (None, Some(i.clone())),
            Lane::Any(_) => (None, None),
        };
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = reports.as_ref() {
            // The receiver may be gone: the caller chose not to read reports.
            let _ = tx.send(DeliveryReport {
                message_id,
                partition_key,
                partition_id,
                outcome,
            });
        }
    }
}

/// Stops the background task once the last handle is dropped: what was
/// enqueued is still sent and reported, then it ends.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closed = true;
        st.stopping = true;
        drop(st);
        self.shared.work.notify_one();
    }
}

/// Closes azure_messaging_eventhubs' buffered producer once the last handle
/// is dropped: what was enqueued is still sent and reported.
#[cfg(feature = "amqp")]
struct SdkHandle(Arc<sdk::SdkEngine>);

#[cfg(feature = "amqp")]
impl Drop for SdkHandle {
    fn drop(&mut self) {
        let engine = self.0.clone();
        // Outside a runtime there is nothing to run the close on; the
        // client's own workers end when the runtime does.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { engine.close().await });
        }
    }
}

/// What does the sending.
enum Engine {
    /// This crate's per-key lanes over the one-batch sender: HTTPS, and AMQP
    /// over WebSockets.
    Lanes(Handle),
    /// azure_messaging_eventhubs' `BufferedProducerClient`: AMQP over TCP/TLS.
    #[cfg(feature = "amqp")]
    Sdk(SdkHandle),
}

/// What every clone of a [`BufferedSender`] shares.
struct Front {
    engine: Engine,
    target: super::Target,
    options: BufferedOptions,
    id_prefix: String,
    ids: AtomicU64,
    /// Round-robin over the `Lane::Any` lanes.
    any: AtomicU64,
}

/// An event checked and given its message id and estimated size, with where
/// it goes.
pub(crate) struct Routed {
    event: Event,
    size: u64,
    partition_key: Option<String>,
    partition_id: Option<String>,
}

/// Sends events of type `T` in the background, batched per partition, and
/// reports each event's outcome on its [`DeliveryReports`]. Cheap to
/// clone; clones share one buffer.
///
/// - Every enqueued event gets exactly one [`DeliveryReport`] with its
///   message id: `Ok` only once the service accepted it, otherwise the
///   typed error with its remedy; [`abort`](Self::abort) reports what it
///   drops ([`EventHubsError::NotSent`], or over AMQP
///   [`EventHubsError::Aborted`], whose outcome is unknown).
/// - The buffer is bounded ([`BufferedOptions`]): [`enqueue`](Self::enqueue)
///   waits for room, [`try_enqueue`](Self::try_enqueue) returns
///   [`EventHubsError::BufferFull`].
/// - Events of one partition key (or id) are sent in order.
/// - Failed events are reported, not retried again.
///
/// Over AMQP (TCP/TLS) it is azure_messaging_eventhubs'
/// `BufferedProducerClient` with this crate's credential and a ledger
/// around it; over HTTPS and AMQP over WebSockets (which that client cannot
/// speak) it is this crate's engine over the one-batch sender. The module
/// docs say what differs.
pub struct BufferedSender<T = serde_json::Value> {
    front: Arc<Front>,
    _events: PhantomData<fn(&T)>,
}

impl<T> Clone for BufferedSender<T> {
    fn clone(&self) -> Self {
        Self {
            front: self.front.clone(),
            _events: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for BufferedSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = match &self.front.engine {
            Engine::Lanes(_) => "lanes over the one-batch sender",
            #[cfg(feature = "amqp")]
            Engine::Sdk(_) => "azure_messaging_eventhubs BufferedProducerClient",
        };
        f.debug_struct("BufferedSender")
            .field("namespace", &self.front.target.namespace)
            .field("hub", &self.front.target.hub)
            .field("engine", &engine)
            .field("options", &self.front.options)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> EventHubSenderBuilder<T> {
    /// Checks every value, connects, and starts a [`BufferedSender`] with
    /// its [`DeliveryReports`].
    pub async fn open_buffered(
        self,
        options: BufferedOptions,
    ) -> Result<(BufferedSender<T>, DeliveryReports), Error> {
        options.check()?;
        self.open().await?.buffered(options).await
    }
}

impl<T: Serialize> EventHubSender<T> {
    /// A [`BufferedSender`] for this sender's hub, with its credential and
    /// settings. Over HTTPS and AMQP over WebSockets it sends through this
    /// sender's connection; over AMQP (TCP/TLS) it opens
    /// azure_messaging_eventhubs' `BufferedProducerClient` on a connection
    /// of its own (the same credential and token cache).
    pub async fn buffered(
        &self,
        options: BufferedOptions,
    ) -> Result<(BufferedSender<T>, DeliveryReports), Error> {
        options.check()?;
        let untyped = EventHubSender::<()> {
            inner: self.inner.clone(),
            _events: PhantomData,
        };
        #[cfg(feature = "amqp")]
        if let Some(opened) = sdk::SdkEngine::open(&untyped, &options).await {
            let (engine, rx) = opened?;
            let engine = Engine::Sdk(SdkHandle(engine));
            return Ok((self.front(engine, options), rx));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            sender: untyped,
            permits: Arc::new(Semaphore::new(options.max_concurrent_sends)),
            options: options.clone(),
            state: Mutex::new(State::default()),
            work: Notify::new(),
            progress: Notify::new(),
            reports: Mutex::new(Some(tx)),
        });
        tokio::spawn(dispatch(shared.clone()));
        Ok((self.front(Engine::Lanes(Handle { shared }), options), rx))
    }

    fn front(&self, engine: Engine, options: BufferedOptions) -> BufferedSender<T> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        BufferedSender {
            front: Arc::new(Front {
                engine,
                target: self.inner.target.clone(),
                options,
                // Unique enough to tell two runs' assigned ids apart.
                id_prefix: format!("{:x}-{:x}", nanos as u64, std::process::id()),
                ids: AtomicU64::new(0),
                any: AtomicU64::new(0),
            }),
            _events: PhantomData,
        }
    }
}

/// A rough encoded size: body, properties, id and per-event framing. Only
/// for the buffer's byte limit and batch cut-off; the one-batch sender sizes
/// exactly.
fn estimate(event: &Event) -> u64 {
    let props: usize = event
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum();
    (event.body.len()
        + props
        + event.message_id.as_ref().map_or(0, String::len)
        + event.content_type.as_ref().map_or(0, String::len)
        + 64) as u64
}

impl<T: Serialize> BufferedSender<T> {
    /// Enqueues one event (as JSON), waiting for room if the buffer is
    /// full. Returns its message id. Its outcome comes on the
    /// [`DeliveryReports`].
    pub async fn enqueue(&self, event: &T, options: EnqueueOptions) -> Result<String, Error> {
        let event = self.encode(event, 0)?;
        self.enqueue_raw(event, options).await
    }

    /// Like [`enqueue`](Self::enqueue), but returns
    /// [`EventHubsError::BufferFull`] at once instead of waiting for room.
    pub async fn try_enqueue(&self, event: &T, options: EnqueueOptions) -> Result<String, Error> {
        let event = self.encode(event, 0)?;
        self.try_enqueue_raw(event, options).await
    }

    /// Enqueues events in order (all with `options`' key or id; message ids
    /// are assigned), waiting for room as needed. Returns their message ids.
    /// Every event is encoded before any is enqueued.
    pub async fn enqueue_batch(
        &self,
        events: &[T],
        options: EnqueueOptions,
    ) -> Result<Vec<String>, Error> {
        if let Some(id) = &options.message_id {
            return Err(InvalidInput::new(
                "message_id",
                id,
                "one message id cannot name several events; leave it unset (ids are assigned) \
                 or enqueue raw events with their own ids",
            )
            .into());
        }
        let mut raw = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            raw.push(self.encode(e, i)?);
        }
        let mut ids = Vec::with_capacity(raw.len());
        for event in raw {
            ids.push(self.enqueue_raw(event, options.clone()).await?);
        }
        Ok(ids)
    }

    /// Enqueues a raw event; its own `message_id` is used unless `options`
    /// names one, and one is assigned if neither does.
    pub async fn enqueue_raw(
        &self,
        event: Event,
        options: EnqueueOptions,
    ) -> Result<String, Error> {
        let routed = self.prepare(event, options)?;
        self.put(routed, true).await
    }

    /// Like [`enqueue_raw`](Self::enqueue_raw), but returns
    /// [`EventHubsError::BufferFull`] at once instead of waiting for room.
    pub async fn try_enqueue_raw(
        &self,
        event: Event,
        options: EnqueueOptions,
    ) -> Result<String, Error> {
        let routed = self.prepare(event, options)?;
        self.put(routed, false).await
    }

    async fn put(&self, routed: Routed, wait: bool) -> Result<String, Error> {
        match &self.front.engine {
            Engine::Lanes(handle) => {
                let lane = match (routed.partition_key, routed.partition_id) {
                    (Some(k), _) => Lane::Key(k),
                    (None, Some(i)) => Lane::Id(i),
                    (None, None) => {
                        let n = self.front.any.fetch_add(1, Ordering::Relaxed);
                        Lane::Any((n % self.front.options.max_concurrent_sends as u64) as usize)
                    }
                };
                lanes_put(&handle.shared, lane, routed.event, routed.size, wait).await
            }
            #[cfg(feature = "amqp")]
            Engine::Sdk(engine) => engine.0.enqueue(routed, wait).await,
        }
    }

    fn encode(&self, event: &T, index: usize) -> Result<Event, Error> {
        let body = serde_json::to_vec(event).map_err(|err| {
            Error::EventHubs(Box::new(EventHubsError::Serialize {
                index,
                reason: err.to_string(),
            }))
        })?;
        Ok(Event::new(body).with_content_type("application/json"))
    }

    /// Checks the options and the event, and gives it its message id.
    fn prepare(&self, mut event: Event, options: EnqueueOptions) -> Result<Routed, Error> {
        let routing = SendOptions {
            partition_key: options.partition_key.clone(),
            partition_id: options.partition_id.clone(),
            ..Default::default()
        };
        routing.check()?;
        super::check_properties(0, &event)?;
        if let Some(id) = options.message_id {
            event.message_id = Some(id);
        }
        match &event.message_id {
            Some(id) if id.is_empty() || id.chars().any(char::is_control) || id.len() > 128 => {
                return Err(InvalidInput::new(
                    "message_id",
                    id,
                    "a message id is 1 to 128 characters without control characters",
                )
                .into());
            }
            Some(_) => {}
            None => {
                let n = self.front.ids.fetch_add(1, Ordering::Relaxed);
                event.message_id = Some(format!("{}-{n}", self.front.id_prefix));
            }
        }
        let size = estimate(&event);
        let limit = self.front.target.max_message_size;
        if size > limit {
            return Err(Error::EventHubs(Box::new(EventHubsError::TooLarge {
                index: 0,
                size,
                limit,
            })));
        }
        Ok(Routed {
            event,
            size,
            partition_key: options.partition_key,
            partition_id: options.partition_id,
        })
    }

    /// Sends what is buffered now and waits until every event enqueued
    /// before this call has an outcome (reported on the
    /// [`DeliveryReports`]). Events enqueued meanwhile do not delay it.
    pub async fn flush(&self) {
        match &self.front.engine {
            Engine::Lanes(handle) => flush(&handle.shared).await,
            #[cfg(feature = "amqp")]
            Engine::Sdk(engine) => engine.0.flush().await,
        }
    }

    /// Stops accepting events, sends every buffered one, and waits until
    /// each has an outcome. The [`DeliveryReports`] end after the last
    /// report. The [`EventHubSender`] it came from stays open.
    pub async fn close(&self) {
        match &self.front.engine {
            Engine::Lanes(handle) => {
                let shared = &handle.shared;
                shared.lock().closed = true;
                flush(shared).await;
                shared.lock().stopping = true;
                shared.work.notify_one();
            }
            #[cfg(feature = "amqp")]
            Engine::Sdk(engine) => engine.0.close().await,
        }
    }

    /// Stops at once and reports every event without an outcome yet. Over
    /// HTTPS and AMQP over WebSockets: events not yet handed to the service
    /// are reported as [`EventHubsError::NotSent`], batches in flight finish
    /// and report their real outcome, and the call returns once they have.
    /// Over AMQP (TCP/TLS), azure_messaging_eventhubs' client cancels a
    /// batch in flight, so every event without an outcome is reported as
    /// [`EventHubsError::Aborted`] (outcome unknown). Returns how many
    /// events were reported so.
    pub async fn abort(&self) -> usize {
        match &self.front.engine {
            Engine::Lanes(handle) => lanes_abort(&handle.shared).await,
            #[cfg(feature = "amqp")]
            Engine::Sdk(engine) => engine.0.abort().await,
        }
    }

    /// Events enqueued and without an outcome yet (queued or in flight).
    pub fn buffered_events(&self) -> usize {
        match &self.front.engine {
            Engine::Lanes(handle) => handle.shared.lock().outstanding.len(),
            #[cfg(feature = "amqp")]
            Engine::Sdk(engine) => engine.0.buffered_events(),
        }
    }
}

/// Puts the event in its lane, waiting for room if `wait`, else
/// `BufferFull` when full.
async fn lanes_put(
    shared: &Shared,
    lane: Lane,
    mut event: Event,
    size: u64,
    wait: bool,
) -> Result<String, Error> {
    loop {
        let notified = shared.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match lanes_insert(shared, &lane, event, size, wait)? {
            Ok(id) => return Ok(id),
            Err(back) => event = back,
        }
        notified.await;
    }
}

/// Puts the event in its lane if there is room: `Ok(Err(event))` (the
/// event handed back) when full and `wait`, `BufferFull` when full and not.
fn lanes_insert(
    shared: &Shared,
    lane: &Lane,
    event: Event,
    size: u64,
    wait: bool,
) -> Result<Result<String, Event>, Error> {
    let opts = &shared.options;
    let mut st = shared.lock();
    if st.closed {
        return Err(shared.not_sent("it is closed; enqueue on a new sender"));
    }
    let count = st.outstanding.len();
    if !opts.fits(count, st.bytes, size) {
        if wait {
            return Ok(Err(event));
        }
        return Err(opts.full(&shared.sender.inner.target.hub, count, st.bytes));
    }
    let seq = st.next_seq;
    st.next_seq += 1;
    st.outstanding.insert(seq);
    st.bytes += size;
    let urgent = st.flushing > 0;
    let limit = shared.sender.inner.target.max_message_size;
    let id = event.message_id.clone().unwrap_or_default();
    let q = st.lanes.entry(lane.clone()).or_default();
    // Wake the background task only when this lane needs it: a first
    // event (its max_wait timer starts), a full batch, or a flush.
    let wake = urgent || q.queue.is_empty() || q.bytes + size >= limit;
    q.bytes += size;
    q.queue.push_back(Item {
        seq,
        event,
        size,
        enqueued: Instant::now(),
    });
    drop(st);
    if wake {
        shared.work.notify_one();
    }
    Ok(Ok(id))
}

/// Drops every queued event, reporting it as `NotSent`, and waits for the
/// batches in flight.
async fn lanes_abort(shared: &Shared) -> usize {
    let n = {
        let mut st = shared.lock();
        st.closed = true;
        st.stopping = true;
        let mut dropped = Vec::new();
        for (lane, q) in st.lanes.iter_mut() {
            q.bytes = 0;
            dropped.extend(q.queue.drain(..).map(|item| (lane.clone(), item)));
        }
        // Reported before they leave `outstanding`, so the stream cannot
        // end before these reports are in it.
        for (lane, item) in &dropped {
            let id = item.event.message_id.clone().unwrap_or_default();
            shared.report(lane, id, Err(shared.not_sent("the sender was aborted")));
            st.outstanding.remove(&item.seq);
            st.bytes -= item.size;
        }
        dropped.len()
    };
    shared.progress.notify_waiters();
    shared.work.notify_one();
    flush(shared).await;
    n
}

async fn flush(shared: &Shared) {
    let target = {
        let mut st = shared.lock();
        st.flushing += 1;
        st.next_seq
    };
    shared.work.notify_one();
    loop {
        let notified = shared.progress.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let done = shared
            .lock()
            .outstanding
            .first()
            .is_none_or(|&first| first >= target);
        if done {
            break;
        }
        notified.await;
    }
    shared.lock().flushing -= 1;
}

/// The background task: starts a batch for every idle lane that is due, and
/// ends once stopping with nothing outstanding.
async fn dispatch(shared: Arc<Shared>) {
    let max_wait = shared.options.max_wait;
    let limit = shared.sender.inner.target.max_message_size;
    loop {
        let notified = shared.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut batches = Vec::new();
        let mut next_due: Option<Instant> = None;
        {
            let mut st = shared.lock();
            if st.stopping && st.outstanding.is_empty() {
                break;
            }
            let urgent = st.flushing > 0 || st.closed;
            let now = Instant::now();
            for (lane, q) in st.lanes.iter_mut() {
                if q.sending || q.queue.is_empty() {
                    continue;
                }
                let oldest = q.queue.front().map(|i| i.enqueued).unwrap_or(now);
                let due = oldest + max_wait;
                if urgent || q.bytes >= limit || due <= now {
                    let mut taken = Vec::new();
                    let mut bytes = 0;
                    while let Some(item) = q.queue.front() {
                        if !taken.is_empty() && bytes + item.size > limit {
                            break;
                        }
                        bytes += item.size;
                        taken.extend(q.queue.pop_front());
                    }
                    q.bytes -= bytes;
                    q.sending = true;
                    batches.push((lane.clone(), taken));
                } else {
                    next_due = Some(next_due.map_or(due, |d: Instant| d.min(due)));
                }
            }
            // Forget idle empty lanes, so a stream of one-off keys does not
            // grow the map.
            st.lanes.retain(|_, q| q.sending || !q.queue.is_empty());
        }
        for (lane, items) in batches {
            let permit = match shared.permits.clone().acquire_owned().await {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break,
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                send_one(&shared, lane, items).await;
                drop(permit);
            });
        }
        match next_due {
            Some(due) => {
                let _ = tokio::time::timeout_at(due.into(), notified).await;
            }
            None => notified.await,
        }
    }
    // Every event has been reported (each report is sent before its event
    // leaves `outstanding`): end the stream.
    shared
        .reports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
}

/// Sends one lane's batch through the one-batch sender and reports each of
/// its events.
async fn send_one(shared: &Shared, lane: Lane, items: Vec<Item>) {
    let options = match &lane {
        Lane::Key(k) => SendOptions::partition_key(k.clone()),
        Lane::Id(i) => SendOptions::partition_id(i.clone()),
        Lane::Any(_) => SendOptions::default(),
    };
    // The events move into the call; what the reports need stays here.
    let mut events = Vec::with_capacity(items.len());
    let mut items: Vec<(u64, u64, String)> = items
        .into_iter()
        .map(|i| {
            let id = i.event.message_id.clone().unwrap_or_default();
            events.push(i.event);
            (i.seq, i.size, id)
        })
        .collect();
    let total = events.len();
    let result = shared.sender.send_raw(events, options).await;
    let (failed, cause) = match &result {
        Ok(()) => (total..total, None),
        Err(Error::EventHubs(e)) => {
            let cause = match &**e {
                EventHubsError::NotAccepted { cause, .. } => {
                    Error::EventHubs(Box::new((**cause).clone()))
                }
                _ => Error::EventHubs(e.clone()),
            };
            (e.not_accepted(total), Some(cause))
        }
        Err(other) => (0..total, Some(other.clone())),
    };
    let mut freed = 0;
    for (i, (_, size, id)) in items.iter_mut().enumerate() {
        freed += *size;
        let outcome = match &cause {
            Some(c) if failed.contains(&i) => Err(c.clone()),
            _ => Ok(()),
        };
        shared.report(&lane, std::mem::take(id), outcome);
    }
    {
        let mut st = shared.lock();
        for (seq, _, _) in &items {
            st.outstanding.remove(seq);
        }
        st.bytes -= freed;
        if let Some(q) = st.lanes.get_mut(&lane) {
            q.sending = false;
        }
    }
    shared.progress.notify_waiters();
    shared.work.notify_one();
}
