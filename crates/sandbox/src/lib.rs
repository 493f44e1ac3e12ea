//! # crosstenant-sandbox
//!
//! An offline, real-protocol stand-in for both tenants of a cross-tenant
//! set-up on Microsoft Entra ID.
//!
//! No machine in CI reaches Azure, and partner teams should not need live
//! tenants to test. The sandbox runs in-process and speaks the real
//! protocols on loopback sockets, so every path of the SDK runs unchanged but
//! for base addresses and one extra trusted root (the sandbox CA):
//!
//! - **identity** ([`identity`]): Entra's v2 and v1 token endpoints
//!   (`client_secret_post`, `client_secret_basic`, certificate and federated
//!   assertions), v2 and v1 OpenID configuration and the JWKS (keys with
//!   their certificates) over HTTPS; RS256 access tokens in the version the
//!   resource asks for (v1.0 or v2.0), with the claims Microsoft documents;
//!   Entra-shaped `AADSTS…` errors;
//! - **Event Hubs** ([`eventhubs`]): AMQP 1.0 (over TLS, plain, and over
//!   WebSockets) with CBS and `$management`, and the HTTPS REST
//!   API, enforcing the resource owner's tenant and Azure RBAC;
//! - **the aggregator API** ([`api`]): the two-token scheme, with both tokens
//!   fully verified;
//! - **managed identities** ([`managed_identity`]): App Service's managed
//!   identity endpoint (plain HTTP on loopback), issuing managed identity
//!   tokens for `api://AzureADTokenExchange` that an app's federated
//!   credential accepts;
//! - **a GitHub Actions-style OIDC issuer** ([`github`]): a workflow job's
//!   `ACTIONS_ID_TOKEN_REQUEST_URL` and the issuer's discovery document and
//!   keys, for federated credentials with GitHub subjects;
//! - **faults** ([`faults`]): throttling, 5xx, slow answers, dropped
//!   connections, refused tokens;
//! - **the demo world** ([`demo`]): both tenants, the partner's app, the
//!   namespace and the API, set up in one call.
//!
//! It is for tests and demos, not production: keys live in memory and are
//! gone when the process exits. [`standalone`] runs it as a program (the
//! `crosstenant-sandbox` binary) for clients in any language.
//!
//! This crate is server code and depends on nothing of the `crosstenant`
//! client: it has its own token limits, header names and parsing, so a
//! client mistake shows up as a failing test instead of being mirrored.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod demo;
pub mod directory;
pub mod eventhubs;
pub mod faults;
pub mod github;
pub mod identity;
pub mod jwt;
pub mod managed_identity;
pub mod standalone;
pub mod tls;

use directory::Directory;
use faults::Faults;
use jwt::TokenIssuer;
use std::sync::Arc;
use tls::SandboxCa;
use url::Url;

/// What every sandbox service shares: the CA its listeners present, the
/// directory, the token issuer (signing keys and JWKS) and the fault switches.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The CA that issued every listener's certificate.
    pub ca: Arc<SandboxCa>,
    /// Tenants, apps, service principals, app roles.
    pub directory: Arc<Directory>,
    /// Signs and verifies access tokens.
    pub issuer: TokenIssuer,
    /// Fault switches.
    pub faults: Arc<Faults>,
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox could not start: {0}")]
pub struct SandboxError(pub String);

/// A running sandbox. Cheap to clone; the listeners stop when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared,
    identity: identity::IdentityServer,
    eventhubs: eventhubs::EventHubsSandbox,
    api: api::AggregatorApi,
    managed_identity: managed_identity::ManagedIdentityServer,
    github: github::GitHubActionsOidc,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("authority_host", &self.authority_host().as_str())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts an empty sandbox: a CA, the identity provider, Event Hubs and
    /// the aggregator API, each on its own loopback port. Call inside a Tokio
    /// runtime.
    pub async fn start() -> Result<Self, SandboxError> {
        let ca = SandboxCa::generate().map_err(|e| SandboxError(format!("CA: {e}")))?;
        Self::start_with_ca(ca).await
    }

    /// Starts a sandbox whose listeners present certificates of `ca`, made
    /// beforehand: for a process that must install the CA in its trust
    /// store (say through `SSL_CERT_FILE`, which AMQP over TLS reads) before
    /// any thread starts.
    pub async fn start_with_ca(ca: SandboxCa) -> Result<Self, SandboxError> {
        let issuer = TokenIssuer::new().map_err(|e| SandboxError(format!("signing key: {e}")))?;
        let directory = Arc::new(Directory::default());
        directory.register_first_party(
            directory::EVENTHUBS_APP_ID,
            "Microsoft.EventHubs",
            directory::EVENTHUBS_RESOURCE,
        );
        let shared = Shared {
            ca: Arc::new(ca),
            directory,
            issuer,
            faults: Arc::new(Faults::default()),
        };
        let identity = identity::IdentityServer::start(&shared)
            .await
            .map_err(|e| SandboxError(format!("identity provider: {e}")))?;
        let eventhubs = eventhubs::EventHubsSandbox::start(&shared)
            .await
            .map_err(|e| SandboxError(format!("Event Hubs: {e}")))?;
        let api = api::AggregatorApi::start(&shared, identity.authority_host())
            .await
            .map_err(|e| SandboxError(format!("aggregator API: {e}")))?;
        let managed_identity = managed_identity::ManagedIdentityServer::start(&shared)
            .await
            .map_err(|e| SandboxError(format!("managed identity endpoint: {e}")))?;
        let github = github::GitHubActionsOidc::start(&shared)
            .await
            .map_err(|e| SandboxError(format!("GitHub Actions OIDC issuer: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                identity,
                eventhubs,
                api,
                managed_identity,
                github,
            }),
        })
    }

    /// The CA certificate (PEM) to add as a trusted root.
    pub fn ca_pem(&self) -> &str {
        self.inner.shared.ca.pem()
    }

    /// The identity provider's authority host, `https://127.0.0.1:{port}/`:
    /// what `AZURE_AUTHORITY_HOST` would be.
    pub fn authority_host(&self) -> Url {
        self.inner.identity.authority_host()
    }

    /// The directory, to add tenants, apps and grants.
    pub fn directory(&self) -> &Directory {
        &self.inner.shared.directory
    }

    /// The token issuer (signing keys, JWKS), e.g. to rotate keys.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.inner.shared.issuer
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.inner.shared.faults
    }

    /// Everything the services share.
    pub fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The identity provider (request counters, token lifetime).
    pub fn identity(&self) -> &identity::IdentityServer {
        &self.inner.identity
    }

    /// The Event Hubs service (namespaces, RBAC, stored events).
    pub fn eventhubs(&self) -> &eventhubs::EventHubsSandbox {
        &self.inner.eventhubs
    }

    /// The aggregator API.
    pub fn api(&self) -> &api::AggregatorApi {
        &self.inner.api
    }

    /// The managed identity endpoint (App Service protocol): declare hosts
    /// with their identities, count token requests.
    pub fn managed_identity(&self) -> &managed_identity::ManagedIdentityServer {
        &self.inner.managed_identity
    }

    /// The GitHub Actions-style OIDC issuer (request URL and token, the job
    /// its tokens describe, counters).
    pub fn github_actions(&self) -> &github::GitHubActionsOidc {
        &self.inner.github
    }
}

// The README's Rust example is compiled as a doctest, so it cannot drift
// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
