//! The sandbox's aggregator API (the two-token scheme). Placeholder: being built.

use super::Shared;

/// The sandbox's aggregator API.
#[derive(Debug)]
pub struct AggregatorApi {}

impl AggregatorApi {
    /// Starts the API's HTTPS listener.
    pub async fn start(_shared: &Shared) -> std::io::Result<Self> {
        Ok(Self {})
    }
}
