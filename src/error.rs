//! The crate's one error type.
//!
//! Every variant says what went wrong, names the value or party involved and,
//! where someone can act on it, who must do what. No variant ever carries a
//! secret, a private key, a client assertion or an access token: values that
//! could be secret are named, never echoed.
//!
//! The type is `Clone` so one failed token request can be handed to every
//! caller that was waiting on it; causes from other crates are therefore kept
//! as text.

use crate::credential::entra::EntraError;
use std::fmt;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value handed to a builder or a call was refused before any request
    /// was made.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),

    /// Entra ID refused a token request (an `AADSTS…` error), explained.
    #[error("{0}")]
    Entra(#[from] Box<EntraError>),

    /// A token came back from a tenant other than the resource owner's. The
    /// resource owner's service would answer it with `401 SubCode=40100`.
    #[error(
        "the token for client {client_id} was issued by tenant {actual}, not by the resource \
         owner's tenant {expected}; the resource owner's services will reject it \
         (401 SubCode=40100). Check that the authority host and tenant point at the resource \
         owner's tenant, not the partner's home tenant"
    )]
    WrongTenant {
        /// The resource owner's tenant the credential was built for.
        expected: String,
        /// The `tid` claim of the token that came back.
        actual: String,
        /// The partner's client id.
        client_id: String,
    },

    /// A token came back for another audience than the one requested.
    #[error(
        "the token for scope {scope} has audience {actual}, not {expected}; the service would \
         reject it (40104 invalid audience). Request the scope `{expected}/.default`"
    )]
    WrongAudience {
        /// The scope that was requested.
        scope: String,
        /// The audience derived from the scope.
        expected: String,
        /// The `aud` claim of the token that came back.
        actual: String,
    },

    /// A JWT could not be read (see [`crate::claims`]).
    #[error(transparent)]
    Claims(#[from] crate::claims::ClaimsError),

    /// A certificate, key or PFX could not be used.
    #[error(transparent)]
    Certificate(#[from] crate::credential::certificate::CertificateError),

    /// A client assertion could not be obtained from its source.
    #[error("could not obtain a client assertion from {source_name}: {reason}")]
    Assertion {
        /// Where the assertion was to come from (a file path, "callback").
        source_name: String,
        /// What failed.
        reason: String,
    },

    /// A request could not be completed: connection refused, TLS failure,
    /// timeout, or a reply that could not be read.
    #[error("{operation} failed: {reason}")]
    Transport {
        /// What was being attempted, e.g. "token request to https://…".
        operation: String,
        /// Why it failed.
        reason: String,
        /// Whether trying again later may succeed.
        transient: bool,
    },

    /// Sending to Event Hubs failed; the inner error says which events were
    /// not accepted and why.
    #[cfg(any(feature = "amqp", feature = "https"))]
    #[error(transparent)]
    EventHubs(#[from] Box<crate::eventhubs::EventHubsError>),

    /// A call to an API through [`crate::aggregator`] failed.
    #[error(transparent)]
    Aggregator(#[from] Box<crate::aggregator::AggregatorError>),
}

impl Error {
    /// Whether trying the same operation again later may succeed (throttling,
    /// a busy or unreachable service). Configuration and permission errors are
    /// not transient: retrying them only hammers the service.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { transient, .. } => *transient,
            Error::Entra(e) => e.is_transient(),
            #[cfg(any(feature = "amqp", feature = "https"))]
            Error::EventHubs(e) => e.is_transient(),
            Error::Aggregator(e) => e.is_transient(),
            _ => false,
        }
    }

    pub(crate) fn transport(
        operation: impl Into<String>,
        reason: impl fmt::Display,
        transient: bool,
    ) -> Self {
        Error::Transport {
            operation: operation.into(),
            reason: reason.to_string(),
            transient,
        }
    }

    /// Converts into the error type of `azure_core`, keeping this error as
    /// the source so callers can get it back with
    /// [`Error::from_azure`].
    pub(crate) fn into_azure(self) -> azure_core::Error {
        use azure_core::error::ErrorKind;
        let kind = match &self {
            Error::Transport { .. } => ErrorKind::Io,
            _ => ErrorKind::Credential,
        };
        let message = self.to_string();
        azure_core::Error::with_error(kind, self, message)
    }

    /// Recovers this crate's error from an `azure_core::Error` produced by
    /// the [`CrossTenantCredential`](crate::CrossTenantCredential)'s
    /// `TokenCredential` implementation (for instance inside another Azure
    /// SDK client), if it carries one.
    pub fn from_azure(err: &azure_core::Error) -> Option<&Error> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Some(ours);
            }
            if let Some(az) = e.downcast_ref::<azure_core::Error>() {
                if let Some(inner) = az.get_ref() {
                    if let Some(ours) = inner.downcast_ref::<Error>() {
                        return Some(ours);
                    }
                }
            }
            current = e.source();
        }
        None
    }
}

/// A value that was refused before anything was sent.
///
/// `field` names the builder method or variable, `value` shows what was given
/// (or `<redacted>` when the value could be a secret), and `fix` says what to
/// give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} `{value}`: {fix}")]
pub struct InvalidInput {
    /// The setting or argument, e.g. `resource_tenant`, `AZURE_CLIENT_ID`.
    pub field: String,
    /// The value given, shortened, or `<redacted>` for secrets.
    pub value: String,
    /// What is wrong and what to give instead.
    pub fix: String,
}

impl InvalidInput {
    /// A refusal naming a non-secret value (shortened to 120 characters,
    /// control characters escaped).
    pub fn new(field: impl Into<String>, value: &str, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: shorten(value),
            fix: fix.into(),
        }
    }

    /// A refusal of a value that may be secret: the value is never shown.
    pub fn secret(field: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: "<redacted>".into(),
            fix: fix.into(),
        }
    }
}

/// An error and its causes on one line, each cause once (azure_core and
/// reqwest often repeat their inner error in their own text).
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        current = e.source();
    }
    out
}

/// Shortens a user-supplied value for an error message and escapes control
/// characters, so a CR/LF in a value cannot forge log lines.
pub(crate) fn shorten(value: &str) -> String {
    shorten_to(value, 120)
}

/// [`shorten`] to `max` characters.
pub(crate) fn shorten_to(value: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        let e = InvalidInput::new("x", "a\r\nb", "fix it");
        assert_eq!(e.value, "a\\r\\nb");
        let long = "y".repeat(500);
        assert!(InvalidInput::new("x", &long, "f").value.chars().count() <= 121);
    }

    #[test]
    fn crate_error_survives_the_trip_through_azure_core() {
        let ours = Error::WrongTenant {
            expected: "a".into(),
            actual: "b".into(),
            client_id: "c".into(),
        };
        let az = ours.into_azure();
        assert!(matches!(
            Error::from_azure(&az),
            Some(Error::WrongTenant { .. })
        ));
        assert!(az.to_string().contains("40100"));
    }
}
