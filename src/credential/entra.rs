//! Entra ID's `AADSTS…` errors, explained for a cross-tenant setup.
//!
//! The types live in [`crate::error`] (errors are leaves that import nothing
//! from the modules they serve); they are re-exported here, where a reader of
//! the credential looks for them.

pub use crate::error::entra::{AnswerKind, EntraError, Hint, UnexpectedAnswer};
pub use crate::error::Party;
