//! One token request, through azure_identity's `ClientSecretCredential` or
//! `ClientAssertionCredential`, with the answer kept for explaining.

use super::answer::{CaptureEntraAnswer, CapturedAnswer};
use super::assertion::{AssertionSource, ClientAuth};
use super::Inner;
use crate::error::Error;
use crate::error::{AssertionInfo, FederationError, Mismatch};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientMethodOptions;
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions,
};
use std::sync::Arc;

impl Inner {
    /// Options for the azure_identity credentials, built once: every token
    /// request shares one HTTPS connection pool.
    pub(super) fn client_options(&self) -> Result<azure_core::http::ClientOptions, Error> {
        let mut client_options = self.http.client_options(None)?;
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
        presented: &Arc<std::sync::Mutex<Option<AssertionInfo>>>,
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
                    presented: presented.clone(),
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

    pub(super) async fn fetch(&self, scope: &str) -> Result<AccessToken, Error> {
        let resolved = self.resolve().await?;
        let answer = Arc::new(CapturedAnswer::default());
        let method_options = ClientMethodOptions {
            context: azure_core::http::Context::new().with_value(answer.clone()),
        };
        let presented = Arc::new(std::sync::Mutex::new(None));
        let source = self.source(&resolved.tenant_id, resolved.options.clone(), &presented)?;
        let token = source
            .get_token(&[scope], Some(TokenRequestOptions { method_options }))
            .await
            .map_err(|e| {
                // Our own errors (an assertion source's) come back as they
                // were; otherwise the answer kept by the policy says most.
                if let Some(ours) = Error::from_azure(&e) {
                    return ours.clone();
                }
                match answer.take() {
                    Some(captured) => self.answer_error(
                        format!(
                            "token request to {}",
                            self.token_endpoint(&resolved.tenant_id)
                        ),
                        &resolved.tenant_id,
                        Some(scope),
                        captured,
                    ),
                    None => self.explain(&resolved.tenant_id, scope, e),
                }
            })
            .map_err(|e| {
                let presented = presented.lock().unwrap_or_else(|p| p.into_inner()).take();
                self.federation_error(e, presented)
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
}

impl Inner {
    /// Entra's refusal of an external assertion as a [`FederationError`]
    /// naming what was presented (its iss, sub and aud, never the
    /// assertion). An expired one is also dropped from the shared cache, so
    /// the next request fetches a new one.
    fn federation_error(&self, err: Error, presented: Option<AssertionInfo>) -> Error {
        let ClientAuth::External(external) = &self.auth else {
            return err;
        };
        let Error::Entra(entra) = err else {
            return err;
        };
        let Some(code) = entra.code() else {
            return Error::Entra(entra);
        };
        if code == 700024 {
            external.invalidate();
            return FederationError::AssertionExpired {
                client_id: self.client_id.clone(),
                presented,
                entra: Some(entra),
            }
            .into();
        }
        if code == 50166 {
            return FederationError::IssuerUnreachable {
                client_id: self.client_id.clone(),
                presented,
                entra,
            }
            .into();
        }
        match Mismatch::from_code(code) {
            Some(mismatch) => FederationError::NoMatchingCredential {
                mismatch,
                client_id: self.client_id.clone(),
                presented,
                expected_audience: external.audience.clone(),
                entra,
            }
            .into(),
            None => Error::Entra(entra),
        }
    }
}
