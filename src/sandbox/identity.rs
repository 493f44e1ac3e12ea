//! The sandbox's identity provider. Placeholder: being built.

use super::Shared;

/// The identity provider.
#[derive(Debug)]
pub struct IdentityServer {
    server: super::tls::HttpsServer,
}

impl std::fmt::Debug for super::tls::HttpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsServer").field("addr", &self.addr).finish()
    }
}

impl IdentityServer {
    /// Starts it.
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let server = super::tls::serve_https(&shared.ca, axum::Router::new()).await?;
        Ok(Self { server })
    }
    /// The authority host.
    pub fn authority_host(&self) -> url::Url {
        self.server.url()
    }
}
