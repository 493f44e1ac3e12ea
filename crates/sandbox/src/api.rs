//! The sandbox's aggregator API: the two-token scheme of DESIGN.md section
//! 1b, with **both** tokens fully verified.
//!
//! The API lives in the resource owner's tenant ([`AggregatorApi::register_api`])
//! and accepts only tokens that tenant issued. Its clients are app
//! registrations in that tenant, each exposing its own App ID URI
//! (`api://clientXYZ`) and client roles (`clientXYZ.Read`, `clientXYZ.Write`)
//! ([`AggregatorApi::register_client`]). An aggregator — typically the
//! partner's multi-tenant app with a service principal in that tenant — is
//! granted API roles by the API's tenant ([`AggregatorApi::grant_api`]) and
//! client roles on chosen clients ([`AggregatorApi::grant_client`]); tokens
//! then come from the owner's authority, as in the cross-tenant story.
//!
//! Endpoints: `GET|PUT /api/{clientId}/data` (an in-memory JSON document per
//! client) and `GET /api/{clientId}/debug` (the authorization context).
//! `{clientId}` is the client's name (`clientXYZ`, from `api://clientXYZ`) or
//! its application id.
//!
//! Every request is checked in this order:
//! 1. the API token (`Authorization: Bearer`): signature against the JWKS,
//!    issuer, audience (the API), lifetime (no skew), issued by the API's
//!    tenant — else `401` with a `WWW-Authenticate` challenge;
//! 2. the API role the method needs (`API.Read` for GET, `API.Write` for
//!    PUT) — else `403`;
//! 3. if the caller *is* the client in the path (`appid` = the client's app
//!    id), nothing more; otherwise the secondary token: present, signature,
//!    issuer, audience (the client's App ID URI), lifetime, issued by the
//!    API's tenant, its `appid` equal to the API token's, and the client role
//!    the method needs (`clientXYZ.Read` / `.Write`) — else `403`.
//!
//! Refusals after authentication are `403` with a JSON body
//! `{"ForbidReason": "…"}`, as the reference sample answers. Unlike that
//! sample, which only decodes the secondary token, a forged, expired,
//! foreign-tenant, other-client or other-aggregator secondary token is refused.
//!
//! This is a test double, not a template for production authorization code:
//! the store is in memory and the directory is read directly.

// Handlers build their refusals as ready responses and return them through
// `Result`'s error side; boxing them would only add noise to a test server.
#![allow(clippy::result_large_err)]

use super::directory::{AppRegistration, DirectoryError};
use super::faults::{Fault, Service};
use super::jwt::{AccessClaims, TokenRejection};
use super::Shared;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The API role for reading.
pub const API_READ: &str = "API.Read";
/// The API role for writing.
pub const API_WRITE: &str = "API.Write";
/// The header the API reads the secondary token from, as the reference
/// two-token sample names it. The sandbox names it itself rather than
/// borrowing the client's constant, so a client sending the wrong header
/// fails a test.
pub const SECONDARY_TOKEN_HEADER: &str = "X-Secondary-Token";

/// What a method needs: reading (GET) or writing (PUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `API.Read` on the API, `{client}.Read` on the client.
    Read,
    /// `API.Write` on the API, `{client}.Write` on the client.
    Write,
}

impl Access {
    /// The API role for this access.
    pub fn api_role(self) -> &'static str {
        match self {
            Access::Read => API_READ,
            Access::Write => API_WRITE,
        }
    }

    /// The client role for this access on client `name`: `{name}.Read`.
    pub fn client_role(self, name: &str) -> String {
        match self {
            Access::Read => format!("{name}.Read"),
            Access::Write => format!("{name}.Write"),
        }
    }
}

/// Counters of the API, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ApiStats {
    requests: AtomicU64,
    served: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    with_secondary: AtomicU64,
}

impl ApiStats {
    /// Requests received, faulted and refused ones included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Requests answered with a 2xx.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
    /// Requests answered with 401.
    pub fn unauthorized(&self) -> u64 {
        self.unauthorized.load(Ordering::Relaxed)
    }
    /// Requests answered with 403.
    pub fn forbidden(&self) -> u64 {
        self.forbidden.load(Ordering::Relaxed)
    }
    /// Requests that carried a secondary token header.
    pub fn with_secondary_token(&self) -> u64 {
        self.with_secondary.load(Ordering::Relaxed)
    }
}

/// The API's own registration.
#[derive(Debug, Clone)]
struct ApiConfig {
    app_id: String,
    tenant_id: String,
    audiences: Vec<String>,
}

/// A client of the API.
#[derive(Debug)]
struct ClientEntry {
    name: String,
    app_id: String,
    audiences: Vec<String>,
    data: Mutex<Value>,
}

struct ApiState {
    shared: Shared,
    config: RwLock<Option<ApiConfig>>,
    /// By name and by application id.
    clients: RwLock<HashMap<String, Arc<ClientEntry>>>,
    header: RwLock<String>,
    stats: Arc<ApiStats>,
}

/// The running aggregator API.
pub struct AggregatorApi {
    server: super::tls::HttpsServer,
    state: Arc<ApiState>,
}

impl std::fmt::Debug for AggregatorApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorApi")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

/// An error for set-up calls made before [`AggregatorApi::register_api`].
fn no_api() -> DirectoryError {
    DirectoryError::NoApp("the aggregator API (call register_api first)".into())
}

impl AggregatorApi {
    /// Starts the API's HTTPS listener. It refuses every call until
    /// [`register_api`](Self::register_api) names its registration.
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let state = Arc::new(ApiState {
            shared: shared.clone(),
            config: RwLock::new(None),
            clients: RwLock::new(HashMap::new()),
            header: RwLock::new(SECONDARY_TOKEN_HEADER.to_string()),
            stats: Arc::new(ApiStats::default()),
        });
        let router = Router::new()
            .route("/api/{client}/data", get(get_data).put(put_data))
            .route("/api/{client}/debug", get(debug))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_and_fault,
            ))
            .with_state(state.clone());
        let server = super::tls::serve_https(&shared.ca, router).await?;
        Ok(Self { server, state })
    }

    /// `https://127.0.0.1:{port}/`, the API base URL.
    pub fn url(&self) -> url::Url {
        self.server.url()
    }

    /// Request counters.
    pub fn stats(&self) -> &ApiStats {
        &self.state.stats
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.server.connections.get()
    }

    /// Reads the secondary token from `name` instead of `X-Secondary-Token`.
    pub fn set_secondary_token_header(&self, name: &str) {
        *self.state.header.write().unwrap_or_else(|e| e.into_inner()) = name.to_string();
    }

    /// Registers the protected API in `tenant` (the resource owner's): an
    /// app with App ID URI `app_id_uri` and the roles `API.Read` and
    /// `API.Write`. From now on the API accepts tokens for that audience
    /// issued by that tenant.
    pub fn register_api(
        &self,
        tenant: &str,
        app_id_uri: &str,
    ) -> Result<AppRegistration, DirectoryError> {
        let d = &self.state.shared.directory;
        let app = d.register_app(tenant, "secureAPI", false)?;
        d.add_identifier_uri(&app.app_id, app_id_uri)?;
        d.add_app_role(&app.app_id, API_READ)?;
        d.add_app_role(&app.app_id, API_WRITE)?;
        *self.state.config.write().unwrap_or_else(|e| e.into_inner()) = Some(ApiConfig {
            app_id: app.app_id.clone(),
            tenant_id: app.home_tenant.clone(),
            audiences: vec![
                app_id_uri.to_string(),
                format!("api://{}", app.app_id),
                app.app_id.clone(),
            ],
        });
        // The registration as it now stands, with its URI and roles.
        Ok(d.app(&app.app_id).unwrap_or(app))
    }

    /// Registers client `name` in the API's tenant: an app exposing
    /// `api://{name}` with the client roles `{name}.Read` and `{name}.Write`,
    /// known to the API under `name` and its application id, with an initial
    /// document `{"client": name, "items": []}`. The client is granted no
    /// API role: see [`grant_api`](Self::grant_api).
    pub fn register_client(&self, name: &str) -> Result<AppRegistration, DirectoryError> {
        let config = self.config().ok_or_else(no_api)?;
        let d = &self.state.shared.directory;
        let app = d.register_app(&config.tenant_id, name, false)?;
        let uri = format!("api://{name}");
        d.add_identifier_uri(&app.app_id, &uri)?;
        d.add_app_role(&app.app_id, &Access::Read.client_role(name))?;
        d.add_app_role(&app.app_id, &Access::Write.client_role(name))?;
        let entry = Arc::new(ClientEntry {
            name: name.to_string(),
            app_id: app.app_id.clone(),
            audiences: vec![uri, format!("api://{}", app.app_id), app.app_id.clone()],
            data: Mutex::new(json!({ "client": name, "items": [] })),
        });
        let mut clients = self
            .state
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner());
        clients.insert(name.to_string(), entry.clone());
        clients.insert(app.app_id.clone(), entry);
        // The registration as it now stands, with its URI and roles.
        Ok(d.app(&app.app_id).unwrap_or(app))
    }

    /// The API's tenant grants `app_id` (an aggregator's or a client's app)
    /// the API roles for `access`.
    pub fn grant_api(&self, app_id: &str, access: &[Access]) -> Result<(), DirectoryError> {
        let config = self.config().ok_or_else(no_api)?;
        for a in access {
            self.state.shared.directory.grant_app_role(
                &config.tenant_id,
                app_id,
                &config.app_id,
                a.api_role(),
            )?;
        }
        Ok(())
    }

    /// Client `client` (name or application id) grants the aggregator app
    /// `aggregator_app_id` its client roles for `access`, in the API's tenant.
    pub fn grant_client(
        &self,
        aggregator_app_id: &str,
        client: &str,
        access: &[Access],
    ) -> Result<(), DirectoryError> {
        let config = self.config().ok_or_else(no_api)?;
        let entry = self
            .client(client)
            .ok_or_else(|| DirectoryError::NoApp(client.to_string()))?;
        for a in access {
            self.state.shared.directory.grant_app_role(
                &config.tenant_id,
                aggregator_app_id,
                &entry.app_id,
                &a.client_role(&entry.name),
            )?;
        }
        Ok(())
    }

    /// The stored document of `client` (name or application id).
    pub fn data(&self, client: &str) -> Option<Value> {
        self.client(client)
            .map(|c| c.data.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn config(&self) -> Option<ApiConfig> {
        self.state.config()
    }

    fn client(&self, id: &str) -> Option<Arc<ClientEntry>> {
        self.state.client(id)
    }
}

impl ApiState {
    fn config(&self) -> Option<ApiConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn client(&self, id: &str) -> Option<Arc<ClientEntry>> {
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner());
        clients
            .get(id)
            .or_else(|| clients.get(&id.to_ascii_lowercase()))
            .cloned()
    }
}

/// Counts every request, acts out an injected fault, and counts outcomes.
async fn count_and_fault(
    State(st): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    st.stats.requests.fetch_add(1, Ordering::Relaxed);
    let header = st.header.read().unwrap_or_else(|e| e.into_inner()).clone();
    if request.headers().contains_key(header.as_str()) {
        st.stats.with_secondary.fetch_add(1, Ordering::Relaxed);
    }
    let response = match act_out(st.shared.faults.next(Service::Api)).await {
        Some(r) => r,
        None => next.run(request).await,
    };
    let counter = match response.status().as_u16() {
        200..=299 => &st.stats.served,
        401 => &st.stats.unauthorized,
        403 => &st.stats.forbidden,
        _ => return response,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    response
}

/// Acts out an injected fault the way an API would; `Some` is the answer to
/// send instead of doing the work.
async fn act_out(fault: Option<Fault>) -> Option<Response> {
    match fault? {
        Fault::Status {
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = if status == StatusCode::UNAUTHORIZED {
                unauthorized("the token was revoked (sandbox fault)")
            } else {
                (status, Json(json!({ "error": "sandbox fault" }))).into_response()
            };
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
        Fault::Drop => Some(super::faults::hang_up()),
        Fault::RefuseToken => Some(unauthorized("the token was refused (sandbox fault)")),
    }
}

/// `401` with an RFC 6750 challenge: the API token is missing or invalid.
fn unauthorized(description: &str) -> Response {
    // Quotes would end the quoted-string early; the description is ours, but
    // rejections quote token fields.
    let quoted = description.replace(['"', '\\'], "'");
    let challenge = format!(
        "Bearer realm=\"aggregator-api\", error=\"invalid_token\", error_description=\"{quoted}\""
    );
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "invalid_token", "error_description": description })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// `403` with the reference sample's body shape.
fn forbidden(reason: String) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({ "ForbidReason": reason })),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "no such endpoint; try GET|PUT /api/{clientId}/data or GET /api/{clientId}/debug" })),
    )
        .into_response()
}

/// Who is calling, for whom, and with what.
struct Authorized {
    client: Arc<ClientEntry>,
    caller: AccessClaims,
    secondary: Option<AccessClaims>,
}

fn rejection_text(which: &str, r: &TokenRejection) -> String {
    format!("the {which} was refused: {r}")
}

/// Checks both tokens for `access` to `client_id`'s resource; see the module
/// docs for the order.
fn authorize(
    st: &ApiState,
    headers: &HeaderMap,
    client_id: &str,
    access: Access,
) -> Result<Authorized, Response> {
    let Some(config) = st.config() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "no API is registered in the sandbox; call register_api" })),
        )
            .into_response());
    };
    let issuer = &st.shared.issuer;
    let audiences: Vec<&str> = config.audiences.iter().map(String::as_str).collect();

    // 1. The API token.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
        });
    let Some(presented) = presented else {
        return Err(unauthorized(
            "no bearer token for the API was presented in the Authorization header",
        ));
    };
    let caller = issuer
        .verify(presented, &audiences, 0)
        .map_err(|r| unauthorized(&rejection_text("API token", &r)))?;
    if caller.tid != config.tenant_id {
        return Err(unauthorized(&format!(
            "the API token was issued by tenant {}, not by the API's tenant {}",
            caller.tid, config.tenant_id
        )));
    }

    let Some(client) = st.client(client_id) else {
        return Err((
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no client {client_id} is known to this API") })),
        )
            .into_response());
    };

    // 2. The API role.
    let api_role = access.api_role();
    if !caller.roles.iter().any(|r| r == api_role) {
        return Err(forbidden(format!(
            "app {} holds no {api_role} role on this API (roles: [{}]); the API's tenant admin \
             must grant it",
            caller.appid,
            caller.roles.join(", ")
        )));
    }

    // 3. The caller is the client itself: one token is enough.
    if caller.appid.eq_ignore_ascii_case(&client.app_id) {
        return Ok(Authorized {
            client,
            caller,
            secondary: None,
        });
    }

    // 3'. Acting for another client: the secondary token.
    let header_name = st.header.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(secondary) = headers
        .get(header_name.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return Err(forbidden(format!(
            "app {} is not client {}; acting on its behalf needs a secondary token for {} in \
             the {header_name} header",
            caller.appid, client.name, client.audiences[0]
        )));
    };
    let client_audiences: Vec<&str> = client.audiences.iter().map(String::as_str).collect();
    let b = issuer
        .verify(secondary, &client_audiences, 0)
        .map_err(|r| match r {
            TokenRejection::InvalidAudience { actual, .. } => forbidden(format!(
                "the secondary token is for {actual}, not for client {} ({})",
                client.name, client.audiences[0]
            )),
            other => forbidden(rejection_text("secondary token", &other)),
        })?;
    if b.tid != config.tenant_id {
        return Err(forbidden(format!(
            "the secondary token was issued by tenant {}, not by the API's tenant {}",
            b.tid, config.tenant_id
        )));
    }
    if !b.appid.eq_ignore_ascii_case(&caller.appid) {
        return Err(forbidden(format!(
            "the secondary token was issued to app {}, not to the caller {}",
            b.appid, caller.appid
        )));
    }
    let client_role = access.client_role(&client.name);
    if !b.roles.contains(&client_role) {
        return Err(forbidden(format!(
            "client {} granted app {} the roles [{}], not {client_role}, which this call needs",
            client.name,
            caller.appid,
            b.roles.join(", ")
        )));
    }
    Ok(Authorized {
        client,
        caller,
        secondary: Some(b),
    })
}

async fn get_data(
    State(st): State<Arc<ApiState>>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&st, &headers, &client, Access::Read) {
        Ok(ok) => Json(
            ok.client
                .data
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
        .into_response(),
        Err(resp) => resp,
    }
}

async fn put_data(
    State(st): State<Arc<ApiState>>,
    Path(client): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ok = match authorize(&st, &headers, &client, Access::Write) {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("the body is not JSON: {e}") })),
            )
                .into_response()
        }
    };
    *ok.client.data.lock().unwrap_or_else(|e| e.into_inner()) = value.clone();
    Json(value).into_response()
}

async fn debug(
    State(st): State<Arc<ApiState>>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&st, &headers, &client, Access::Read) {
        Ok(ok) => {
            let who = |c: &AccessClaims| {
                json!({
                    "aud": c.aud, "appid": c.appid, "tid": c.tid, "oid": c.oid,
                    "roles": c.roles, "exp": c.exp,
                })
            };
            Json(json!({
                "client": ok.client.name,
                "client_app_id": ok.client.app_id,
                "mode": if ok.secondary.is_some() { "on_behalf_of" } else { "as_client" },
                "caller": who(&ok.caller),
                "secondary": ok.secondary.as_ref().map(who),
            }))
            .into_response()
        }
        Err(resp) => resp,
    }
}
