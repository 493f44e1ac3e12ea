//! One partner app, many resource owners: [`PartnerApp`] holds the app's
//! client id, its proof and its HTTP settings once, and hands out a
//! [`CrossTenantCredential`] per resource tenant.
//!
//! What the credentials of one `PartnerApp` share: the certificate (loaded
//! once), the external assertion with its cache (one managed identity
//! token serves every resource tenant until it expires), and one HTTPS
//! connection pool. What each keeps to itself: its resource tenant, its
//! token cache, and the check that every token it hands out carries its own
//! tenant's `tid`. A token of tenant A is never served to a caller of
//! tenant B: the caches are separate, and a token from another tenant is
//! refused ([`Error::WrongTenant`](crate::Error::WrongTenant)) before it
//! reaches any cache.

use super::builder::{AppConfig, CrossTenantCredentialBuilder};
use super::certificate::{AssertionAlgorithm, ClientCertificate};
use super::federated::ManagedIdentity;
use super::{CrossTenantCredential, ProofKind};
use crate::error::{AssertionInfo, Error};
use crate::http::HttpSettings;
use crate::tenant::{Cloud, ResourceTenant};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The partner's multi-tenant app, once, for every resource owner it
/// serves. See the module docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), crosstenant::Error> {
/// use crosstenant::credential::{ManagedIdentity, PartnerApp};
///
/// let app = PartnerApp::builder()
///     .client_id("00001111-aaaa-2222-bbbb-3333cccc4444")
///     .managed_identity(ManagedIdentity::SystemAssigned)
///     .build()?;
/// let contoso = app.credential("contoso.onmicrosoft.com")?;
/// let northwind = app.credential("northwind.onmicrosoft.com")?;
/// // One managed identity token proves the app at both tenants.
/// let a = contoso.token("https://eventhubs.azure.net/.default").await?;
/// let b = northwind.token("https://eventhubs.azure.net/.default").await?;
/// # let _ = (a, b); Ok(()) }
/// ```
pub struct PartnerApp {
    app: AppConfig,
    credentials: Mutex<HashMap<String, Arc<CrossTenantCredential>>>,
}

impl std::fmt::Debug for PartnerApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerApp")
            .field("client_id", &self.app.client_id)
            .field("authentication", &self.app.auth.kind())
            .field("authority", &self.app.authority.as_str())
            .field(
                "resource_tenants",
                &self
                    .credentials
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len(),
            )
            .finish_non_exhaustive()
    }
}

impl PartnerApp {
    /// Starts a builder.
    pub fn builder() -> PartnerAppBuilder {
        PartnerAppBuilder(CrossTenantCredential::builder())
    }

    /// Builds from the environment as
    /// [`CrossTenantCredential::from_env`] does, but for no tenant in
    /// particular: `AZURE_TENANT_ID` is not read.
    pub fn from_env() -> Result<Arc<Self>, Error> {
        Self::builder().from_env().build()
    }

    /// The credential of this app at `resource_tenant` (a GUID or a
    /// verified domain), made on first use and the same `Arc` after that:
    /// its own token cache, this app's proof, assertion cache and
    /// connection pool.
    pub fn credential(&self, resource_tenant: &str) -> Result<Arc<CrossTenantCredential>, Error> {
        let tenant = ResourceTenant::parse(resource_tenant)?;
        let mut map = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(tenant.as_str()) {
            return Ok(c.clone());
        }
        let key = tenant.as_str().to_string();
        let credential = self.app.credential(tenant)?;
        map.insert(key, credential.clone());
        Ok(credential)
    }

    /// The partner app's client id.
    pub fn client_id(&self) -> &str {
        &self.app.client_id
    }

    /// How the app proves itself.
    pub fn proof(&self) -> ProofKind {
        self.app.auth.proof_kind()
    }

    /// The HTTP settings every credential of this app shares (one
    /// connection pool); hand them to other clients to share it too.
    pub fn http_settings(&self) -> &HttpSettings {
        &self.app.http
    }

    /// The claims of the external assertion the app presents (from the
    /// shared cache, fetched if needed): its iss, sub, aud and exp, never
    /// the assertion. `None` for a secret or certificate.
    pub async fn federated_assertion(&self) -> Result<Option<AssertionInfo>, Error> {
        self.app.auth.assertion_info().await
    }

    /// How many times the external assertion's source was asked (cache
    /// misses only); 0 for a secret or certificate.
    pub fn assertion_fetches(&self) -> u64 {
        self.app.auth.assertion_fetches()
    }
}

/// Builds a [`PartnerApp`]: the settings of
/// [`CrossTenantCredentialBuilder`] but the resource tenant.
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Debug)]
pub struct PartnerAppBuilder(CrossTenantCredentialBuilder);

macro_rules! delegate {
    ($( $(#[$m:meta])* fn $name:ident(self $(, $arg:ident : $ty:ty)*); )*) => {
        $(
            $(#[$m])*
            pub fn $name(self $(, $arg: $ty)*) -> Self {
                Self(self.0.$name($($arg),*))
            }
        )*
    };
}

impl PartnerAppBuilder {
    delegate! {
        /// The partner app's client (application) id. Not a secret.
        fn client_id(self, client_id: impl Into<String>);
        /// Authenticate with a client secret of the partner's app.
        fn client_secret(self, secret: impl Into<String>);
        /// Authenticate with a certificate already loaded (shared by every
        /// credential of the app).
        fn certificate(self, certificate: ClientCertificate);
        /// Authenticate with a certificate and key from PEM text.
        fn certificate_pem(self, pem: impl AsRef<[u8]>);
        /// Authenticate with a PEM file holding the certificate and its key.
        fn certificate_pem_file(self, path: impl Into<PathBuf>);
        /// Authenticate with a PKCS#12 / PFX archive and its password.
        fn certificate_pfx(self, pfx: impl AsRef<[u8]>, password: &str);
        /// Authenticate with a PFX file and its password.
        fn certificate_pfx_file(self, path: impl Into<PathBuf>, password: &str);
        /// See [`CrossTenantCredentialBuilder::assertion_algorithm`].
        fn assertion_algorithm(self, algorithm: AssertionAlgorithm);
        /// See [`CrossTenantCredentialBuilder::send_certificate_chain`].
        fn send_certificate_chain(self, send: bool);
        /// See [`CrossTenantCredentialBuilder::federated_token_file`].
        fn federated_token_file(self, path: impl Into<PathBuf>);
        /// See [`CrossTenantCredentialBuilder::managed_identity`]: one
        /// managed identity token serves every resource tenant until it
        /// expires.
        fn managed_identity(self, identity: ManagedIdentity);
        /// See [`CrossTenantCredentialBuilder::github_actions_oidc`].
        fn github_actions_oidc(self);
        /// See [`CrossTenantCredentialBuilder::github_actions_oidc_endpoint`].
        fn github_actions_oidc_endpoint(self, request_url: &str, request_token: impl Into<String>);
        /// The cloud whose authority issues tokens (default: public).
        fn cloud(self, cloud: Cloud);
        /// The authority host as a URL (`AZURE_AUTHORITY_HOST`); HTTPS only.
        fn authority_host(self, host: &str);
        /// Adds trusted roots (PEM) on top of the platform's.
        fn root_certificates_pem(self, pem: &str);
        /// Replaces the HTTP settings (roots, timeouts, retries) wholesale.
        fn http_settings(self, settings: HttpSettings);
        /// See [`CrossTenantCredentialBuilder::check_audience`].
        fn check_audience(self, check: bool);
    }

    /// See [`CrossTenantCredentialBuilder::client_assertion`]: the callback
    /// is shared by every credential of the app, its JWT cached until
    /// shortly before its `exp`.
    pub fn client_assertion<F, Fut>(self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'static,
    {
        Self(self.0.client_assertion(callback))
    }

    /// Reads the variables [`CrossTenantCredentialBuilder::from_env`]
    /// reads, but `AZURE_TENANT_ID` (each credential names its tenant).
    pub fn from_env(self) -> Self {
        Self(self.0.with_vars(|name| match name {
            "AZURE_TENANT_ID" => None,
            _ => std::env::var(name).ok().filter(|v| !v.is_empty()),
        }))
    }

    /// The fleet's shared token cache; each resource tenant gets its own
    /// keys in it. See [`CrossTenantCredentialBuilder::shared_cache`].
    #[cfg(feature = "redis")]
    pub fn shared_cache(self, shared: super::SharedTokenCache) -> Self {
        Self(self.0.shared_cache(shared))
    }

    /// Checks every value and builds the app, with one HTTPS connection
    /// pool for all its credentials. No request is made.
    pub fn build(self) -> Result<Arc<PartnerApp>, Error> {
        Ok(Arc::new(PartnerApp {
            app: self.0.into_app(true)?,
            credentials: Mutex::new(HashMap::new()),
        }))
    }
}
