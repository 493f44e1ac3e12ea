//! # crosstenant
//!
//! Partner-side SDK for cross-tenant service-to-service access on Microsoft
//! Entra ID. Being built; see the README.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregator;
pub mod claims;
pub mod credential;
pub mod error;
#[cfg(any(feature = "amqp", feature = "https"))]
pub mod eventhubs;
pub mod http;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod tenant;

pub use claims::TokenClaims;
pub use credential::CrossTenantCredential;
pub use error::{Error, InvalidInput, Result};
pub use http::HttpSettings;
pub use tenant::{Cloud, ResourceTenant};
