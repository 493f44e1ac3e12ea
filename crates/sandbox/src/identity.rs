//! The sandbox's identity provider: Entra ID's endpoints for the
//! client-credentials grant, over HTTPS.
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (`scope={resource}/.default`) and the
//!   v1 endpoint `POST /{tenant}/oauth2/token` (`resource={resource}`). The
//!   client authenticates with `client_secret` in the body
//!   (`client_secret_post`), with its id and secret in an HTTP Basic header
//!   (`client_secret_basic`, each part form-urlencoded first, RFC 6749
//!   section 2.3.1; Microsoft's "client credentials flow" doc accepts either),
//!   or with `client_assertion` (a certificate-signed JWT, or a federated
//!   assertion from an issuer the app trusts); one method per request.
//! - Access tokens (RS256) follow Microsoft's "access token claims
//!   reference" for app-only tokens, in the version **the resource** asks for
//!   (its `accessTokenAcceptedVersion`, [`TokenVersion`]): v1.0 with `aud` =
//!   the resource as asked, `iss` = `https://sts.windows.net/{tid}/`,
//!   `appid`/`appidacr`, `idp`; v2.0 with `aud` = the resource's client id,
//!   `iss` = `https://login.microsoftonline.com/{tid}/v2.0`, `azp`/`azpacr`.
//!   Both: `tid` = **the tenant asked**, `oid` = `sub` = the app's service
//!   principal *in that tenant*, `roles` granted there, `idtyp` `app`.
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration` (issuer
//!   `https://login.microsoftonline.com/{tid}/v2.0`) and the v1 document
//!   `GET /{tenant}/.well-known/openid-configuration` (issuer
//!   `https://sts.windows.net/{tid}/`), and the JWKS (keys with `x5t` and
//!   `x5c`) at `/{tenant}/discovery/v2.0/keys` and `/{tenant}/discovery/keys`.
//!
//! - Workload identity federation: a `client_assertion` from another issuer
//!   is checked as Entra checks it ("Configure an app to trust an external
//!   identity provider", "Important considerations and restrictions for
//!   federated identity credentials", "Configure an application to trust a
//!   managed identity"): a federated identity credential of the app must name
//!   its `iss` (else AADSTS700211), its `sub` (AADSTS700213) and its `aud`
//!   (AADSTS700212); the issuer's keys come from its OpenID configuration
//!   (`{iss}/.well-known/openid-configuration`, then `jwks_uri`), fetched over
//!   HTTPS trusting the sandbox CA, so an assertion signed by any other key
//!   fails (AADSTS700027); then `nbf`/`exp` (AADSTS700024). A federated
//!   assertion may be presented again during its lifetime, as Entra allows
//!   (a projected Kubernetes token or a cached managed identity token is);
//!   [`IdentityServer::set_federated_assertions_single_use`] refuses a
//!   replayed `jti` instead.
//!   An app with no federated credential answers AADSTS70025. Entra's own
//!   issuer (`https://login.microsoftonline.com/{tid}/v2.0`, the issuer of
//!   managed identity tokens) is resolved at the sandbox's own authority.
//!   External workload issuers (`/federation/{name}`) each have their own
//!   signing key and serve their own discovery document and JWKS.
//!
//! Failures carry Entra's JSON shape (`error`, `error_description` starting
//! `AADSTSnnnn:` and ending with trace and correlation ids, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`, `error_uri`) and status codes,
//! for each cross-tenant mistake docs/ARCHITECTURE.md lists. Codes follow
//! Microsoft's published AADSTS reference; where Entra's exact code for a
//! case is not published (assertion audience, `jti` replay) the sandbox uses
//! the documented umbrella code `50013` (invalid assertion).

// Handlers build their refusals as ready responses and return them through
// `Result`'s error side; boxing them would only add noise to a test server.
#![allow(clippy::result_large_err)]

use super::directory::{AppRegistration, ManagedIdentityKind};
use super::faults::{Fault, Service};
use super::jwt::{now_secs, AccessClaims, TokenVersion};
use super::Shared;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The assertion type of RFC 7523, the only one Entra accepts here.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience Entra requires of federated (workload identity) assertions
/// by default.
pub const FEDERATED_AUDIENCE: &str = super::directory::TOKEN_EXCHANGE_AUDIENCE;
/// The `User-Agent` of the identity provider's own fetches of an issuer's
/// discovery document and keys (they are not counted as client discovery
/// requests).
const FEDERATION_USER_AGENT: &str = "crosstenant-sandbox-entra-federation";
/// Entra's public authority; an issuer under it is Entra's own (managed
/// identity tokens) and is resolved at the sandbox's authority.
const ENTRA_PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com/";

/// The sandbox's external workload issuers (a Kubernetes cluster's service
/// account issuer, a CI system): each has its own RSA signing key and
/// publishes it at its own JWKS URL.
#[derive(Default)]
pub(crate) struct WorkloadIssuers {
    keys: Mutex<HashMap<String, super::jwt::TokenIssuer>>,
}

impl std::fmt::Debug for WorkloadIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadIssuers").finish_non_exhaustive()
    }
}

impl WorkloadIssuers {
    /// The key set of issuer `name`, created (with a fresh key) on first use.
    fn get_or_create(&self, name: &str) -> Result<super::jwt::TokenIssuer, String> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get(name) {
            return Ok(k.clone());
        }
        let issuer = super::jwt::TokenIssuer::new()?;
        keys.insert(name.to_string(), issuer.clone());
        Ok(issuer)
    }

    fn get(&self, name: &str) -> Option<super::jwt::TokenIssuer> {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// Counters of the identity provider, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct IdentityStats {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    discovery_requests: AtomicU64,
    per_scope: Mutex<HashMap<String, u64>>,
}

impl IdentityStats {
    /// Token requests received (including failed and faulted ones).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }
    /// Access tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }
    /// OpenID configuration requests received (tenant resolution).
    pub fn discovery_requests(&self) -> u64 {
        self.discovery_requests.load(Ordering::Relaxed)
    }
    /// Token requests received for one scope string.
    pub fn token_requests_for(&self, scope: &str) -> u64 {
        let map = self.per_scope.lock().unwrap_or_else(|e| e.into_inner());
        map.get(scope).copied().unwrap_or(0)
    }
}

struct IdpState {
    shared: Shared,
    stats: Arc<IdentityStats>,
    lifetime_secs: Arc<AtomicI64>,
    seen_jti: Mutex<HashSet<String>>,
    workload: Arc<WorkloadIssuers>,
    /// Whether a federated assertion may be presented once only.
    federated_single_use: Arc<std::sync::atomic::AtomicBool>,
    /// Fetches issuers' discovery documents and keys; trusts only the
    /// sandbox CA.
    http: reqwest::Client,
}

/// The running identity provider.
pub struct IdentityServer {
    server: super::tls::HttpsServer,
    stats: Arc<IdentityStats>,
    lifetime_secs: Arc<AtomicI64>,
    workload: Arc<WorkloadIssuers>,
    federated_single_use: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for IdentityServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityServer")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

impl IdentityServer {
    /// Starts the identity provider on a loopback port.
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let stats = Arc::new(IdentityStats::default());
        let lifetime_secs = Arc::new(AtomicI64::new(3600));
        let workload = Arc::new(WorkloadIssuers::default());
        let federated_single_use = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ca = reqwest::Certificate::from_pem(shared.ca.pem().as_bytes())
            .map_err(std::io::Error::other)?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .user_agent(FEDERATION_USER_AGENT)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(IdpState {
            shared: shared.clone(),
            stats: stats.clone(),
            lifetime_secs: lifetime_secs.clone(),
            seen_jti: Mutex::new(HashSet::new()),
            workload: workload.clone(),
            federated_single_use: federated_single_use.clone(),
            http,
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{tenant}/oauth2/token", post(token_v1))
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(openid_configuration_v1),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .route("/{tenant}/discovery/keys", get(jwks))
            .route(
                "/federation/{name}/.well-known/openid-configuration",
                get(workload_openid_configuration),
            )
            .route("/federation/{name}/keys", get(workload_jwks))
            .with_state(state);
        let server = super::tls::serve_https(&shared.ca, router).await?;
        Ok(Self {
            server,
            stats,
            lifetime_secs,
            workload,
            federated_single_use,
        })
    }

    /// Whether a federated assertion is refused when presented a second
    /// time (its `jti`, or `uti` for a managed identity token, seen before).
    /// Off by default, as in Entra: a Kubernetes projected token or a
    /// managed identity token is presented for every token request during
    /// its lifetime (the Azure SDKs cache it). Switch it on to prove that a
    /// client fetches a fresh assertion for each exchange. Certificate
    /// assertions are always single-use.
    pub fn set_federated_assertions_single_use(&self, on: bool) {
        self.federated_single_use.store(on, Ordering::Relaxed);
    }

    /// `https://127.0.0.1:{port}/`, the value for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> url::Url {
        self.server.url()
    }

    /// The token endpoint of `tenant`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}{tenant}/oauth2/v2.0/token", self.server.url())
    }

    /// Request counters.
    pub fn stats(&self) -> &IdentityStats {
        &self.stats
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.server.connections.get()
    }

    /// Sets the lifetime of access tokens issued from now on (default 3600 s).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.lifetime_secs.store(secs, Ordering::Relaxed);
    }

    /// The issuer URL of the sandbox's external workload issuer named
    /// `name`, for federated identity credentials. The issuer exists (with
    /// its own signing key, its discovery document at
    /// `{url}/.well-known/openid-configuration` and its JWKS at `{url}/keys`)
    /// from this call on.
    pub fn federated_issuer(&self, name: &str) -> String {
        if let Err(e) = self.workload.get_or_create(name) {
            tracing::warn!(error = %e, "workload issuer key could not be made");
        }
        format!("{}federation/{name}", self.server.url())
    }

    /// Mints a federated assertion as an external workload issuer would (a
    /// Kubernetes service-account token, a CI job's OIDC token): `iss` =
    /// [`Self::federated_issuer`], `sub`, `aud` = `api://AzureADTokenExchange`,
    /// valid for `lifetime_secs`, signed by that issuer's own key. Register
    /// the pair on the app with
    /// [`super::directory::Directory::add_federated_credential`].
    pub fn mint_federated_assertion(
        &self,
        issuer_name: &str,
        subject: &str,
        lifetime_secs: i64,
    ) -> Result<String, String> {
        let now = now_secs();
        self.sign_as_workload_issuer(
            issuer_name,
            &json!({
                "iss": self.federated_issuer(issuer_name),
                "sub": subject,
                "aud": FEDERATED_AUDIENCE,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime_secs,
                "jti": Uuid::new_v4().to_string(),
            }),
        )
    }

    /// Signs any `claims` with the key of workload issuer `issuer_name`
    /// (created on first use), for tests that need an assertion with a
    /// particular flaw: another issuer's `iss`, a wrong `aud`, no `jti`.
    pub fn sign_as_workload_issuer(
        &self,
        issuer_name: &str,
        claims: &Value,
    ) -> Result<String, String> {
        self.workload
            .get_or_create(issuer_name)?
            .sign_as(claims, TokenVersion::V2)
    }
}

/// An Entra-shaped error answer.
fn entra_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let trace_id = Uuid::new_v4().to_string();
    let correlation_id = Uuid::new_v4().to_string();
    let timestamp = time_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

fn time_string() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Acts out an injected fault; `Some` is the answer to send instead.
pub(crate) async fn act_out(fault: Option<Fault>) -> Option<Response> {
    match fault? {
        Fault::Status {
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = entra_error(
                status,
                "temporarily_unavailable",
                50196,
                "The server is temporarily unable to handle this request (sandbox fault).",
            );
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
        Fault::RefuseToken => Some(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Refused by a sandbox fault.",
        )),
    }
}

/// Whether a request is the identity provider's own federation fetch.
fn is_own_fetch(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .is_some_and(|v| v.as_bytes() == FEDERATION_USER_AGENT.as_bytes())
}

async fn openid_configuration(
    State(st): State<Arc<IdpState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_own_fetch(&headers) {
        st.stats.discovery_requests.fetch_add(1, Ordering::Relaxed);
    }
    let Some(t) = st.shared.directory.tenant(&tenant) else {
        return unknown_tenant(&tenant);
    };
    let authority = authority_of(&headers);
    Json(json!({
        // The issuer of the v2.0 tokens of this tenant, as Entra's document
        // names it (not the sandbox's own address).
        "issuer": AccessClaims::v2_issuer_for(&t.id),
        "token_endpoint": format!("{authority}{}/oauth2/v2.0/token", t.id),
        "jwks_uri": format!("{authority}{}/discovery/v2.0/keys", t.id),
        "authorization_endpoint": format!("{authority}{}/oauth2/v2.0/authorize", t.id),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "sandbox.crosstenant.invalid",
    }))
    .into_response()
}

/// The v1 discovery document, as Entra serves it at
/// `/{tenant}/.well-known/openid-configuration`: issuer
/// `https://sts.windows.net/{tid}/`, the v1 token endpoint, the common keys.
async fn openid_configuration_v1(
    State(st): State<Arc<IdpState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.stats.discovery_requests.fetch_add(1, Ordering::Relaxed);
    let Some(t) = st.shared.directory.tenant(&tenant) else {
        return unknown_tenant(&tenant);
    };
    let authority = authority_of(&headers);
    Json(json!({
        "issuer": AccessClaims::issuer_for(&t.id),
        "token_endpoint": format!("{authority}{}/oauth2/token", t.id),
        "jwks_uri": format!("{authority}common/discovery/keys"),
        "authorization_endpoint": format!("{authority}{}/oauth2/authorize", t.id),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "scopes_supported": ["openid"],
        "subject_types_supported": ["pairwise"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "sandbox.crosstenant.invalid",
    }))
    .into_response()
}

async fn jwks(State(st): State<Arc<IdpState>>) -> Response {
    Json(st.shared.issuer.jwks()).into_response()
}

/// The discovery document of workload issuer `name` (OpenID Connect
/// Discovery 1.0: `issuer` and `jwks_uri`, as a Kubernetes cluster's OIDC
/// issuer publishes them).
async fn workload_openid_configuration(
    State(st): State<Arc<IdpState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if st.workload.get(&name).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let issuer = format!("{}federation/{name}", authority_of(&headers));
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

/// The JWKS of workload issuer `name`: its own keys only.
async fn workload_jwks(State(st): State<Arc<IdpState>>, Path(name): Path<String>) -> Response {
    match st.workload.get(&name) {
        Some(issuer) => Json(issuer.jwks()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn unknown_tenant(tenant: &str) -> Response {
    entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and \
             are signing into the correct cloud. Check with your subscription administrator, this \
             may happen if there are no active subscriptions for the tenant."
        ),
    )
}

/// `https://{Host}/` as the client addressed us; what assertion audiences
/// and discovery documents are built from.
fn authority_of(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("https://{host}/")
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    /// The v1 endpoint's way of naming the resource.
    resource: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The client id and secret of an `Authorization: Basic` header
/// (`client_secret_basic`): `Ok(None)` without one; `Err` naming what is
/// wrong with a malformed one. RFC 6749 section 2.3.1: the id and the secret
/// are each form-urlencoded, then joined by `:` and base64-encoded, so they
/// are split first and decoded after (a `:` inside either arrives as `%3A`).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, String> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII".to_string())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64".to_string())?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| "the Basic credentials are not UTF-8".to_string())?;
    let Some((id, secret)) = decoded.split_once(':') else {
        return Err("the Basic credentials have no ':' between client id and secret".into());
    };
    let form_decode = |part: &str, what: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| format!("the Basic {what} is not form-urlencoded UTF-8"))
    };
    Ok(Some((
        form_decode(id, "client id")?,
        form_decode(secret, "client secret")?,
    )))
}

/// `POST /{tenant}/oauth2/token`: the v1 endpoint, which names the
/// resource with `resource=` instead of `scope=`; it issues the same tokens.
async fn token_v1(
    state: State<Arc<IdpState>>,
    tenant: Path<String>,
    headers: HeaderMap,
    Form(mut form): Form<TokenForm>,
) -> Response {
    if form.scope.is_none() {
        form.scope = form
            .resource
            .take()
            .map(|r| format!("{}/.default", r.trim_end_matches('/')));
    }
    token(state, tenant, headers, Form(form)).await
}

async fn token(
    State(st): State<Arc<IdpState>>,
    Path(tenant_in_path): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    st.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(scope) = &form.scope {
        let mut map = st.stats.per_scope.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(scope.clone()).or_default() += 1;
    }
    if let Some(resp) = act_out(st.shared.faults.next(Service::Identity)).await {
        return resp;
    }
    match issue(&st, &tenant_in_path, &headers, form).await {
        Ok(resp) => resp,
        Err(resp) => resp,
    }
}

async fn issue(
    st: &IdpState,
    tenant_in_path: &str,
    headers: &HeaderMap,
    mut form: TokenForm,
) -> Result<Response, Response> {
    let bad = |error: &str, code: u32, msg: String| {
        Err(entra_error(StatusCode::BAD_REQUEST, error, code, &msg))
    };
    let unauthorized = |code: u32, msg: String| {
        Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            &msg,
        ))
    };
    let dir = &st.shared.directory;

    if form.grant_type.as_deref() != Some("client_credentials") {
        return bad(
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; the sandbox supports \
             'client_credentials'."
                .into(),
        );
    }
    let Some(tenant) = dir.tenant(tenant_in_path) else {
        return Err(unknown_tenant(tenant_in_path));
    };
    // client_secret_basic: the id and secret from the header. Entra's code
    // for a request using two methods at once is not published; the answer
    // is RFC 6749's `invalid_request` with the umbrella code 900144.
    match basic_credentials(headers) {
        Ok(None) => {}
        Ok(Some((id, secret))) => {
            if form.client_secret.is_some() || form.client_assertion.is_some() {
                return bad(
                    "invalid_request",
                    900144,
                    "The request authenticates the client twice: with an HTTP Basic header and \
                     with a client_secret or client_assertion in the body. Use one method \
                     (RFC 6749 section 2.3)."
                        .into(),
                );
            }
            if let Some(body_id) = form.client_id.as_deref() {
                if !body_id.trim().eq_ignore_ascii_case(id.trim()) {
                    return bad(
                        "invalid_request",
                        900144,
                        format!(
                            "The client_id '{body_id}' in the body differs from the client id \
                             '{id}' in the HTTP Basic header."
                        ),
                    );
                }
            }
            form.client_id = Some(id);
            form.client_secret = Some(secret);
        }
        Err(why) => {
            return unauthorized(
                7000216,
                format!(
                    "The HTTP Basic client credentials could not be read: {why}. Send \
                     base64(urlencode(client_id) ':' urlencode(client_secret)) (RFC 6749 \
                     section 2.3.1), or client_id and client_secret in the body."
                ),
            )
        }
    }
    let client_id = match form.client_id.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => c.to_ascii_lowercase(),
        _ => {
            return bad(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.".into(),
            )
        }
    };
    let app = match dir.app(&client_id) {
        Some(app) if app.multi_tenant || app.home_tenant == tenant.id => app,
        _ => {
            return bad(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory \
                     '{}'. This can happen if the application has not been installed by the \
                     administrator of the tenant or consented to by any user in the tenant. You \
                     may have sent your authentication request to the wrong tenant.",
                    tenant.name
                ),
            )
        }
    };
    let Some(principal) = dir.service_principal(&tenant.id, &app.app_id) else {
        return bad(
            "invalid_client",
            7000229,
            format!(
                "The client application {client_id} is missing service principal in the tenant \
                 {}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
                tenant.id
            ),
        );
    };

    // Authenticate the client: a secret, or an assertion.
    let appidacr = match (&form.client_secret, &form.client_assertion) {
        (Some(secret), None) => {
            match dir.check_secret(&app, secret) {
                Ok(()) => {}
                Err(true) => {
                    return unauthorized(
                        7000222,
                        format!(
                            "The provided client secret keys for app '{client_id}' are expired. \
                             Visit the Azure portal to create new keys for your app: \
                             https://aka.ms/NewClientSecret, or consider using certificate \
                             credentials for added security: https://aka.ms/certCreds."
                        ),
                    )
                }
                Err(false) => {
                    return unauthorized(
                        7000215,
                        format!(
                            "Invalid client secret provided. Ensure the secret being sent in the \
                             request is the client secret value, not the client secret ID, for a \
                             secret added to app '{client_id}'."
                        ),
                    )
                }
            }
            "1"
        }
        (None, Some(assertion)) => {
            if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return bad(
                    "invalid_request",
                    50027,
                    format!("client_assertion_type must be '{JWT_BEARER}'."),
                );
            }
            check_assertion(st, &app, &tenant, headers, assertion).await?;
            "2"
        }
        _ => {
            return bad(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'."
                    .into(),
            )
        }
    };

    // The scope: exactly one `{resource}/.default` for client credentials.
    let scope = form.scope.unwrap_or_default();
    let resources: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access"))
        .collect();
    let [requested] = resources.as_slice() else {
        return bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        );
    };
    let Some(resource) = requested.strip_suffix("/.default") else {
        return bad(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {requested} is not valid. Client credential flows \
                 must have a scope value with /.default suffixed to the resource identifier \
                 (application ID URI)."
            ),
        );
    };
    let resource_app = dir
        .resource_app(resource)
        .filter(|r| dir.service_principal(&tenant.id, &r.app_id).is_some());
    let Some(resource_app) = resource_app else {
        return bad(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {}. \
                 This can happen if the application has not been installed by the administrator \
                 of the tenant or consented to by any user in the tenant. You might have sent \
                 your authentication request to the wrong tenant.",
                tenant.name
            ),
        );
    };
    let roles = dir.roles(&tenant.id, &app.app_id, &resource_app.app_id);
    if resource_app.assignment_required && roles.is_empty() {
        return bad(
            "invalid_grant",
            501051,
            format!(
                "Application '{}'({}) is not assigned to a role for the application '{}'({}).",
                app.app_id, app.name, resource, resource_app.name
            ),
        );
    }

    let now = now_secs();
    let lifetime = st.lifetime_secs.load(Ordering::Relaxed);
    let version = resource_app.access_token_version;
    let claims = access_token_claims(&AppToken {
        version,
        // v1.0: the resource as the client named it; v2.0: always the
        // resource's client id.
        audience: match version {
            TokenVersion::V1 => resource,
            TokenVersion::V2 => &resource_app.app_id,
        },
        tenant_id: &tenant.id,
        client_id: &app.app_id,
        client_auth: appidacr,
        object_id: &principal.object_id,
        roles: &roles,
        issued_at: now,
        lifetime,
    });
    let token = st.shared.issuer.sign_as(&claims, version).map_err(|e| {
        entra_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            &format!("signing failed: {e}"),
        )
    })?;
    st.stats.tokens_issued.fetch_add(1, Ordering::Relaxed);
    Ok(Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
    .into_response())
}

/// What an app-only access token says, before it takes a version's shape.
pub struct AppToken<'a> {
    /// The version the resource asks for.
    pub version: TokenVersion,
    /// `aud`.
    pub audience: &'a str,
    /// The issuing tenant (`tid`).
    pub tenant_id: &'a str,
    /// The client app (`appid` / `azp`).
    pub client_id: &'a str,
    /// How it authenticated: `1` secret, `2` certificate or assertion
    /// (`appidacr` / `azpacr`).
    pub client_auth: &'a str,
    /// The client's service principal in the tenant (`oid`, `sub`).
    pub object_id: &'a str,
    /// The app roles granted there.
    pub roles: &'a [String],
    /// `iat` and `nbf`.
    pub issued_at: i64,
    /// Seconds until `exp`.
    pub lifetime: i64,
}

/// The claims of an app-only access token, exactly as Microsoft's "access
/// token claims reference" lists them for each version (less the opaque
/// `aio` and `rh`): v1.0 carries `appid`, `appidacr` and `idp`; v2.0 carries
/// `azp` and `azpacr` instead, with its own `iss`.
pub fn access_token_claims(t: &AppToken<'_>) -> Value {
    let mut claims = json!({
        "aud": t.audience,
        "iat": t.issued_at,
        "nbf": t.issued_at,
        "exp": t.issued_at + t.lifetime,
        "idtyp": "app",
        "oid": t.object_id,
        "roles": t.roles,
        "sub": t.object_id,
        "tid": t.tenant_id,
        "uti": Uuid::new_v4().to_string(),
    });
    let extra = match t.version {
        TokenVersion::V1 => json!({
            "iss": AccessClaims::issuer_for(t.tenant_id),
            "idp": AccessClaims::issuer_for(t.tenant_id),
            "appid": t.client_id,
            "appidacr": t.client_auth,
            "ver": "1.0",
        }),
        TokenVersion::V2 => json!({
            "iss": AccessClaims::v2_issuer_for(t.tenant_id),
            "azp": t.client_id,
            "azpacr": t.client_auth,
            "ver": "2.0",
        }),
    };
    if let (Some(c), Value::Object(e)) = (claims.as_object_mut(), extra) {
        c.extend(e);
    }
    claims
}

/// Verifies a client assertion as Entra does: a certificate assertion
/// (`iss` = `sub` = client id; `x5t`/`x5t#S256` naming a certificate
/// registered on the app, signature by its key, `aud` = this token
/// endpoint) or a federated one (see [`federated_key`]); in both, `nbf`/`exp`
/// around now and a `jti` never seen before.
async fn check_assertion(
    st: &IdpState,
    app: &AppRegistration,
    tenant: &super::directory::Tenant,
    headers: &HeaderMap,
    assertion: &str,
) -> Result<(), Response> {
    let invalid = |code: u32, msg: String| {
        entra_error(StatusCode::UNAUTHORIZED, "invalid_client", code, &msg)
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| invalid(50013, format!("Assertion is malformed: {e}.")))?;
    let unverified = crate::jwt::unverified_claims(assertion)
        .map_err(|e| invalid(50013, format!("Assertion is malformed: {e}.")))?;
    let claim = |n: &str| {
        unverified
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let iss = claim("iss");

    // A certificate assertion is issued by the client itself; anything else
    // is a federated assertion from an external issuer.
    let self_issued = iss.eq_ignore_ascii_case(&app.app_id)
        || ((header.x5t.is_some() || header.x5t_s256.is_some()) && app.federated.is_empty());
    let key: DecodingKey;
    if !self_issued {
        key = federated_key(st, app, headers, &header, &unverified).await?;
    } else {
        let cert = app
            .certificates
            .iter()
            .find(|c| c.named_by(header.x5t.as_deref(), header.x5t_s256.as_deref()));
        let Some(cert) = cert else {
            return Err(invalid(
                700027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not \
                     registered on application. [Reason - The key was not found., Thumbprint of \
                     key used by client: '{}', Please visit the Azure Portal, Graph Explorer or \
                     directly use MS Graph to see configured keys for app Id '{}'.]",
                    header
                        .x5t
                        .as_deref()
                        .or(header.x5t_s256.as_deref())
                        .unwrap_or_default(),
                    app.app_id
                ),
            ));
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.der)
            .map_err(|e| invalid(700027, format!("Registered certificate unreadable: {e}.")))?;
        key = DecodingKey::from_rsa_der(&parsed.public_key().subject_public_key.data);
        if iss != app.app_id || claim("sub") != app.app_id {
            return Err(invalid(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter."
                    .into(),
            ));
        }
        let authority = authority_of(headers);
        let expected_aud: Vec<String> = std::iter::once(tenant.id.clone())
            .chain(tenant.domains.iter().cloned())
            .map(|t| format!("{authority}{t}/oauth2/v2.0/token"))
            .collect();
        let aud = claim("aud");
        if !expected_aud.contains(&aud) {
            return Err(invalid(
                50013,
                format!(
                    "Assertion audience claim does not match the required value. Expected one \
                     of: {}.",
                    expected_aud.join(", ")
                ),
            ));
        }
    }

    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(invalid(
            50013,
            format!(
                "Assertion algorithm {:?} is not supported; use RS256 or PS256.",
                header.alg
            ),
        ));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    // "Microsoft Entra authentication and authorization error codes":
    // AADSTS700027, "Client assertion failed signature validation."
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|e| {
        invalid(
            700027,
            format!("Client assertion failed signature validation: {e}."),
        )
    })?;

    let now = now_secs();
    // Entra allows five minutes of clock skew on assertions.
    const SKEW: i64 = 300;
    // RFC 7519 section 2: a NumericDate may be fractional, and msal for
    // Python sends `time.time()` floats; whole seconds are what count.
    let number = |n: &str| {
        let v = unverified.get(n)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64))
    };
    let nbf = number("nbf").unwrap_or(now);
    let exp = number("exp").unwrap_or(0);
    if exp + SKEW <= now || nbf - SKEW > now {
        return Err(invalid(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, \
                 assertion valid from {nbf}, expiry time of assertion {exp}."
            ),
        ));
    }
    // Federated assertions may be presented again during their lifetime
    // unless single use is switched on (see
    // `IdentityServer::set_federated_assertions_single_use`).
    if !self_issued && !st.federated_single_use.load(Ordering::Relaxed) {
        return Ok(());
    }
    // A federated assertion from Entra itself (a managed identity token)
    // carries `uti` where external issuers put `jti`.
    let jti = match claim("jti") {
        j if j.is_empty() => claim("uti"),
        j => j,
    };
    if jti.is_empty() {
        return Err(invalid(50013, "Assertion is missing the jti claim.".into()));
    }
    let mut seen = st.seen_jti.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.insert(format!("{}/{iss}/{jti}", app.app_id)) {
        return Err(invalid(
            50013,
            format!("Assertion is invalid: jti '{jti}' was already used."),
        ));
    }
    Ok(())
}

/// The `aud` of an assertion: a string or an array of strings (RFC 7519
/// section 4.1.3).
fn audiences_of(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// The federated identity credential an external assertion matches, and
/// the key that must have signed it, as Entra finds them ("Configure an app
/// to trust an external identity provider": issuer and subject are checked
/// against `iss` and `sub`, exactly and case-sensitively; `aud` must be one
/// of the credential's audiences). Codes and messages follow what Entra
/// answers for each mismatch ("Microsoft Entra authentication and
/// authorization error codes"; Entra's messages as it sends them):
/// AADSTS70025 (the app has no federated credential), AADSTS700211
/// (issuer), AADSTS700213 (subject), AADSTS700212 (audience). The keys are
/// those the issuer publishes: its OpenID configuration at
/// `{iss}/.well-known/openid-configuration` names `jwks_uri`, and both are
/// fetched over HTTPS; Entra's own issuer is resolved at this authority.
async fn federated_key(
    st: &IdpState,
    app: &AppRegistration,
    headers: &HeaderMap,
    header: &jsonwebtoken::Header,
    claims: &serde_json::Map<String, Value>,
) -> Result<DecodingKey, Response> {
    const CHECK: &str = "Please check your federated identity credential Subject, Audience and \
                         Issuer against the presented assertion. \
                         https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
    let invalid = |code: u32, msg: String| {
        entra_error(StatusCode::UNAUTHORIZED, "invalid_client", code, &msg)
    };
    let text = |n: &str| claims.get(n).and_then(Value::as_str).unwrap_or("");
    let (iss, sub) = (text("iss"), text("sub"));
    if app.federated.is_empty() {
        return Err(invalid(
            70025,
            format!(
                "The client '{}'({}) has no configured federated identity credentials.",
                app.app_id, app.name
            ),
        ));
    }
    // "If the issuer claim has leading or trailing whitespace in the value,
    // the token exchange is blocked" (federated credential considerations):
    // an exact comparison does that.
    let by_issuer: Vec<_> = app.federated.iter().filter(|f| f.issuer == iss).collect();
    if by_issuer.is_empty() {
        return Err(invalid(
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer \
                 '{iss}'. {CHECK}"
            ),
        ));
    }
    let by_subject: Vec<_> = by_issuer.into_iter().filter(|f| f.subject == sub).collect();
    if by_subject.is_empty() {
        return Err(invalid(
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject \
                 '{sub}'. {CHECK}"
            ),
        ));
    }
    let auds = audiences_of(claims);
    if !by_subject
        .iter()
        .any(|f| f.audiences.iter().any(|a| auds.contains(a)))
    {
        return Err(invalid(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience \
                 '{}'. {CHECK}",
                auds.join(", ")
            ),
        ));
    }

    // Entra's own issuer: the assertion is a managed identity token. Only a
    // user-assigned identity of that tenant may stand as an app's
    // credential ("Configure an application to trust a managed identity":
    // "system-assigned identities aren't supported"; Entra's code for this
    // case is not published, so the sandbox answers the umbrella AADSTS70021).
    let authority = authority_of(headers);
    let discovery = match iss.strip_prefix(ENTRA_PUBLIC_AUTHORITY) {
        Some(rest) => {
            let tid = rest.split('/').next().unwrap_or_default();
            let mi = st.shared.directory.managed_identity(sub);
            let usable = mi
                .is_some_and(|m| m.kind == ManagedIdentityKind::UserAssigned && m.tenant_id == tid);
            if !usable {
                return Err(invalid(
                    70021,
                    format!(
                        "No matching federated identity record found for presented assertion. \
                         Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. The subject is \
                         not a user-assigned managed identity of tenant {tid}; only \
                         user-assigned managed identities can be an application's federated \
                         credential."
                    ),
                ));
            }
            format!("{authority}{rest}/.well-known/openid-configuration")
        }
        None => format!(
            "{}/.well-known/openid-configuration",
            iss.trim_end_matches('/')
        ),
    };

    // The issuer's metadata and keys, as Entra fetches them. Entra's answer
    // when an issuer's metadata cannot be read is AADSTS50166 ("Request to
    // External OIDC endpoint failed").
    let unreachable = |why: String| {
        invalid(
            50166,
            format!("Request to External OIDC endpoint failed: {why} (issuer '{iss}')."),
        )
    };
    let fetch = |url: String| async move {
        let resp = st
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status().as_u16()));
        }
        let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))
    };
    let config = fetch(discovery).await.map_err(unreachable)?;
    // OpenID Connect Discovery 1.0 section 4.3: the document's issuer must
    // be the issuer it was fetched for.
    if config["issuer"].as_str() != Some(iss) {
        return Err(unreachable(format!(
            "the discovery document names issuer {}",
            config["issuer"]
        )));
    }
    let jwks_uri = config["jwks_uri"]
        .as_str()
        .ok_or_else(|| unreachable("the discovery document has no jwks_uri".into()))?
        .to_string();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(fetch(jwks_uri).await.map_err(unreachable)?)
            .map_err(|e| unreachable(format!("the JWKS is not a key set: {e}")))?;
    let kid = header.kid.clone().unwrap_or_default();
    let jwk = jwks.find(&kid).ok_or_else(|| {
        invalid(
            700027,
            format!(
                "Client assertion failed signature validation: the issuer '{iss}' publishes no \
                 key '{kid}'."
            ),
        )
    })?;
    DecodingKey::from_jwk(jwk).map_err(|e| {
        invalid(
            700027,
            format!("Client assertion failed signature validation: {e}."),
        )
    })
}
