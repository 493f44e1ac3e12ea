//! How the partner's app proves itself, and how a proof becomes a client
//! assertion for azure_identity's `ClientAssertionCredential`: freshly
//! signed for certificates, re-read for token files, called for callbacks.
//!
//! Not here: loading certificates and signing (`certificate`), the token
//! request itself (`request`).

use super::certificate::{AssertionAlgorithm, CertificateSlot};
use crate::error::Error;
use azure_core::credentials::Secret;
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future returning a client assertion, for
/// [`CrossTenantCredentialBuilder::client_assertion`](super::CrossTenantCredentialBuilder::client_assertion).
pub type AssertionFuture =
    Pin<Box<dyn Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

pub(super) type AssertionCallback = Arc<dyn Fn() -> AssertionFuture + Send + Sync>;

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
    AssertionFile(PathBuf),
    AssertionCallback(AssertionCallback),
}

impl ClientAuth {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            ClientAuth::Secret(_) => "client secret",
            ClientAuth::Certificate { .. } => "certificate",
            ClientAuth::AssertionFile(_) => "federated token file",
            ClientAuth::AssertionCallback(_) => "client assertion callback",
        }
    }
}

/// Supplies assertions to azure_identity's `ClientAssertionCredential`:
/// freshly signed for certificates, re-read for token files, called for
/// callbacks. Never prints the assertion.
pub(super) struct AssertionSource {
    pub(super) auth: ClientAuth,
    pub(super) client_id: String,
    pub(super) token_endpoint: String,
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
