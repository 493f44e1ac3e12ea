//! Event Hubs' HTTPS REST API, as the sandbox serves it.
//!
//! `POST /{hub}/messages`, `/{hub}/partitions/{id}/messages` and
//! `/{hub}/publishers/{id}/messages` with `Authorization: Bearer <token>`;
//! the namespace comes from the `Host` header, as it does for
//! `{ns}.servicebus.windows.net`. A single event is the raw body
//! (`application/atom+xml;type=entry;charset=utf-8`) with an optional
//! `BrokerProperties` JSON header and user properties as headers; a batch is
//! `application/vnd.microsoft.servicebus.json`, a JSON array of
//! `{"Body", "UserProperties", "BrokerProperties"}`. Success is `201
//! Created`; failures carry the service's status codes and an
//! `<Error><Code/><Detail/></Error>` body. A 401 with a sub-code is answered,
//! by default, as the service was seen answering a token from another
//! tenant: the status line `HTTP/1.1 401 SubCode=40100: Unauthorized` and an
//! empty body (`Content-Length: 0`), the sub-code only in the reason phrase;
//! other sub-codes keep the XML body form.
//! [`super::EventHubsSandbox::set_unauthorized_form`] puts every sub-code in
//! the reason phrase, or every one in the XML body form
//! (`<Detail>SubCode=40100: …</Detail>`, which names the check that
//! refused). A request is stored whole or not at all.
//!
//! `GET /$sandbox/events/{hub}` lists what a hub stored, as JSON, for tools
//! pointed at the sandbox (no token needed: it is the sandbox's own window,
//! not part of the service).

use super::{Denial, EhState, IncomingEvent, Protocol, UnauthorizedForm, MAX_MESSAGE_SIZE};
use crate::faults::{Fault, Service};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The batch content type of the REST API.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// Headers that are part of HTTP or of the API itself, never user properties.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-type",
    "content-length",
    "connection",
    "keep-alive",
    "user-agent",
    "accept",
    "accept-encoding",
    "brokerproperties",
    "transfer-encoding",
    "traceparent",
    "tracestate",
    "te",
    "expect",
];

pub(super) async fn serve(state: Arc<EhState>) -> std::io::Result<crate::tls::HttpsServer> {
    let router = Router::new()
        .route("/{hub}/messages", post(send_to_hub))
        .route(
            "/{hub}/partitions/{partition}/messages",
            post(send_to_partition),
        )
        .route(
            "/{hub}/publishers/{publisher}/messages",
            post(send_as_publisher),
        )
        .route("/$sandbox/events/{hub}", get(inspect))
        // Read a little more than the service's limit so an oversized
        // request gets the service's 413, not a framework error.
        .layer(DefaultBodyLimit::max(4 * MAX_MESSAGE_SIZE as usize))
        .with_state(state.clone());
    crate::tls::serve_https(&state.shared.ca, router).await
}

enum Target {
    Hub,
    Partition(String),
    Publisher(String),
}

async fn send_to_hub(
    State(st): State<Arc<EhState>>,
    Path(hub): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(st, hub, Target::Hub, headers, body).await
}

async fn send_to_partition(
    State(st): State<Arc<EhState>>,
    Path((hub, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(st, hub, Target::Partition(partition), headers, body).await
}

async fn send_as_publisher(
    State(st): State<Arc<EhState>>,
    Path((hub, publisher)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(st, hub, Target::Publisher(publisher), headers, body).await
}

fn error(status: StatusCode, detail: &str) -> Response {
    let body = format!(
        "<Error><Code>{}</Code><Detail>{}</Detail></Error>",
        status.as_u16(),
        xml_escape(detail)
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn denial(st: &EhState, d: &Denial, namespace: &str, hub: &str) -> Response {
    let (status, sub) = d.status_and_subcode();
    if status == 401 && sub != 0 {
        return unauthorized(st, sub, &d.detail(namespace, hub));
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    error(status, &d.detail(namespace, hub))
}

/// A 401 with sub-code `sub` in the form the namespace is set to answer.
fn unauthorized(st: &EhState, sub: u32, detail: &str) -> Response {
    let in_reason_phrase = match st.unauthorized_form() {
        UnauthorizedForm::ReasonPhraseFor40100 => sub == 40100,
        UnauthorizedForm::ReasonPhrase => true,
        UnauthorizedForm::XmlBody => false,
    };
    if !in_reason_phrase {
        return error(StatusCode::UNAUTHORIZED, detail);
    }
    // The status line of the seed: `HTTP/1.1 401 SubCode=40100:
    // Unauthorized`, no body. hyper writes a reason phrase given as
    // this response extension instead of the canonical one.
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    let reason = format!("SubCode={sub}: Unauthorized");
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

async fn act_out(st: &EhState, fault: Option<Fault>) -> Option<Response> {
    match fault? {
        Fault::Status {
            status,
            retry_after,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let detail = if status == 503 {
                "SubCode=50002: The server is busy. Please retry the operation (sandbox fault)."
            } else {
                "The service encountered an internal error (sandbox fault)."
            };
            let mut resp = error(code, detail);
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Some(resp)
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::Drop => Some(crate::faults::hang_up()),
        Fault::RefuseToken => Some(unauthorized(
            st,
            40100,
            "SubCode=40100: Unauthorized (sandbox fault).",
        )),
    }
}

fn namespace_of(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    // Strip a port; IPv6 literals are not namespaces anyway.
    host.rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .to_ascii_lowercase()
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
struct BrokerProperties {
    #[serde(rename = "PartitionKey")]
    partition_key: Option<String>,
    #[serde(rename = "MessageId")]
    message_id: Option<String>,
    #[serde(rename = "ContentType")]
    content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchItem {
    #[serde(rename = "Body")]
    body: String,
    #[serde(rename = "UserProperties", default)]
    user_properties: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "BrokerProperties", default)]
    broker_properties: Option<BrokerProperties>,
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_events(headers: &HeaderMap, body: Bytes) -> Result<Vec<IncomingEvent>, Box<Response>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with(BATCH_CONTENT_TYPE) {
        let items: Vec<BatchItem> = serde_json::from_slice(&body).map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                &format!("The batch is not a JSON array of events: {e}"),
            ))
        })?;
        if items.is_empty() {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "The batch is empty.",
            )));
        }
        return Ok(items
            .into_iter()
            .map(|i| {
                let bp = i.broker_properties.unwrap_or_default();
                IncomingEvent {
                    body: i.body.into_bytes(),
                    partition_key: bp.partition_key,
                    properties: i
                        .user_properties
                        .iter()
                        .map(|(k, v)| (k.clone(), text_of(v)))
                        .collect(),
                    content_type: bp.content_type,
                    message_id: bp.message_id,
                }
            })
            .collect());
    }
    let bp: BrokerProperties = match headers.get("brokerproperties") {
        Some(v) => serde_json::from_slice(v.as_bytes()).map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                &format!("The BrokerProperties header is not valid JSON: {e}"),
            ))
        })?,
        None => BrokerProperties::default(),
    };
    let properties = headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !RESERVED_HEADERS.contains(&n) && !n.starts_with("x-ms-")
        })
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), v.to_string()))
        })
        .collect();
    Ok(vec![IncomingEvent {
        body: body.to_vec(),
        partition_key: bp.partition_key,
        properties,
        content_type: bp.content_type,
        message_id: bp.message_id,
    }])
}

async fn send(
    st: Arc<EhState>,
    hub: String,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.stats.https_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(resp) = act_out(&st, st.shared.faults.next(Service::EventHubsHttps)).await {
        return resp;
    }
    let namespace = namespace_of(&headers);
    let claims = match st.authorize_send(bearer(&headers), &namespace, &hub) {
        Ok(c) => c,
        Err(d) => {
            st.stats.refused.fetch_add(1, Ordering::Relaxed);
            return denial(&st, &d, &namespace, &hub);
        }
    };
    if body.len() as u64 > MAX_MESSAGE_SIZE {
        st.stats.refused.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The received message (size {} bytes) exceeds the limit ({MAX_MESSAGE_SIZE} bytes) \
                 currently allowed on the link.",
                body.len()
            ),
        );
    }
    let mut events = match parse_events(&headers, body) {
        Ok(e) => e,
        Err(resp) => return *resp,
    };
    let partition = match &target {
        Target::Hub => None,
        Target::Partition(p) => match st.check_partition(&namespace, &hub, p) {
            Ok(p) => Some(p),
            Err(d) => return denial(&st, &d, &namespace, &hub),
        },
        Target::Publisher(publisher) => {
            for e in &mut events {
                e.partition_key = Some(publisher.clone());
            }
            None
        }
    };
    match st.store(
        &namespace,
        &hub,
        partition,
        events,
        &claims.appid,
        Protocol::Https,
    ) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(d) => denial(&st, &d, &namespace, &hub),
    }
}

async fn inspect(
    State(st): State<Arc<EhState>>,
    Path(hub): Path<String>,
    headers: HeaderMap,
) -> Response {
    let namespace = namespace_of(&headers);
    let ns = namespace.to_ascii_lowercase();
    let hub_l = hub.to_ascii_lowercase();
    if st.partition_count(&ns, &hub_l).is_none() {
        return denial(&st, &Denial::NoHub(hub.clone()), &namespace, &hub);
    }
    let events: Vec<serde_json::Value> = st
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|e| e.namespace == ns && e.hub == hub_l)
        .map(|e| {
            serde_json::json!({
                "partition": e.partition,
                "sequence_number": e.sequence_number,
                "partition_key": e.partition_key,
                "properties": e.properties,
                "content_type": e.content_type,
                "message_id": e.message_id,
                "sender_app_id": e.sender_app_id,
                "protocol": format!("{:?}", e.protocol),
                "body": String::from_utf8_lossy(&e.body),
            })
        })
        .collect();
    axum::Json(events).into_response()
}
