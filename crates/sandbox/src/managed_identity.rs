//! The managed identity endpoint of an Azure App Service host, on loopback
//! over plain HTTP (as App Service's own is: `IDENTITY_ENDPOINT` is an
//! `http://127.0.0.1:{port}/…` address only the host's processes reach).
//!
//! Protocol ("Managed identities for App Service and Azure Functions", REST
//! endpoint reference): `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&
//! resource={resource}` with the header `X-IDENTITY-HEADER:
//! {IDENTITY_HEADER}`, and optionally one of `client_id`, `principal_id`
//! (also read as `object_id`, the name azure_identity for Rust sends) or
//! `mi_res_id` (also `msi_res_id`) to pick a user-assigned identity; without
//! one, the host's system-assigned identity. The answer is JSON with
//! `access_token`, `expires_on` (Unix seconds **as a string**), `resource`,
//! `token_type` and `client_id`.
//!
//! The sandbox issues what a managed identity needs to act as an app's
//! federated credential ("Configure an application to trust a managed
//! identity"): tokens for `api://AzureADTokenExchange` (and the sovereign
//! `api://AzureADTokenExchangeUSGov`, `api://AzureADTokenExchangeChina`),
//! v2.0-shaped, signed by the sandbox's Entra keys, with `iss` =
//! `https://login.microsoftonline.com/{tid}/v2.0`, `sub` = `oid` = the
//! identity's object (principal) id and `aud` = the resource asked for.
//! Tokens for other resources are refused with a message saying so (the
//! sandbox does not model managed identities as resource clients).

use super::directory::{
    ManagedIdentity, ManagedIdentityKind, TOKEN_EXCHANGE_AUDIENCE, TOKEN_EXCHANGE_AUDIENCE_CHINA,
    TOKEN_EXCHANGE_AUDIENCE_USGOV,
};
use super::jwt::{now_secs, AccessClaims, TokenVersion};
use super::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// The only `api-version` of the App Service protocol the sandbox speaks.
pub const API_VERSION: &str = "2019-08-01";
/// The header carrying `IDENTITY_HEADER`.
pub const SECRET_HEADER: &str = "x-identity-header";
/// Lifetime of managed identity tokens (App Service hands out tokens valid
/// for about a day).
const LIFETIME_SECS: i64 = 24 * 3600;

/// One App Service host: its tenant, the identities assigned to it and the
/// secret its processes get as `IDENTITY_HEADER`.
struct Host {
    identities: Vec<ManagedIdentity>,
    secret: String,
}

struct MiState {
    shared: Shared,
    hosts: RwLock<HashMap<String, Host>>,
    requests: AtomicU64,
    issued: AtomicU64,
}

/// The running managed identity endpoint (all sandbox hosts share one
/// loopback port; each host has its own path and secret).
pub struct ManagedIdentityServer {
    addr: SocketAddr,
    state: Arc<MiState>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for ManagedIdentityServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ManagedIdentityServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// What a process on a host is given: `IDENTITY_ENDPOINT` and
/// `IDENTITY_HEADER`.
#[derive(Clone)]
pub struct ManagedIdentityHost {
    /// `IDENTITY_ENDPOINT`: `http://127.0.0.1:{port}/{host}/msi/token`.
    pub endpoint: url::Url,
    secret: String,
}

impl std::fmt::Debug for ManagedIdentityHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityHost")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityHost {
    /// `IDENTITY_HEADER`: the secret the endpoint requires in
    /// `X-IDENTITY-HEADER` (a sandbox value, worthless outside it).
    pub fn identity_header(&self) -> &str {
        &self.secret
    }
}

impl ManagedIdentityServer {
    /// Starts the endpoint on a loopback port (plain HTTP).
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MiState {
            shared: shared.clone(),
            hosts: RwLock::new(HashMap::new()),
            requests: AtomicU64::new(0),
            issued: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/{host}/msi/token", get(token))
            .with_state(state.clone());
        let (shutdown, mut stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "sandbox managed identity listener stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown,
        })
    }

    /// Declares an App Service host named `name` with `identities`
    /// assigned (at most one system-assigned, used when a request names no
    /// identity) and returns its `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    /// Declaring a name again replaces the host (and its secret).
    pub fn add_host(&self, name: &str, identities: &[ManagedIdentity]) -> ManagedIdentityHost {
        let secret = Uuid::new_v4().simple().to_string().to_ascii_uppercase();
        self.state
            .hosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.to_string(),
                Host {
                    identities: identities.to_vec(),
                    secret: secret.clone(),
                },
            );
        let endpoint = url::Url::parse(&format!("http://{}/{name}/msi/token", self.addr))
            .unwrap_or_else(|_| unreachable!("a loopback address and a path form a URL"));
        ManagedIdentityHost { endpoint, secret }
    }

    /// Token requests received (including refused ones): how many
    /// assertions a client fetched.
    pub fn token_requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }
}

/// An App Service-shaped refusal: `statusCode` and `message`.
fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "statusCode": status.as_u16(), "message": message })),
    )
        .into_response()
}

async fn token(
    State(st): State<Arc<MiState>>,
    Path(host): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let (identities, secret) = {
        let hosts = st.hosts.read().unwrap_or_else(|e| e.into_inner());
        match hosts.get(&host) {
            Some(h) => (h.identities.clone(), h.secret.clone()),
            None => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("No managed identity endpoint for host '{host}'."),
                )
            }
        }
    };
    // The secret proves the caller runs on the host; a request without it,
    // or with another, gets no token.
    match headers.get(SECRET_HEADER).map(|v| v.as_bytes()) {
        Some(v) if v == secret.as_bytes() => {}
        Some(_) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER does not match this host's IDENTITY_HEADER.".into(),
            )
        }
        None => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER header is missing; send the value of IDENTITY_HEADER."
                    .into(),
            )
        }
    }
    match q.get("api-version").map(String::as_str) {
        Some(API_VERSION) => {}
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "api-version '{}' is not supported; use {API_VERSION}.",
                    other.unwrap_or("")
                ),
            )
        }
    }
    let Some(resource) = q.get("resource").filter(|r| !r.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The 'resource' query parameter is missing.".into(),
        );
    };
    let chosen: Vec<(&str, &String)> = [
        "client_id",
        "principal_id",
        "object_id",
        "mi_res_id",
        "msi_res_id",
    ]
    .iter()
    .filter_map(|k| q.get(*k).map(|v| (*k, v)))
    .collect();
    let identity = match chosen.as_slice() {
        [] => identities
            .iter()
            .find(|m| m.kind == ManagedIdentityKind::SystemAssigned),
        [(key, value)] => identities.iter().find(|m| {
            let wanted = value.to_ascii_lowercase();
            match *key {
                "client_id" => m.client_id == wanted,
                "principal_id" | "object_id" => m.object_id == wanted,
                _ => m.resource_id.eq_ignore_ascii_case(value),
            }
        }),
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Name at most one identity: client_id, principal_id or mi_res_id.".into(),
            )
        }
    };
    let Some(identity) = identity else {
        // azure_identity reads a 400 as "The requested identity has not
        // been assigned to this resource".
        return refuse(
            StatusCode::BAD_REQUEST,
            match chosen.first() {
                Some((k, v)) => format!("No managed identity with {k} '{v}' is assigned to host '{host}'."),
                None => format!("Host '{host}' has no system-assigned managed identity; name a user-assigned one."),
            },
        );
    };
    let audience = resource.trim_end_matches('/');
    if ![
        TOKEN_EXCHANGE_AUDIENCE,
        TOKEN_EXCHANGE_AUDIENCE_USGOV,
        TOKEN_EXCHANGE_AUDIENCE_CHINA,
    ]
    .contains(&audience)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "The sandbox's managed identities issue tokens for token exchange only \
                 ({TOKEN_EXCHANGE_AUDIENCE}, {TOKEN_EXCHANGE_AUDIENCE_USGOV}, \
                 {TOKEN_EXCHANGE_AUDIENCE_CHINA}), not for '{resource}'."
            ),
        );
    }
    let now = now_secs();
    let claims = json!({
        "aud": audience,
        "iss": AccessClaims::v2_issuer_for(&identity.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME_SECS,
        "azp": identity.client_id,
        "azpacr": "2",
        "idtyp": "app",
        "oid": identity.object_id,
        "sub": identity.object_id,
        "tid": identity.tenant_id,
        "roles": [],
        "uti": Uuid::new_v4().to_string(),
        "ver": "2.0",
        "xms_mirid": identity.resource_id,
    });
    let token = match st.shared.issuer.sign_as(&claims, TokenVersion::V2) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("signing failed: {e}"),
            )
        }
    };
    st.issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "access_token": token,
        "expires_on": (now + LIFETIME_SECS).to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": identity.client_id,
    }))
    .into_response()
}
