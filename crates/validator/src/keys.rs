//! Where signing keys come from: the tenant's published JWKS, fetched over
//! HTTPS from its OpenID configuration ([`HttpsMetadata`], the production
//! path), or a fixed key set ([`StaticJwks`], for tests and benchmarks).
//!
//! [`HttpsMetadata`] keeps the keys it has: it refreshes them in the
//! background, re-fetches when a token names an unknown `kid` — at most once
//! per [`min_refresh_interval`](HttpsMetadataBuilder::min_refresh_interval)
//! per tenant, so a flood of forged `kid`s cannot make it hammer Entra — and
//! survives a metadata outage with the keys it already holds.
//!
//! Not for verifying tokens: that is [`crate::Validator`]'s job.

use crate::cloud::{Cloud, MetadataVersion};
use crate::ConfigError;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// A boxed future, as [`KeySource`] returns.
pub type KeyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<DecodingKey>, KeyError>> + Send + 'a>>;

/// Why no key was found for a `kid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The tenant publishes no key with that `kid`.
    #[error("no published key has this kid")]
    Unknown,
    /// No keys are known and they could not be fetched.
    #[error("{0}")]
    Unavailable(String),
}

/// A source of verification keys by tenant and `kid`.
pub trait KeySource: Send + Sync + 'static {
    /// The key named `kid` for tokens of `tenant`; may fetch (rate-limited).
    fn key<'a>(&'a self, tenant: &'a str, kid: &'a str) -> KeyFuture<'a>;

    /// Whether the key is held right now, without fetching: lets the
    /// validator's verified-token cache forget tokens of retired keys.
    fn holds(&self, tenant: &str, kid: &str) -> bool;
}

type KeyMap = Arc<HashMap<String, Arc<DecodingKey>>>;

/// The RSA signing keys of a JWKS by `kid`. Keys of other types, keys for
/// encryption and entries that do not parse are skipped, so one odd key
/// cannot hide the others.
pub fn signing_keys(jwks: &serde_json::Value) -> HashMap<String, Arc<DecodingKey>> {
    let mut out = HashMap::new();
    let Some(keys) = jwks.get("keys").and_then(|k| k.as_array()) else {
        return out;
    };
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            out.insert(kid, Arc::new(key));
        }
    }
    out
}

/// A fixed key set for every tenant, replaceable at run time.
pub struct StaticJwks {
    keys: RwLock<KeyMap>,
}

impl std::fmt::Debug for StaticJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticJwks").finish_non_exhaustive()
    }
}

impl StaticJwks {
    /// The signing keys of `jwks` (a JWKS document).
    pub fn new(jwks: &serde_json::Value) -> Self {
        Self {
            keys: RwLock::new(Arc::new(signing_keys(jwks))),
        }
    }

    /// Replaces the keys.
    pub fn replace(&self, jwks: &serde_json::Value) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(signing_keys(jwks));
    }
}

impl KeySource for StaticJwks {
    fn key<'a>(&'a self, _tenant: &'a str, kid: &'a str) -> KeyFuture<'a> {
        let found = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
            .ok_or(KeyError::Unknown);
        Box::pin(std::future::ready(found))
    }

    fn holds(&self, _tenant: &str, kid: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(kid)
    }
}

/// The largest metadata or JWKS document read (Entra's are a few KiB).
const MAX_DOCUMENT: usize = 1024 * 1024;

/// Keys from the tenants' OpenID configuration over HTTPS.
#[derive(Clone)]
pub struct HttpsMetadata {
    inner: Arc<MetaInner>,
}

impl std::fmt::Debug for HttpsMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsMetadata")
            .field(
                "authority_host",
                &self.inner.cloud.authority_host().as_str(),
            )
            .field("tenants", &self.inner.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct MetaInner {
    cloud: Cloud,
    version: MetadataVersion,
    http: reqwest::Client,
    tenants: HashMap<String, TenantKeys>,
    min_refresh: Duration,
    refresh_every: Duration,
    background_started: AtomicBool,
    fetches: AtomicU64,
}

struct TenantKeys {
    keys: RwLock<KeyMap>,
    /// Held across a fetch, so concurrent lookups wait for one fetch
    /// instead of starting many.
    gate: tokio::sync::Mutex<Gate>,
}

/// When fetches were last attempted.
#[derive(Default)]
struct Gate {
    /// Any fetch: bounds the retries while no keys are held.
    any: Option<Instant>,
    /// A fetch for an unknown `kid`: bounds what forged `kid`s can cause,
    /// apart from routine fetches, so a rotation right after one is seen.
    unknown_kid: Option<Instant>,
}

impl TenantKeys {
    fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    fn is_empty(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Builds an [`HttpsMetadata`].
pub struct HttpsMetadataBuilder {
    cloud: Cloud,
    tenants: Vec<String>,
    version: MetadataVersion,
    extra_roots: Vec<reqwest::Certificate>,
    min_refresh: Duration,
    refresh_every: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsMetadataBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsMetadataBuilder")
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl HttpsMetadataBuilder {
    /// Reads the v1 or v2 OpenID configuration (default v2; same keys).
    pub fn version(mut self, version: MetadataVersion) -> Self {
        self.version = version;
        self
    }

    /// Trusts the CA certificates in `pem` in addition to the platform's
    /// roots (for a test identity provider). Verification stays on.
    pub fn extra_root_pem(mut self, pem: &str) -> Result<Self, ConfigError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            ConfigError(format!(
                "the extra root certificates are not PEM ({e}); give PEM text with BEGIN \
                 CERTIFICATE blocks"
            ))
        })?;
        if certs.is_empty() {
            return Err(ConfigError(
                "the extra root PEM holds no certificate; give PEM text with BEGIN CERTIFICATE \
                 blocks"
                    .into(),
            ));
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// The shortest time between two fetches caused by unknown `kid`s for
    /// one tenant, and between two attempts while no keys are held (default
    /// 5 minutes, as Microsoft.IdentityModel's `RefreshInterval`): bounds
    /// what a flood of forged `kid`s, or an outage at start-up, can cause.
    /// The first unknown `kid` after a routine fetch is fetched at once, so
    /// a key rotation is seen without delay.
    pub fn min_refresh_interval(mut self, d: Duration) -> Self {
        self.min_refresh = d;
        self
    }

    /// How often keys are refreshed in the background (default 12 hours, as
    /// Microsoft.IdentityModel's `AutomaticRefreshInterval`).
    pub fn refresh_interval(mut self, d: Duration) -> Self {
        self.refresh_every = d;
        self
    }

    /// The timeout of each metadata request (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The key source. Nothing is fetched until the first lookup or
    /// [`HttpsMetadata::refresh`].
    pub fn build(self) -> Result<HttpsMetadata, ConfigError> {
        if self.tenants.is_empty() {
            return Err(ConfigError(
                "no tenant was given; name the tenant id whose tokens the API accepts".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(self.extra_roots)
            .https_only(true)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| ConfigError(format!("the HTTPS client could not be built: {e}")))?;
        let tenants = self
            .tenants
            .into_iter()
            .map(|t| {
                (
                    t,
                    TenantKeys {
                        keys: RwLock::new(Arc::new(HashMap::new())),
                        gate: tokio::sync::Mutex::new(Gate::default()),
                    },
                )
            })
            .collect();
        Ok(HttpsMetadata {
            inner: Arc::new(MetaInner {
                cloud: self.cloud,
                version: self.version,
                http,
                tenants,
                min_refresh: self.min_refresh,
                refresh_every: self.refresh_every,
                background_started: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
            }),
        })
    }
}

impl HttpsMetadata {
    /// A key source for `tenants` (tenant ids, as tokens carry them in
    /// `tid`) of `cloud`.
    pub fn builder<I, S>(cloud: Cloud, tenants: I) -> HttpsMetadataBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HttpsMetadataBuilder {
            cloud,
            tenants: tenants
                .into_iter()
                .map(|t| t.into().to_ascii_lowercase())
                .collect(),
            version: MetadataVersion::V2,
            extra_roots: Vec::new(),
            min_refresh: Duration::from_secs(300),
            refresh_every: Duration::from_secs(12 * 3600),
            timeout: Duration::from_secs(10),
        }
    }

    /// Fetches every tenant's keys now (say at start-up, to fail fast on a
    /// wrong authority or CA). On failure the keys held stay.
    pub async fn refresh(&self) -> Result<(), String> {
        self.start_background();
        let mut first_error = None;
        for tenant in self.inner.tenants.keys() {
            let Some(t) = self.inner.tenants.get(tenant) else {
                continue;
            };
            let mut gate = t.gate.lock().await;
            gate.any = Some(Instant::now());
            if let Err(e) = self.inner.fetch_into(tenant, t).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Metadata and JWKS fetches attempted so far (each counts once).
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Starts the background refresh once, on the current Tokio runtime. It
    /// holds only a weak reference and ends when the source is dropped.
    fn start_background(&self) {
        if self.inner.background_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner
                .background_started
                .store(false, Ordering::Release);
            return;
        };
        let weak: Weak<MetaInner> = Arc::downgrade(&self.inner);
        let every = self.inner.refresh_every;
        let retry = self.inner.min_refresh;
        rt.spawn(async move {
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut all_ok = true;
                for (tenant, t) in &inner.tenants {
                    let mut gate = t.gate.lock().await;
                    gate.any = Some(Instant::now());
                    if let Err(e) = inner.fetch_into(tenant, t).await {
                        // An outage: keep serving with the keys held, and
                        // try again sooner than the routine interval.
                        tracing::warn!(tenant = %tenant, error = %e, "signing key refresh failed; keeping the keys held");
                        all_ok = false;
                    }
                }
                wait = if all_ok { every } else { retry.min(every) };
            }
        });
    }
}

impl MetaInner {
    /// Fetches `tenant`'s metadata and JWKS and replaces its keys; on
    /// failure the keys stay as they were.
    async fn fetch_into(&self, tenant: &str, t: &TenantKeys) -> Result<(), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let metadata_url = self.cloud.metadata_url(tenant, self.version);
        let metadata = self.get_json(&metadata_url).await?;
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the OpenID configuration at {metadata_url} has no jwks_uri"))?;
        if !jwks_uri.starts_with("https://") {
            return Err(format!(
                "the OpenID configuration at {metadata_url} names a jwks_uri that is not https"
            ));
        }
        let jwks = self.get_json(jwks_uri).await?;
        let keys = signing_keys(&jwks);
        if keys.is_empty() {
            // Replacing the keys with none would refuse every token; an
            // empty or unreadable JWKS is treated as an outage.
            return Err(format!("the JWKS at {jwks_uri} holds no RSA signing key"));
        }
        tracing::debug!(tenant = %tenant, keys = keys.len(), "signing keys fetched");
        *t.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let resp = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(format!("GET {url} answered more than {MAX_DOCUMENT} bytes"));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: reading the body failed: {e}"))?;
        if bytes.len() > MAX_DOCUMENT {
            return Err(format!("GET {url} answered more than {MAX_DOCUMENT} bytes"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url} answered no JSON: {e}"))
    }
}

impl KeySource for HttpsMetadata {
    fn key<'a>(&'a self, tenant: &'a str, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(async move {
            let Some(t) = self.inner.tenants.get(tenant) else {
                return Err(KeyError::Unavailable(format!(
                    "tenant {tenant} is not one this key source serves"
                )));
            };
            if let Some(k) = t.get(kid) {
                return Ok(k);
            }
            self.start_background();
            let mut gate = t.gate.lock().await;
            // Another lookup may have fetched while this one waited.
            if let Some(k) = t.get(kid) {
                return Ok(k);
            }
            let now = Instant::now();
            let recent = |at: Option<Instant>| {
                at.is_some_and(|at| now.duration_since(at) < self.inner.min_refresh)
            };
            let empty = t.is_empty();
            if empty && recent(gate.any) {
                return Err(KeyError::Unavailable(
                    "no signing keys are held and the last fetch failed moments ago".into(),
                ));
            }
            if !empty && recent(gate.unknown_kid) {
                return Err(KeyError::Unknown);
            }
            gate.any = Some(now);
            if !empty {
                gate.unknown_kid = Some(now);
            }
            if let Err(e) = self.inner.fetch_into(tenant, t).await {
                tracing::warn!(tenant = %tenant, error = %e, "signing key fetch failed; keeping the keys held");
                if t.is_empty() {
                    return Err(KeyError::Unavailable(e));
                }
            }
            t.get(kid).ok_or(KeyError::Unknown)
        })
    }

    fn holds(&self, tenant: &str, kid: &str) -> bool {
        self.inner
            .tenants
            .get(tenant)
            .is_some_and(|t| t.get(kid).is_some())
    }
}
