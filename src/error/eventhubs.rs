//! Why a send to Event Hubs failed, in the partner's terms.
//!
//! Event Hubs answers a refused token with `401 SubCode=…` over HTTPS (in an
//! XML body, or only in the status line's reason phrase:
//! `HTTP/1.1 401 SubCode=40100: Unauthorized` with an empty body) and
//! `amqp:unauthorized-access` over AMQP. The cross-tenant case that matters
//! most, `SubCode=40100`, has two causes on two sides: the tenant asked was
//! not the namespace's (commonly the partner's own home tenant, set as the
//! resource tenant by mistake: the partner's fix), or the service principal
//! holds no sending role (the resource owner's fix).
//! [`EventHubsError::Unauthorized`] names both, with the tenant and app read
//! from the token that was refused.

use super::{Cause, Party, Remedy};

/// Why a send to Event Hubs failed. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventHubsError {
    /// `401 SubCode=40100` / `amqp:unauthorized-access`: the namespace
    /// refused a valid token.
    #[error(
        "Event Hubs namespace {namespace} refused the token of app {app_id} issued by tenant \
         {token_tenant} for hub `{hub}` (401 SubCode=40100 unauthorized). Two causes, two \
         sides: (1) tenant {token_tenant} is not the namespace's tenant — often it is the \
         partner's own home tenant, set as the resource tenant by mistake; the partner sets the \
         resource owner's tenant (resource_tenant / AZURE_TENANT_ID) and asks its authority; \
         (2) it is the namespace's tenant, and the service principal of app {app_id} there holds \
         no \"Azure Event Hubs Data Sender\" role on the namespace or hub; the resource owner \
         assigns it (az role assignment create --assignee {app_id} --role \"Azure Event Hubs \
         Data Sender\" --scope <namespace resource id>). Service said: {detail}"
    )]
    Unauthorized {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// The `tid` of the refused token.
        token_tenant: String,
        /// The `appid` of the refused token.
        app_id: String,
        /// The service's own words.
        detail: String,
    },

    /// A token problem the service named with its own sub-code: 40102
    /// missing, 40103 invalid signature, 40104 invalid audience, 40105
    /// malformed, 40106 expired.
    #[error("Event Hubs namespace {namespace} refused the token (401 SubCode={subcode}): {hint}. Service said: {detail}")]
    TokenRejected {
        /// The namespace host.
        namespace: String,
        /// The sub-code.
        subcode: u32,
        /// What it means and what to do.
        hint: String,
        /// The service's own words.
        detail: String,
    },

    /// `403`: the operation is forbidden (quota, disabled entity, IP rules).
    #[error("Event Hubs namespace {namespace} forbade the send to `{hub}` (403): {detail}")]
    Forbidden {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// The service's own words.
        detail: String,
    },

    /// `404` / `amqp:not-found`: no such Event Hub (or partition).
    #[error(
        "Event Hub `{hub}` was not found in namespace {namespace} (404). Check the hub name and \
         namespace with the resource owner. Service said: {detail}"
    )]
    NotFound {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// The service's own words.
        detail: String,
    },

    /// An event (or the smallest batch holding it) is over the size limit.
    /// Refused before anything was sent when the SDK can tell, or answered
    /// `413` / `amqp:link:message-size-exceeded` by the service.
    #[error(
        "event {index} is {size} bytes encoded, over the {limit}-byte limit of an Event Hubs \
         event; nothing was sent. Split the payload, compress it, or store it elsewhere and send \
         a reference"
    )]
    TooLarge {
        /// The event's position in the call.
        index: usize,
        /// Its encoded size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// `413` / `amqp:link:message-size-exceeded`: the service found a request
    /// over its limit (its limit is lower than the sender was told, e.g. a
    /// Basic-tier namespace allows 256 KB).
    #[error(
        "Event Hubs namespace {namespace} refused a request as too large (413): {detail}. If the \
         namespace is Basic tier (256 KB), set EventHubSenderBuilder::max_message_size"
    )]
    PayloadTooLarge {
        /// The namespace host.
        namespace: String,
        /// The service's own words.
        detail: String,
    },

    /// An event could not be serialized; nothing was sent.
    #[error("event {index} could not be serialized to JSON ({reason}); nothing was sent")]
    Serialize {
        /// The event's position in the call.
        index: usize,
        /// What serde said.
        reason: String,
    },

    /// `503` / `com.microsoft:server-busy`, after the retries ran out.
    #[error(
        "Event Hubs namespace {namespace} is busy (503 server busy) and retries ran out: {detail}"
    )]
    ServerBusy {
        /// The namespace host.
        namespace: String,
        /// The service's own words.
        detail: String,
    },

    /// Another answer from the service, or a connection failure.
    #[error("sending to Event Hub `{hub}` in {namespace} failed{}: {detail}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Service {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// The HTTP status, if there was one.
        status: Option<u16>,
        /// What happened.
        detail: String,
        /// Whether trying again later may succeed.
        transient: bool,
        /// The error underneath (azure_core's, reqwest's), if any.
        #[source]
        cause: Option<Cause>,
    },

    /// An operation got no answer within the sender's operation timeout
    /// (AMQP). The service may or may not have stored its events: check
    /// before sending them again if a duplicate would matter (Event Hubs
    /// delivers at least once either way). The next send uses a new
    /// connection.
    #[error(
        "{operation} to Event Hub `{hub}` in {namespace} got no answer within {after:?} (the \
         operation timeout); its events may or may not have been stored. The next send uses a \
         new connection"
    )]
    Timeout {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// What was waiting: opening the link, or a batch transfer.
        operation: String,
        /// The operation timeout.
        after: std::time::Duration,
    },

    /// A buffered sender's buffer is full and the caller chose not to wait
    /// (`BufferedSender::try_enqueue`). Nothing was enqueued.
    #[error(
        "the buffered sender to Event Hub `{hub}` is full ({buffered_events} events, \
         {buffered_bytes} bytes buffered; limits {max_events} events, {max_bytes} bytes); the \
         event was not enqueued. Wait with `enqueue`, drain the delivery reports, or raise \
         BufferedOptions::max_buffered_events / max_buffered_bytes"
    )]
    BufferFull {
        /// The Event Hub.
        hub: String,
        /// Events buffered (queued or in flight) when the call was refused.
        buffered_events: usize,
        /// Their estimated encoded size.
        buffered_bytes: u64,
        /// The event limit.
        max_events: usize,
        /// The byte limit.
        max_bytes: u64,
    },

    /// A buffered sender dropped the event without sending it: it was
    /// aborted (`BufferedSender::abort`), or enqueued after it was closed.
    /// The service never saw the event.
    #[error(
        "the buffered sender to Event Hub `{hub}` in {namespace} did not send this event: {reason}"
    )]
    NotSent {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
        /// Why (aborted, closed).
        reason: String,
    },

    /// A buffered sender was aborted (`BufferedSender::abort`) before this
    /// event's outcome was known. Over AMQP the batch holding it may have
    /// been in flight when the abort cancelled it, so the service may or may
    /// not have stored it ([`outcome_unknown`](EventHubsError::outcome_unknown)).
    #[error(
        "the buffered sender to Event Hub `{hub}` in {namespace} was aborted before this \
         event's outcome was known: it was not sent, or its batch was in flight and may have \
         been stored"
    )]
    Aborted {
        /// The namespace host.
        namespace: String,
        /// The Event Hub.
        hub: String,
    },

    /// Some events were accepted and the rest were not. Events are sent in
    /// order, batch by batch: the first `accepted` of the call's events are
    /// stored by the service; those from `accepted` on were **not**, unless
    /// the cause is a [`Timeout`](EventHubsError::Timeout)
    /// ([`outcome_unknown`](EventHubsError::outcome_unknown)), when the
    /// first batch of them may have been.
    #[error(
        "{accepted} of {total} events were accepted; events {accepted}..{total} were not: {cause}"
    )]
    NotAccepted {
        /// How many events, from the start of the call, were accepted.
        accepted: usize,
        /// How many events the call had.
        total: usize,
        /// Why the rest were not.
        cause: Box<EventHubsError>,
    },
}

impl EventHubsError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EventHubsError::ServerBusy { .. } | EventHubsError::Timeout { .. } => true,
            EventHubsError::Service { transient, .. } => *transient,
            EventHubsError::NotAccepted { cause, .. } => cause.is_transient(),
            EventHubsError::TokenRejected { subcode, .. } => *subcode == 40106,
            _ => false,
        }
    }

    /// Whether the service may have stored events this error reports as not
    /// accepted: the operation timed out before its answer came.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            EventHubsError::Timeout { .. } | EventHubsError::Aborted { .. } => true,
            EventHubsError::NotAccepted { cause, .. } => cause.outcome_unknown(),
            _ => false,
        }
    }

    /// The events of the call that were not accepted, as a range of their
    /// positions (all of them, unless the error is
    /// [`EventHubsError::NotAccepted`]).
    pub fn not_accepted(&self, total: usize) -> std::ops::Range<usize> {
        match self {
            EventHubsError::NotAccepted {
                accepted, total, ..
            } => *accepted..*total,
            _ => 0..total,
        }
    }

    /// Who must act, and what to do.
    pub fn remedy(&self) -> Remedy {
        match self {
            EventHubsError::NotAccepted { cause, .. } => cause.remedy(),
            EventHubsError::Unauthorized {
                app_id,
                token_tenant,
                ..
            } => Remedy::new(
                Party::Either,
                format!(
                    "the token came from tenant {token_tenant}. If that is the partner's own \
                     home tenant (the commonest mistake), the partner sets the resource owner's \
                     tenant as the resource tenant (resource_tenant / AZURE_TENANT_ID). If it is \
                     the namespace's tenant, the resource owner assigns \"Azure Event Hubs Data \
                     Sender\" to the service principal of app {app_id} on the namespace or hub"
                ),
            ),
            EventHubsError::TokenRejected { subcode, .. } => Remedy::new(
                Party::Partner,
                match subcode {
                    40104 => {
                        "request the token with the scope https://eventhubs.azure.net/.default"
                    }
                    40106 => {
                        "check this machine's clock; the token had expired even after a refresh"
                    }
                    _ => {
                        "request the token from Entra ID of the namespace's cloud (the authority \
                         host) with the scope https://eventhubs.azure.net/.default"
                    }
                },
            ),
            EventHubsError::NotFound { .. } => Remedy::new(
                Party::Either,
                "agree on the namespace and hub names with the resource owner",
            ),
            EventHubsError::Forbidden { .. } => Remedy::new(
                Party::ResourceOwner,
                "check the namespace's network rules, quotas and that the hub is enabled",
            ),
            EventHubsError::TooLarge { .. } | EventHubsError::PayloadTooLarge { .. } => {
                Remedy::new(
                    Party::Partner,
                    "send smaller events (split, compress, or send a reference), or set \
                     max_message_size to the namespace tier's limit",
                )
            }
            EventHubsError::Serialize { .. } => Remedy::new(
                Party::Partner,
                "make the event serializable to JSON, or send it raw",
            ),
            EventHubsError::Timeout { .. } => Remedy::new(
                Party::Either,
                "check whether the events were stored before sending them again; if timeouts \
                 persist, the resource owner checks the namespace's health",
            ),
            EventHubsError::BufferFull { .. } => Remedy::new(
                Party::Partner,
                "wait for room (enqueue instead of try_enqueue), or raise the buffer limits",
            ),
            EventHubsError::Aborted { .. } => Remedy::new(
                Party::Partner,
                "reconcile by message id (read the hub, or keep ids idempotent downstream) \
                 before enqueueing it again on an open sender",
            ),
            EventHubsError::NotSent { .. } => Remedy::new(
                Party::Partner,
                "enqueue the event again on an open sender if it must be delivered",
            ),
            EventHubsError::ServerBusy { .. } | EventHubsError::Service { .. } => Remedy::new(
                Party::Either,
                "retry later; if it persists the resource owner checks the namespace's health \
                 and throughput units",
            ),
        }
    }

    /// The hint for an Event Hubs token sub-code.
    pub(crate) fn subcode_hint(subcode: u32) -> &'static str {
        match subcode {
            40102 => "no token was presented; the credential returned an empty token",
            40103 => {
                "the token's signature is invalid even after one fresh token: it was not issued \
                 by Entra ID for this cloud (check the authority host), or was altered"
            }
            40104 => {
                "the token's audience is wrong: request the scope https://eventhubs.azure.net/.default"
            }
            40105 => "the token is malformed: pass an Entra ID access token, not an id token or SAS",
            40106 => "the token has expired: it is refreshed and the send retried once",
            _ => "the token was refused",
        }
    }
}
