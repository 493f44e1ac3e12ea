//! The AMQP transport: azure_messaging_eventhubs' `ProducerClient` with our
//! credential. It owns CBS (put-token, renewal), link recovery and retries
//! of busy answers; this module adds batching by size with nothing sent when
//! an event cannot fit, typed errors, and one re-open with a fresh token
//! when the namespace refuses an expired one.

use super::{Event, EventHubsError, Prepared, SendOptions, Target, EVENTHUBS_SCOPE};
use crate::credential::TokenSource;
use crate::error::{chain, Error};
use azure_core_amqp::error::{AmqpErrorCondition, AmqpErrorKind};
use azure_core_amqp::{AmqpError, AmqpTransport};
use azure_messaging_eventhubs::builders::BufferedProducerClientBuilder;
use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{
    BufferedProducerClient, EventDataBatchOptions, ProducerClient, RetryOptions,
};
use std::sync::Arc;
use url::Url;

pub(crate) struct AmqpBackend {
    /// Set after an operation timed out: the next send opens a new connection.
    stale: std::sync::atomic::AtomicBool,
    target: Target,
    credential: TokenSource,
    endpoint: Option<Url>,
    websockets: bool,
    /// [`DEFAULT_OPERATION_TIMEOUT`](super::DEFAULT_OPERATION_TIMEOUT)
    /// unless the builder set another.
    operation_timeout: std::time::Duration,
    /// `None` once [`close`](Self::close) took it.
    producer: tokio::sync::RwLock<Option<Arc<ProducerClient>>>,
}

/// What an AMQP failure means for the caller.
enum Failure {
    /// The token expired under us: re-open with a fresh one and retry once.
    Expired(EventHubsError),
    Final(EventHubsError),
}

impl AmqpBackend {
    pub(crate) async fn open(
        target: Target,
        credential: TokenSource,
        endpoint: Option<Url>,
        websockets: bool,
        operation_timeout: std::time::Duration,
    ) -> Result<Self, Error> {
        let producer = connect(
            &target,
            &credential,
            endpoint.as_ref(),
            websockets,
            operation_timeout,
        )
        .await?;
        Ok(Self {
            stale: std::sync::atomic::AtomicBool::new(false),
            target,
            credential,
            endpoint,
            websockets,
            operation_timeout,
            producer: tokio::sync::RwLock::new(Some(Arc::new(producer))),
        })
    }

    pub(crate) async fn close(&self) -> Result<(), Error> {
        // Taken out under the write lock, so this handle is the last one
        // unless a send is in flight on another clone of the sender.
        let Some(producer) = self.producer.write().await.take() else {
            return Ok(());
        };
        match Arc::try_unwrap(producer) {
            Ok(p) => p
                .close()
                .await
                .map_err(|e| self.wrap(self.target.error(None, e.to_string(), false))),
            // A send in flight holds the last handle; the connection closes
            // when it drops it.
            Err(_) => Ok(()),
        }
    }

    /// The producer, or `NotSent` once the sender was closed.
    async fn current(&self) -> Result<Arc<ProducerClient>, Error> {
        self.producer.read().await.clone().ok_or_else(|| {
            self.wrap(EventHubsError::NotSent {
                namespace: self.target.namespace.clone(),
                hub: self.target.hub.clone(),
                reason: "the sender was closed; open a new one".into(),
            })
        })
    }

    /// Names the tenant and app of the refused token in an `Unauthorized`.
    async fn with_token_identity(&self, e: EventHubsError) -> EventHubsError {
        match e {
            EventHubsError::Unauthorized {
                namespace,
                hub,
                detail,
                ..
            } => {
                let (token_tenant, app_id) = self.credential.token_identity(EVENTHUBS_SCOPE).await;
                EventHubsError::Unauthorized {
                    namespace,
                    hub,
                    token_tenant,
                    app_id,
                    detail,
                }
            }
            other => other,
        }
    }

    /// How long one operation may take before it is given up.
    pub(crate) fn operation_timeout(&self) -> std::time::Duration {
        self.operation_timeout
    }

    /// Our typed error for an error of azure_messaging_eventhubs (the same
    /// reading as a one-batch send: sub-codes, the refused token's tenant
    /// and app).
    pub(crate) async fn explain(
        &self,
        err: &azure_messaging_eventhubs::EventHubsError,
    ) -> EventHubsError {
        let (Failure::Expired(e) | Failure::Final(e)) = classify(&self.target, err);
        self.with_token_identity(e).await
    }

    /// Opens azure_messaging_eventhubs' `BufferedProducerClient` with this
    /// sender's credential, endpoint, application id and retry policy, within
    /// the operation timeout. Over TCP/TLS only: that client's builder has
    /// no transport option (0.16); see [`websockets`](Self::websockets).
    pub(crate) async fn open_buffered(
        &self,
        builder: BufferedProducerClientBuilder,
    ) -> Result<BufferedProducerClient, Error> {
        let mut builder = builder
            .with_application_id(application_id())
            .with_retry_options(retry_options());
        if let Some(e) = &self.endpoint {
            builder = builder.with_custom_endpoint(e.as_str().trim_end_matches('/').to_string());
        }
        let t = &self.target;
        let open = builder.open(&t.namespace, &t.hub, self.credential.as_token_credential());
        match tokio::time::timeout(self.operation_timeout, open).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(self.wrap(self.explain(&e).await)),
            Err(_) => Err(self.wrap(EventHubsError::Timeout {
                namespace: t.namespace.clone(),
                hub: t.hub.clone(),
                operation: "opening the buffered AMQP producer".into(),
                after: self.operation_timeout,
            })),
        }
    }

    /// Whether this sender speaks AMQP over WebSockets.
    pub(crate) fn websockets(&self) -> bool {
        self.websockets
    }

    fn wrap(&self, e: EventHubsError) -> Error {
        Error::EventHubs(Box::new(e))
    }

    pub(crate) async fn send(
        &self,
        events: &[Prepared],
        options: &SendOptions,
    ) -> Result<(), Error> {
        let total = events.len();
        let mut accepted = 0;
        let mut reopened = false;
        let mut reconnects = 0;
        if self.stale.swap(false, std::sync::atomic::Ordering::AcqRel) {
            // Clone under the read lock and release it before `reopen` takes
            // the write lock (a temporary guard would live to the end of the
            // statement and deadlock it).
            let old = self.current().await?;
            self.reopen(&old).await?;
        }
        loop {
            let producer = self.current().await?;
            match self
                .send_with(&producer, &events[accepted..], options, &mut accepted)
                .await
            {
                Ok(()) => return Ok(()),
                Err(SendError::Input(e)) => return Err(e),
                // Nothing of this attempt was sent: a re-open, on a new
                // connection, is safe. Up to `LOST_AT_ATTACH_REOPENS`: the
                // published fe2o3-amqp 0.16.2's bug (see `attach`) can strike
                // each new connection again, as it did twice in a row in the
                // bench before the workspace patched it.
                Err(SendError::Lost(_)) if reconnects < LOST_AT_ATTACH_REOPENS => {
                    reconnects += 1;
                    tracing::info!(
                        namespace = %self.target.namespace,
                        "the AMQP connection was lost before anything was sent; re-opening"
                    );
                    self.reopen(&producer).await?;
                }
                Err(SendError::Lost(e)) => {
                    return Err(self.wrap(if accepted == 0 {
                        e
                    } else {
                        EventHubsError::NotAccepted {
                            accepted,
                            total,
                            cause: Box::new(e),
                        }
                    }));
                }
                Err(SendError::Failed(Failure::Expired(_))) if !reopened => {
                    reopened = true;
                    tracing::info!(
                        namespace = %self.target.namespace,
                        "the namespace refused an expired token; re-opening with a fresh one"
                    );
                    if let Ok(token) = self.credential.token(EVENTHUBS_SCOPE).await {
                        self.credential.invalidate(EVENTHUBS_SCOPE, &token);
                    }
                    self.reopen(&producer).await?;
                }
                Err(SendError::Failed(Failure::Expired(e) | Failure::Final(e))) => {
                    let e = self.with_token_identity(e).await;
                    return Err(self.wrap(if accepted == 0 {
                        e
                    } else {
                        EventHubsError::NotAccepted {
                            accepted,
                            total,
                            cause: Box::new(e),
                        }
                    }));
                }
            }
        }
    }

    /// Replaces `old` with a producer on a new connection (unless another
    /// task already did).
    async fn reopen(&self, old: &Arc<ProducerClient>) -> Result<(), Error> {
        let fresh = connect(
            &self.target,
            &self.credential,
            self.endpoint.as_ref(),
            self.websockets,
            self.operation_timeout,
        )
        .await?;
        let mut slot = self.producer.write().await;
        // Not after a close, and not if another task already replaced it.
        if slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, old)) {
            *slot = Some(Arc::new(fresh));
        }
        Ok(())
    }

    /// Runs one AMQP operation under the operation timeout; a timeout marks
    /// the connection stale.
    async fn timed<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = azure_messaging_eventhubs::Result<T>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => {
                self.stale.store(true, std::sync::atomic::Ordering::Release);
                Err(Failure::Final(EventHubsError::Timeout {
                    namespace: self.target.namespace.clone(),
                    hub: self.target.hub.clone(),
                    operation: what.to_string(),
                    after: self.operation_timeout,
                }))
            }
        }
    }

    /// Attaches the sender (CBS put-token, session, link) as
    /// `create_batch` does, under the operation timeout. A connection lost
    /// on the way is [`SendError::Lost`]: nothing was sent yet.
    ///
    /// That loss was not only the network's: fe2o3-amqp 0.16.2 as published
    /// ends its own connection when the namespace answers the detaches of
    /// the `$cbs` links azure_core_amqp drops after a put-token, and
    /// azure_messaging_eventhubs 0.16 does not retry the session begin or
    /// link attach that follows ("Connection dropped: Connection must have
    /// been closed" on the first send). The workspace builds a patched
    /// fe2o3-amqp (vendor/README.md); an application that builds against
    /// the published one still meets the bug, and a real network can still
    /// drop a connection here, so the re-open stays.
    async fn attach<'p>(
        &self,
        producer: &'p ProducerClient,
        options: EventDataBatchOptions,
    ) -> Result<azure_messaging_eventhubs::EventDataBatch<'p>, SendError> {
        match tokio::time::timeout(self.operation_timeout, producer.create_batch(Some(options)))
            .await
        {
            Ok(Ok(batch)) => Ok(batch),
            Ok(Err(e)) => {
                let lost = matches!(
                    typed(&e),
                    Some(Typed::Gone | Typed::Condition(AmqpErrorCondition::ConnectionForced, _))
                );
                match self.classify(e) {
                    Failure::Final(e) if lost => Err(SendError::Lost(e)),
                    other => Err(SendError::Failed(other)),
                }
            }
            Err(_) => {
                self.stale.store(true, std::sync::atomic::Ordering::Release);
                Err(SendError::Failed(Failure::Final(EventHubsError::Timeout {
                    namespace: self.target.namespace.clone(),
                    hub: self.target.hub.clone(),
                    operation: "attaching the sender".to_string(),
                    after: self.operation_timeout,
                })))
            }
        }
    }

    /// Packs `events` into batches (all of them, before sending any), then
    /// sends the batches in order, counting accepted events.
    async fn send_with(
        &self,
        producer: &ProducerClient,
        events: &[Prepared],
        options: &SendOptions,
        accepted: &mut usize,
    ) -> Result<(), SendError> {
        let batch_options = || EventDataBatchOptions {
            partition_key: options.partition_key.clone(),
            partition_id: options.partition_id.clone(),
            max_size_in_bytes: (self.target.max_message_size != super::DEFAULT_MAX_MESSAGE_SIZE)
                .then_some(self.target.max_message_size),
        };
        let base = *accepted;
        let mut batches = Vec::new();
        let mut batch = self.attach(producer, batch_options()).await?;
        let mut in_batch = 0usize;
        for (i, p) in events.iter().enumerate() {
            let added = batch.try_add_event_data(event_data(p), None).map_err(|e| {
                SendError::Failed(Failure::Final(self.target.error(
                    None,
                    e.to_string(),
                    false,
                )))
            })?;
            if added {
                in_batch += 1;
                continue;
            }
            if in_batch == 0 {
                return Err(SendError::Input(Error::EventHubs(Box::new(
                    EventHubsError::TooLarge {
                        index: base + i,
                        size: p.event.body.len() as u64,
                        limit: self.target.max_message_size,
                    },
                ))));
            }
            batches.push((batch, in_batch));
            batch = self.attach(producer, batch_options()).await?;
            let added = batch.try_add_event_data(event_data(p), None).map_err(|e| {
                SendError::Failed(Failure::Final(self.target.error(
                    None,
                    e.to_string(),
                    false,
                )))
            })?;
            if !added {
                return Err(SendError::Input(Error::EventHubs(Box::new(
                    EventHubsError::TooLarge {
                        index: base + i,
                        size: p.event.body.len() as u64,
                        limit: self.target.max_message_size,
                    },
                ))));
            }
            in_batch = 1;
        }
        batches.push((batch, in_batch));
        for (batch, count) in batches {
            self.timed("a batch transfer", producer.send_batch(batch, None))
                .await
                .map_err(SendError::Failed)?;
            *accepted += count;
        }
        Ok(())
    }

    /// Reads azure_messaging_eventhubs' error: see [`classify`].
    fn classify(&self, err: azure_messaging_eventhubs::EventHubsError) -> Failure {
        classify(&self.target, &err)
    }
}

enum SendError {
    /// Bad input found while packing; nothing of this attempt was sent.
    Input(Error),
    /// The connection (or its session or link) was lost while attaching,
    /// before anything of this attempt was sent.
    Lost(EventHubsError),
    Failed(Failure),
}

/// What an error from azure_messaging_eventhubs means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// `amqp:unauthorized-access` or status 401 whose description says the
    /// token expired (the service's `ExpiredToken:` text, sub-code 40106).
    Expired,
    /// `amqp:unauthorized-access` or status 401.
    Unauthorized,
    /// `amqp:not-found` or status 404.
    NotFound,
    /// `com.microsoft:server-busy` or status 503.
    ServerBusy,
    /// `amqp:link:message-size-exceeded`.
    TooLarge,
    /// Anything else; `transient` when the link, session or connection went
    /// away or the service had an internal error or timeout.
    Other {
        status: Option<u16>,
        transient: bool,
    },
}

/// The typed part of an error: the first AMQP condition or CBS /
/// `$management` status code found along the source chain.
enum Typed<'a> {
    Condition(&'a AmqpErrorCondition, Option<&'a str>),
    Status(u16, Option<&'a str>),
    /// A link, session or connection closed or dropped without a condition.
    Gone,
}

/// How far down the source chain to look (azure_messaging_eventhubs wraps
/// each error once or twice; this bounds a self-referencing chain).
const MAX_CHAIN_DEPTH: usize = 16;

/// Walks the source chain down to azure_core_amqp's typed error.
/// azure_messaging_eventhubs re-wraps an `AmqpError` in an
/// `azure_core::Error` (e.g. "Could not ensure sender") inside another
/// `AmqpError`, so the condition can sit a few levels down. A condition or
/// status code wins over a bare "closed"/"detached" found earlier.
fn typed<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<Typed<'a>> {
    use azure_messaging_eventhubs::error::ErrorKind as EhKind;
    let mut gone = false;
    let mut current = Some(err);
    for _ in 0..MAX_CHAIN_DEPTH {
        let Some(e) = current else { break };
        if let Some(eh) = e.downcast_ref::<azure_messaging_eventhubs::EventHubsError>() {
            match &eh.kind {
                EhKind::SendRejected(Some(d)) | EhKind::ConsumerDisconnected(Some(d)) => {
                    return Some(Typed::Condition(&d.condition, d.description.as_deref()));
                }
                EhKind::ConsumerDisconnected(None) => gone = true,
                _ => {}
            }
        } else if let Some(amqp) = e.downcast_ref::<AmqpError>() {
            match amqp.kind() {
                AmqpErrorKind::AmqpDescribedError(d) => {
                    return Some(Typed::Condition(&d.condition, d.description.as_deref()));
                }
                AmqpErrorKind::ManagementStatusCode(code, description) => {
                    return Some(Typed::Status(u16::from(*code), description.as_deref()));
                }
                AmqpErrorKind::LinkClosedByRemote(_)
                | AmqpErrorKind::SessionClosedByRemote(_)
                | AmqpErrorKind::ConnectionClosedByRemote(_)
                | AmqpErrorKind::LinkDetachedByRemote(_)
                | AmqpErrorKind::SessionDetachedByRemote(_)
                | AmqpErrorKind::ConnectionDetachedByRemote(_)
                | AmqpErrorKind::ConnectionDropped(_)
                | AmqpErrorKind::LinkStateError(_)
                | AmqpErrorKind::DetachError(_)
                | AmqpErrorKind::FramingError(_)
                | AmqpErrorKind::IdleTimeoutElapsed(_) => gone = true,
                _ => {}
            }
        } else if let Some(core) = e.downcast_ref::<azure_core::Error>() {
            if matches!(
                core.kind(),
                azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
            ) {
                gone = true;
            }
        } else if e.is::<std::io::Error>() {
            gone = true;
        }
        current = e.source();
    }
    gone.then_some(Typed::Gone)
}

/// Whether the service's description of a 401 says the token expired: its
/// `ExpiredToken:` prefix or sub-code 40106 (the service's sub-code for an
/// expired token, as on HTTPS).
fn says_expired(description: Option<&str>) -> bool {
    let Some(d) = description else { return false };
    let lower = d.to_ascii_lowercase();
    lower.contains("expiredtoken")
        || lower.contains("token is expired")
        || number_after(&lower, "subcode=") == Some(40106)
}

impl Typed<'_> {
    fn meaning(&self) -> Meaning {
        use AmqpErrorCondition as C;
        match *self {
            Typed::Condition(C::UnauthorizedAccess, d) | Typed::Status(401, d) => {
                if says_expired(d) {
                    Meaning::Expired
                } else {
                    Meaning::Unauthorized
                }
            }
            Typed::Condition(C::NotFound, _) | Typed::Status(404, _) => Meaning::NotFound,
            Typed::Condition(C::ServerBusyError, _) | Typed::Status(503, _) => Meaning::ServerBusy,
            Typed::Condition(C::LinkPayloadSizeExceeded, _) => Meaning::TooLarge,
            Typed::Condition(
                C::InternalError
                | C::TimeoutError
                | C::ConnectionForced
                | C::LinkDetachForced
                | C::ConnectionFramingError
                | C::ProtonIo,
                _,
            ) => Meaning::Other {
                status: None,
                transient: true,
            },
            Typed::Condition(..) => Meaning::Other {
                status: None,
                transient: false,
            },
            Typed::Status(status, _) => Meaning::Other {
                status: Some(status),
                transient: matches!(status, 500 | 504),
            },
            Typed::Gone => Meaning::Other {
                status: None,
                transient: true,
            },
        }
    }
}

/// The whole number right after `prefix` in `text` (first occurrence), or
/// `None` when the prefix is absent or not followed by digits. Anchoring on
/// a known prefix keeps digits inside ids (TrackingId GUIDs) from counting.
fn number_after(text: &str, prefix: &str) -> Option<u32> {
    let start = text.find(prefix)? + prefix.len();
    let digits: String = text[start..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `text` without the service's correlation ids (`TrackingId:…`,
/// `SystemTracker:…`, `Timestamp:…`), whose random characters must never
/// decide a classification.
fn without_ids(text: &str) -> String {
    const ID_PREFIXES: [&str; 3] = ["trackingid:", "systemtracker:", "timestamp:"];
    let mut out = Vec::new();
    let mut skip_next = false;
    for word in text.split_whitespace() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if let Some(p) = ID_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
            // "TrackingId: abc" puts the id in the next word.
            skip_next = lower.len() == p.len();
            continue;
        }
        out.push(word);
    }
    out.join(" ")
}

/// Last resort, for an error that carries no typed condition or status
/// (e.g. a plain message from azure_messaging_eventhubs): the AMQP symbols
/// and status phrases in its text, with ids removed and numbers read only
/// after `status code:` / `status-code:`.
fn meaning_from_text(text: &str) -> Meaning {
    let lower = without_ids(text).to_ascii_lowercase();
    let status = ["status code:", "status-code:", "status code"]
        .iter()
        .find_map(|p| number_after(&lower, p))
        .and_then(|n| u16::try_from(n).ok());
    if lower.contains("expiredtoken") || lower.contains("token is expired") {
        return Meaning::Expired;
    }
    if lower.contains("unauthorized") || status == Some(401) {
        return Meaning::Unauthorized;
    }
    if lower.contains("not-found") || lower.contains("could not be found") || status == Some(404) {
        return Meaning::NotFound;
    }
    if lower.contains("server-busy")
        || lower.contains("serverbusy")
        || lower.contains("server is busy")
        || status == Some(503)
    {
        return Meaning::ServerBusy;
    }
    if lower.contains("message-size-exceeded") {
        return Meaning::TooLarge;
    }
    let transient = lower.contains("connection")
        || lower.contains("detach")
        || lower.contains("internal-error")
        || lower.contains("timed out")
        || lower.contains("timeout");
    Meaning::Other { status, transient }
}

/// Classifies azure_messaging_eventhubs' error by the AMQP condition or the
/// CBS / `$management` status code it carries (the AMQP 1.0 spec's error
/// conditions, §2.8.15; the `status-code` of CBS replies in Microsoft's "AMQP
/// 1.0 in Azure Service Bus and Event Hubs protocol guide"), never by numbers
/// in its text: a 404's TrackingId may well contain "401".
fn classify(t: &Target, err: &azure_messaging_eventhubs::EventHubsError) -> Failure {
    let text = chain(err);
    let meaning = match typed(err) {
        Some(typed) => typed.meaning(),
        None => meaning_from_text(&text),
    };
    match meaning {
        Meaning::Expired => Failure::Expired(EventHubsError::TokenRejected {
            namespace: t.namespace.clone(),
            subcode: 40106,
            hint: EventHubsError::subcode_hint(40106).into(),
            detail: text,
        }),
        // Filled with the token's tenant and app by `with_token_identity`.
        Meaning::Unauthorized => Failure::Final(EventHubsError::Unauthorized {
            namespace: t.namespace.clone(),
            hub: t.hub.clone(),
            token_tenant: String::new(),
            app_id: String::new(),
            detail: text,
        }),
        Meaning::NotFound => Failure::Final(EventHubsError::NotFound {
            namespace: t.namespace.clone(),
            hub: t.hub.clone(),
            detail: text,
        }),
        Meaning::ServerBusy => Failure::Final(EventHubsError::ServerBusy {
            namespace: t.namespace.clone(),
            detail: text,
        }),
        Meaning::TooLarge => Failure::Final(EventHubsError::PayloadTooLarge {
            namespace: t.namespace.clone(),
            detail: text,
        }),
        Meaning::Other { status, transient } => Failure::Final(t.error(status, text, transient)),
    }
}

fn event_data(p: &Prepared) -> EventData {
    into_event_data(p.event.clone())
}

/// The event as azure_messaging_eventhubs' `EventData` (body, content type,
/// message id, properties), moved rather than copied.
pub(crate) fn into_event_data(event: Event) -> EventData {
    let mut b = EventData::builder().with_body(event.body);
    if let Some(ct) = event.content_type {
        b = b.with_content_type(ct);
    }
    if let Some(id) = event.message_id {
        b = b.with_message_id(id);
    }
    for (k, v) in event.properties {
        b = b.add_property(k, v);
    }
    b.build()
}

/// How many times one send re-opens the connection when it was lost while
/// attaching, before anything was sent.
const LOST_AT_ATTACH_REOPENS: u32 = 3;

/// The application id both producers announce.
fn application_id() -> String {
    format!("crosstenant/{}", env!("CARGO_PKG_VERSION"))
}

/// Busy answers and dropped connections are retried with bounded backoff:
/// at most 4 retries within 30 s.
fn retry_options() -> RetryOptions {
    RetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_delay: azure_core::time::Duration::seconds(5),
        max_total_elapsed: azure_core::time::Duration::seconds(30),
        max_retries: 4,
    }
}

/// The longest the retry policy of [`retry_options`] waits between the
/// attempts of one operation, in all: 0.2 + 0.4 + 0.8 + 1.6 s.
pub(crate) fn retry_waits() -> std::time::Duration {
    let o = retry_options();
    let mut delay = o.initial_delay;
    let mut total = azure_core::time::Duration::ZERO;
    for _ in 0..o.max_retries {
        total += delay.min(o.max_delay);
        delay *= 2;
    }
    let total = total.min(o.max_total_elapsed);
    std::time::Duration::try_from(total).unwrap_or(std::time::Duration::from_secs(30))
}

/// Opens a producer on a new connection, within `timeout`: a peer that
/// accepts the socket but never answers would otherwise hold the caller.
async fn connect(
    target: &Target,
    credential: &TokenSource,
    endpoint: Option<&Url>,
    websockets: bool,
    timeout: std::time::Duration,
) -> Result<ProducerClient, Error> {
    tokio::time::timeout(
        timeout,
        connect_unbounded(target, credential, endpoint, websockets),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::EventHubs(Box::new(EventHubsError::Timeout {
            namespace: target.namespace.clone(),
            hub: target.hub.clone(),
            operation: "opening the AMQP connection".into(),
            after: timeout,
        })))
    })
}

async fn connect_unbounded(
    target: &Target,
    credential: &TokenSource,
    endpoint: Option<&Url>,
    websockets: bool,
) -> Result<ProducerClient, Error> {
    let mut builder = ProducerClient::builder()
        .with_application_id(application_id())
        .with_retry_options(retry_options())
        .with_transport(if websockets {
            AmqpTransport::WebSocket
        } else {
            AmqpTransport::Tcp
        });
    if let Some(e) = endpoint {
        builder = builder.with_custom_endpoint(e.as_str().trim_end_matches('/').to_string());
    }
    builder
        .open(
            &target.namespace,
            &target.hub,
            credential.as_token_credential(),
        )
        .await
        .map_err(|e| {
            Error::EventHubs(Box::new(target.error(
                None,
                format!(
                    "could not open an AMQP connection to {}{}: {}",
                    target.namespace,
                    endpoint.map(|e| format!(" via {e}")).unwrap_or_default(),
                    chain(&e)
                ),
                true,
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core_amqp::{AmqpDescribedError, AmqpOrderedMap};
    use azure_messaging_eventhubs::error::ErrorKind as EhKind;

    /// A 404's TrackingId made of the digits that once decided a 401.
    const TRACKING: &str = "TrackingId:40140140-1401-4401-8401-401401401401_G401, \
                            SystemTracker:ns401.servicebus.windows.net:eventhub:no-such-hub";

    fn target() -> Target {
        Target {
            namespace: "ns401.servicebus.windows.net".into(),
            hub: "no-such-hub".into(),
            max_message_size: super::super::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// As azure_messaging_eventhubs hands it over: an `AmqpError` wrapped in
    /// an `azure_core::Error` ("Could not ensure sender") wrapped in an
    /// `AmqpError` wrapped in its `EventHubsError`.
    fn wrapped(inner: AmqpError) -> azure_messaging_eventhubs::EventHubsError {
        let core = azure_core::Error::with_error(
            azure_core::error::ErrorKind::Other,
            inner,
            "Could not ensure sender",
        );
        AmqpError::from(AmqpErrorKind::AzureCore(core)).into()
    }

    fn described(condition: AmqpErrorCondition, description: &str) -> AmqpError {
        AmqpError::from(AmqpErrorKind::AmqpDescribedError(AmqpDescribedError::new(
            condition,
            Some(description.to_string()),
            AmqpOrderedMap::new(),
        )))
    }

    fn status(code: u16, description: &str) -> AmqpError {
        AmqpError::from(AmqpErrorKind::ManagementStatusCode(
            azure_core::http::StatusCode::from(code),
            Some(description.to_string()),
        ))
    }

    /// The classification, and whether it asks for a re-open with a fresh token.
    fn classified(err: azure_messaging_eventhubs::EventHubsError) -> (EventHubsError, bool) {
        match classify(&target(), &err) {
            Failure::Expired(e) => (e, true),
            Failure::Final(e) => (e, false),
        }
    }

    #[test]
    fn a_404_whose_tracking_id_is_full_of_401s_is_not_found() {
        let description = format!(
            "The messaging entity 'sb://ns401.servicebus.windows.net/no-such-hub' could not \
             be found. {TRACKING}"
        );
        // The CBS put-token reply, and the same condition on a link.
        for err in [
            wrapped(status(404, &description)),
            wrapped(described(AmqpErrorCondition::NotFound, &description)),
            EhKind::SendRejected(Some(AmqpDescribedError::new(
                AmqpErrorCondition::NotFound,
                Some(description.clone()),
                AmqpOrderedMap::new(),
            )))
            .into(),
        ] {
            let text = chain(&err);
            assert!(
                text.contains("401"),
                "the test needs a 401 in the text: {text}"
            );
            let (e, expired) = classified(err);
            assert!(
                matches!(e, EventHubsError::NotFound { .. }) && !expired,
                "{e:?}"
            );
        }
    }

    #[test]
    fn unauthorized_access_and_status_401_are_unauthorized() {
        for err in [
            wrapped(described(
                AmqpErrorCondition::UnauthorizedAccess,
                "SubCode=40100: Unauthorized access. 'Send' claim(s) are required.",
            )),
            wrapped(status(401, "SubCode=40100: Unauthorized. TrackingId:1")),
        ] {
            let (e, expired) = classified(err);
            assert!(
                matches!(e, EventHubsError::Unauthorized { .. }) && !expired,
                "{e:?}"
            );
        }
    }

    #[test]
    fn an_expired_token_asks_for_one_fresh_token() {
        for err in [
            wrapped(described(
                AmqpErrorCondition::UnauthorizedAccess,
                "ExpiredToken: The token is expired. Expiration time: '1700000000'.",
            )),
            wrapped(status(401, "SubCode=40106: the token has expired.")),
        ] {
            let (e, expired) = classified(err);
            assert!(
                matches!(e, EventHubsError::TokenRejected { subcode: 40106, .. }) && expired,
                "{e:?}"
            );
        }
    }

    #[test]
    fn busy_and_too_large_conditions_keep_their_variants() {
        let (e, _) = classified(wrapped(described(
            AmqpErrorCondition::ServerBusyError,
            "The server is busy. TrackingId:404",
        )));
        assert!(matches!(e, EventHubsError::ServerBusy { .. }), "{e:?}");
        let (e, _) = classified(wrapped(status(503, "Busy. TrackingId:401")));
        assert!(matches!(e, EventHubsError::ServerBusy { .. }), "{e:?}");
        let (e, _) = classified(wrapped(described(
            AmqpErrorCondition::LinkPayloadSizeExceeded,
            "The received message (size 1048577 bytes) exceeds the limit.",
        )));
        assert!(matches!(e, EventHubsError::PayloadTooLarge { .. }), "{e:?}");
    }

    #[test]
    fn internal_errors_and_lost_links_are_transient_other_answers_final() {
        let transient = |e: &EventHubsError| {
            matches!(
                e,
                EventHubsError::Service {
                    transient: true,
                    ..
                }
            )
        };
        let (e, _) = classified(wrapped(described(
            AmqpErrorCondition::InternalError,
            "Internal error. TrackingId:401",
        )));
        assert!(transient(&e), "{e:?}");
        let gone = AmqpError::from(AmqpErrorKind::LinkDetachedByRemote(Box::new(
            std::io::Error::other("detached"),
        )));
        let (e, _) = classified(wrapped(gone));
        assert!(transient(&e), "{e:?}");
        // Its text names no connection or detach: only its kind says so.
        let gone = AmqpError::from(AmqpErrorKind::LinkStateError(Box::new(
            std::io::Error::other("remote ended the link"),
        )));
        let (e, _) = classified(wrapped(gone));
        assert!(transient(&e), "{e:?}");
        let (e, _) = classified(wrapped(status(400, "Bad request. TrackingId:401")));
        assert!(
            matches!(
                e,
                EventHubsError::Service {
                    status: Some(400),
                    transient: false,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn text_is_a_last_resort_and_never_reads_ids() {
        let plain = |s: &str| -> azure_messaging_eventhubs::EventHubsError {
            EhKind::SimpleMessage(s.to_string().into()).into()
        };
        let (e, _) = classified(plain(&format!(
            "Put token failed. status-code: 404, status-description: The messaging entity \
             could not be found. {TRACKING}"
        )));
        assert!(matches!(e, EventHubsError::NotFound { .. }), "{e:?}");
        let (e, _) = classified(plain(&format!("Something failed. {TRACKING}")));
        assert!(
            matches!(
                e,
                EventHubsError::Service {
                    status: None,
                    transient: false,
                    ..
                }
            ),
            "{e:?}"
        );
        // The SystemTracker names the hub, whose name may read like a condition.
        let (e, _) = classified(plain(
            "Something failed. TrackingId:1, SystemTracker:ns:eventhub:unauthorized-timeout",
        ));
        assert!(
            matches!(
                e,
                EventHubsError::Service {
                    transient: false,
                    ..
                }
            ),
            "{e:?}"
        );
        let (e, _) = classified(plain("Put token failed. status-code: 401, SubCode=40100"));
        assert!(matches!(e, EventHubsError::Unauthorized { .. }), "{e:?}");
    }

    #[test]
    fn ids_are_removed_before_reading_text() {
        assert_eq!(
            without_ids("found. TrackingId: 401-401, SystemTracker:x:401 Timestamp:2026 done"),
            "found. done"
        );
        assert_eq!(
            number_after("status-code: 404, id 401", "status-code:"),
            Some(404)
        );
        assert_eq!(number_after("no code here 401", "status-code:"), None);
    }

    /// Each phrase of the text fallback on its own: a busy or transient
    /// answer that reaches it untyped must not be reported as final (the
    /// sandbox's refusals all arrive typed, so only these cases prove it).
    #[test]
    fn each_phrase_of_the_text_fallback_is_read_alone() {
        let busy = [
            "condition: com.microsoft:server-busy",
            "ServerBusy: try again",
            "The server is busy.",
            "status-code: 503, status-description: busy",
            "status code: 503",
        ];
        for text in busy {
            assert_eq!(meaning_from_text(text), Meaning::ServerBusy, "{text}");
        }
        for text in ["ExpiredToken: gone", "The token is expired."] {
            assert_eq!(meaning_from_text(text), Meaning::Expired, "{text}");
        }
        for text in ["condition: amqp:not-found", "The hub could not be found."] {
            assert_eq!(meaning_from_text(text), Meaning::NotFound, "{text}");
        }
        assert_eq!(
            meaning_from_text("amqp:link:message-size-exceeded"),
            Meaning::TooLarge
        );
        let transient = [
            "connection reset by peer",
            "link detach-forced",
            "amqp:internal-error",
            "the operation timed out",
            "a timeout elapsed",
        ];
        for text in transient {
            assert!(
                matches!(
                    meaning_from_text(text),
                    Meaning::Other {
                        transient: true,
                        ..
                    }
                ),
                "{text}"
            );
        }
        assert_eq!(
            meaning_from_text("something else entirely"),
            Meaning::Other {
                status: None,
                transient: false
            }
        );
    }
}
