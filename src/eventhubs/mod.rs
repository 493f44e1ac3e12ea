//! Typed Event Hubs senders over AMQP and HTTPS. Placeholder: being built.

/// Why a send to Event Hubs failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EventHubsError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

impl EventHubsError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        false
    }
}
