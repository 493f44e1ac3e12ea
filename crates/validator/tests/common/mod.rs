//! Shared fixtures: the sandbox world (real identity provider endpoints) and
//! a tiny loopback HTTPS metadata server whose keys, outages and request
//! counts a test controls.

#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use crosstenant_sandbox::demo::{DemoWorld, API_URI, CLIENT};
use crosstenant_sandbox::jwt::{now_secs, TokenIssuer};
use crosstenant_sandbox::tls::{serve_https, HttpsServer, SandboxCa};
use crosstenant_validator::{Client, Cloud, Validator, ValidatorBuilder};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The claims of a compact JWT, unverified (to build variants of a token).
pub fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(p).expect("base64url")).expect("JSON")
}

/// The header of a compact JWT, unverified.
pub fn header(token: &str) -> Value {
    let h = token.split('.').next().expect("a JWT");
    serde_json::from_slice(&B64.decode(h).expect("base64url")).expect("JSON")
}

/// The demo world plus a second client (`clientABC`, granted nothing), the
/// client `clientXYZ`'s own secret and API grant, and a validator for the
/// demo API fetching keys from the sandbox identity provider over HTTPS.
pub struct World {
    pub w: DemoWorld,
    pub xyz_app_id: String,
    pub xyz_secret: String,
    pub abc_app_id: String,
    http: reqwest::Client,
}

impl World {
    pub async fn start() -> Self {
        let w = DemoWorld::start().await.expect("sandbox");
        let api = w.sandbox.api();
        let xyz = w
            .sandbox
            .directory()
            .resource_app("api://clientXYZ")
            .expect("clientXYZ");
        let xyz_secret = w
            .sandbox
            .directory()
            .add_secret(&xyz.app_id, 3600)
            .expect("secret");
        api.grant_api(
            &xyz.app_id,
            &[
                crosstenant_sandbox::api::Access::Read,
                crosstenant_sandbox::api::Access::Write,
            ],
        )
        .expect("grant");
        let abc = api.register_client("clientABC").expect("clientABC");
        let ca = reqwest::Certificate::from_pem(w.sandbox.ca_pem().as_bytes()).expect("CA");
        let http = reqwest::Client::builder()
            .tls_certs_merge([ca])
            .build()
            .expect("client");
        Self {
            w,
            xyz_app_id: xyz.app_id,
            xyz_secret,
            abc_app_id: abc.app_id,
            http,
        }
    }

    pub fn owner(&self) -> &str {
        &self.w.owner.id
    }

    /// A validator builder for the demo API, as the resource owner would
    /// configure it against the sandbox's identity provider.
    pub fn builder(&self) -> ValidatorBuilder {
        let api_app = self
            .w
            .sandbox
            .directory()
            .resource_app(API_URI)
            .expect("API");
        Validator::builder(
            Cloud::custom(self.w.sandbox.authority_host().as_str()).expect("cloud"),
            self.owner(),
        )
        .api_audiences([API_URI.to_string(), api_app.app_id])
        .client(
            Client::new(CLIENT, &self.xyz_app_id)
                .expect("client")
                .app_id_uri("api://clientXYZ"),
        )
        .client(
            Client::new("clientABC", &self.abc_app_id)
                .expect("client")
                .app_id_uri("api://clientABC"),
        )
        .extra_root_pem(self.w.sandbox.ca_pem())
        .clock_skew(Duration::ZERO)
    }

    /// A token from the sandbox identity provider (client credentials).
    pub async fn token_for(&self, client_id: &str, secret: &str, scope: &str) -> String {
        let url = self.w.sandbox.identity().token_endpoint(self.owner());
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", secret)
            .append_pair("scope", scope)
            .finish();
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("token request");
        let status = resp.status();
        let body: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
        assert!(status.is_success(), "{body}");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// The aggregator's (the demo app's) token for the API.
    pub async fn caller_token(&self) -> String {
        self.token_for(
            &self.w.app.app_id,
            self.w.client_secret(),
            "api://secure-api/.default",
        )
        .await
    }

    /// The aggregator's token for clientXYZ (the secondary token).
    pub async fn secondary_token(&self) -> String {
        self.token_for(
            &self.w.app.app_id,
            self.w.client_secret(),
            "api://clientXYZ/.default",
        )
        .await
    }

    /// Signs `claims` with the sandbox's current signing key.
    pub fn sign(&self, claims: &Value) -> String {
        self.w.sandbox.issuer().sign(claims).expect("sign")
    }
}

/// A loopback HTTPS identity provider's metadata: v1 and v2 OpenID
/// configuration and the JWKS of a [`TokenIssuer`], with request counters
/// and an outage switch.
pub struct MetadataServer {
    pub issuer: TokenIssuer,
    pub ca: Arc<SandboxCa>,
    server: HttpsServer,
    state: Arc<MetaState>,
}

pub struct MetaState {
    issuer: TokenIssuer,
    pub metadata_requests: AtomicU64,
    pub v1_metadata_requests: AtomicU64,
    pub jwks_requests: AtomicU64,
    pub down: AtomicBool,
    /// Publish `http://` as the `jwks_uri`.
    pub plain_jwks_uri: AtomicBool,
    /// Serve a JWKS without keys.
    pub empty_jwks: AtomicBool,
}

async fn metadata(
    State(st): State<Arc<MetaState>>,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    st.metadata_requests.fetch_add(1, Ordering::SeqCst);
    if st.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if st.plain_jwks_uri.load(Ordering::SeqCst) {
        "http"
    } else {
        "https"
    };
    Json(json!({
        "issuer": format!("https://{host}/{tenant}/v2.0"),
        "jwks_uri": format!("{scheme}://{host}/{tenant}/discovery/v2.0/keys"),
    }))
    .into_response()
}

async fn metadata_v1(
    st: State<Arc<MetaState>>,
    tenant: Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    st.v1_metadata_requests.fetch_add(1, Ordering::SeqCst);
    metadata(st, tenant, headers).await
}

async fn jwks(State(st): State<Arc<MetaState>>) -> Response {
    st.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if st.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if st.empty_jwks.load(Ordering::SeqCst) {
        return Json(json!({ "keys": [] })).into_response();
    }
    Json(st.issuer.jwks()).into_response()
}

impl MetadataServer {
    pub async fn start() -> Self {
        let issuer = TokenIssuer::new().expect("issuer");
        let ca = Arc::new(SandboxCa::generate().expect("CA"));
        let state = Arc::new(MetaState {
            issuer: issuer.clone(),
            metadata_requests: AtomicU64::new(0),
            v1_metadata_requests: AtomicU64::new(0),
            jwks_requests: AtomicU64::new(0),
            down: AtomicBool::new(false),
            plain_jwks_uri: AtomicBool::new(false),
            empty_jwks: AtomicBool::new(false),
        });
        let router = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(metadata),
            )
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(metadata_v1),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .with_state(state.clone());
        let server = serve_https(&ca, router).await.expect("server");
        Self {
            issuer,
            ca,
            server,
            state,
        }
    }

    pub fn url(&self) -> String {
        self.server.url().to_string()
    }

    pub fn jwks_requests(&self) -> u64 {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn v1_metadata_requests(&self) -> u64 {
        self.state.v1_metadata_requests.load(Ordering::SeqCst)
    }

    pub fn metadata_requests(&self) -> u64 {
        self.state.metadata_requests.load(Ordering::SeqCst)
    }

    pub fn state(&self) -> &MetaState {
        &self.state
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// A validator for API `api://api` / client id `api-app` in tenant
    /// `tid`, with client `clientXYZ` (`xyz-app`), trusting this server.
    pub fn builder(&self, tid: &str) -> ValidatorBuilder {
        Validator::builder(Cloud::custom(&self.url()).expect("cloud"), tid)
            .api_audiences(["api://api", "api-app"])
            .client(
                Client::new("clientXYZ", "xyz-app")
                    .expect("client")
                    .app_id_uri("api://clientXYZ"),
            )
            .extra_root_pem(self.ca.pem())
    }

    /// App-only claims as Entra shapes them: v1 (`appid`, sts.windows.net
    /// issuer) or v2 (`azp`, this server's v2 issuer).
    pub fn claims(&self, v2: bool, tid: &str, aud: &str, caller: &str, roles: &[&str]) -> Value {
        let now = now_secs();
        let mut c = json!({
            "aud": aud, "tid": tid, "oid": "sp-object", "sub": "sp-object",
            "roles": roles, "idtyp": "app", "iat": now, "nbf": now, "exp": now + 3600,
        });
        if v2 {
            c["iss"] = json!(format!("{}{tid}/v2.0", self.url()));
            c["azp"] = json!(caller);
            c["azpacr"] = json!("1");
            c["ver"] = json!("2.0");
        } else {
            c["iss"] = json!(format!("https://sts.windows.net/{tid}/"));
            c["appid"] = json!(caller);
            c["appidacr"] = json!("1");
            c["ver"] = json!("1.0");
        }
        c
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.issuer.sign(claims).expect("sign")
    }
}

/// `Bearer {token}`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
