//! The sandbox's Event Hubs service (AMQP 1.0 with CBS, and HTTPS).
//! Placeholder: being built.

use super::Shared;

/// The sandbox's Event Hubs service.
#[derive(Debug)]
pub struct EventHubsSandbox {}

impl EventHubsSandbox {
    /// Starts the service's listeners.
    pub async fn start(_shared: &Shared) -> std::io::Result<Self> {
        Ok(Self {})
    }
}
