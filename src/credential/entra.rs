//! Entra errors. Placeholder: being built.

/// An Entra error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EntraError(pub String);

impl EntraError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        false
    }
}
