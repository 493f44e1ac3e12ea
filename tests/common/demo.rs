//! The partner's credential for the sandbox's demo world. The sandbox shares
//! no code with the client, so building a `CrossTenantCredential` for its
//! demo app lives here, with the client's tests, examples and benches (each
//! includes this file).

use crosstenant::{CrossTenantCredential, Error};
use crosstenant_sandbox::demo::DemoWorld;
use std::sync::Arc;

/// The demo app's credential, built the way a partner builds one: the
/// resource owner's tenant, the app's client id and secret, the sandbox's
/// authority host and its CA added as a trusted root.
pub trait DemoCredential {
    /// The app's credential at the **resource owner's** tenant: the right way.
    fn credential(&self) -> Result<Arc<CrossTenantCredential>, Error>;
    /// The app's credential at `tenant` (e.g. the partner's own tenant: the
    /// classic mistake, whose tokens the resource owner's services refuse).
    fn credential_at(&self, tenant: &str) -> Result<Arc<CrossTenantCredential>, Error>;
}

impl DemoCredential for DemoWorld {
    fn credential(&self) -> Result<Arc<CrossTenantCredential>, Error> {
        self.credential_at(&self.owner.id)
    }

    fn credential_at(&self, tenant: &str) -> Result<Arc<CrossTenantCredential>, Error> {
        CrossTenantCredential::builder()
            .resource_tenant(tenant)
            .client_id(&self.app.app_id)
            .client_secret(self.client_secret())
            .authority_host(self.sandbox.authority_host().as_str())
            .root_certificates_pem(self.sandbox.ca_pem())
            .build()
    }
}
