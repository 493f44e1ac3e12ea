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
//!   private `cache` module).
//!
//! It is not an interactive or user credential, and it never falls back to
//! another tenant.
//!
//! One concern per file, as azure_identity keeps one credential per file:
//! `builder` (the settings and their checks), `discovery` (a domain to its
//! tenant id), `request` (one token request through azure_identity),
//! `answer` (reading Entra's answer: the token's checks, the errors),
//! `assertion` (certificates and external assertions as client
//! assertions), `federated` (secretless proofs: managed identity, GitHub
//! Actions OIDC, token files and callbacks, with their shared cache),
//! `partner` (one partner app, a credential per resource tenant), `cache` (tokens per scope, refresh ahead of expiry),
//! `source` (the seam every client gets tokens through), `shared` (the
//! fleet's second-level cache on Redis, feature `redis`).

mod answer;
mod assertion;
mod builder;
mod cache;
pub mod certificate;
mod discovery;
pub mod entra;
#[cfg(test)]
mod fake;
mod federated;
#[cfg(test)]
mod federated_tests;
mod partner;
mod request;
#[cfg(feature = "redis")]
mod shared;
mod source;
#[cfg(feature = "redis")]
pub use shared::{SharedCacheStats, SharedTokenCache};

pub use crate::error::AssertionInfo;
use crate::error::{Error, InvalidInput};
use crate::http::HttpSettings;
use crate::tenant::ResourceTenant;
pub use assertion::AssertionFuture;
use assertion::ClientAuth;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
pub use builder::CrossTenantCredentialBuilder;
pub use certificate::{
    AssertionAlgorithm, CertificateError, ClientCertificate, RELOAD_CHECK_EVERY,
};
pub use federated::{
    ManagedIdentity, ENV_ACTIONS_TOKEN, ENV_ACTIONS_URL, ENV_GITHUB_OIDC, ENV_MANAGED_IDENTITY,
    TOKEN_EXCHANGE_AUDIENCE, TOKEN_EXCHANGE_AUDIENCE_CHINA, TOKEN_EXCHANGE_AUDIENCE_US_GOV,
};
pub use partner::{PartnerApp, PartnerAppBuilder};
pub use source::TokenSource;
use std::sync::Arc;
use url::Url;

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

/// How the partner's app proves itself at the resource tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofKind {
    /// A client secret.
    ClientSecret,
    /// A certificate (a signed client assertion).
    Certificate,
    /// A federated token file (Kubernetes workload identity).
    FederatedTokenFile,
    /// An assertion from a callback.
    AssertionCallback,
    /// The partner's managed identity (secretless).
    ManagedIdentity,
    /// The GitHub Actions job's OIDC token (secretless).
    GitHubActionsOidc,
}

impl ProofKind {
    /// Whether the proof is an external (federated) assertion: no secret or
    /// key of the app anywhere.
    pub fn is_federated(self) -> bool {
        !matches!(self, ProofKind::ClientSecret | ProofKind::Certificate)
    }
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
        CrossTenantCredentialBuilder::new()
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

    /// How the partner's app proves itself.
    pub fn proof(&self) -> ProofKind {
        self.inner.auth.proof_kind()
    }

    /// The claims of the external assertion this credential presents (from
    /// the shared cache, fetched if needed): its iss, sub, aud and exp,
    /// never the assertion. `None` for a secret or certificate. What a
    /// federated identity credential on the app must match.
    pub async fn federated_assertion(&self) -> Result<Option<AssertionInfo>, Error> {
        self.inner.auth.assertion_info().await
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
}

#[cfg(feature = "redis")]
impl CrossTenantCredential {
    /// What the fleet's shared cache did so far (`None` without one).
    pub fn shared_cache_stats(&self) -> Option<SharedCacheStats> {
        self.inner.shared.as_ref().map(|s| s.stats())
    }
}
