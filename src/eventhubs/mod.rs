//! Typed Event Hubs senders over AMQP and HTTPS: step 4 of the cross-tenant
//! story, where the partner's app, holding a token from the resource owner's
//! tenant, sends to the resource owner's Event Hub.
//!
//! [`EventHubSender<T>`] is built once from the namespace, the hub and a
//! credential, and is cheap to clone and safe to share across tasks. It
//! serializes `T` to JSON (`application/json`); [`Event`] is the raw form
//! (bytes, content type, properties) for everything else.
//!
//! - [`Transport::Amqp`] (default) and [`Transport::AmqpWebSockets`] build on
//!   azure_messaging_eventhubs' `ProducerClient`, which does CBS put-token
//!   and its renewal, link recovery and retries of busy answers. The
//!   credential is handed to it as an `azure_core` `TokenCredential`.
//! - [`Transport::Https`] posts to the REST API through `azure_core`'s
//!   pipeline with a bearer token: one event as the raw body with
//!   `BrokerProperties`, several as one `application/vnd.microsoft.servicebus.json`
//!   batch. Connections are pooled and kept alive.
//!
//! Promises, on both transports:
//! - a call returns `Ok` only after the service accepted every event of it
//!   (HTTP 201, AMQP `accepted`); when it fails part-way, the error says how
//!   many events from the start were accepted
//!   ([`EventHubsError::NotAccepted`]);
//! - every event is encoded and sized before anything is sent: an event over
//!   the 1 MB limit, or one that fails to serialize, fails the call with
//!   nothing sent;
//! - [`send_batch`](EventHubSender::send_batch) packs events into as few
//!   service batches as the size limit allows, in order;
//! - a refused token is explained in the partner's terms
//!   ([`EventHubsError::Unauthorized`] for `SubCode=40100`); an expired one is
//!   refreshed and the send retried once; busy answers and dropped
//!   connections are retried with bounded backoff.
//!
//! [`BufferedSender<T>`] is the buffered mode: enqueue single events, sent in
//! the background in batches per partition key, with a [`DeliveryReport`]
//! for every event (see its module docs, `buffered.rs`).
//!
//! Not here: receiving (use azure_messaging_eventhubs' consumer with the same
//! credential), idempotent publishing, and deduplication: like the service,
//! a retry after an answer that was lost in transit may store an event twice.

#[cfg(feature = "amqp")]
mod amqp;
mod buffered;
#[cfg(feature = "https")]
mod https;

pub use crate::error::EventHubsError;
pub use buffered::{
    BufferedOptions, BufferedSender, DeliveryReport, DeliveryReports, EnqueueOptions,
};

use crate::credential::TokenSource;
use crate::error::{Error, InvalidInput};
use crate::http::HttpSettings;
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use serde::Serialize;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use url::Url;

/// The scope of Event Hubs tokens.
pub const EVENTHUBS_SCOPE: &str = "https://eventhubs.azure.net/.default";

/// The largest event or batch of a Standard-tier namespace (1 MB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// How long one AMQP operation (attach with CBS, or a batch transfer and its
/// disposition) may take by default before the sender gives up on it, as the
/// other Azure SDKs' `TryTimeout` (60 s). azure_messaging_eventhubs has no
/// overall deadline of its own: a peer that never settles a transfer would
/// otherwise hold the caller forever. See
/// [`EventHubSenderBuilder::operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How the sender talks to the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// AMQP 1.0 over TLS on port 5671 (azure_messaging_eventhubs).
    #[default]
    Amqp,
    /// AMQP 1.0 over secure WebSockets on port 443, for networks that block
    /// 5671.
    AmqpWebSockets,
    /// The HTTPS REST API on port 443.
    Https,
}

/// One event in raw form: bytes, content type and application properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The payload.
    pub body: Vec<u8>,
    /// Its content type (AMQP `content-type`), e.g. `application/json`.
    pub content_type: Option<String>,
    /// Application properties.
    pub properties: BTreeMap<String, String>,
    /// A message id, if the application tracks one.
    pub message_id: Option<String>,
}

impl Event {
    /// An event with this payload.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Default::default()
        }
    }

    /// Sets the content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds an application property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Sets the message id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }
}

/// Where the events of one call go, and properties they all carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Events with one key land in one partition, in order.
    pub partition_key: Option<String>,
    /// Send straight to this partition (`"0"`, `"1"`, …).
    pub partition_id: Option<String>,
    /// Application properties added to every event of the call.
    pub properties: BTreeMap<String, String>,
}

impl SendOptions {
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

    /// Adds an application property to every event of the call.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    fn check(&self) -> Result<(), Error> {
        if self.partition_key.is_some() && self.partition_id.is_some() {
            return Err(InvalidInput::new(
                "SendOptions",
                "partition_key + partition_id",
                "give a partition key or a partition id, not both",
            )
            .into());
        }
        if let Some(id) = &self.partition_id {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(InvalidInput::new(
                    "partition_id",
                    id,
                    "a partition id is a number such as \"0\"; list them with the hub's properties",
                )
                .into());
            }
        }
        if let Some(key) = &self.partition_key {
            if key.is_empty() || key.chars().any(char::is_control) || key.len() > 128 {
                return Err(InvalidInput::new(
                    "partition_key",
                    key,
                    "a partition key is 1 to 128 characters without control characters",
                )
                .into());
            }
        }
        Ok(())
    }
}

/// What both transports need to know about the target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) namespace: String,
    pub(crate) hub: String,
    pub(crate) max_message_size: u64,
}

impl Target {
    pub(crate) fn error(
        &self,
        status: Option<u16>,
        detail: impl Into<String>,
        transient: bool,
    ) -> EventHubsError {
        EventHubsError::Service {
            namespace: self.namespace.clone(),
            hub: self.hub.clone(),
            status,
            detail: detail.into(),
            transient,
            cause: None,
        }
    }
}

/// The transport behind a sender.
enum Backend {
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpBackend),
    #[cfg(feature = "https")]
    Https(https::HttpsBackend),
}

struct Inner {
    target: Target,
    transport: Transport,
    backend: Backend,
}

/// Sends events of type `T` (as JSON) or raw [`Event`]s to one Event Hub.
/// Built once with [`EventHubSender::builder`]; clones share one connection.
pub struct EventHubSender<T = serde_json::Value> {
    inner: Arc<Inner>,
    _events: PhantomData<fn(&T)>,
}

impl<T> Clone for EventHubSender<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _events: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for EventHubSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubSender")
            .field("namespace", &self.inner.target.namespace)
            .field("hub", &self.inner.target.hub)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

/// Builds an [`EventHubSender`]; every value is checked at
/// [`open`](Self::open).
#[must_use = "a builder does nothing until `open` is called"]
pub struct EventHubSenderBuilder<T> {
    namespace: String,
    hub: String,
    credential: TokenSource,
    transport: Transport,
    endpoint: Option<String>,
    http: Option<HttpSettings>,
    client_options: Option<ClientOptions>,
    extra_roots: Vec<String>,
    max_message_size: u64,
    operation_timeout: std::time::Duration,
    _events: PhantomData<fn(&T)>,
}

impl<T> std::fmt::Debug for EventHubSenderBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubSenderBuilder")
            .field("namespace", &self.namespace)
            .field("hub", &self.hub)
            .field("transport", &self.transport)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> EventHubSender<T> {
    /// Starts a builder for the resource owner's `namespace`
    /// (`contoso.servicebus.windows.net`, or just `contoso`) and `hub`, with
    /// tokens from `credential`: the [`CrossTenantCredential`](crate::CrossTenantCredential)
    /// (preferred: a token the service refused as expired is dropped from
    /// its cache) or any `Arc<dyn TokenCredential>`. The HTTPS transport's
    /// settings are given with [`http_settings`](EventHubSenderBuilder::http_settings)
    /// (default: [`HttpSettings::default`]).
    pub fn builder(
        namespace: impl Into<String>,
        hub: impl Into<String>,
        credential: impl Into<TokenSource>,
    ) -> EventHubSenderBuilder<T> {
        EventHubSenderBuilder {
            namespace: namespace.into(),
            hub: hub.into(),
            credential: credential.into(),
            transport: Transport::default(),
            endpoint: None,
            http: None,
            client_options: None,
            extra_roots: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            _events: PhantomData,
        }
    }

    /// Like [`builder`](Self::builder), which now takes any credential.
    #[deprecated(note = "EventHubSender::builder takes any credential")]
    pub fn builder_with_token_credential(
        namespace: impl Into<String>,
        hub: impl Into<String>,
        credential: Arc<dyn TokenCredential>,
    ) -> EventHubSenderBuilder<T> {
        Self::builder(namespace, hub, credential)
    }
}

/// A namespace given as `contoso`, `contoso.servicebus.windows.net` or a URL
/// (`sb://…/`, `amqps://…`, `https://…`), as a host name.
fn namespace_host(value: &str) -> Result<String, Error> {
    let bad = |fix: &str| -> Error { InvalidInput::new("namespace", value, fix).into() };
    let v = value.trim();
    let host = if v.contains("://") {
        let url = Url::parse(v).map_err(|e| {
            bad(&format!(
                "it is not a URL ({e}); give the namespace host, e.g. contoso.servicebus.windows.net"
            ))
        })?;
        url.host_str()
            .map(str::to_string)
            .ok_or_else(|| bad("the URL has no host; give e.g. contoso.servicebus.windows.net"))?
    } else {
        v.trim_end_matches('/').to_string()
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(bad(
            "give the namespace host, e.g. contoso.servicebus.windows.net (letters, digits, \
             hyphens and dots only)",
        ));
    }
    let host = host.to_ascii_lowercase();
    Ok(if host.contains('.') {
        host
    } else {
        format!("{host}.servicebus.windows.net")
    })
}

fn check_hub(hub: &str) -> Result<(), Error> {
    let ok = !hub.is_empty()
        && hub.len() <= 256
        && hub
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "hub",
            hub,
            "an Event Hub name is 1 to 256 letters, digits, '-', '_' or '.'",
        )
        .into())
    }
}

/// A custom endpoint for `transport`: only secure schemes, except plain
/// AMQP on a loopback address (the sandbox, a local proxy).
fn check_endpoint(value: &str, transport: Transport) -> Result<Url, Error> {
    let url = Url::parse(value).map_err(|e| {
        InvalidInput::new(
            "endpoint",
            value,
            format!("it is not a URL ({e}); give e.g. amqps://proxy.example.com:5671"),
        )
    })?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Non-special schemes (amqp) keep IP literals as opaque hosts.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    };
    let ok = match (transport, url.scheme()) {
        (Transport::Amqp, "amqps") => true,
        (Transport::Amqp, "amqp") => loopback,
        (Transport::AmqpWebSockets, "wss" | "https") => true,
        (Transport::Https, "https") => true,
        _ => false,
    };
    if !ok || url.host().is_none() {
        return Err(InvalidInput::new(
            "endpoint",
            value,
            format!(
                "{transport:?} needs an endpoint with a host and a secure scheme (amqps:// for \
                 AMQP, wss:// for WebSockets, https:// for HTTPS); plain amqp:// is accepted only \
                 on a loopback address"
            ),
        )
        .into());
    }
    Ok(url)
}

impl<T: Serialize> EventHubSenderBuilder<T> {
    /// The transport (default [`Transport::Amqp`]).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Connect to this address instead of the namespace's own (a proxy, a
    /// private endpoint, the sandbox); the namespace stays the token audience
    /// and the host the requests name. `amqps://host:port` or, on loopback
    /// only, `amqp://127.0.0.1:port` for AMQP; `https://host:port` for HTTPS.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// HTTP settings (trusted roots, timeouts, retries) for the HTTPS
    /// transport (default: [`HttpSettings::default`]). To reach the same
    /// world as the credential, pass its
    /// [`http_settings`](crate::CrossTenantCredential::http_settings).
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http = Some(settings);
        self
    }

    /// azure_core client options for the HTTPS transport: their per-call
    /// and per-try policies (instrumentation, logging, a test's fault
    /// injection) run inside this crate's authorization policy, around the
    /// retry policy; their transport, if set, replaces the built-in one.
    /// Retries stay the [`HttpSettings`]'.
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = Some(options);
        self
    }

    /// Adds a trusted root (PEM) for the HTTPS transport. AMQP over TLS uses
    /// the platform's trust store (azure_core_amqp's choice); add a private
    /// CA there, or through `SSL_CERT_FILE`.
    pub fn root_certificates_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// The size limit of one event or batch (default 1 MB, Standard tier;
    /// Premium and Dedicated namespaces allow more).
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long one AMQP operation (opening a link with its CBS token, or
    /// one batch transfer and its outcome) may take before the sender gives
    /// up on it, reports the batch not accepted (transient) and opens a new
    /// connection for the next send. Default 60 s, as the other Azure SDKs'
    /// `TryTimeout`; at least 1 s. The HTTPS transport uses the
    /// [`HttpSettings`] timeouts instead.
    pub fn operation_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Checks every value and connects.
    pub async fn open(self) -> Result<EventHubSender<T>, Error> {
        let namespace = namespace_host(&self.namespace)?;
        check_hub(&self.hub)?;
        if self.operation_timeout < std::time::Duration::from_secs(1) {
            return Err(InvalidInput::new(
                "operation_timeout",
                &format!("{:?}", self.operation_timeout),
                "give at least 1 s (the default is 60 s)",
            )
            .into());
        }
        if self.max_message_size < 1024 {
            return Err(InvalidInput::new(
                "max_message_size",
                &self.max_message_size.to_string(),
                "give at least 1024 bytes (the Standard tier allows 1 MB)",
            )
            .into());
        }
        let endpoint = self
            .endpoint
            .as_deref()
            .map(|e| check_endpoint(e, self.transport))
            .transpose()?;
        let target = Target {
            namespace,
            hub: self.hub.clone(),
            max_message_size: self.max_message_size,
        };
        let backend = match self.transport {
            #[cfg(feature = "amqp")]
            Transport::Amqp | Transport::AmqpWebSockets => Backend::Amqp(
                amqp::AmqpBackend::open(
                    target.clone(),
                    self.credential.clone(),
                    endpoint,
                    self.transport == Transport::AmqpWebSockets,
                    self.operation_timeout,
                )
                .await?,
            ),
            #[cfg(feature = "https")]
            Transport::Https => {
                let mut http = self.http.unwrap_or_default();
                for pem in &self.extra_roots {
                    http.add_root_certificates_pem(pem)?;
                }
                Backend::Https(
                    https::HttpsBackend::open(
                        target.clone(),
                        self.credential.clone(),
                        endpoint,
                        http,
                        self.client_options.as_ref(),
                    )
                    .await?,
                )
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(InvalidInput::new(
                    "transport",
                    &format!("{other:?}"),
                    "this transport's cargo feature (`amqp` or `https`) is not enabled",
                )
                .into())
            }
        };
        Ok(EventHubSender {
            inner: Arc::new(Inner {
                target,
                transport: self.transport,
                backend,
            }),
            _events: PhantomData,
        })
    }
}

/// An event ready to send: encoded, with the call's properties merged.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) event: Event,
}

impl<T: Serialize> EventHubSender<T> {
    /// Sends one event; returns once the service accepted it.
    pub async fn send(&self, event: &T) -> Result<(), Error> {
        self.send_batch(std::slice::from_ref(event), SendOptions::default())
            .await
    }

    /// Sends events in order, packed into as few service batches as the size
    /// limit allows. Returns once every event was accepted; see
    /// [`EventHubsError::NotAccepted`] for a failure part-way.
    pub async fn send_batch(&self, events: &[T], options: SendOptions) -> Result<(), Error> {
        let mut raw = Vec::with_capacity(events.len());
        for (index, e) in events.iter().enumerate() {
            let body = serde_json::to_vec(e).map_err(|err| {
                Error::EventHubs(Box::new(EventHubsError::Serialize {
                    index,
                    reason: err.to_string(),
                }))
            })?;
            raw.push(Event::new(body).with_content_type("application/json"));
        }
        self.send_events(raw, options).await
    }

    /// Sends raw events in order; see [`send_batch`](Self::send_batch).
    pub async fn send_raw(&self, events: Vec<Event>, options: SendOptions) -> Result<(), Error> {
        self.send_events(events, options).await
    }

    async fn send_events(&self, events: Vec<Event>, options: SendOptions) -> Result<(), Error> {
        options.check()?;
        if events.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(events.len());
        for (index, mut event) in events.into_iter().enumerate() {
            for (k, v) in &options.properties {
                event
                    .properties
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
            check_properties(index, &event)?;
            prepared.push(Prepared { event });
        }
        let result = match &self.inner.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(b) => b.send(&prepared, &options).await,
            #[cfg(feature = "https")]
            Backend::Https(b) => b.send(&prepared, &options).await,
        };
        result.map_err(|e| match e {
            Error::EventHubs(_) | Error::InvalidInput(_) => e,
            other => other,
        })
    }

    /// The AMQP backend, when that is the transport.
    #[cfg(feature = "amqp")]
    pub(crate) fn amqp_backend(&self) -> Option<&amqp::AmqpBackend> {
        match &self.inner.backend {
            Backend::Amqp(b) => Some(b),
            #[cfg(feature = "https")]
            Backend::Https(_) => None,
        }
    }

    /// The namespace host.
    pub fn namespace(&self) -> &str {
        &self.inner.target.namespace
    }

    /// The Event Hub.
    pub fn hub(&self) -> &str {
        &self.inner.target.hub
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.inner.transport
    }

    /// Closes the connection. Clones of this sender stop working.
    pub async fn close(&self) -> Result<(), Error> {
        match &self.inner.backend {
            #[cfg(feature = "amqp")]
            Backend::Amqp(b) => b.close().await,
            #[cfg(feature = "https")]
            Backend::Https(_) => Ok(()),
        }
    }
}

/// Property names and values must survive both transports: over HTTPS they
/// become headers, so CR, LF and other control characters could inject
/// headers, and names must be HTTP tokens.
fn check_properties(index: usize, event: &Event) -> Result<(), Error> {
    for (name, value) in &event.properties {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !name_ok {
            return Err(InvalidInput::new(
                "property name",
                name,
                format!(
                    "event {index}: a property name is letters, digits and !#$%&'*+-.^_`|~ only \
                     (it becomes an HTTP header over HTTPS)"
                ),
            )
            .into());
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "property value",
                value,
                format!(
                    "event {index}: property `{name}` holds a control character (CR/LF); remove it"
                ),
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_host_names() {
        assert_eq!(
            namespace_host("contoso").unwrap(),
            "contoso.servicebus.windows.net"
        );
        assert_eq!(
            namespace_host("sb://Contoso.servicebus.windows.net/").unwrap(),
            "contoso.servicebus.windows.net"
        );
        for bad in ["", "   ", "sb://", "a b", "amqps://:5671", "contoso/hub"] {
            let err = namespace_host(bad).unwrap_err().to_string();
            assert!(err.contains("namespace"), "{bad}: {err}");
        }
    }

    #[test]
    fn plain_amqp_endpoints_are_loopback_only() {
        assert!(check_endpoint("amqp://127.0.0.1:5672", Transport::Amqp).is_ok());
        assert!(check_endpoint("amqps://proxy.example.com:5671", Transport::Amqp).is_ok());
        let err = check_endpoint("amqp://proxy.example.com:5672", Transport::Amqp)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(check_endpoint("http://127.0.0.1:1", Transport::Https).is_err());
        // Loopback by name and as an IPv6 literal (plain AMQP keeps IP
        // literals as opaque host names).
        for local in ["amqp://localhost:5672", "amqp://[::1]:5672"] {
            assert!(check_endpoint(local, Transport::Amqp).is_ok(), "{local}");
        }
        // AMQP over WebSockets: wss, or https as the SDK's custom endpoint
        // form; never amqps or plain ws.
        for ok in [
            "wss://proxy.example.com/$servicebus/websocket",
            "https://proxy.example.com",
        ] {
            assert!(
                check_endpoint(ok, Transport::AmqpWebSockets).is_ok(),
                "{ok}"
            );
        }
        for bad in ["ws://127.0.0.1:80", "amqps://proxy.example.com:5671"] {
            assert!(
                check_endpoint(bad, Transport::AmqpWebSockets).is_err(),
                "{bad}"
            );
        }
    }

    /// The hub name goes into request paths: only an Event Hub's characters
    /// (letters, digits, `-`, `_`, `.`), 1 to 256 of them, so a name can
    /// never add a path segment or a query.
    #[test]
    fn hub_names_are_event_hub_names_only() {
        let longest = "h".repeat(256);
        for ok in ["telemetry", "a-b_c.d", longest.as_str()] {
            assert!(check_hub(ok).is_ok(), "{ok}");
        }
        let too_long = "h".repeat(257);
        for bad in ["", "a/b", "../x", "a?b=1", "a b", "a#b", too_long.as_str()] {
            let err = check_hub(bad).unwrap_err().to_string();
            assert!(err.contains("hub"), "{bad}: {err}");
        }
    }

    #[test]
    fn header_injection_in_properties_is_refused() {
        let e = Event::new("x").with_property("a", "b\r\nX-Evil: 1");
        let err = check_properties(3, &e).unwrap_err().to_string();
        assert!(err.contains("event 3") && err.contains("\\r\\n"), "{err}");
        let e = Event::new("x").with_property("bad name", "v");
        assert!(check_properties(0, &e).is_err());
        assert!(SendOptions::partition_id("x").check().is_err());
        let both = SendOptions {
            partition_key: Some("k".into()),
            partition_id: Some("0".into()),
            ..Default::default()
        };
        assert!(both.check().is_err());
    }
}
