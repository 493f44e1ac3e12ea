//! Certificates. Placeholder: being built.

/// Why a certificate could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub String);
