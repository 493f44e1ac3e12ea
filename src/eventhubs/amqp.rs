//! The AMQP transport: azure_messaging_eventhubs' `ProducerClient` with our
//! credential. It owns CBS (put-token, renewal), link recovery and retries
//! of busy answers; this module adds batching by size with nothing sent when
//! an event cannot fit, typed errors, and one re-open with a fresh token
//! when the namespace refuses an expired one.

use super::{EventHubsError, Prepared, SendOptions, Target, EVENTHUBS_SCOPE};
use crate::credential::TokenSource;
use crate::error::{chain, Error};
use azure_core_amqp::AmqpTransport;
use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient, RetryOptions};
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
    producer: tokio::sync::RwLock<Arc<ProducerClient>>,
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
            producer: tokio::sync::RwLock::new(Arc::new(producer)),
        })
    }

    pub(crate) async fn close(&self) -> Result<(), Error> {
        let producer = self.producer.read().await.clone();
        match Arc::try_unwrap(producer) {
            Ok(p) => p
                .close()
                .await
                .map_err(|e| self.wrap(self.target.error(None, e.to_string(), false))),
            // Another task is sending with it; dropping our handle is all we can do.
            Err(_) => Ok(()),
        }
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
        if self.stale.swap(false, std::sync::atomic::Ordering::AcqRel) {
            // Clone under the read lock and release it before `reopen` takes
            // the write lock (a temporary guard would live to the end of the
            // statement and deadlock it).
            let old = self.producer.read().await.clone();
            self.reopen(&old).await?;
        }
        loop {
            let producer = self.producer.read().await.clone();
            match self
                .send_with(&producer, &events[accepted..], options, &mut accepted)
                .await
            {
                Ok(()) => return Ok(()),
                Err(SendError::Input(e)) => return Err(e),
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
        if Arc::ptr_eq(&slot, old) {
            *slot = Arc::new(fresh);
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
        let mut batch = self
            .timed(
                "attaching the sender",
                producer.create_batch(Some(batch_options())),
            )
            .await
            .map_err(SendError::Failed)?;
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
            batch = self
                .timed(
                    "attaching the sender",
                    producer.create_batch(Some(batch_options())),
                )
                .await
                .map_err(SendError::Failed)?;
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

    /// Reads azure_messaging_eventhubs' error: the AMQP condition or CBS
    /// status it carries decides the variant.
    fn classify(&self, err: azure_messaging_eventhubs::EventHubsError) -> Failure {
        let text = chain(&err);
        let lower = text.to_ascii_lowercase();
        let t = &self.target;
        if lower.contains("expiredtoken") || lower.contains("token is expired") {
            return Failure::Expired(EventHubsError::TokenRejected {
                namespace: t.namespace.clone(),
                subcode: 40106,
                hint: EventHubsError::subcode_hint(40106).into(),
                detail: text,
            });
        }
        if lower.contains("unauthorized-access")
            || lower.contains("unauthorized")
            || lower.contains("status code 401")
            || lower.contains("401")
        {
            // Filled with the token's tenant and app by the caller path below.
            return Failure::Final(EventHubsError::Unauthorized {
                namespace: t.namespace.clone(),
                hub: t.hub.clone(),
                token_tenant: String::new(),
                app_id: String::new(),
                detail: text,
            });
        }
        if lower.contains("not-found")
            || lower.contains("could not be found")
            || lower.contains("404")
        {
            return Failure::Final(EventHubsError::NotFound {
                namespace: t.namespace.clone(),
                hub: t.hub.clone(),
                detail: text,
            });
        }
        // azure_core_amqp shows a condition by its Rust name
        // (`condition: InternalError`), not its AMQP symbol
        // (`amqp:internal-error`): match both forms.
        if lower.contains("server-busy")
            || lower.contains("serverbusy")
            || lower.contains("server is busy")
        {
            return Failure::Final(EventHubsError::ServerBusy {
                namespace: t.namespace.clone(),
                detail: text,
            });
        }
        if lower.contains("message-size-exceeded") {
            return Failure::Final(EventHubsError::PayloadTooLarge {
                namespace: t.namespace.clone(),
                detail: text,
            });
        }
        let transient = lower.contains("connection")
            || lower.contains("detach")
            || lower.contains("internal-error")
            || lower.contains("internalerror")
            || lower.contains("timed out")
            || lower.contains("timeout");
        Failure::Final(t.error(None, text, transient))
    }
}

enum SendError {
    /// Bad input found while packing; nothing of this attempt was sent.
    Input(Error),
    Failed(Failure),
}

fn event_data(p: &Prepared) -> EventData {
    let mut b = EventData::builder().with_body(p.event.body.clone());
    if let Some(ct) = &p.event.content_type {
        b = b.with_content_type(ct.clone());
    }
    if let Some(id) = &p.event.message_id {
        b = b.with_message_id(id.clone());
    }
    for (k, v) in &p.event.properties {
        b = b.add_property(k.clone(), v.clone());
    }
    b.build()
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
        .with_application_id(format!("crosstenant/{}", env!("CARGO_PKG_VERSION")))
        .with_retry_options(RetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_delay: azure_core::time::Duration::seconds(5),
            max_total_elapsed: azure_core::time::Duration::seconds(30),
            max_retries: 4,
        })
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
