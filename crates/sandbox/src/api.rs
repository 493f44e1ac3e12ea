//! The sandbox's aggregator API: the two-token scheme (docs/ARCHITECTURE.md,
//! "An aggregator acting on behalf of a named client"), with **both** tokens fully verified.
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
//! The checks are `crosstenant-validator`'s, the same implementation
//! resource owners deploy: the API reads the signing keys the way a real API
//! does, from the identity provider's OpenID configuration and JWKS over
//! HTTPS (trusting the sandbox CA), with the validator's cache and its
//! bounded re-fetch for unknown `kid`s. Every request is checked in this
//! order:
//! 1. the API token (`Authorization: Bearer`): signature against the JWKS,
//!    issuer, audience (the API), lifetime (no skew), app-only, issued by the
//!    API's tenant — else `401` with a `WWW-Authenticate` challenge; then the
//!    client in the path must be known — else `404`;
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
use super::Shared;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use crosstenant_validator::{Authorized, Claims, Client, Cloud, Refusal, Validator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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

/// The API's own registration, and the validator built for it.
#[derive(Debug, Clone)]
struct ApiConfig {
    app_id: String,
    tenant_id: String,
    validator: Validator,
}

/// A client of the API and its document.
#[derive(Debug)]
struct ClientEntry {
    name: String,
    app_id: String,
    data: Mutex<Value>,
}

struct ApiState {
    shared: Shared,
    config: RwLock<Option<ApiConfig>>,
    /// By name and by application id.
    clients: RwLock<HashMap<String, Arc<ClientEntry>>>,
    header: RwLock<String>,
    /// Whether the validator remembers verified tokens.
    verified_cache: std::sync::atomic::AtomicBool,
    /// Where the validator fetches the identity provider's metadata.
    authority_host: url::Url,
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
    /// [`register_api`](Self::register_api) names its registration. Tokens
    /// are verified with keys fetched from the identity provider at
    /// `authority_host` over HTTPS.
    pub async fn start(shared: &Shared, authority_host: url::Url) -> std::io::Result<Self> {
        let state = Arc::new(ApiState {
            shared: shared.clone(),
            config: RwLock::new(None),
            clients: RwLock::new(HashMap::new()),
            header: RwLock::new(SECONDARY_TOKEN_HEADER.to_string()),
            verified_cache: std::sync::atomic::AtomicBool::new(true),
            authority_host,
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
        if let Some(config) = self.config() {
            if let Err(e) = config.validator.set_secondary_token_header(name) {
                tracing::warn!(error = %e, "the secondary token header was not changed");
            }
        }
    }

    /// Whether the API remembers verified tokens (on by default): a resource
    /// server verifies a token's signature once and then only the checks
    /// that change per request (audience, lifetime, roles), as Envoy's
    /// `jwt_authn` cache does. Off, both RS256 signatures are checked on
    /// every call.
    pub fn set_verified_token_cache(&self, on: bool) {
        self.state
            .verified_cache
            .store(on, std::sync::atomic::Ordering::Relaxed);
        if let Some(config) = self.config() {
            config.validator.set_verified_token_cache(on);
        }
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
        let validator = self
            .state
            .validator_for(&app.home_tenant, app_id_uri, &app.app_id)
            // Only a bad secondary token header name can fail here; the
            // directory's error type has no better variant for it.
            .map_err(|e| DirectoryError::NoApp(format!("the aggregator API ({e})")))?;
        *self.state.config.write().unwrap_or_else(|e| e.into_inner()) = Some(ApiConfig {
            app_id: app.app_id.clone(),
            tenant_id: app.home_tenant.clone(),
            validator,
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
        let client = Client::new(name, &app.app_id)
            .map_err(|e| DirectoryError::NoApp(format!("{name} ({e})")))?
            .app_id_uri(&uri)
            .app_id_uri(&format!("api://{}", app.app_id));
        config.validator.add_client(client);
        let entry = Arc::new(ClientEntry {
            name: name.to_string(),
            app_id: app.app_id.clone(),
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
    /// The validator for the API registered in `tenant`: keys from the
    /// identity provider's v2 OpenID configuration over HTTPS with the
    /// sandbox CA added, the API's App ID URIs and client id as audiences,
    /// no clock skew (the sandbox's clocks agree).
    fn validator_for(
        &self,
        tenant: &str,
        app_id_uri: &str,
        app_id: &str,
    ) -> Result<Validator, crosstenant_validator::ConfigError> {
        // v1 tokens carry `https://sts.windows.net/{tid}/`; v2 tokens the
        // issuer of the sandbox's v2 metadata, or the public cloud's v2
        // issuer should the identity provider mint them so.
        let cloud = Cloud::custom(self.authority_host.as_str())?.with_issuer_templates([
            "https://sts.windows.net/{tenantid}/".to_string(),
            format!("{}{{tenantid}}/v2.0", self.authority_host),
            "https://login.microsoftonline.com/{tenantid}/v2.0".to_string(),
        ])?;
        let header = self
            .header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Validator::builder(cloud, tenant)
            .api_audiences([
                app_id_uri.to_string(),
                format!("api://{app_id}"),
                app_id.to_string(),
            ])
            .extra_root_pem(self.shared.ca.pem())
            .clock_skew(Duration::ZERO)
            // Tests rotate keys at will; a real API keeps the default.
            .min_key_refresh_interval(Duration::from_secs(2))
            .secondary_token_header(&header)
            .realm("aggregator-api")
            .verified_token_cache(
                self.verified_cache
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
            .build()
    }

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

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "no such endpoint; try GET|PUT /api/{clientId}/data or GET /api/{clientId}/debug" })),
    )
        .into_response()
}

/// Who is calling, for whom, and with what.
struct Allowed {
    client: Arc<ClientEntry>,
    ok: Authorized,
}

/// Checks both tokens for `access` to `client_id`'s resource with the
/// validator; see the module docs for the order.
async fn authorize(
    st: &ApiState,
    headers: &HeaderMap,
    client_id: &str,
    access: Access,
) -> Result<Allowed, Response> {
    let Some(config) = st.config() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "no API is registered in the sandbox; call register_api" })),
        )
            .into_response());
    };
    let validator = &config.validator;
    let access = match access {
        Access::Read => crosstenant_validator::Access::Read,
        Access::Write => crosstenant_validator::Access::Write,
    };
    match validator.authorize(headers, client_id, access).await {
        Ok(ok) => match st.client(ok.client().app_id()) {
            Some(client) => Ok(Allowed { client, ok }),
            None => Err(no_client(client_id)),
        },
        // The sandbox has always answered an unknown client with 404.
        Err(Refusal::UnknownClient { client }) => Err(no_client(&client)),
        Err(refusal) => Err(refusal.to_response(validator.realm()).into_response()),
    }
}

fn no_client(client_id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no client {client_id} is known to this API") })),
    )
        .into_response()
}

async fn get_data(
    State(st): State<Arc<ApiState>>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&st, &headers, &client, Access::Read).await {
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
    let ok = match authorize(&st, &headers, &client, Access::Write).await {
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
    match authorize(&st, &headers, &client, Access::Read).await {
        Ok(ok) => {
            let who = |c: &Claims| {
                json!({
                    "aud": c.aud, "appid": c.caller(), "tid": c.tid, "oid": c.oid,
                    "roles": c.roles, "exp": c.exp,
                })
            };
            Json(json!({
                "client": ok.client.name,
                "client_app_id": ok.client.app_id,
                "mode": if ok.ok.on_behalf_of() { "on_behalf_of" } else { "as_client" },
                "caller": who(ok.ok.caller()),
                "secondary": ok.ok.secondary().map(who),
            }))
            .into_response()
        }
        Err(resp) => resp,
    }
}
