//! # crosstenant-validator
//!
//! The resource owner's side of the two-token aggregator scheme on
//! Microsoft Entra ID: an API that serves data per client checks **both**
//! tokens of a call made on a client's behalf.
//!
//! - The caller's token (`Authorization: Bearer …`) must be a valid app-only
//!   access token for the API, from an allowed tenant, holding the API role
//!   the method needs (`API.Read` for `GET`, `API.Write` for `PUT`).
//! - Unless the caller *is* the client named in the route, a secondary
//!   token (`X-Secondary-Token` by default) must verify the same way, be
//!   for the **client's** App ID URI or client id, come from the same
//!   tenant, be issued to the **same caller** (`appid`/`azp`), and hold the
//!   client's role for the method (`{client}.Read` / `{client}.Write`).
//!
//! Tokens are checked as "Microsoft identity platform access tokens" and
//! "Access token claims reference" describe: RS256 signature against the
//! tenant's published keys (no other `alg` unless configured, never
//! `none`), issuer (v1 `https://sts.windows.net/{tid}/`, v2
//! `https://login.microsoftonline.com/{tid}/v2.0`, or the national clouds'
//! equivalents, see [`Cloud`]) against an allow-list of tenants, audience,
//! `nbf`/`exp` with a small skew, app-only (`idtyp` = `app`, no `scp`),
//! `roles`. The client is always taken from the route, never from a token.
//!
//! Keys come from the tenant's OpenID configuration over HTTPS
//! ([`keys::HttpsMetadata`]): cached, refreshed in the background,
//! re-fetched at most once per short interval for an unknown `kid`, kept
//! through a metadata outage.
//!
//! Every refusal is a typed [`Refusal`]: `401` with a `WWW-Authenticate:
//! Bearer` challenge for the caller's token, `403` with `{"ForbidReason":
//! "…"}` for everything after it. Texts never contain a token or a key.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crosstenant_validator::{Access, Client, Cloud, Validator};
//! let validator = Validator::builder(Cloud::public(), "00000000-0000-0000-0000-0000000000aa")
//!     .api_audiences(["api://secure-api", "11111111-1111-1111-1111-111111111111"])
//!     .client(Client::new("clientXYZ", "22222222-2222-2222-2222-222222222222")?
//!         .app_id_uri("api://clientXYZ"))
//!     .build()?;
//! let headers = http::HeaderMap::new(); // the request's headers
//! match validator.authorize(&headers, "clientXYZ", Access::Read).await {
//!     Ok(ok) => println!("{} may read {}", ok.caller_id(), ok.client().name()),
//!     Err(refusal) => println!("{}: {refusal}", refusal.status()),
//! }
//! # Ok(()) }
//! ```
//!
//! With the `axum` feature, the `axum` module offers an extractor and a
//! middleware. Without it, [`Refusal::to_response`] gives the answer for any
//! server built on the `http` crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod claims;
mod cloud;
pub mod keys;
mod refusal;

pub use claims::Claims;
pub use cloud::{Cloud, MetadataVersion, TENANT_PLACEHOLDER};
pub use refusal::{Refusal, TokenProblem};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, Method};
use jsonwebtoken::Algorithm;
use keys::{HttpsMetadata, KeyError, KeySource};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest token read (64 KiB): larger ones are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The header the secondary token comes in by default, as the reference
/// two-token sample names it.
pub const DEFAULT_SECONDARY_TOKEN_HEADER: &str = "X-Secondary-Token";

/// A configuration mistake, with the value and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What a request needs: reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `API.Read` and `{client}.Read` by default.
    Read,
    /// `API.Write` and `{client}.Write` by default.
    Write,
}

impl Access {
    fn index(self) -> usize {
        match self {
            Access::Read => 0,
            Access::Write => 1,
        }
    }
}

/// A client of the API: an app registration in the API's tenant exposing
/// its own App ID URI and client roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    name: String,
    app_id: String,
    audiences: Vec<String>,
}

impl Client {
    /// Client `name` (as routes name it, and as its roles are prefixed:
    /// `{name}.Read`) with application (client) id `app_id`. Tokens for the
    /// client may carry `app_id` as audience; add its App ID URIs with
    /// [`app_id_uri`](Self::app_id_uri).
    pub fn new(name: &str, app_id: &str) -> Result<Self, ConfigError> {
        let name = name.trim();
        let app_id = app_id.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains('/') {
            return Err(ConfigError(format!(
                "the client name {name:?} is empty or has a '/'; give the name routes use, like \
                 clientXYZ"
            )));
        }
        if app_id.is_empty() {
            return Err(ConfigError(format!(
                "client {name} has an empty application id; give its client id"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            audiences: vec![app_id.clone()],
            app_id,
        })
    }

    /// Adds an App ID URI (`api://clientXYZ`) the client's tokens may carry
    /// as audience. The first one added is the one refusals name.
    pub fn app_id_uri(mut self, uri: &str) -> Self {
        let at = self.audiences.len() - 1;
        self.audiences.insert(at, uri.trim().to_string());
        self
    }

    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client's application id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The audiences its tokens may carry: App ID URIs, then the client id.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
}

/// A request the validator let through.
#[derive(Debug, Clone)]
pub struct Authorized {
    client: Arc<Client>,
    caller: Arc<Claims>,
    secondary: Option<Arc<Claims>>,
    access: Access,
}

impl Authorized {
    /// The client whose resource is accessed (from the route).
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// The caller token's claims.
    pub fn caller(&self) -> &Claims {
        &self.caller
    }
    /// The caller's client id (`appid` or `azp`).
    pub fn caller_id(&self) -> &str {
        self.caller.caller().unwrap_or_default()
    }
    /// The secondary token's claims, when the caller acts for the client.
    pub fn secondary(&self) -> Option<&Claims> {
        self.secondary.as_deref()
    }
    /// Whether the caller acts on the client's behalf (two tokens) rather
    /// than as the client itself.
    pub fn on_behalf_of(&self) -> bool {
        self.secondary.is_some()
    }
    /// The access granted.
    pub fn access(&self) -> Access {
        self.access
    }
}

/// Checks the two tokens of a request. Cheap to clone.
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("tenants", &self.inner.tenants)
            .field("api_audiences", &self.inner.api_audiences)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cloud: Cloud,
    tenants: Vec<String>,
    api_audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: i64,
    /// The header, and its name as configured (for messages: `HeaderName`
    /// lowercases).
    header: RwLock<(HeaderName, Arc<str>)>,
    realm: String,
    route_param: String,
    api_roles: [String; 2],
    client_roles: [String; 2],
    methods: Vec<(Method, Access)>,
    clients: RwLock<HashMap<String, Arc<Client>>>,
    keys: Arc<dyn KeySource>,
    https: Option<HttpsMetadata>,
    verified: VerifiedTokens,
}

/// Tokens whose signature, issuer and tenant were verified, by their exact
/// text; the per-request checks (audience, lifetime, roles) still run.
struct VerifiedTokens {
    enabled: AtomicBool,
    map: Mutex<HashMap<Box<str>, Verified>>,
}

#[derive(Clone)]
struct Verified {
    claims: Arc<Claims>,
    kid: Arc<str>,
}

/// Verified tokens remembered at most (then forgotten all at once).
const VERIFIED_LIMIT: usize = 10_000;

/// Builds a [`Validator`].
pub struct ValidatorBuilder {
    cloud: Cloud,
    tenants: Vec<String>,
    api_audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    header: String,
    realm: String,
    route_param: String,
    api_roles: [String; 2],
    client_roles: [String; 2],
    methods: Vec<(Method, Access)>,
    clients: Vec<Client>,
    keys: Option<Arc<dyn KeySource>>,
    metadata: MetadataVersion,
    extra_roots: Vec<String>,
    min_refresh: Duration,
    refresh_every: Duration,
    verified_cache: bool,
}

impl std::fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// A validator for tokens of `tenant` (the API's own tenant id, as
    /// tokens carry it in `tid`) in `cloud`.
    pub fn builder(cloud: Cloud, tenant: &str) -> ValidatorBuilder {
        ValidatorBuilder {
            cloud,
            tenants: vec![tenant.trim().to_ascii_lowercase()],
            api_audiences: Vec::new(),
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(60),
            header: DEFAULT_SECONDARY_TOKEN_HEADER.into(),
            realm: "api".into(),
            route_param: "client".into(),
            api_roles: ["API.Read".into(), "API.Write".into()],
            client_roles: ["{client}.Read".into(), "{client}.Write".into()],
            methods: vec![
                (Method::GET, Access::Read),
                (Method::HEAD, Access::Read),
                (Method::PUT, Access::Write),
            ],
            clients: Vec::new(),
            keys: None,
            metadata: MetadataVersion::V2,
            extra_roots: Vec::new(),
            min_refresh: Duration::from_secs(300),
            refresh_every: Duration::from_secs(12 * 3600),
            verified_cache: false,
        }
    }
}

impl ValidatorBuilder {
    /// Also accepts tokens from `tenant` (default: the API's tenant only).
    pub fn allow_tenant(mut self, tenant: &str) -> Self {
        let t = tenant.trim().to_ascii_lowercase();
        if !self.tenants.contains(&t) {
            self.tenants.push(t);
        }
        self
    }

    /// The audiences the caller's token may carry: the API's App ID URI(s)
    /// and its client id (v2 tokens carry the client id).
    pub fn api_audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.api_audiences
            .extend(audiences.into_iter().map(|a| a.into().trim().to_string()));
        self
    }

    /// A client of the API (more can be added later with
    /// [`Validator::add_client`]).
    pub fn client(mut self, client: Client) -> Self {
        self.clients.push(client);
        self
    }

    /// The signature algorithms accepted (default RS256 only, as Entra
    /// signs). `none` cannot be named.
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The clock skew allowed on `nbf` and `exp` (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.leeway = skew;
        self
    }

    /// The header of the secondary token (default `X-Secondary-Token`).
    pub fn secondary_token_header(mut self, name: &str) -> Self {
        self.header = name.to_string();
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges (default `api`).
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = realm.to_string();
        self
    }

    /// The route parameter naming the client (default `client`, as in
    /// `/api/{client}/data`); used by the axum integration.
    pub fn route_param(mut self, name: &str) -> Self {
        self.route_param = name.to_string();
        self
    }

    /// The API roles for reading and writing (default `API.Read`,
    /// `API.Write`).
    pub fn api_roles(mut self, read: &str, write: &str) -> Self {
        self.api_roles = [read.into(), write.into()];
        self
    }

    /// The client roles for reading and writing, with `{client}` standing
    /// for the client's name (default `{client}.Read`, `{client}.Write`).
    pub fn client_roles(mut self, read: &str, write: &str) -> Self {
        self.client_roles = [read.into(), write.into()];
        self
    }

    /// Maps a method to the access it needs (defaults: `GET`, `HEAD` read;
    /// `PUT` write). Other methods are refused.
    pub fn method(mut self, method: Method, access: Access) -> Self {
        self.methods.retain(|(m, _)| *m != method);
        self.methods.push((method, access));
        self
    }

    /// Reads keys from the v1 or the v2 OpenID configuration (default v2).
    pub fn metadata_version(mut self, version: MetadataVersion) -> Self {
        self.metadata = version;
        self
    }

    /// Trusts the CA certificates in `pem` for the metadata requests, in
    /// addition to the platform's roots (for a test identity provider).
    pub fn extra_root_pem(mut self, pem: &str) -> Self {
        self.extra_roots.push(pem.to_string());
        self
    }

    /// The shortest time between two key fetches per tenant (default 5 min).
    pub fn min_key_refresh_interval(mut self, d: Duration) -> Self {
        self.min_refresh = d;
        self
    }

    /// How often keys are refreshed in the background (default 12 h).
    pub fn key_refresh_interval(mut self, d: Duration) -> Self {
        self.refresh_every = d;
        self
    }

    /// Takes keys from `source` instead of the tenants' HTTPS metadata.
    pub fn key_source(mut self, source: Arc<dyn KeySource>) -> Self {
        self.keys = Some(source);
        self
    }

    /// Remembers verified tokens (signature, issuer, tenant) by their exact
    /// text, so a token seen again skips the RSA check; audience, lifetime
    /// and roles are still checked per request, and a token whose key left
    /// the key set is verified again. Off by default.
    pub fn verified_token_cache(mut self, on: bool) -> Self {
        self.verified_cache = on;
        self
    }

    /// The validator.
    pub fn build(self) -> Result<Validator, ConfigError> {
        if self.tenants.iter().any(|t| t.is_empty()) {
            return Err(ConfigError(
                "a tenant id is empty; give the tenant id (a GUID) whose tokens the API accepts"
                    .into(),
            ));
        }
        if self.api_audiences.is_empty() {
            return Err(ConfigError(
                "no API audience was given; name the API's App ID URI and client id".into(),
            ));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError(
                "no signature algorithm is accepted; Entra signs with RS256".into(),
            ));
        }
        let header = HeaderName::from_str(&self.header).map_err(|_| {
            ConfigError(format!(
                "{:?} is not a valid header name; give one like X-Secondary-Token",
                self.header
            ))
        })?;
        for r in self.client_roles.iter() {
            if !r.contains("{client}") {
                return Err(ConfigError(format!(
                    "the client role template {r:?} has no {{client}}; each client's roles \
                     carry its name, like {{client}}.Read"
                )));
            }
        }
        let (keys, https): (Arc<dyn KeySource>, _) = match self.keys {
            Some(k) => (k, None),
            None => {
                let mut b = HttpsMetadata::builder(self.cloud.clone(), self.tenants.clone())
                    .version(self.metadata)
                    .min_refresh_interval(self.min_refresh)
                    .refresh_interval(self.refresh_every);
                for pem in &self.extra_roots {
                    b = b.extra_root_pem(pem)?;
                }
                let source = b.build()?;
                (Arc::new(source.clone()), Some(source))
            }
        };
        let validator = Validator {
            inner: Arc::new(Inner {
                cloud: self.cloud,
                tenants: self.tenants,
                api_audiences: self.api_audiences,
                algorithms: self.algorithms,
                leeway_secs: self.leeway.as_secs().min(i64::MAX as u64) as i64,
                header: RwLock::new((header, self.header.as_str().into())),
                realm: self.realm,
                route_param: self.route_param,
                api_roles: self.api_roles,
                client_roles: self.client_roles,
                methods: self.methods,
                clients: RwLock::new(HashMap::new()),
                keys,
                https,
                verified: VerifiedTokens {
                    enabled: AtomicBool::new(self.verified_cache),
                    map: Mutex::new(HashMap::new()),
                },
            }),
        };
        for c in self.clients {
            validator.add_client(c);
        }
        Ok(validator)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The bearer token of an `Authorization` value, if it is one.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Audiences compare without a trailing `/` and without case.
fn same_audience(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

impl Validator {
    /// Adds (or replaces) a client, known by name and by application id.
    pub fn add_client(&self, client: Client) {
        let client = Arc::new(client);
        let mut map = self
            .inner
            .clients
            .write()
            .unwrap_or_else(|e| e.into_inner());
        map.insert(client.name.to_ascii_lowercase(), client.clone());
        map.insert(client.app_id.clone(), client);
    }

    /// The client a route names: by name or application id, any case.
    pub fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.inner
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.to_ascii_lowercase())
            .cloned()
    }

    /// The header the secondary token is read from.
    pub fn secondary_token_header(&self) -> HeaderName {
        self.inner
            .header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The header's name as configured (`X-Secondary-Token`), for messages.
    fn secondary_token_header_text(&self) -> Arc<str> {
        self.inner
            .header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Reads the secondary token from `name` from now on.
    pub fn set_secondary_token_header(&self, name: &str) -> Result<(), ConfigError> {
        let h = HeaderName::from_str(name).map_err(|_| {
            ConfigError(format!(
                "{name:?} is not a valid header name; give one like X-Secondary-Token"
            ))
        })?;
        *self.inner.header.write().unwrap_or_else(|e| e.into_inner()) = (h, name.into());
        Ok(())
    }

    /// Turns the verified-token cache on or off (and forgets what it held).
    pub fn set_verified_token_cache(&self, on: bool) {
        self.inner.verified.enabled.store(on, Ordering::Relaxed);
        self.inner
            .verified
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The `realm` of the challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The route parameter naming the client.
    pub fn route_param(&self) -> &str {
        &self.inner.route_param
    }

    /// The access `method` needs, if it is mapped.
    pub fn access_for(&self, method: &Method) -> Option<Access> {
        self.inner
            .methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, a)| *a)
    }

    /// Fetches the signing keys now when they come from HTTPS metadata (at
    /// start-up, to fail fast on a wrong authority or CA); otherwise does
    /// nothing. On failure the validator still works: keys are fetched again
    /// on demand.
    pub async fn refresh_keys(&self) -> Result<(), String> {
        match &self.inner.https {
            Some(h) => h.refresh().await,
            None => Ok(()),
        }
    }

    /// Checks a request by its headers: `Authorization` and the secondary
    /// token header.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        client: &str,
        access: Access,
    ) -> Result<Authorized, Refusal> {
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let header = self.secondary_token_header();
        let secondary = headers.get(&header).and_then(|v| v.to_str().ok());
        self.authorize_tokens(authorization, secondary, client, access)
            .await
    }

    /// Checks a request by its `Authorization` value (`Bearer …`), the
    /// secondary token (if any), the client named in the route and the
    /// access the method needs.
    pub async fn authorize_tokens(
        &self,
        authorization: Option<&str>,
        secondary: Option<&str>,
        client_id: &str,
        access: Access,
    ) -> Result<Authorized, Refusal> {
        let inner = &self.inner;
        // 1. The caller's token: 401 when missing or invalid.
        let token = authorization
            .and_then(bearer)
            .ok_or(Refusal::NoCallerToken)?;
        let caller = self
            .verify(token, &inner.api_audiences)
            .await
            .map_err(Refusal::CallerToken)?;
        let caller_id = caller.caller().unwrap_or_default().to_ascii_lowercase();

        // 2. The client, from the route.
        let client = self
            .client(client_id)
            .ok_or_else(|| Refusal::UnknownClient {
                client: client_id.to_string(),
            })?;

        // 3. The API role for the method.
        let api_role = &inner.api_roles[access.index()];
        if !caller.roles.iter().any(|r| r == api_role) {
            return Err(Refusal::CallerLacksApiRole {
                caller: caller_id,
                role: api_role.clone(),
                roles: caller.roles.join(", "),
            });
        }

        // 4. The client calling for itself needs no second token.
        if caller_id == client.app_id {
            return Ok(Authorized {
                client,
                caller,
                secondary: None,
                access,
            });
        }

        // 5. Acting for the client: the secondary token.
        let Some(secondary) = secondary.map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(Refusal::NoSecondaryToken {
                caller: caller_id,
                client: client.name.clone(),
                audience: client.audiences[0].clone(),
                header: self.secondary_token_header_text().to_string(),
            });
        };
        // A `Bearer ` prefix is tolerated: some clients send it.
        let secondary = bearer(secondary).unwrap_or(secondary);
        let b = self
            .verify(secondary, &client.audiences)
            .await
            .map_err(Refusal::SecondaryToken)?;
        if !b.tid.eq_ignore_ascii_case(&caller.tid) {
            return Err(Refusal::SecondaryFromOtherTenant {
                tenant: b.tid.clone(),
                caller_tenant: caller.tid.clone(),
            });
        }
        let issued_to = b.caller().unwrap_or_default().to_ascii_lowercase();
        if issued_to != caller_id {
            return Err(Refusal::SecondaryForOtherCaller {
                issued_to,
                caller: caller_id,
            });
        }
        let role = inner.client_roles[access.index()].replace("{client}", &client.name);
        if !b.roles.contains(&role) {
            return Err(Refusal::SecondaryLacksClientRole {
                client: client.name.clone(),
                caller: caller_id,
                role,
                roles: b.roles.join(", "),
            });
        }
        Ok(Authorized {
            client,
            caller,
            secondary: Some(b),
            access,
        })
    }

    /// Verifies one token for `audiences`: everything but roles and the
    /// two-token rule.
    pub async fn verify(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Arc<Claims>, TokenProblem> {
        let claims = self.verify_signed(token.trim()).await?;
        self.check_context(&claims, audiences)?;
        Ok(claims)
    }

    /// Signature, algorithm, issuer, tenant, app-only, caller: what does not
    /// change between requests.
    async fn verify_signed(&self, token: &str) -> Result<Arc<Claims>, TokenProblem> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenProblem::TooLarge {
                limit: MAX_TOKEN_LEN,
            });
        }
        let caching = inner.verified.enabled.load(Ordering::Relaxed);
        if caching {
            let hit = inner
                .verified
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(token)
                .cloned();
            if let Some(v) = hit {
                if inner.keys.holds(&v.claims.tid, &v.kid) {
                    return Ok(v.claims);
                }
            }
        }
        let (message, signature) = token.rsplit_once('.').ok_or_else(|| {
            TokenProblem::Malformed("a JWT has three dot-separated segments".into())
        })?;
        let Some((header_b64, payload_b64)) =
            message.split_once('.').filter(|(_, p)| !p.contains('.'))
        else {
            return Err(TokenProblem::Malformed(
                "a JWT has three dot-separated segments".into(),
            ));
        };
        // The header is read by hand, so `alg: none` (which the JWT library
        // cannot even represent) gets its own refusal.
        let header: JoseHeader = decode_segment(header_b64, "header")?;
        let alg = header
            .alg
            .ok_or_else(|| TokenProblem::Malformed("the header has no alg".into()))?;
        let algorithm = Algorithm::from_str(&alg)
            .ok()
            .filter(|a| inner.algorithms.contains(a))
            .ok_or_else(|| TokenProblem::AlgorithmNotAllowed {
                alg: alg.to_string(),
            })?;
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(TokenProblem::NoKeyId)?;
        // The claims are read before the signature is checked only to pick
        // the tenant's keys, and are trusted only once it is. A tenant off
        // the allow-list is refused here, so that no token can make the
        // validator fetch another tenant's keys.
        let claims: Claims = decode_segment(payload_b64, "payload")?;
        let tid = claims.tid.to_ascii_lowercase();
        if !inner.tenants.contains(&tid) {
            return Err(TokenProblem::TenantNotAllowed { tenant: tid });
        }
        let key = inner.keys.key(&tid, &kid).await.map_err(|e| match e {
            KeyError::Unknown => TokenProblem::UnknownKey { kid: kid.clone() },
            KeyError::Unavailable(why) => TokenProblem::KeysUnavailable(why),
        })?;
        // A key of another family than the algorithm's is an error, not a
        // pass: both end as a bad signature.
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, algorithm) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(TokenProblem::BadSignature),
        }
        if !inner.cloud.is_issuer_for(&claims.iss, &claims.tid) {
            return Err(TokenProblem::WrongIssuer {
                issuer: claims.iss.clone(),
                tenant: claims.tid.clone(),
            });
        }
        if claims.scp.is_some() {
            return Err(TokenProblem::NotAppOnly(
                "it carries delegated scopes (scp)".into(),
            ));
        }
        if let Some(t) = claims.idtyp.as_deref().filter(|t| *t != "app") {
            return Err(TokenProblem::NotAppOnly(format!("idtyp is {t}")));
        }
        if claims.caller().is_none() {
            return Err(TokenProblem::NoCaller {
                claim: if claims.is_v2() { "azp" } else { "appid" },
            });
        }
        let claims = Arc::new(claims);
        if caching {
            let mut map = inner.verified.map.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= VERIFIED_LIMIT {
                map.clear();
            }
            map.insert(
                token.into(),
                Verified {
                    claims: claims.clone(),
                    kid: kid.as_str().into(),
                },
            );
        }
        Ok(claims)
    }

    /// Audience and lifetime: what depends on the request and the clock.
    fn check_context(&self, claims: &Claims, audiences: &[String]) -> Result<(), TokenProblem> {
        if !audiences.iter().any(|a| same_audience(a, &claims.aud)) {
            return Err(TokenProblem::WrongAudience {
                actual: claims.aud.clone(),
                expected: audiences.join(" or "),
            });
        }
        let now = now_secs();
        let leeway = self.inner.leeway_secs;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(TokenProblem::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(TokenProblem::NotYetValid);
        }
        Ok(())
    }
}

/// A JOSE header: what the validator reads of it.
#[derive(serde::Deserialize)]
struct JoseHeader {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn decode_segment<T: serde::de::DeserializeOwned>(
    segment: &str,
    what: &str,
) -> Result<T, TokenProblem> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| TokenProblem::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        TokenProblem::Malformed(format!(
            "the {what} is not the JSON object an access token has: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn configuration_mistakes_name_the_value() {
        let b = || Validator::builder(Cloud::public(), "t1");
        assert!(b().build().unwrap_err().0.contains("audience"));
        let e = b()
            .api_audiences(["api://x"])
            .secondary_token_header("bad header")
            .build()
            .unwrap_err();
        assert!(e.0.contains("bad header"), "{e}");
        let e = b()
            .api_audiences(["api://x"])
            .client_roles("Read", "Write")
            .build()
            .unwrap_err();
        assert!(e.0.contains("{client}"), "{e}");
        assert!(Client::new("", "a").is_err());
        assert!(Client::new("x/y", "a").is_err());
        assert!(Client::new("x", " ").is_err());
        let c = Client::new("clientXYZ", "A1")
            .unwrap()
            .app_id_uri("api://clientXYZ");
        assert_eq!(c.audiences(), ["api://clientXYZ", "a1"]);
    }
}
