//! The one seam between a client and its credential: get a token for a
//! scope, and drop one a service refused.
//!
//! Every client of this crate (the Event Hubs senders, the aggregator client,
//! the authorization policy under both) asks for tokens through
//! [`TokenSource`], which holds either this crate's
//! [`CrossTenantCredential`] or any `azure_core` [`TokenCredential`]. Only the
//! first can drop a refused token from its cache; the second is asked again
//! and may hand the same token back.
//!
//! One rule says whether a failure to get a token is **transient** (worth
//! trying again later), whatever the credential: this crate's own errors
//! keep their own answer ([`Error::is_transient`]); an error from another
//! credential is transient when azure_core calls it an I/O or connection
//! failure, or when it carries an HTTP answer of 408, 429 or 5xx (the
//! statuses azure_core's retry policy retries). Anything else (a refusal, a
//! configuration error) is not.

use super::CrossTenantCredential;
use crate::error::Error;
use azure_core::credentials::{AccessToken, TokenCredential};
use std::sync::Arc;

/// Where a client's tokens come from: the [`CrossTenantCredential`]
/// (preferred: its cache can drop a token a service refused, so the retry
/// gets a fresh one) or any `azure_core` [`TokenCredential`]. Made with
/// `.into()` from either `Arc`; every client builder takes
/// `impl Into<TokenSource>`.
#[derive(Clone)]
pub struct TokenSource(Source);

#[derive(Clone)]
enum Source {
    CrossTenant(Arc<CrossTenantCredential>),
    Other(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::CrossTenant(c) => f.debug_tuple("TokenSource").field(c).finish(),
            Source::Other(_) => f.write_str("TokenSource(<TokenCredential>)"),
        }
    }
}

impl From<Arc<CrossTenantCredential>> for TokenSource {
    fn from(c: Arc<CrossTenantCredential>) -> Self {
        Self(Source::CrossTenant(c))
    }
}

impl From<Arc<dyn TokenCredential>> for TokenSource {
    fn from(c: Arc<dyn TokenCredential>) -> Self {
        Self(Source::Other(c))
    }
}

impl TokenSource {
    /// A token for `scope`, with this crate's typed errors.
    pub(crate) async fn token(&self, scope: &str) -> Result<AccessToken, Error> {
        match &self.0 {
            Source::CrossTenant(c) => c.token(scope).await,
            Source::Other(c) => c
                .get_token(&[scope], None)
                .await
                .map_err(|e| from_other(scope, e)),
        }
    }

    /// After a service refused `rejected`: make the next [`token`](Self::token)
    /// for `scope` fetch a new one, where the credential allows it.
    pub(crate) fn invalidate(&self, scope: &str, rejected: &AccessToken) {
        if let Source::CrossTenant(c) = &self.0 {
            c.invalidate(scope, rejected);
        }
    }

    /// The credential as azure_core sees it, for azure_core clients
    /// (azure_messaging_eventhubs' producer).
    #[cfg(feature = "amqp")]
    pub(crate) fn as_token_credential(&self) -> Arc<dyn TokenCredential> {
        match &self.0 {
            Source::CrossTenant(c) => c.clone(),
            Source::Other(c) => c.clone(),
        }
    }

    /// The tenant and app of the token the credential hands out now for
    /// `scope`, for explaining a refusal. Never the token itself.
    #[cfg(any(feature = "amqp", feature = "https"))]
    pub(crate) async fn token_identity(&self, scope: &str) -> (String, String) {
        let unknown = || ("<unknown tenant>".to_string(), "<unknown app>".to_string());
        let Ok(token) = self.token(scope).await else {
            return unknown();
        };
        match crate::claims::TokenClaims::decode(token.token.secret()) {
            Ok(c) => (
                c.tenant_id().unwrap_or("<no tid>").to_string(),
                c.app_id().unwrap_or("<no appid>").to_string(),
            ),
            Err(_) => unknown(),
        }
    }
}

/// Another credential's error as ours, by the one transient rule of the
/// module docs.
fn from_other(scope: &str, e: azure_core::Error) -> Error {
    if let Some(ours) = Error::from_azure(&e) {
        return ours.clone();
    }
    use azure_core::error::ErrorKind;
    let transient = match e.kind() {
        ErrorKind::Io | ErrorKind::Connection => true,
        ErrorKind::HttpResponse { status, .. } => {
            matches!(u16::from(*status), 408 | 429 | 500..=599)
        }
        _ => false,
    };
    Error::transport_caused(format!("token request for {scope}"), e, transient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::TokenRequestOptions;

    #[derive(Debug)]
    struct Failing(azure_core::error::ErrorKind);

    #[async_trait::async_trait]
    impl TokenCredential for Failing {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(azure_core::Error::with_message(self.0.clone(), "no token"))
        }
    }

    #[tokio::test]
    async fn one_transient_rule_for_other_credentials() {
        use azure_core::error::ErrorKind;
        let cases = [
            (ErrorKind::Io, true),
            (ErrorKind::Connection, true),
            (ErrorKind::Credential, false),
            (
                ErrorKind::HttpResponse {
                    status: azure_core::http::StatusCode::TooManyRequests,
                    error_code: None,
                    raw_response: None,
                },
                true,
            ),
            (
                ErrorKind::HttpResponse {
                    status: azure_core::http::StatusCode::BadRequest,
                    error_code: None,
                    raw_response: None,
                },
                false,
            ),
        ];
        for (kind, transient) in cases {
            let source =
                TokenSource::from(Arc::new(Failing(kind.clone())) as Arc<dyn TokenCredential>);
            let err = source.token("https://x/.default").await.unwrap_err();
            assert_eq!(err.is_transient(), transient, "{kind:?}: {err}");
            assert!(err.to_string().contains("https://x/.default"), "{err}");
        }
    }
}
