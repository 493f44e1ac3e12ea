//! # crosstenant
//!
//! The partner side of cross-tenant service-to-service access on Microsoft
//! Entra ID: an application registered in the **partner's** tenant reaches
//! services in a **resource owner's** tenant with no SAS keys, no shared
//! passwords and no guest accounts.
//!
//! ## The story
//!
//! 1. The partner registers a **multi-tenant** app in its own tenant and
//!    hands the resource owner only its client id (not a secret).
//! 2. The resource owner creates a **service principal** for that client id
//!    in *their* tenant and grants it a role: "Azure Event Hubs Data Sender"
//!    on a namespace, or app roles on an API.
//! 3. The partner app asks the **resource owner's** authority
//!    (`https://login.microsoftonline.com/{resource tenant}/oauth2/v2.0/token`)
//!    for a token with the client-credentials grant, proving itself with its
//!    *own* secret, certificate or federated assertion. The token carries the
//!    resource tenant's `tid`; a token from the partner's home tenant would be
//!    refused (`401 SubCode=40100`).
//!
//! 4. It sends to the resource owner's Event Hub over AMQP or HTTPS
//!    ([`eventhubs`]), or, as an aggregator, calls the resource owner's API on
//!    behalf of a named client with two tokens ([`aggregator`]).
//!
//! [`CrossTenantCredential`] is step 3. It implements `azure_core`'s
//! `TokenCredential`, so it works with every Azure SDK for Rust client; it
//! checks each token's tenant and audience, explains Entra's `AADSTS…`
//! errors in terms of who must do what ([`credential::entra`]), and caches
//! tokens per scope with refresh ahead of expiry.
//!
//! ```no_run
//! # async fn demo() -> Result<(), crosstenant::Error> {
//! use crosstenant::CrossTenantCredential;
//!
//! let credential = CrossTenantCredential::builder()
//!     .resource_tenant("contoso.onmicrosoft.com") // the resource owner's tenant
//!     .client_id("00001111-aaaa-2222-bbbb-3333cccc4444") // the partner's app
//!     .client_secret(std::env::var("PARTNER_APP_SECRET").unwrap_or_default())
//!     .build()?;
//! let token = credential.token("https://eventhubs.azure.net/.default").await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! ## Modules
//!
//! - [`tenant`]: the resource tenant (GUID or domain) and the cloud.
//! - [`credential`]: the credential, certificates, Entra error hints; the
//!   secretless proofs (a managed identity, GitHub Actions OIDC) and
//!   [`PartnerApp`], one app serving several resource tenants.
//! - [`claims`]: a read-only view of a token's claims for checks.
//! - [`eventhubs`]: typed Event Hubs senders over AMQP and HTTPS.
//! - [`aggregator`]: calling an API on behalf of a named client with two
//!   tokens.
//! - [`http`]: trusted roots, timeouts and retries, handed to each client;
//!   the one authorization policy under the Event Hubs HTTPS sender and the
//!   aggregator client.
//! - [`error`]: every error, each answering [`Error::remedy`]: who must act
//!   (the partner, the resource owner, either) and what to do.
//!
//! The offline two-tenant world the tests, examples and benches run against
//! is its own crate, `crosstenant-sandbox`, which shares no code with this
//! one; the `crosstenant` command line is `crosstenant-cli`.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `amqp` | yes | Event Hubs over AMQP (azure_messaging_eventhubs) |
//! | `https` | yes | Event Hubs over the HTTPS REST API |
//! | `redis` | no | a fleet-wide shared token cache on Redis, behind the in-process one (`credential::SharedTokenCache`; see `docs/FLEET_CACHE.md`) |

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
pub mod tenant;

pub use claims::TokenClaims;
pub use credential::{CrossTenantCredential, PartnerApp};
pub use error::{Error, InvalidInput, Party, Remedy, Result};
pub use http::HttpSettings;
pub use tenant::{Cloud, ResourceTenant};

// The README's Rust examples are compiled as doctests, so they cannot drift
// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
