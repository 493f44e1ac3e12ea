//! Calling an API on behalf of a named client (the two-token scheme).
//! Placeholder: being built.

/// Why an aggregator call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AggregatorError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

impl AggregatorError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        false
    }
}
