//! How the partner's app proves itself, and how a proof becomes a client
//! assertion for azure_identity's `ClientAssertionCredential`: freshly
//! signed for certificates; for an external assertion (token file,
//! callback, managed identity, GitHub Actions) taken from its shared cache.
//!
//! Not here: loading certificates and signing (`certificate`), external
//! sources and their cache (`federated`), the token request itself
//! (`request`).

use super::certificate::{AssertionAlgorithm, CertificateSlot};
use super::federated::ExternalAssertion;
use crate::error::AssertionInfo;
use crate::error::Error;
use azure_core::credentials::Secret;
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use std::sync::{Arc, Mutex};

/// A boxed future returning a client assertion, for
/// [`CrossTenantCredentialBuilder::client_assertion`](super::CrossTenantCredentialBuilder::client_assertion).
pub type AssertionFuture = super::federated::CallbackFuture;

/// How the partner's app proves itself.
#[derive(Clone)]
pub(super) enum ClientAuth {
    Secret(Secret),
    Certificate {
        /// Fixed, or following its file (reloaded when replaced).
        certificate: Arc<CertificateSlot>,
        algorithm: AssertionAlgorithm,
        send_chain: bool,
    },
    /// An external assertion (file, callback, managed identity, GitHub
    /// Actions), its cache shared by every credential holding this `Arc`.
    External(Arc<ExternalAssertion>),
}

impl ClientAuth {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            ClientAuth::Secret(_) => "client secret",
            ClientAuth::Certificate { .. } => "certificate",
            ClientAuth::External(e) => e.source.kind(),
        }
    }

    pub(super) fn proof_kind(&self) -> super::ProofKind {
        use super::federated::ExternalSource;
        use super::ProofKind;
        match self {
            ClientAuth::Secret(_) => ProofKind::ClientSecret,
            ClientAuth::Certificate { .. } => ProofKind::Certificate,
            ClientAuth::External(e) => match &e.source {
                ExternalSource::File(_) => ProofKind::FederatedTokenFile,
                ExternalSource::Callback(_) => ProofKind::AssertionCallback,
                ExternalSource::ManagedIdentity(_) => ProofKind::ManagedIdentity,
                ExternalSource::GitHub { .. } => ProofKind::GitHubActionsOidc,
            },
        }
    }

    /// The external assertion's claims (through its cache); `None` for a
    /// secret or certificate.
    pub(super) async fn assertion_info(&self) -> Result<Option<AssertionInfo>, Error> {
        match self {
            ClientAuth::External(e) => e.get().await.map(|(_, info)| info),
            _ => Ok(None),
        }
    }

    /// How many times the external source was asked.
    pub(super) fn assertion_fetches(&self) -> u64 {
        match self {
            ClientAuth::External(e) => e.fetches(),
            _ => 0,
        }
    }
}

/// Supplies assertions to azure_identity's `ClientAssertionCredential`:
/// freshly signed for certificates, from the shared cache for external
/// ones. Never prints the assertion; keeps the claims of the external one
/// it handed out (`presented`), for explaining a refusal.
pub(super) struct AssertionSource {
    pub(super) auth: ClientAuth,
    pub(super) client_id: String,
    pub(super) token_endpoint: String,
    pub(super) presented: Arc<Mutex<Option<AssertionInfo>>>,
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
                .current()
                .await
                .sign_assertion(
                    &self.client_id,
                    &self.token_endpoint,
                    *algorithm,
                    *send_chain,
                )
                .map_err(Error::from),
            ClientAuth::External(external) => external.get().await.map(|(value, info)| {
                *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = info;
                value.secret().to_string()
            }),
            ClientAuth::Secret(_) => Err(Error::Assertion {
                source_name: "client secret".into(),
                reason: "a secret is not an assertion".into(),
            }),
        };
        result.map_err(Error::into_azure)
    }
}
