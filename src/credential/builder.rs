//! The credential's builder: every setting, the `AZURE_*` environment
//! variables, and the checks `build` makes before anything is sent.

use super::assertion::ClientAuth;
use super::certificate::{
    AssertionAlgorithm, CertificateError, CertificateSlot, ClientCertificate,
};
use super::federated::{self, ExternalAssertion, ExternalSource, ManagedIdentity};
use super::{cache, CrossTenantCredential, Inner};
use crate::error::{Error, InvalidInput};
use crate::http::HttpSettings;
use crate::tenant::{Cloud, ResourceTenant};
use azure_core::credentials::Secret;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// Builds a [`CrossTenantCredential`]. Every value is checked at
/// [`build`](Self::build); nothing is sent until the first token request.
#[derive(Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CrossTenantCredentialBuilder {
    tenant: Option<String>,
    client_id: Option<String>,
    auth: Vec<Proof>,
    pending_error: Option<Error>,
    cloud: Option<Result<Cloud, Error>>,
    http: HttpSettings,
    check_audience: bool,
    #[cfg(feature = "redis")]
    shared: Option<super::SharedTokenCache>,
}

impl std::fmt::Debug for CrossTenantCredentialBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossTenantCredentialBuilder")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field(
                "auth",
                &self.auth.iter().map(Proof::kind).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CrossTenantCredentialBuilder {
    /// The defaults: the public cloud, the audience check on, no settings.
    pub(super) fn new() -> Self {
        Self {
            check_audience: true,
            ..Default::default()
        }
    }

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
            .push(Proof::Ready(ClientAuth::Secret(Secret::new(secret.into()))));
        self
    }

    /// Authenticate with a certificate already loaded.
    pub fn certificate(self, certificate: ClientCertificate) -> Self {
        self.certificate_slot(Ok(CertificateSlot::fixed(certificate)))
    }

    fn certificate_slot(mut self, loaded: Result<CertificateSlot, CertificateError>) -> Self {
        let certificate = match loaded {
            Ok(c) => c,
            Err(e) => return self.certificate_result(Err(e)),
        };
        self.auth.push(Proof::Ready(ClientAuth::Certificate {
            certificate: Arc::new(certificate),
            algorithm: AssertionAlgorithm::default(),
            send_chain: false,
        }));
        self
    }

    fn certificate_result(mut self, loaded: Result<ClientCertificate, CertificateError>) -> Self {
        match loaded {
            Ok(c) => self.certificate(c),
            Err(e) => {
                self.pending_error.get_or_insert(e.into());
                // Count it as a chosen method so the "exactly one" check
                // does not hide the real error.
                self.auth.push(Proof::Failed("certificate"));
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
    /// The file is followed: when it is replaced (a renewed certificate),
    /// the new one is used without a restart; a replacement that does not
    /// load keeps the current one, with a warning.
    pub fn certificate_pem_file(self, path: impl Into<PathBuf>) -> Self {
        self.certificate_slot(CertificateSlot::pem_file(&path.into()))
    }

    /// Authenticate with a PKCS#12 / PFX archive and its password.
    pub fn certificate_pfx(self, pfx: impl AsRef<[u8]>, password: &str) -> Self {
        self.certificate_result(ClientCertificate::from_pfx(pfx.as_ref(), password))
    }

    /// Authenticate with a PFX file and its password. The file is followed
    /// as with [`certificate_pem_file`](Self::certificate_pem_file).
    pub fn certificate_pfx_file(self, path: impl Into<PathBuf>, password: &str) -> Self {
        self.certificate_slot(CertificateSlot::pfx_file(&path.into(), password))
    }

    /// Sign assertions with PS256 and name the certificate by `x5t#S256`
    /// instead of RS256 with `x5t`.
    pub fn assertion_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        for a in &mut self.auth {
            if let Proof::Ready(ClientAuth::Certificate { algorithm: alg, .. }) = a {
                *alg = algorithm;
            }
        }
        self
    }

    /// Send the certificate chain in `x5c` (for subject name + issuer
    /// authentication).
    pub fn send_certificate_chain(mut self, send: bool) -> Self {
        for a in &mut self.auth {
            if let Proof::Ready(ClientAuth::Certificate { send_chain, .. }) = a {
                *send_chain = send;
            }
        }
        self
    }

    /// Authenticate with a federated assertion read from `path`
    /// (Kubernetes workload identity projects and rotates the file), as
    /// `AZURE_FEDERATED_TOKEN_FILE` works elsewhere. The file is read for
    /// every token request, so a rotation is picked up at once.
    pub fn federated_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth
            .push(Proof::External(ExternalSource::File(path.into())));
        self
    }

    /// Authenticate with the partner's **managed identity**: its token for
    /// `api://AzureADTokenExchange` (`api://AzureADTokenExchangeUSGov`,
    /// `api://AzureADTokenExchangeChina` with [`cloud`](Self::cloud)), from
    /// azure_identity's `ManagedIdentityCredential` (App Service's
    /// `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, or IMDS on a VM), is the
    /// client assertion at the resource tenant. No secret anywhere.
    ///
    /// The partner's app needs a federated identity credential with issuer
    /// `https://login.microsoftonline.com/{partner tenant}/v2.0`, subject
    /// the identity's object (principal) id, audience
    /// `api://AzureADTokenExchange` (Microsoft's "Configure an application
    /// to trust a managed identity"). The token is cached until shortly
    /// before it expires and shared by concurrent requests. `from_env`:
    /// `CROSSTENANT_MANAGED_IDENTITY`.
    pub fn managed_identity(mut self, identity: ManagedIdentity) -> Self {
        if let Err(e) = identity.check() {
            self.pending_error.get_or_insert(e);
        }
        self.auth
            .push(Proof::External(ExternalSource::ManagedIdentity(identity)));
        self
    }

    /// Authenticate with the GitHub Actions job's OIDC ID token (audience
    /// `api://AzureADTokenExchange`), requested from
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN`,
    /// which GitHub sets for a job with `permissions: id-token: write`; both
    /// are read now. The app needs a federated credential with issuer
    /// `https://token.actions.githubusercontent.com` and the job's subject
    /// (e.g. `repo:org/repo:ref:refs/heads/main`). `from_env`:
    /// `CROSSTENANT_GITHUB_OIDC=1`.
    pub fn github_actions_oidc(self) -> Self {
        self.github_actions_oidc_from(|name| std::env::var(name).ok())
    }

    /// [`github_actions_oidc`](Self::github_actions_oidc) with the request
    /// URL and bearer token given here instead of read from the
    /// environment (another runner speaking GitHub's protocol).
    pub fn github_actions_oidc_endpoint(
        self,
        request_url: &str,
        request_token: impl Into<String>,
    ) -> Self {
        let (url, token) = (request_url.to_string(), request_token.into());
        self.github_actions_oidc_from(move |name| match name {
            federated::ENV_ACTIONS_URL => Some(url.clone()),
            federated::ENV_ACTIONS_TOKEN => Some(token.clone()),
            _ => None,
        })
    }

    fn github_actions_oidc_from(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        match ExternalSource::github(
            var(federated::ENV_ACTIONS_URL),
            var(federated::ENV_ACTIONS_TOKEN),
        ) {
            Ok(source) => self.auth.push(Proof::External(source)),
            Err(e) => {
                self.pending_error.get_or_insert(e);
                self.auth.push(Proof::Failed("GitHub Actions OIDC"));
            }
        }
        self
    }

    /// Authenticate with an assertion from a callback. A JWT it returns is
    /// used until shortly before its `exp` (one call serves concurrent
    /// requests); one that is not a JWT with an `exp` is asked for on every
    /// token request.
    pub fn client_assertion<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'static,
    {
        self.auth
            .push(Proof::External(ExternalSource::Callback(Arc::new(
                move || Box::pin(callback()),
            ))));
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
    /// (default: on). The check knows both token versions (v1.0: the App ID
    /// URI or client id asked for; v2.0: the resource's client id); turn it
    /// off only for a resource whose tokens it cannot tie to the scope. The
    /// tenant is checked either way.
    pub fn check_audience(mut self, check: bool) -> Self {
        self.check_audience = check;
        self
    }

    /// Reads the names every Azure SDK uses: `AZURE_TENANT_ID` (here: the
    /// **resource owner's** tenant), `AZURE_CLIENT_ID`, and one of
    /// `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH` (PEM or PFX,
    /// with `AZURE_CLIENT_CERTIFICATE_PASSWORD`; followed as with
    /// [`certificate_pem_file`](Self::certificate_pem_file)),
    /// `AZURE_FEDERATED_TOKEN_FILE`; optionally `AZURE_AUTHORITY_HOST`, and
    /// `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` (`true` or `1`: send the chain
    /// in `x5c`, as azure-identity reads it). The secretless proofs:
    /// `CROSSTENANT_MANAGED_IDENTITY` = `system` | `client_id=<guid>` |
    /// `object_id=<guid>` | `resource_id=<ARM id>` (the partner's managed
    /// identity), or `CROSSTENANT_GITHUB_OIDC=1` (the GitHub Actions job's
    /// ID token, with `ACTIONS_ID_TOKEN_REQUEST_URL` /
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
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
        if let Some(v) = var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN") {
            // As azure-identity reads it: `1` or `true` (any case) sends x5c.
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => self = self.send_certificate_chain(true),
                "0" | "false" => {}
                _ => {
                    self.pending_error.get_or_insert(
                        InvalidInput::new(
                            "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
                            &v,
                            "give `true` or `1` to send the certificate chain (x5c), `false` or \
                             `0` (or leave it unset) not to",
                        )
                        .into(),
                    );
                }
            }
        }
        if let Some(f) = var("AZURE_FEDERATED_TOKEN_FILE") {
            self = self.federated_token_file(f);
        }
        if let Some(mi) = var(federated::ENV_MANAGED_IDENTITY) {
            match ManagedIdentity::parse(&mi) {
                Ok(identity) => self = self.managed_identity(identity),
                Err(e) => {
                    self.pending_error.get_or_insert(e);
                    self.auth.push(Proof::Failed("managed identity"));
                }
            }
        }
        if let Some(gh) = var(federated::ENV_GITHUB_OIDC) {
            match gh.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => self = self.github_actions_oidc_from(&var),
                "0" | "false" | "no" => {}
                _ => {
                    self.pending_error.get_or_insert(
                        InvalidInput::new(
                            federated::ENV_GITHUB_OIDC,
                            &gh,
                            "give 1 (use the GitHub Actions job's OIDC token) or 0",
                        )
                        .into(),
                    );
                }
            }
        }
        if let Some(h) = var("AZURE_AUTHORITY_HOST") {
            self = self.authority_host(&h);
        }
        #[cfg(feature = "redis")]
        if let Some(shared) = super::SharedTokenCache::from_vars(&var) {
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
        self.into_app(false)?.credential(tenant)
    }

    /// Checks every value but the tenant: the partner app's part, which a
    /// [`PartnerApp`](super::PartnerApp) shares between its resource
    /// tenants. With `share_pool`, every client made from its HTTP settings
    /// shares one connection pool.
    pub(super) fn into_app(mut self, share_pool: bool) -> Result<AppConfig, Error> {
        if let Some(e) = self.pending_error {
            return Err(e);
        }
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
        let proof = match self.auth.len() {
            1 => self.auth.pop().ok_or_else(|| {
                Error::from(InvalidInput::new("credential", "", "internal: no method"))
            })?,
            0 => {
                return Err(InvalidInput::new(
                    "credential",
                    "none",
                    "give exactly one of client_secret, certificate_pem/_pfx, \
                     federated_token_file, client_assertion, managed_identity or \
                     github_actions_oidc (AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, \
                     AZURE_FEDERATED_TOKEN_FILE, CROSSTENANT_MANAGED_IDENTITY or \
                     CROSSTENANT_GITHUB_OIDC=1)",
                )
                .into())
            }
            _ => {
                let kinds: Vec<&str> = self.auth.iter().map(Proof::kind).collect();
                return Err(InvalidInput::new(
                    "credential",
                    &kinds.join(" + "),
                    "give exactly one way to authenticate; remove the others (check for \
                     several AZURE_CLIENT_* / CROSSTENANT_* variables set at once)",
                )
                .into());
            }
        };
        let cloud = self.cloud.unwrap_or(Ok(Cloud::Public))?;
        if share_pool {
            self.http.share_pool()?;
        }
        // Fail now, not at the first request, if the HTTPS client cannot be built.
        let options = self.http.client_options(None)?;
        let client_id = client_id.to_ascii_lowercase();
        let auth = match proof {
            Proof::Ready(auth) => auth,
            Proof::Failed(kind) => {
                return Err(
                    InvalidInput::new("credential", kind, "internal: a failed proof").into(),
                )
            }
            Proof::External(source) => {
                if let ExternalSource::File(p) = &source {
                    if p.as_os_str().is_empty() {
                        return Err(InvalidInput::new(
                            "federated_token_file",
                            "",
                            "the path is empty; give the file the workload's token is projected to",
                        )
                        .into());
                    }
                }
                let audience = match cloud {
                    Cloud::UsGovernment => federated::TOKEN_EXCHANGE_AUDIENCE_US_GOV,
                    Cloud::China => federated::TOKEN_EXCHANGE_AUDIENCE_CHINA,
                    _ => federated::TOKEN_EXCHANGE_AUDIENCE,
                };
                ClientAuth::External(Arc::new(ExternalAssertion::new(
                    source,
                    audience.to_string(),
                    client_id.clone(),
                    options,
                )))
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
        Ok(AppConfig {
            client_id,
            auth,
            authority: cloud.authority_host(),
            http: self.http,
            check_audience: self.check_audience,
            #[cfg(feature = "redis")]
            shared: self.shared,
        })
    }
}

/// A proof as given to the builder, before `build` checks it.
enum Proof {
    /// A secret or certificate, ready to use.
    Ready(ClientAuth),
    /// An external assertion source, made into a shared cache at `build`.
    External(ExternalSource),
    /// A proof whose value was refused (the error is pending): still
    /// counted, so the "exactly one" check does not hide the real error.
    Failed(&'static str),
}

impl Proof {
    fn kind(&self) -> &'static str {
        match self {
            Proof::Ready(a) => a.kind(),
            Proof::External(s) => s.kind(),
            Proof::Failed(kind) => kind,
        }
    }
}

/// Everything of a partner app but the resource tenant: what a
/// [`PartnerApp`](super::PartnerApp) shares between the credentials it
/// hands out (the proof with its certificate or cached assertion, the HTTP
/// settings with their connection pool).
#[derive(Clone)]
pub(super) struct AppConfig {
    pub(super) client_id: String,
    pub(super) auth: ClientAuth,
    pub(super) authority: url::Url,
    pub(super) http: HttpSettings,
    pub(super) check_audience: bool,
    #[cfg(feature = "redis")]
    pub(super) shared: Option<super::SharedTokenCache>,
}

impl AppConfig {
    /// The credential of this app at one resource tenant, with its own
    /// token cache.
    pub(super) fn credential(
        &self,
        tenant: ResourceTenant,
    ) -> Result<Arc<CrossTenantCredential>, Error> {
        #[cfg(feature = "redis")]
        let (cache, shared) = CrossTenantCredentialBuilder::open_shared(
            self.shared.clone(),
            &self.authority,
            &tenant,
            &self.client_id,
        )?;
        #[cfg(not(feature = "redis"))]
        let cache = cache::TokenCache::default();
        Ok(Arc::new(CrossTenantCredential {
            inner: Arc::new(Inner {
                tenant,
                client_id: self.client_id.clone(),
                auth: self.auth.clone(),
                authority: self.authority.clone(),
                http: self.http.clone(),
                check_audience: self.check_audience,
                resolved: tokio::sync::OnceCell::new(),
                cache,
                #[cfg(feature = "redis")]
                shared,
            }),
        }))
    }
}

// The fleet's shared token cache (feature `redis`): the builder method and
// its opening at `build()`. Kept in one block.
#[cfg(feature = "redis")]
impl CrossTenantCredentialBuilder {
    /// Shares tokens with the other instances of the fleet through Redis, as
    /// a second level behind the in-process cache: each token is requested
    /// once for the fleet, sealed with the fleet's key (see
    /// [`SharedTokenCache`](super::SharedTokenCache) and
    /// `docs/FLEET_CACHE.md`). `from_env` turns it on when
    /// `CROSSTENANT_REDIS_URL` is set, with `CROSSTENANT_REDIS_KEY` (32
    /// bytes, base64), optionally `CROSSTENANT_REDIS_OLD_KEYS`
    /// (comma-separated) and `CROSSTENANT_REDIS_TIMEOUT_MS`.
    ///
    /// `build()` then reads the fleet's key check value from Redis (a short
    /// blocking call) and fails if the key is not the fleet's; an unreachable
    /// Redis is not an error (the credential works without it meanwhile).
    pub fn shared_cache(mut self, shared: super::SharedTokenCache) -> Self {
        self.shared = Some(shared);
        self
    }

    fn open_shared(
        shared: Option<super::SharedTokenCache>,
        authority: &url::Url,
        tenant: &ResourceTenant,
        client_id: &str,
    ) -> Result<(cache::TokenCache, Option<Arc<super::shared::RedisLevel>>), Error> {
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
