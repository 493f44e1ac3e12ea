//! The cross-tenant credential: tokens from the **resource owner's** tenant
//! for the **partner's** multi-tenant app.
//!
//! The partner's app is registered once, in the partner's home tenant. To
//! reach a resource in another tenant it asks *that* tenant's authority
//! (`{authority}/{resource tenant}/oauth2/v2.0/token`) with the
//! client-credentials grant, proving itself with its own secret, certificate
//! or federated assertion. The resource owner has created a service
//! principal for the app's client id and granted it a role; the token comes
//! back with the resource tenant's `tid`. That is all this credential does,
//! but it does it carefully:
//!
//! - it builds on azure_identity's `ClientSecretCredential` and
//!   `ClientAssertionCredential` (certificates are signed here with aws-lc-rs,
//!   so no system OpenSSL is needed), and implements
//!   `azure_core::credentials::TokenCredential`, so it plugs into every Azure
//!   SDK for Rust client;
//! - a resource tenant given as a domain is resolved once to its GUID through
//!   the tenant's OpenID configuration;
//! - every token is checked: its `tid` must be the resource tenant (a token
//!   from any other tenant is what services reject with `401 SubCode=40100`)
//!   and its `aud` the resource asked for;
//! - Entra's `AADSTS…` errors become [`entra::EntraError`]s that say who must
//!   do what;
//! - tokens are cached per scope and refreshed ahead of expiry (see the
//!   private `cache` module), optionally with a fleet-wide second level on
//!   Redis (feature `redis`: [`SharedTokenCache`]).
//!
//! It is not an interactive or user credential, and it never falls back to
//! another tenant.

mod cache;
pub mod certificate;
pub mod entra;
#[cfg(feature = "redis")]
mod shared;
#[cfg(feature = "redis")]
pub use shared::{SharedCacheStats, SharedTokenCache};

use crate::error::{chain, Error, InvalidInput};
use crate::http::HttpSettings;
use crate::tenant::{Cloud, ResourceTenant};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientMethodOptions, Method, Request};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions,
};
pub use certificate::{AssertionAlgorithm, CertificateError, ClientCertificate};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

/// A boxed future returning a client assertion, for
/// [`CrossTenantCredentialBuilder::client_assertion`].
pub type AssertionFuture =
    Pin<Box<dyn Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

type AssertionCallback = Arc<dyn Fn() -> AssertionFuture + Send + Sync>;

/// How the partner's app proves itself.
#[derive(Clone)]
enum ClientAuth {
    Secret(Secret),
    Certificate {
        certificate: Arc<ClientCertificate>,
        algorithm: AssertionAlgorithm,
        send_chain: bool,
    },
    AssertionFile(PathBuf),
    AssertionCallback(AssertionCallback),
}

impl ClientAuth {
    fn kind(&self) -> &'static str {
        match self {
            ClientAuth::Secret(_) => "client secret",
            ClientAuth::Certificate { .. } => "certificate",
            ClientAuth::AssertionFile(_) => "federated token file",
            ClientAuth::AssertionCallback(_) => "client assertion callback",
        }
    }
}

/// Builds a [`CrossTenantCredential`]. Every value is checked at
/// [`build`](Self::build); nothing is sent until the first token request.
#[derive(Default)]
pub struct CrossTenantCredentialBuilder {
    tenant: Option<String>,
    client_id: Option<String>,
    auth: Vec<ClientAuth>,
    pending_error: Option<Error>,
    cloud: Option<Result<Cloud, Error>>,
    http: HttpSettings,
    check_audience: bool,
    #[cfg(feature = "redis")]
    shared: Option<SharedTokenCache>,
}

impl std::fmt::Debug for CrossTenantCredentialBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossTenantCredentialBuilder")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field(
                "auth",
                &self.auth.iter().map(ClientAuth::kind).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CrossTenantCredentialBuilder {
    /// The resource owner's tenant: a directory id (GUID) or a verified
    /// domain such as `contoso.onmicrosoft.com`. Not the partner's tenant.
    pub fn resource_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The partner app's client (application) id. Not a secret.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Authenticate with a client secret of the partner's app.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.auth
            .push(ClientAuth::Secret(Secret::new(secret.into())));
        self
    }

    /// Authenticate with a certificate already loaded.
    pub fn certificate(mut self, certificate: ClientCertificate) -> Self {
        self.auth.push(ClientAuth::Certificate {
            certificate: Arc::new(certificate),
            algorithm: AssertionAlgorithm::default(),
            send_chain: false,
        });
        self
    }

    fn certificate_result(mut self, loaded: Result<ClientCertificate, CertificateError>) -> Self {
        match loaded {
            Ok(c) => self.certificate(c),
            Err(e) => {
                self.pending_error.get_or_insert(e.into());
                // Count it as a chosen method so the "exactly one" check
                // does not hide the real error.
                self.auth.push(ClientAuth::AssertionFile(PathBuf::new()));
                self
            }
        }
    }

    /// Authenticate with a certificate and key from PEM text (one text
    /// holding both, PKCS#8 or PKCS#1 key).
    pub fn certificate_pem(self, pem: impl AsRef<[u8]>) -> Self {
        self.certificate_result(ClientCertificate::from_pem(pem.as_ref()))
    }

    /// Authenticate with a PEM file holding the certificate and its key.
    pub fn certificate_pem_file(self, path: impl Into<PathBuf>) -> Self {
        self.certificate_result(ClientCertificate::from_pem_file(&path.into()))
    }

    /// Authenticate with a PKCS#12 / PFX archive and its password.
    pub fn certificate_pfx(self, pfx: impl AsRef<[u8]>, password: &str) -> Self {
        self.certificate_result(ClientCertificate::from_pfx(pfx.as_ref(), password))
    }

    /// Authenticate with a PFX file and its password.
    pub fn certificate_pfx_file(self, path: impl Into<PathBuf>, password: &str) -> Self {
        self.certificate_result(ClientCertificate::from_pfx_file(&path.into(), password))
    }

    /// Sign assertions with PS256 and name the certificate by `x5t#S256`
    /// instead of RS256 with `x5t`.
    pub fn assertion_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        for a in &mut self.auth {
            if let ClientAuth::Certificate { algorithm: alg, .. } = a {
                *alg = algorithm;
            }
        }
        self
    }

    /// Send the certificate chain in `x5c` (for subject name + issuer
    /// authentication).
    pub fn send_certificate_chain(mut self, send: bool) -> Self {
        for a in &mut self.auth {
            if let ClientAuth::Certificate { send_chain, .. } = a {
                *send_chain = send;
            }
        }
        self
    }

    /// Authenticate with a federated assertion read from `path` on every
    /// token request (Kubernetes workload identity rotates the file), as
    /// `AZURE_FEDERATED_TOKEN_FILE` works elsewhere.
    pub fn federated_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth.push(ClientAuth::AssertionFile(path.into()));
        self
    }

    /// Authenticate with an assertion from a callback, called on every token
    /// request.
    pub fn client_assertion<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'static,
    {
        self.auth
            .push(ClientAuth::AssertionCallback(Arc::new(move || {
                Box::pin(callback())
            })));
        self
    }

    /// The cloud whose authority issues tokens (default: public).
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = Some(Ok(cloud));
        self
    }

    /// The authority host as a URL (`AZURE_AUTHORITY_HOST`); HTTPS only.
    pub fn authority_host(mut self, host: &str) -> Self {
        self.cloud = Some(Cloud::from_authority_host(host));
        self
    }

    /// Adds trusted roots (PEM), e.g. the sandbox CA or a TLS-inspecting
    /// proxy's CA, on top of the platform's.
    pub fn root_certificates_pem(mut self, pem: &str) -> Self {
        if let Err(e) = self.http.add_root_certificates_pem(pem) {
            self.pending_error.get_or_insert(e);
        }
        self
    }

    /// Replaces the HTTP settings (roots, timeouts, retries) wholesale.
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http = settings;
        self
    }

    /// Whether to refuse tokens whose `aud` is not the requested resource
    /// (default: on). Turn off only for resources whose tokens carry the
    /// resource's app id instead of its URI.
    pub fn check_audience(mut self, check: bool) -> Self {
        self.check_audience = check;
        self
    }

    /// Reads the names every Azure SDK uses: `AZURE_TENANT_ID` (here: the
    /// **resource owner's** tenant), `AZURE_CLIENT_ID`, and one of
    /// `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH` (PEM or PFX,
    /// with `AZURE_CLIENT_CERTIFICATE_PASSWORD`), `AZURE_FEDERATED_TOKEN_FILE`;
    /// optionally `AZURE_AUTHORITY_HOST`.
    pub fn from_env(self) -> Self {
        self.with_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub(crate) fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(t) = var("AZURE_TENANT_ID") {
            self = self.resource_tenant(t);
        }
        if let Some(c) = var("AZURE_CLIENT_ID") {
            self = self.client_id(c);
        }
        if let Some(s) = var("AZURE_CLIENT_SECRET") {
            self = self.client_secret(s);
        }
        if let Some(p) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
            let password = var("AZURE_CLIENT_CERTIFICATE_PASSWORD").unwrap_or_default();
            let lower = p.to_ascii_lowercase();
            self = if lower.ends_with(".pfx") || lower.ends_with(".p12") {
                self.certificate_pfx_file(p, &password)
            } else {
                self.certificate_pem_file(p)
            };
        }
        if let Some(f) = var("AZURE_FEDERATED_TOKEN_FILE") {
            self = self.federated_token_file(f);
        }
        if let Some(h) = var("AZURE_AUTHORITY_HOST") {
            self = self.authority_host(&h);
        }
        #[cfg(feature = "redis")]
        if let Some(shared) = SharedTokenCache::from_vars(&var) {
            self = self.shared_cache(shared);
        }
        #[cfg(not(feature = "redis"))]
        if var("CROSSTENANT_REDIS_URL").is_some() {
            tracing::warn!("CROSSTENANT_REDIS_URL is set but crosstenant was built without its `redis` feature: no shared token cache");
        }
        self
    }

    /// Checks every value and builds the credential. No request is made.
    pub fn build(self) -> Result<Arc<CrossTenantCredential>, Error> {
        if let Some(e) = self.pending_error {
            return Err(e);
        }
        let tenant = ResourceTenant::parse(self.tenant.as_deref().unwrap_or(""))?;
        let client_id = self.client_id.as_deref().unwrap_or("").trim().to_string();
        if client_id.is_empty() {
            return Err(InvalidInput::new(
                "client_id",
                self.client_id.as_deref().unwrap_or(""),
                "the partner app's client (application) id is empty; copy it from the app \
                 registration's overview page (AZURE_CLIENT_ID)",
            )
            .into());
        }
        if !crate::tenant::is_guid(&client_id) {
            return Err(InvalidInput::new(
                "client_id",
                &client_id,
                "a client id is a GUID such as 00001111-aaaa-2222-bbbb-3333cccc4444; copy the \
                 Application (client) ID from the app registration",
            )
            .into());
        }
        let auth = match self.auth.len() {
            1 => self.auth.into_iter().next().ok_or_else(|| {
                Error::from(InvalidInput::new("credential", "", "internal: no method"))
            })?,
            0 => {
                return Err(InvalidInput::new(
                    "credential",
                    "none",
                    "give exactly one of client_secret, certificate_pem/_pfx, \
                     federated_token_file or client_assertion (AZURE_CLIENT_SECRET, \
                     AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE)",
                )
                .into())
            }
            _ => {
                let kinds: Vec<&str> = self.auth.iter().map(ClientAuth::kind).collect();
                return Err(InvalidInput::new(
                    "credential",
                    &kinds.join(" + "),
                    "give exactly one way to authenticate; remove the others (check for \
                     several AZURE_CLIENT_* variables set at once)",
                )
                .into());
            }
        };
        if let ClientAuth::Secret(s) = &auth {
            if s.secret().trim().is_empty() {
                return Err(InvalidInput::secret(
                    "client_secret",
                    "the client secret is empty; give the secret's value from the app \
                     registration (Certificates & secrets)",
                )
                .into());
            }
        }
        if let ClientAuth::AssertionFile(p) = &auth {
            if p.as_os_str().is_empty() {
                return Err(InvalidInput::new(
                    "federated_token_file",
                    "",
                    "the path is empty; give the file the workload's token is projected to",
                )
                .into());
            }
        }
        let cloud = self.cloud.unwrap_or(Ok(Cloud::Public))?;
        // Fail now, not at the first request, if the HTTPS client cannot be built.
        self.http.client_options()?;
        let client_id = client_id.to_ascii_lowercase();
        #[cfg(feature = "redis")]
        let (cache, shared) =
            Self::open_shared(self.shared, &cloud.authority_host(), &tenant, &client_id)?;
        #[cfg(not(feature = "redis"))]
        let cache = cache::TokenCache::default();
        Ok(Arc::new(CrossTenantCredential {
            inner: Arc::new(Inner {
                tenant,
                client_id,
                auth,
                authority: cloud.authority_host(),
                http: self.http,
                check_audience: self.check_audience,
                resolved: tokio::sync::OnceCell::new(),
                cache,
                #[cfg(feature = "redis")]
                shared,
            }),
        }))
    }
}

struct Resolved {
    tenant_id: String,
    /// azure_core options for the azure_identity credential: the HTTPS
    /// client (one connection pool for every token request), the authority,
    /// the policy that keeps Entra's answers.
    options: azure_core::http::ClientOptions,
}

struct Inner {
    tenant: ResourceTenant,
    client_id: String,
    auth: ClientAuth,
    authority: Url,
    http: HttpSettings,
    check_audience: bool,
    resolved: tokio::sync::OnceCell<Resolved>,
    cache: cache::TokenCache,
    #[cfg(feature = "redis")]
    shared: Option<Arc<shared::RedisLevel>>,
}

/// Tokens from the resource owner's tenant for the partner's multi-tenant
/// app. Built once with [`CrossTenantCredential::builder`], shared as an
/// `Arc`, safe to use from many tasks.
pub struct CrossTenantCredential {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CrossTenantCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossTenantCredential")
            .field("resource_tenant", &self.inner.tenant)
            .field("client_id", &self.inner.client_id)
            .field("authentication", &self.inner.auth.kind())
            .field("authority", &self.inner.authority.as_str())
            .finish_non_exhaustive()
    }
}

impl CrossTenantCredential {
    /// Starts a builder.
    pub fn builder() -> CrossTenantCredentialBuilder {
        CrossTenantCredentialBuilder {
            check_audience: true,
            ..Default::default()
        }
    }

    /// Builds from the usual `AZURE_*` environment variables; see
    /// [`CrossTenantCredentialBuilder::from_env`].
    pub fn from_env() -> Result<Arc<Self>, Error> {
        Self::builder().from_env().build()
    }

    /// The resource tenant as configured.
    pub fn resource_tenant(&self) -> &ResourceTenant {
        &self.inner.tenant
    }

    /// The partner app's client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The authority host.
    pub fn authority_host(&self) -> &Url {
        &self.inner.authority
    }

    /// The HTTP settings (trusted roots, timeouts, retries), for building
    /// other clients that talk to the same world.
    pub fn http_settings(&self) -> &HttpSettings {
        &self.inner.http
    }

    /// The resource tenant's directory id, resolving a domain through its
    /// OpenID configuration the first time (then cached).
    pub async fn resolved_tenant_id(&self) -> Result<String, Error> {
        Ok(self.inner.resolve().await?.tenant_id.clone())
    }

    /// A token for one scope (`{resource}/.default`), with this crate's
    /// typed errors. `TokenCredential::get_token` is the same call for Azure
    /// SDK clients.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        self.token_for(&[scope]).await
    }

    async fn token_for(&self, scopes: &[&str]) -> Result<AccessToken, Error> {
        if let Some(token) = self.inner.cache.fresh(scopes) {
            return Ok(token);
        }
        // Boxed: inline, the fetch path would make this future (which
        // `async_trait` boxes on every `get_token`) kilobytes to allocate
        // and move just to hand out a cached token.
        Box::pin(self.token_after_miss(scopes)).await
    }

    /// [`token_for`](Self::token_for) once the hot path found no fresh token.
    /// Only valid scopes ever get a cached token, so validation waits until
    /// here.
    async fn token_after_miss(&self, scopes: &[&str]) -> Result<AccessToken, Error> {
        if scopes.is_empty() || scopes.iter().any(|s| s.trim().is_empty()) {
            return Err(InvalidInput::new(
                "scope",
                &scopes.join(" "),
                "give the resource's scope, e.g. https://eventhubs.azure.net/.default",
            )
            .into());
        }
        let inner = self.inner.clone();
        self.inner
            .cache
            .get(
                scopes,
                move |scope| async move { inner.fetch(&scope).await },
            )
            .await
    }

    /// Forgets the cached token of `scope` if it is `rejected`, so the next
    /// request gets a new one. For a service's `401` on a token the cache
    /// still considered valid.
    pub fn invalidate(&self, scope: &str, rejected: &AccessToken) {
        self.inner
            .cache
            .invalidate(&[scope], rejected.token.secret());
    }
}

// The fleet's shared token cache (feature `redis`): the builder method, its
// opening at `build()` and the credential's counters. Kept in one block.
#[cfg(feature = "redis")]
impl CrossTenantCredentialBuilder {
    /// Shares tokens with the other instances of the fleet through Redis, as
    /// a second level behind the in-process cache: each token is requested
    /// once for the fleet, sealed with the fleet's key (see
    /// [`SharedTokenCache`] and `docs/FLEET_CACHE.md`). `from_env` turns it
    /// on when `CROSSTENANT_REDIS_URL` is set, with `CROSSTENANT_REDIS_KEY`
    /// (32 bytes, base64), optionally `CROSSTENANT_REDIS_OLD_KEYS`
    /// (comma-separated) and `CROSSTENANT_REDIS_TIMEOUT_MS`.
    ///
    /// `build()` then reads the fleet's key check value from Redis (a short
    /// blocking call) and fails if the key is not the fleet's; an unreachable
    /// Redis is not an error (the credential works without it meanwhile).
    pub fn shared_cache(mut self, shared: SharedTokenCache) -> Self {
        self.shared = Some(shared);
        self
    }

    fn open_shared(
        shared: Option<SharedTokenCache>,
        authority: &Url,
        tenant: &ResourceTenant,
        client_id: &str,
    ) -> Result<(cache::TokenCache, Option<Arc<shared::RedisLevel>>), Error> {
        let Some(shared) = shared else {
            return Ok((cache::TokenCache::default(), None));
        };
        let identity = format!(
            "{}\n{}\n{client_id}",
            authority
                .as_str()
                .trim_end_matches('/')
                .to_ascii_lowercase(),
            tenant.as_str().to_ascii_lowercase()
        );
        let level = shared.open(&identity)?;
        Ok((
            cache::TokenCache::with_second_level(level.clone()),
            Some(level),
        ))
    }
}

#[cfg(feature = "redis")]
impl CrossTenantCredential {
    /// What the fleet's shared cache did so far (`None` without one).
    pub fn shared_cache_stats(&self) -> Option<SharedCacheStats> {
        self.inner.shared.as_ref().map(|s| s.stats())
    }
}

#[async_trait::async_trait]
impl TokenCredential for CrossTenantCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        // The hot path straight from the cache into the return value: each
        // `Result` layer in between costs a copy of the token, and those
        // copies were a fifth of a cached `get_token`.
        if let Some(token) = self.inner.cache.fresh(scopes) {
            return Ok(token);
        }
        Box::pin(self.token_after_miss(scopes))
            .await
            .map_err(Error::into_azure)
    }
}

impl Inner {
    fn token_endpoint(&self, tenant_id: &str) -> String {
        format!(
            "{}/{tenant_id}/oauth2/v2.0/token",
            self.authority.as_str().trim_end_matches('/')
        )
    }

    async fn resolve(&self) -> Result<&Resolved, Error> {
        self.resolved
            .get_or_try_init(|| async {
                let tenant_id = match &self.tenant {
                    ResourceTenant::Id(id) => id.clone(),
                    ResourceTenant::Domain(domain) => self.discover(domain).await?,
                };
                let options = self.client_options()?;
                Ok::<_, Error>(Resolved { tenant_id, options })
            })
            .await
    }

    /// Resolves a domain to its tenant id through
    /// `{authority}/{domain}/v2.0/.well-known/openid-configuration`, whose
    /// `token_endpoint` names the GUID.
    async fn discover(&self, domain: &str) -> Result<String, Error> {
        let url = format!(
            "{}/{domain}/v2.0/.well-known/openid-configuration",
            self.authority.as_str().trim_end_matches('/')
        );
        let operation = format!("resolving tenant {domain} at {url}");
        let parsed = Url::parse(&url).map_err(|e| Error::transport(&operation, e, false))?;
        let pipeline = self.http.pipeline()?;
        let mut request = Request::new(parsed, Method::Get);
        let response = crate::http::send_unchecked(&pipeline, &mut request)
            .await
            .map_err(|e| Error::transport(&operation, chain(&e), true))?;
        let status = u16::from(response.status());
        let body: &[u8] = response.body();
        if !(200..300).contains(&status) {
            return Err(
                match entra::EntraError::parse(status, body, domain, &self.client_id, None) {
                    Some(e) => Error::Entra(Box::new(e)),
                    None => Error::transport(&operation, format!("HTTP {status}"), status >= 500),
                },
            );
        }
        let doc: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Error::transport(&operation, format!("not JSON: {e}"), false))?;
        let endpoint = doc
            .get("token_endpoint")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        endpoint
            .split('/')
            .find(|seg| crate::tenant::is_guid(seg))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                Error::transport(
                    &operation,
                    "the OpenID configuration names no tenant id in its token_endpoint",
                    false,
                )
            })
    }

    /// Options for the azure_identity credentials, built once: every token
    /// request shares one HTTPS connection pool.
    fn client_options(&self) -> Result<azure_core::http::ClientOptions, Error> {
        let mut client_options = self.http.client_options()?;
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = self.authority.as_str().trim_end_matches('/').to_string();
        client_options.cloud = Some(Arc::new(custom.into()));
        client_options
            .per_try_policies
            .push(Arc::new(CaptureEntraAnswer));
        Ok(client_options)
    }

    /// The azure_identity credential for one token request.
    ///
    /// A new one per request, on purpose: azure_identity keeps its own cache
    /// and hands a cached token back until five minutes before it expires.
    /// That would defeat this crate's cache twice over — a refresh ahead of
    /// expiry, and a retry after a service refused a token
    /// ([`CrossTenantCredential::invalidate`]), would both get the old token
    /// back. Token requests are rare (one per scope per token lifetime), and
    /// the HTTPS client inside `client_options` is shared, so this costs an
    /// allocation, not a connection.
    fn source(
        &self,
        tenant_id: &str,
        client_options: azure_core::http::ClientOptions,
    ) -> Result<Arc<dyn TokenCredential>, Error> {
        let az = |e: azure_core::Error| Error::transport("configuring the credential", e, false);
        let client_id = self.client_id.clone();
        Ok(match &self.auth {
            ClientAuth::Secret(secret) => ClientSecretCredential::new(
                tenant_id,
                client_id,
                secret.clone(),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(az)?,
            other => {
                let assertion = AssertionSource {
                    auth: other.clone(),
                    client_id: self.client_id.clone(),
                    token_endpoint: self.token_endpoint(tenant_id),
                };
                ClientAssertionCredential::new(
                    tenant_id.to_string(),
                    client_id,
                    assertion,
                    Some(ClientAssertionCredentialOptions { client_options }),
                )
                .map_err(az)?
            }
        })
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken, Error> {
        let resolved = self.resolve().await?;
        let answer = Arc::new(CapturedAnswer::default());
        let method_options = ClientMethodOptions {
            context: azure_core::http::Context::new().with_value(answer.clone()),
        };
        let source = self.source(&resolved.tenant_id, resolved.options.clone())?;
        let token = source
            .get_token(&[scope], Some(TokenRequestOptions { method_options }))
            .await
            .map_err(|e| {
                let captured = answer.0.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((status, body)) = captured {
                    if let Some(entra) = entra::EntraError::parse(
                        status,
                        &body,
                        &resolved.tenant_id,
                        &self.client_id,
                        Some(scope),
                    ) {
                        return Error::Entra(Box::new(entra));
                    }
                }
                self.explain(&resolved.tenant_id, scope, e)
            })?;
        self.check(&resolved.tenant_id, scope, &token)?;
        tracing::debug!(
            tenant = %resolved.tenant_id,
            client_id = %self.client_id,
            scope,
            expires_on = %token.expires_on,
            "token issued by the resource tenant"
        );
        Ok(token)
    }

    /// Checks the token's `tid` and `aud` against what was asked.
    fn check(&self, tenant_id: &str, scope: &str, token: &AccessToken) -> Result<(), Error> {
        let claims = crate::claims::TokenClaims::decode(token.token.secret())?;
        let tid = claims.tenant_id().unwrap_or("<none>");
        if !tid.eq_ignore_ascii_case(tenant_id) {
            return Err(Error::WrongTenant {
                expected: tenant_id.to_string(),
                actual: tid.to_string(),
                client_id: self.client_id.clone(),
            });
        }
        if self.check_audience {
            let resource = scope.strip_suffix("/.default").unwrap_or(scope);
            let aud = claims.audience().unwrap_or("<none>");
            let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
            let resource_n = norm(resource);
            let aud_n = norm(aud);
            // Entra puts either the App ID URI or the app id in `aud`;
            // `api://{guid}` scopes come back as the bare GUID.
            let matches =
                aud_n == resource_n || resource_n.strip_prefix("api://") == Some(aud_n.as_str());
            if !matches {
                return Err(Error::WrongAudience {
                    scope: scope.to_string(),
                    expected: resource.to_string(),
                    actual: aud.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Turns azure_identity's error into ours: Entra's JSON answer becomes
    /// an [`entra::EntraError`]; our own assertion errors come back as they
    /// were; anything else is a transport error.
    fn explain(&self, tenant_id: &str, scope: &str, err: azure_core::Error) -> Error {
        if let Some(ours) = Error::from_azure(&err) {
            return ours.clone();
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = current {
            if let Some(az) = e.downcast_ref::<azure_core::Error>() {
                if let azure_core::error::ErrorKind::HttpResponse {
                    status,
                    raw_response,
                    ..
                } = az.kind()
                {
                    let status = u16::from(*status);
                    if let Some(resp) = raw_response {
                        if let Some(entra) = entra::EntraError::parse(
                            status,
                            resp.body(),
                            tenant_id,
                            &self.client_id,
                            Some(scope),
                        ) {
                            return Error::Entra(Box::new(entra));
                        }
                    }
                    return Error::transport(
                        format!("token request to {}", self.token_endpoint(tenant_id)),
                        format!("HTTP {status} with a body that is not an Entra error"),
                        status == 429 || status >= 500,
                    );
                }
                if let Some(inner) = az.get_ref() {
                    current = Some(inner);
                    continue;
                }
            }
            current = e.source();
        }
        let transient = matches!(
            err.kind(),
            azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
        ) || chain(&err).contains("error sending request");
        Error::transport(
            format!("token request to {}", self.token_endpoint(tenant_id)),
            chain(&err),
            transient,
        )
    }
}

/// Where [`CaptureEntraAnswer`] leaves a failed token request's answer.
#[derive(Default)]
struct CapturedAnswer(std::sync::Mutex<Option<(u16, azure_core::Bytes)>>);

/// Keeps the body of a failed token request for [`entra::EntraError`].
///
/// azure_identity 1.1.0-beta.1 deserializes Entra's `error_description`
/// into a borrowed `&str`, which fails for every real answer (they contain
/// escaped `\r\n` before the trace id), so its error carries neither the
/// AADSTS code nor the body. This per-try policy copies the answer into a
/// slot the credential put in the request context, and hands the response on
/// unchanged; it does nothing for requests without such a slot.
#[derive(Debug)]
struct CaptureEntraAnswer;

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for CaptureEntraAnswer {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let Some(slot) = ctx.value::<Arc<CapturedAnswer>>() else {
            return Ok(response);
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let bytes = body.collect().await?;
        *slot.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((u16::from(status), bytes.clone()));
        Ok(azure_core::http::AsyncRawResponse::from_bytes(
            status, headers, bytes,
        ))
    }
}

/// Supplies assertions to azure_identity's `ClientAssertionCredential`:
/// freshly signed for certificates, re-read for token files, called for
/// callbacks. Never prints the assertion.
struct AssertionSource {
    auth: ClientAuth,
    client_id: String,
    token_endpoint: String,
}

impl std::fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSource")
            .field("kind", &self.auth.kind())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for AssertionSource {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        let result = match &self.auth {
            ClientAuth::Certificate {
                certificate,
                algorithm,
                send_chain,
            } => certificate
                .sign_assertion(
                    &self.client_id,
                    &self.token_endpoint,
                    *algorithm,
                    *send_chain,
                )
                .map_err(Error::from),
            ClientAuth::AssertionFile(path) => tokio::fs::read_to_string(path)
                .await
                .map(|s| s.trim().to_string())
                .map_err(|e| Error::Assertion {
                    source_name: path.display().to_string(),
                    reason: format!(
                        "{e}; check AZURE_FEDERATED_TOKEN_FILE points at the projected token"
                    ),
                })
                .and_then(|s| {
                    if s.is_empty() {
                        Err(Error::Assertion {
                            source_name: path.display().to_string(),
                            reason: "the file is empty".into(),
                        })
                    } else {
                        Ok(s)
                    }
                }),
            ClientAuth::AssertionCallback(callback) => {
                callback().await.map_err(|e| Error::Assertion {
                    source_name: "client assertion callback".into(),
                    reason: e.to_string(),
                })
            }
            ClientAuth::Secret(_) => Err(Error::Assertion {
                source_name: "client secret".into(),
                reason: "a secret is not an assertion".into(),
            }),
        };
        result.map_err(Error::into_azure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";

    #[test]
    fn bad_configuration_is_refused_at_build_naming_the_value() {
        let err = CrossTenantCredential::builder()
            .resource_tenant("not a tenant")
            .client_id(CLIENT)
            .client_secret("s")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a tenant"), "{err}");

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id("  ")
            .client_secret("s")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_id"), "{err}");

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id(CLIENT)
            .client_secret("   ")
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client_secret") && err.contains("<redacted>"),
            "{err}"
        );

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id(CLIENT)
            .client_secret("s")
            .authority_host("http://login.example.com")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id(CLIENT)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id(CLIENT)
            .client_secret("s")
            .federated_token_file("/tmp/x")
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client secret + federated token file"),
            "{err}"
        );

        let err = CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id(CLIENT)
            .certificate_pem("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("PEM text"), "{err}");
    }

    fn jwt(claims: serde_json::Value) -> AccessToken {
        use base64::Engine as _;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.c2ln",
            b64(&serde_json::json!({"alg": "RS256"})),
            b64(&claims)
        );
        AccessToken::new(token, azure_core::time::OffsetDateTime::now_utc())
    }

    #[test]
    fn a_token_from_another_tenant_or_for_another_audience_is_refused() {
        let owner = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let partner = "11111111-2222-3333-4444-555555555555";
        let cred = CrossTenantCredential::builder()
            .resource_tenant(owner)
            .client_id(CLIENT)
            .client_secret("s")
            .build()
            .unwrap();
        let scope = "https://eventhubs.azure.net/.default";
        let home = jwt(serde_json::json!({"tid": partner, "aud": "https://eventhubs.azure.net"}));
        let err = cred.inner.check(owner, scope, &home).unwrap_err();
        assert!(matches!(err, Error::WrongTenant { .. }));
        let text = err.to_string();
        assert!(
            text.contains(owner) && text.contains(partner) && text.contains("40100"),
            "{text}"
        );

        let other_aud = jwt(serde_json::json!({"tid": owner, "aud": "https://storage.azure.com"}));
        assert!(matches!(
            cred.inner.check(owner, scope, &other_aud),
            Err(Error::WrongAudience { .. })
        ));
        let ok = jwt(serde_json::json!({"tid": owner, "aud": "https://eventhubs.azure.net/"}));
        cred.inner.check(owner, scope, &ok).unwrap();
        let guid_aud = jwt(serde_json::json!({"tid": owner, "aud": CLIENT}));
        cred.inner
            .check(owner, &format!("api://{CLIENT}/.default"), &guid_aud)
            .unwrap();
    }

    #[test]
    fn from_env_uses_the_azure_names() {
        let vars = |name: &str| match name {
            "AZURE_TENANT_ID" => Some("owner.onmicrosoft.com".to_string()),
            "AZURE_CLIENT_ID" => Some(CLIENT.to_string()),
            "AZURE_CLIENT_SECRET" => Some("s3cr3t-value".to_string()),
            "AZURE_AUTHORITY_HOST" => Some("https://login.microsoftonline.us".to_string()),
            _ => None,
        };
        let cred = CrossTenantCredential::builder()
            .with_vars(vars)
            .build()
            .unwrap();
        assert_eq!(
            cred.resource_tenant(),
            &ResourceTenant::Domain("owner.onmicrosoft.com".into())
        );
        assert_eq!(
            cred.authority_host().as_str(),
            "https://login.microsoftonline.us/"
        );
        let debug = format!("{cred:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("client secret"), "{debug}");
    }
}
