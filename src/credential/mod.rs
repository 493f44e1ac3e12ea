//! The cross-tenant credential. Placeholder: being built.

pub mod certificate;
pub mod entra;

/// A credential asking the resource owner's tenant for tokens.
#[derive(Debug)]
pub struct CrossTenantCredential {}
