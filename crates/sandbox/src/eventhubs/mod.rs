//! The sandbox's Event Hubs service: namespaces owned by a tenant, Azure RBAC
//! on them, and the two protocols a producer speaks — AMQP 1.0 with CBS
//! ([`amqp`], directly or over WebSockets: [`websocket`]) and the HTTPS REST
//! API ([`https`]).
//!
//! This is where the resource owner's side of scenario 1a is enforced. A
//! namespace belongs to one tenant; a token is accepted only if it verifies
//! against the identity provider's JWKS, names Event Hubs as its audience, is
//! within its lifetime, was issued by **the namespace's tenant**, and its
//! `oid` (the service principal in that tenant) holds "Azure Event Hubs Data
//! Sender" (or Owner) on the namespace. A token from the partner's home
//! tenant fails the tenant check and is answered as the real service answers
//! it: `401 SubCode=40100`.
//!
//! Accepted events are stored with their partition (a stable hash of the
//! partition key, or round robin), properties and enqueue order, for tests
//! to read ([`EventHubsSandbox::events`]) and for tools through the HTTPS
//! inspection endpoint `GET /$sandbox/events/{hub}` of a namespace.
//!
//! Not modelled: consumers, checkpoints, capture, SAS keys (this project
//! exists to avoid them), geo-replication.

pub mod amqp;
pub mod https;
pub(crate) mod performatives;
pub mod websocket;

use super::jwt::{now_secs, AccessClaims, TokenRejection};
use super::Shared;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The largest event or batch a Standard-tier namespace accepts (1 MB).
pub const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// The default pause before the AMQP listener settles a transfer or a
/// request; see [`EventHubsSandbox::set_settle_delay`].
pub const DEFAULT_SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// Audiences Event Hubs accepts in a token: its App ID URIs (v1.0 tokens
/// carry the resource as asked) and its client id (what v2.0 tokens always
/// carry, "access token claims reference": `aud`).
pub const AUDIENCES: &[&str] = &[
    "https://eventhubs.azure.net",
    "https://servicebus.azure.net",
    crate::directory::EVENTHUBS_APP_ID,
];

/// How the HTTPS namespace answers a 401 unless told otherwise. The
/// client's tests read sub-codes 40103 and 40106 from the body until the
/// client also reads them from the reason phrase; then this becomes
/// [`UnauthorizedForm::ReasonPhrase`].
pub const DEFAULT_UNAUTHORIZED_FORM: UnauthorizedForm = UnauthorizedForm::ReasonPhraseFor40100;

/// How the HTTPS namespace answers a 401 that has a sub-code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnauthorizedForm {
    /// The default ([`DEFAULT_UNAUTHORIZED_FORM`]): `40100` as the seed shows the service answering a token
    /// from another tenant (`HTTP/1.1 401 SubCode=40100: Unauthorized`,
    /// `Content-Length: 0`, the sub-code only in the reason phrase); the
    /// other sub-codes (40102-40106), which the seed does not show, in the
    /// XML body form.
    ReasonPhraseFor40100,
    /// Every sub-code in the reason phrase (`SubCode=40106: Unauthorized`),
    /// with an empty body.
    ReasonPhrase,
    /// `401 Unauthorized` with `<Error><Code>401</Code><Detail>SubCode=…:
    /// …</Detail></Error>`, the detail naming which check refused.
    XmlBody,
}

/// The Azure RBAC data roles of Event Hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// "Azure Event Hubs Data Sender": may send.
    DataSender,
    /// "Azure Event Hubs Data Receiver": may receive, not send.
    DataReceiver,
    /// "Azure Event Hubs Data Owner": may do everything.
    DataOwner,
}

impl Role {
    /// The role's name as Azure shows it.
    pub fn name(self) -> &'static str {
        match self {
            Role::DataSender => "Azure Event Hubs Data Sender",
            Role::DataReceiver => "Azure Event Hubs Data Receiver",
            Role::DataOwner => "Azure Event Hubs Data Owner",
        }
    }

    fn may_send(self) -> bool {
        matches!(self, Role::DataSender | Role::DataOwner)
    }
}

/// How an event reached the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AMQP 1.0.
    Amqp,
    /// The HTTPS REST API.
    Https,
}

/// An event the sandbox accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The namespace host, e.g. `contoso-telemetry.servicebus.windows.net`.
    pub namespace: String,
    /// The Event Hub.
    pub hub: String,
    /// The partition it was stored in.
    pub partition: u32,
    /// Its sequence number within the partition (from 0).
    pub sequence_number: u64,
    /// The payload.
    pub body: Vec<u8>,
    /// The partition key it was sent with.
    pub partition_key: Option<String>,
    /// Application (user) properties, as text.
    pub properties: BTreeMap<String, String>,
    /// The content type it was sent with.
    pub content_type: Option<String>,
    /// The message id it was sent with.
    pub message_id: Option<String>,
    /// The `appid` of the token that sent it.
    pub sender_app_id: String,
    /// The protocol it came by.
    pub protocol: Protocol,
}

impl StoredEvent {
    /// The body as UTF-8 text, if it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// An event as a protocol front end hands it to the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct IncomingEvent {
    pub body: Vec<u8>,
    pub partition_key: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub message_id: Option<String>,
}

#[derive(Debug, Clone)]
struct Hub {
    partitions: u32,
    next_sequence: Vec<u64>,
    /// When each partition last stored an event, milliseconds since the
    /// epoch (0: never).
    last_enqueued_ms: Vec<i64>,
    round_robin: u64,
    /// When the hub was created, milliseconds since the epoch.
    created_ms: i64,
}

/// What the `$management` node reports of a hub (`READ` of
/// `com.microsoft:eventhub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubRuntime {
    pub(crate) partitions: u32,
    pub(crate) created_ms: i64,
}

/// What the `$management` node reports of a partition (`READ` of
/// `com.microsoft:partition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionRuntime {
    /// The first sequence number still held: the sandbox keeps everything.
    pub(crate) begin_sequence_number: i64,
    /// The last sequence number stored, `-1` when the partition is empty.
    pub(crate) last_sequence_number: i64,
    /// When the last event was stored, milliseconds since the epoch (0 when
    /// empty).
    pub(crate) last_enqueued_ms: i64,
}

impl PartitionRuntime {
    /// Whether the partition has stored nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.last_sequence_number < 0
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Namespace {
    tenant_id: String,
    hubs: HashMap<String, Hub>,
    /// Service-principal object id → roles.
    assignments: HashMap<String, Vec<Role>>,
}

/// Why the service refused a request, with the sub-code Event Hubs puts in
/// `401 SubCode=…` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The token was refused (bad signature, audience, lifetime, form).
    Token(TokenRejection),
    /// The token is valid but issued by another tenant than the namespace's.
    WrongTenant {
        /// The token's tenant.
        token_tenant: String,
    },
    /// The principal holds no role that allows the operation.
    MissingRole {
        /// The principal's object id.
        object_id: String,
        /// The principal's app id.
        app_id: String,
    },
    /// No such namespace.
    NoNamespace(String),
    /// No such Event Hub.
    NoHub(String),
    /// No such partition.
    NoPartition(String),
}

impl Denial {
    /// The HTTP status and Event Hubs sub-code (`0` where there is none).
    pub fn status_and_subcode(&self) -> (u16, u32) {
        match self {
            Denial::Token(TokenRejection::Missing) => (401, 40102),
            Denial::Token(TokenRejection::InvalidSignature(_)) => (401, 40103),
            Denial::Token(TokenRejection::InvalidAudience { .. }) => (401, 40104),
            Denial::Token(TokenRejection::Malformed(_)) => (401, 40105),
            Denial::Token(TokenRejection::Expired) => (401, 40106),
            Denial::Token(TokenRejection::InvalidIssuer(_)) => (401, 40103),
            Denial::WrongTenant { .. } | Denial::MissingRole { .. } => (401, 40100),
            Denial::NoNamespace(_) | Denial::NoHub(_) => (404, 0),
            Denial::NoPartition(_) => (400, 0),
        }
    }

    /// The detail text, shaped like the service's.
    pub fn detail(&self, namespace: &str, hub: &str) -> String {
        let (status, sub) = self.status_and_subcode();
        let what = match self {
            Denial::Token(r) => format!("{r}"),
            Denial::WrongTenant { token_tenant } => format!(
                "Unauthorized access. 'Send' claim(s) are required to perform this operation. \
                 Check failed: namespace tenant. The token was issued by tenant \
                 {token_tenant}, which does not own the namespace."
            ),
            Denial::MissingRole { app_id, object_id } => format!(
                "Unauthorized access. 'Send' claim(s) are required to perform this operation. \
                 Check failed: role assignment. Principal {object_id} of app {app_id} holds no \
                 data role on the namespace that allows sending."
            ),
            Denial::NoNamespace(n) => format!("The messaging entity '{n}' could not be found."),
            Denial::NoHub(h) => {
                format!("The messaging entity 'sb://{namespace}/{h}' could not be found.")
            }
            Denial::NoPartition(p) => format!("The partition '{p}' is not valid for '{hub}'."),
        };
        let tracking = uuid::Uuid::new_v4();
        if sub != 0 {
            format!(
                "SubCode={sub}: {what} Resource: 'sb://{namespace}/{hub}'. TrackingId:{tracking}, \
                 SystemTracker:{namespace}:eventhub:{hub}"
            )
        } else {
            format!("{status}: {what} TrackingId:{tracking}")
        }
    }
}

/// Counters of the Event Hubs service, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct EventHubsStats {
    /// CBS put-token requests received.
    pub put_tokens: AtomicU64,
    /// AMQP connections accepted, counted once their transport (TCP, TLS or
    /// WebSocket) is up and before the AMQP open, so a connection its client
    /// has opened is always counted already.
    pub amqp_connections: AtomicU64,
    /// HTTPS send requests received.
    pub https_requests: AtomicU64,
    /// Transfers or requests refused.
    pub refused: AtomicU64,
    /// Refusals (40100) because the token's tenant does not own the
    /// namespace: the partner's fix (ask the resource owner's tenant).
    pub refused_wrong_tenant: AtomicU64,
    /// Refusals (40100) because the principal holds no role that allows
    /// sending: the resource owner's fix (assign the role).
    pub refused_missing_role: AtomicU64,
}

pub(crate) struct EhState {
    pub(crate) shared: Shared,
    /// How long the AMQP listener waits before settling a transfer; see
    /// [`EventHubsSandbox::set_settle_delay`].
    pub(crate) settle_delay_micros: AtomicU64,
    /// How many more AMQP connections are closed as their first session
    /// after an accepted put-token begins; see
    /// [`EventHubsSandbox::drop_connections_after_put_token`].
    pub(crate) drops_after_put_token: AtomicU64,
    namespaces: RwLock<HashMap<String, Namespace>>,
    events: Mutex<Vec<StoredEvent>>,
    pub(crate) stats: EventHubsStats,
    /// 0: [`UnauthorizedForm::ReasonPhraseFor40100`], 1:
    /// [`UnauthorizedForm::ReasonPhrase`], 2: [`UnauthorizedForm::XmlBody`].
    unauthorized_form: std::sync::atomic::AtomicU8,
}

impl Default for UnauthorizedForm {
    fn default() -> Self {
        DEFAULT_UNAUTHORIZED_FORM
    }
}

impl UnauthorizedForm {
    fn code(self) -> u8 {
        match self {
            UnauthorizedForm::ReasonPhraseFor40100 => 0,
            UnauthorizedForm::ReasonPhrase => 1,
            UnauthorizedForm::XmlBody => 2,
        }
    }
}

impl EhState {
    /// How the HTTPS namespace answers a 401 with a sub-code.
    pub(crate) fn unauthorized_form(&self) -> UnauthorizedForm {
        match self.unauthorized_form.load(Ordering::Relaxed) {
            0 => UnauthorizedForm::ReasonPhraseFor40100,
            1 => UnauthorizedForm::ReasonPhrase,
            _ => UnauthorizedForm::XmlBody,
        }
    }

    /// Verifies a token for sending to `namespace`/`hub`.
    pub(crate) fn authorize_send(
        &self,
        token: &str,
        namespace: &str,
        hub: &str,
    ) -> Result<AccessClaims, Denial> {
        let claims = self.verify_token(token, namespace)?;
        self.check_send_role(&claims, namespace, hub)?;
        Ok(claims)
    }

    /// Signature, audience, lifetime and the namespace's tenant; not the role
    /// (CBS checks the role when a link attaches, as the service does).
    pub(crate) fn verify_token(
        &self,
        token: &str,
        namespace: &str,
    ) -> Result<AccessClaims, Denial> {
        let tenant = {
            let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
            ns.get(&namespace.to_ascii_lowercase())
                .map(|n| n.tenant_id.clone())
                .ok_or_else(|| Denial::NoNamespace(namespace.to_string()))?
        };
        let claims = self
            .shared
            .issuer
            .verify(token, AUDIENCES, 0)
            .map_err(Denial::Token)?;
        if !claims.tid.eq_ignore_ascii_case(&tenant) {
            self.stats
                .refused_wrong_tenant
                .fetch_add(1, Ordering::Relaxed);
            return Err(Denial::WrongTenant {
                token_tenant: claims.tid,
            });
        }
        Ok(claims)
    }

    pub(crate) fn check_send_role(
        &self,
        claims: &AccessClaims,
        namespace: &str,
        hub: &str,
    ) -> Result<(), Denial> {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let n = ns
            .get(&namespace.to_ascii_lowercase())
            .ok_or_else(|| Denial::NoNamespace(namespace.to_string()))?;
        if !n.hubs.contains_key(&hub.to_ascii_lowercase()) {
            return Err(Denial::NoHub(hub.to_string()));
        }
        let allowed = n
            .assignments
            .get(&claims.oid)
            .is_some_and(|roles| roles.iter().any(|r| r.may_send()));
        if !allowed {
            self.stats
                .refused_missing_role
                .fetch_add(1, Ordering::Relaxed);
            return Err(Denial::MissingRole {
                object_id: claims.oid.clone(),
                app_id: claims.appid.clone(),
            });
        }
        Ok(())
    }

    /// Checks a partition id against the hub.
    pub(crate) fn check_partition(
        &self,
        namespace: &str,
        hub: &str,
        partition: &str,
    ) -> Result<u32, Denial> {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let count = ns
            .get(&namespace.to_ascii_lowercase())
            .and_then(|n| n.hubs.get(&hub.to_ascii_lowercase()))
            .map(|h| h.partitions)
            .ok_or_else(|| Denial::NoHub(hub.to_string()))?;
        partition
            .parse::<u32>()
            .ok()
            .filter(|p| *p < count)
            .ok_or_else(|| Denial::NoPartition(partition.to_string()))
    }

    /// The hub `hub` in whichever namespace of `tenant_id` has one, for the
    /// `$management` node (which the sandbox serves per connection, not per
    /// namespace).
    pub(crate) fn hub_runtime(&self, tenant_id: &str, hub: &str) -> Option<(String, HubRuntime)> {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let hub = hub.to_ascii_lowercase();
        let mut owned: Vec<_> = ns
            .iter()
            .filter(|(_, n)| n.tenant_id.eq_ignore_ascii_case(tenant_id))
            .filter_map(|(name, n)| n.hubs.get(&hub).map(|h| (name, h)))
            .collect();
        // Deterministic when two namespaces of one tenant hold the hub.
        owned.sort_by(|a, b| a.0.cmp(b.0));
        owned.first().map(|(name, h)| {
            (
                (*name).clone(),
                HubRuntime {
                    partitions: h.partitions,
                    created_ms: h.created_ms,
                },
            )
        })
    }

    /// Sequence numbers and last enqueue time of one partition.
    pub(crate) fn partition_runtime(
        &self,
        namespace: &str,
        hub: &str,
        partition: u32,
    ) -> Option<PartitionRuntime> {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let h = ns
            .get(&namespace.to_ascii_lowercase())
            .and_then(|n| n.hubs.get(&hub.to_ascii_lowercase()))?;
        let next = *h.next_sequence.get(partition as usize)?;
        Some(PartitionRuntime {
            begin_sequence_number: 0,
            last_sequence_number: next as i64 - 1,
            last_enqueued_ms: h.last_enqueued_ms[partition as usize],
        })
    }

    /// The partition count of a hub.
    pub(crate) fn partition_count(&self, namespace: &str, hub: &str) -> Option<u32> {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        ns.get(&namespace.to_ascii_lowercase())
            .and_then(|n| n.hubs.get(&hub.to_ascii_lowercase()))
            .map(|h| h.partitions)
    }

    /// Stores accepted events atomically: all of them, in order, or none.
    pub(crate) fn store(
        &self,
        namespace: &str,
        hub: &str,
        partition: Option<u32>,
        events: Vec<IncomingEvent>,
        sender_app_id: &str,
        protocol: Protocol,
    ) -> Result<(), Denial> {
        let mut ns = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        let h = ns
            .get_mut(&namespace.to_ascii_lowercase())
            .and_then(|n| n.hubs.get_mut(&hub.to_ascii_lowercase()))
            .ok_or_else(|| Denial::NoHub(hub.to_string()))?;
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            let p = match (partition, &e.partition_key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, h.partitions),
                (None, None) => {
                    h.round_robin = h.round_robin.wrapping_add(1);
                    (h.round_robin % u64::from(h.partitions)) as u32
                }
            };
            let seq = &mut h.next_sequence[p as usize];
            stored.push(StoredEvent {
                namespace: namespace.to_ascii_lowercase(),
                hub: hub.to_ascii_lowercase(),
                partition: p,
                sequence_number: *seq,
                body: e.body,
                partition_key: e.partition_key,
                properties: e.properties,
                content_type: e.content_type,
                message_id: e.message_id,
                sender_app_id: sender_app_id.to_string(),
                protocol,
            });
            *seq += 1;
            h.last_enqueued_ms[p as usize] = now_millis();
        }
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(stored);
        Ok(())
    }
}

/// The partition a key maps to: FNV-1a of the key's UTF-8 bytes, modulo the
/// partition count. Stable across runs and processes (the real service uses
/// its own hash; what matters for tests is that one key always lands in one
/// partition).
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// The running Event Hubs service.
pub struct EventHubsSandbox {
    state: Arc<EhState>,
    amqp: amqp::AmqpListener,
    websocket: websocket::WebSocketListener,
    https: super::tls::HttpsServer,
}

impl std::fmt::Debug for EventHubsSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubsSandbox")
            .field("amqps", &self.amqp.tls_addr)
            .field("amqp", &self.amqp.plain_addr)
            .field("wss", &self.websocket.addr)
            .field("https", &self.https.addr)
            .finish()
    }
}

impl EventHubsSandbox {
    /// Starts the AMQP (TLS, plain and WebSockets) and HTTPS listeners on
    /// loopback.
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let state = Arc::new(EhState {
            shared: shared.clone(),
            settle_delay_micros: AtomicU64::new(DEFAULT_SETTLE_DELAY.as_micros() as u64),
            drops_after_put_token: AtomicU64::new(0),
            namespaces: RwLock::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            stats: EventHubsStats::default(),
            unauthorized_form: std::sync::atomic::AtomicU8::new(DEFAULT_UNAUTHORIZED_FORM.code()),
        });
        let amqp = amqp::AmqpListener::start(state.clone()).await?;
        let websocket = websocket::WebSocketListener::start(state.clone()).await?;
        let https = https::serve(state.clone()).await?;
        Ok(Self {
            state,
            amqp,
            websocket,
            https,
        })
    }

    /// Creates a namespace owned by `tenant_id` and returns its host name,
    /// `{name}.servicebus.windows.net`.
    pub fn create_namespace(&self, tenant_id: &str, name: &str) -> String {
        let host = if name.contains('.') {
            name.to_ascii_lowercase()
        } else {
            format!("{}.servicebus.windows.net", name.to_ascii_lowercase())
        };
        self.state
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                host.clone(),
                Namespace {
                    tenant_id: tenant_id.to_ascii_lowercase(),
                    hubs: HashMap::new(),
                    assignments: HashMap::new(),
                },
            );
        host
    }

    /// Creates an Event Hub with `partitions` partitions (at least 1).
    pub fn create_hub(&self, namespace: &str, hub: &str, partitions: u32) -> bool {
        let partitions = partitions.max(1);
        let mut ns = self
            .state
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match ns.get_mut(&namespace.to_ascii_lowercase()) {
            Some(n) => {
                n.hubs.insert(
                    hub.to_ascii_lowercase(),
                    Hub {
                        partitions,
                        next_sequence: vec![0; partitions as usize],
                        last_enqueued_ms: vec![0; partitions as usize],
                        round_robin: 0,
                        created_ms: now_millis(),
                    },
                );
                true
            }
            None => false,
        }
    }

    /// The resource owner's step: assigns `role` on the namespace to the
    /// service principal with `object_id` ("az role assignment create").
    pub fn assign_role(&self, namespace: &str, object_id: &str, role: Role) -> bool {
        let mut ns = self
            .state
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match ns.get_mut(&namespace.to_ascii_lowercase()) {
            Some(n) => {
                let roles = n.assignments.entry(object_id.to_string()).or_default();
                if !roles.contains(&role) {
                    roles.push(role);
                }
                true
            }
            None => false,
        }
    }

    /// Removes every role of `object_id` on the namespace.
    pub fn revoke_roles(&self, namespace: &str, object_id: &str) {
        let mut ns = self
            .state
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = ns.get_mut(&namespace.to_ascii_lowercase()) {
            n.assignments.remove(object_id);
        }
    }

    /// Every event stored in `namespace`/`hub`, in enqueue order.
    pub fn events(&self, namespace: &str, hub: &str) -> Vec<StoredEvent> {
        let (ns, hub) = (namespace.to_ascii_lowercase(), hub.to_ascii_lowercase());
        self.state
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.namespace == ns && e.hub == hub)
            .cloned()
            .collect()
    }

    /// How many events are stored in all namespaces.
    pub fn event_count(&self) -> usize {
        self.state
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The AMQP-over-TLS endpoint, `amqps://127.0.0.1:{port}`: a producer's
    /// custom endpoint (the namespace host stays the token audience). The
    /// client must trust the sandbox CA.
    pub fn amqps_endpoint(&self) -> url::Url {
        self.amqp.tls_url()
    }

    /// The plain AMQP endpoint, `amqp://127.0.0.1:{port}` (loopback only).
    pub fn amqp_endpoint(&self) -> url::Url {
        self.amqp.plain_url()
    }

    /// The AMQP-over-WebSockets endpoint,
    /// `wss://127.0.0.1:{port}/$servicebus/websocket` (subprotocol
    /// `AMQPWSB10` or `amqp`): what a client behind a port-443-only firewall
    /// reaches. The client must trust the sandbox CA. Clients that build the
    /// path themselves take only the host and port
    /// ([`EventHubsSandbox::websocket_port`]).
    pub fn websocket_endpoint(&self) -> url::Url {
        self.websocket.url()
    }

    /// The port of [`EventHubsSandbox::websocket_endpoint`].
    pub fn websocket_port(&self) -> u16 {
        self.websocket.addr.port()
    }

    /// The HTTPS endpoint, `https://127.0.0.1:{port}/`. Requests name the
    /// namespace in the `Host` header, so a client keeps the real namespace
    /// URL and only redirects the address.
    pub fn https_endpoint(&self) -> url::Url {
        self.https.url()
    }

    /// TLS connections accepted by the HTTPS listener.
    pub fn https_connections(&self) -> u64 {
        self.https.connections.get()
    }

    /// Sets the pause before the AMQP listener settles a transfer or a CBS or
    /// management request (default [`DEFAULT_SETTLE_DELAY`], 10 ms).
    ///
    /// A real namespace is at least a network round trip away; the pause
    /// stands in for it. It also narrows a race of fe2o3-amqp 0.16.2 as
    /// published: its sender records a delivery as unsettled only *after*
    /// handing the transfer to the session, so an in-process peer that
    /// settles within microseconds can beat it there when the sender's
    /// thread is descheduled in between; the settlement is dropped and the
    /// send waits forever. 10 ms still lost one run in sixteen with two busy
    /// loops beside it. This workspace builds fe2o3-amqp with that fixed
    /// (vendor/README.md), and `tests/eventhubs.rs`
    /// `amqp_settlements_that_arrive_at_once_are_not_lost` sets zero to
    /// prove it; a client built on the published crate still needs the
    /// pause. Zero turns it off.
    pub fn set_settle_delay(&self, delay: std::time::Duration) {
        self.state
            .settle_delay_micros
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Closes each of the next `connections` AMQP connections that have a
    /// put-token accepted, with `amqp:connection:forced`, as soon as their
    /// next session begins: the connection is lost after the authorization
    /// and before the sender link it authorizes is attached, so nothing has
    /// been sent on it.
    ///
    /// This is where a fresh connection was once lost in CI (the quickstart's
    /// first AMQP send failed with "Connection dropped: Connection must
    /// have been closed"). fe2o3-amqp 0.16.2 as published ends its own
    /// connection there when the peer answers the detaches of the `$cbs`
    /// links that azure_core_amqp drops after each put-token (fixed in the
    /// copy this workspace builds, vendor/README.md). The live service closes connections too (Microsoft's
    /// "Troubleshooting guide for Azure Service Bus", which Event Hubs
    /// shares: connections are closed by the service, e.g. when idle or
    /// during an update); `amqp:connection:forced` is AMQP 1.0's condition
    /// for it (part 2.8.16). Zero (the default) turns it off.
    pub fn drop_connections_after_put_token(&self, connections: u64) {
        self.state
            .drops_after_put_token
            .store(connections, Ordering::Relaxed);
    }

    /// Sets how the HTTPS namespace answers a 401 that has a sub-code
    /// (default [`DEFAULT_UNAUTHORIZED_FORM`]). AMQP refusals are
    /// unaffected.
    pub fn set_unauthorized_form(&self, form: UnauthorizedForm) {
        self.state
            .unauthorized_form
            .store(form.code(), Ordering::Relaxed);
    }

    /// Counters.
    pub fn stats(&self) -> &EventHubsStats {
        &self.state.stats
    }

    /// CBS put-token requests so far.
    pub fn put_tokens(&self) -> u64 {
        self.state.stats.put_tokens.load(Ordering::Relaxed)
    }

    /// Seconds since the epoch, as the service sees it.
    pub fn now(&self) -> i64 {
        now_secs()
    }
}
