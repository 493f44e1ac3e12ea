//! The crate's errors, one leaf module.
//!
//! Every error says what went wrong, names the value or party involved and
//! answers [`remedy`](Error::remedy): who must act (the partner, the resource
//! owner, or either) and what to do. The families live one per file —
//! [`entra`] (token requests), [`credential`] (certificates, JWTs),
//! [`eventhubs`](mod@eventhubs) (sending), [`aggregator`] (API calls),
//! [`InvalidInput`] (refused values) — and the modules they serve re-export
//! them (`crosstenant::eventhubs::EventHubsError` and so on). This module
//! imports nothing from those modules, so the error types can be read, and
//! changed, without the code that raises them.
//!
//! No error ever carries a secret, a private key, a client assertion or an
//! access token: values that could be secret are named, never echoed.
//!
//! The types are `Clone` so one failed token request can be handed to every
//! caller that was waiting on it; a cause from another crate (reqwest,
//! azure_core) is therefore shared behind an `Arc`, and stays reachable
//! through [`std::error::Error::source`] for callers who downcast.

pub mod aggregator;
pub mod credential;
pub mod entra;
#[cfg(any(feature = "amqp", feature = "https"))]
pub mod eventhubs;
pub mod federation;
mod input;

pub use aggregator::{AggregatorError, TokenPurpose};
pub use credential::{CertificateError, ClaimsError};
pub use entra::{EntraError, UnexpectedAnswer};
#[cfg(any(feature = "amqp", feature = "https"))]
pub use eventhubs::EventHubsError;
pub use federation::{AssertionInfo, FederationError, Mismatch};
pub use input::InvalidInput;

use std::fmt;
use std::sync::Arc;

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
        "the token for scope {scope} has audience {actual}, not {expected} ({case}); the \
         service would reject it (40104 invalid audience). Request the scope \
         `{expected}/.default`"
    )]
    WrongAudience {
        /// The scope that was requested.
        scope: String,
        /// The audience derived from the scope.
        expected: String,
        /// The `aud` claim of the token that came back.
        actual: String,
        /// Which case of Microsoft's access-token claims reference was met:
        /// a v1.0 token (App ID URI or client id) or a v2.0 token (always the
        /// resource's client id).
        case: String,
    },

    /// A JWT could not be read (see [`crate::claims`]).
    #[error(transparent)]
    Claims(#[from] ClaimsError),

    /// A certificate, key or PFX could not be used.
    #[error(transparent)]
    Certificate(#[from] CertificateError),

    /// A client assertion could not be obtained from its source.
    #[error("could not obtain a client assertion from {source_name}: {reason}")]
    Assertion {
        /// Where the assertion was to come from (a file path, "callback").
        source_name: String,
        /// What failed.
        reason: String,
    },

    /// A secretless proof failed: the managed identity or GitHub Actions
    /// could not give an assertion, or Entra refused the one presented (no
    /// matching federated credential, expired). Always the partner's to fix.
    #[error(transparent)]
    Federation(Box<FederationError>),

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
        /// The error underneath (reqwest's, azure_core's), for callers who
        /// downcast it.
        #[source]
        cause: Option<Cause>,
    },

    /// The token endpoint answered with something that is not Entra ID's
    /// JSON: a throttling answer with no body, a proxy's HTML page, a body
    /// that is not JSON at all.
    #[error(transparent)]
    UnexpectedAnswer(Box<UnexpectedAnswer>),

    /// Sending to Event Hubs failed; the inner error says which events were
    /// not accepted and why.
    #[cfg(any(feature = "amqp", feature = "https"))]
    #[error(transparent)]
    EventHubs(Box<EventHubsError>),

    /// A call to an API through [`crate::aggregator`] failed.
    #[error(transparent)]
    Aggregator(Box<AggregatorError>),
}

/// Who must act to fix a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The partner: the team that owns the app registration and runs this code.
    Partner,
    /// The resource owner: the tenant that owns the Event Hub or the API.
    ResourceOwner,
    /// Either side: the cause depends on which of them got it wrong.
    Either,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Partner => "the partner (owner of the app registration)",
            Party::ResourceOwner => "the resource owner (admin of the resource tenant)",
            Party::Either => "the partner or the resource owner",
        })
    }
}

/// Who must act on an error, and what they must do: the answer of every
/// error's `remedy()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// Who must act.
    pub party: Party,
    /// What to do, in a sentence naming the tenant, app, scope or setting.
    pub action: String,
}

impl Remedy {
    pub(crate) fn new(party: Party, action: impl Into<String>) -> Self {
        Self {
            party,
            action: action.into(),
        }
    }
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} — {}", self.party, self.action)
    }
}

/// The error from another crate underneath one of ours (reqwest's,
/// azure_core's), shared so our errors stay `Clone`. Its
/// [`source`](std::error::Error::source) is that error itself, so a caller
/// walking the chain can downcast it.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// The error underneath.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Two causes are equal when they are the same error (not merely the same
/// text), so errors holding one can stay `PartialEq`.
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cause {}

#[cfg(any(feature = "amqp", feature = "https"))]
impl From<EventHubsError> for Error {
    fn from(e: EventHubsError) -> Self {
        Error::EventHubs(Box::new(e))
    }
}

impl From<AggregatorError> for Error {
    fn from(e: AggregatorError) -> Self {
        Error::Aggregator(Box::new(e))
    }
}

impl From<EntraError> for Error {
    fn from(e: EntraError) -> Self {
        Error::Entra(Box::new(e))
    }
}

impl From<FederationError> for Error {
    fn from(e: FederationError) -> Self {
        Error::Federation(Box::new(e))
    }
}

impl From<UnexpectedAnswer> for Error {
    fn from(e: UnexpectedAnswer) -> Self {
        Error::UnexpectedAnswer(Box::new(e))
    }
}

impl Error {
    /// Whether trying the same operation again later may succeed (throttling,
    /// a busy or unreachable service). Configuration and permission errors are
    /// not transient: retrying them only hammers the service.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { transient, .. } => *transient,
            Error::Entra(e) => e.is_transient(),
            Error::Federation(e) => e.is_transient(),
            Error::UnexpectedAnswer(e) => e.is_transient(),
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
            cause: None,
        }
    }

    /// A transport failure keeping `cause` reachable through `source()`.
    pub(crate) fn transport_caused(
        operation: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
        transient: bool,
    ) -> Self {
        Error::Transport {
            operation: operation.into(),
            reason: chain(&cause),
            transient,
            cause: Some(Cause::new(cause)),
        }
    }

    /// Who must act on this error, and what to do. `None` only where the
    /// error itself says all there is (a service's unexplained answer).
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Error::InvalidInput(e) => Some(e.remedy()),
            Error::Entra(e) => Some(e.remedy()),
            Error::Federation(e) => Some(e.remedy()),
            Error::UnexpectedAnswer(e) => Some(e.remedy()),
            Error::WrongTenant { expected, .. } => Some(Remedy::new(
                Party::Partner,
                format!(
                    "point the credential's authority host and resource tenant \
                     (AZURE_AUTHORITY_HOST, AZURE_TENANT_ID) at the resource owner's tenant \
                     {expected}"
                ),
            )),
            Error::WrongAudience { expected, .. } => Some(Remedy::new(
                Party::Partner,
                format!("request the scope {expected}/.default"),
            )),
            Error::Claims(e) => Some(e.remedy()),
            Error::Certificate(e) => Some(e.remedy()),
            Error::Assertion { source_name, .. } => Some(Remedy::new(
                Party::Partner,
                format!(
                    "fix the assertion source ({source_name}): it must give the workload's \
                     current token"
                ),
            )),
            Error::Transport { transient, .. } => Some(Remedy::new(
                Party::Partner,
                if *transient {
                    "retry later; if it persists, check that this machine reaches the service \
                     (DNS, firewall, proxy)"
                } else {
                    "check that this machine reaches the service (DNS, firewall, proxy) and \
                     trusts its certificate (add a private CA with \
                     HttpSettings::add_root_certificates_pem or SSL_CERT_FILE)"
                },
            )),
            #[cfg(any(feature = "amqp", feature = "https"))]
            Error::EventHubs(e) => Some(e.remedy()),
            Error::Aggregator(e) => Some(e.remedy()),
        }
    }

    /// The refused value, if this is [`Error::InvalidInput`].
    pub fn as_invalid_input(&self) -> Option<&InvalidInput> {
        match self {
            Error::InvalidInput(e) => Some(e),
            _ => None,
        }
    }

    /// Entra's refusal of a token request, if this is one. Also found
    /// inside an aggregator call that could not get its token, and inside a
    /// refused federated assertion ([`Error::Federation`]).
    pub fn as_entra(&self) -> Option<&EntraError> {
        match self {
            Error::Entra(e) => Some(e),
            Error::Federation(e) => e.entra(),
            Error::Aggregator(e) => match &**e {
                AggregatorError::Token { source, .. } => source.as_entra(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Why a secretless proof failed, if this is such an error (also inside
    /// an aggregator call that could not get its token).
    pub fn as_federation(&self) -> Option<&FederationError> {
        match self {
            Error::Federation(e) => Some(e),
            Error::Aggregator(e) => match &**e {
                AggregatorError::Token { source, .. } => source.as_federation(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The token endpoint's answer that was not Entra's JSON, if this is one.
    pub fn as_unexpected_answer(&self) -> Option<&UnexpectedAnswer> {
        match self {
            Error::UnexpectedAnswer(e) => Some(e),
            _ => None,
        }
    }

    /// Why a send to Event Hubs failed, if this is such an error.
    #[cfg(any(feature = "amqp", feature = "https"))]
    pub fn as_eventhubs(&self) -> Option<&EventHubsError> {
        match self {
            Error::EventHubs(e) => Some(e),
            _ => None,
        }
    }

    /// Why an aggregator call failed, if this is such an error.
    pub fn as_aggregator(&self) -> Option<&AggregatorError> {
        match self {
            Error::Aggregator(e) => Some(e),
            _ => None,
        }
    }

    /// Converts into the error type of `azure_core`, keeping this error as
    /// the source so callers can get it back with
    /// [`Error::from_azure`].
    pub(crate) fn into_azure(self) -> azure_core::Error {
        use azure_core::error::ErrorKind;
        let kind = match &self {
            Error::Transport { .. } | Error::UnexpectedAnswer(_) => ErrorKind::Io,
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
    fn a_password_in_a_url_is_never_shown_and_the_rest_is_kept() {
        for (given, shown) in [
            (
                "https://partner:hunter2@api.example.com/v1",
                "https://partner:<redacted>@api.example.com/v1",
            ),
            (
                "https://:hunter2@api.example.com",
                "https://:<redacted>@api.example.com",
            ),
            // Not a URL the url crate reads: a `/` and an `@` in the password.
            (
                "amqps://user:hun/ter@2@ns.servicebus.windows.net",
                "amqps://user:<redacted>@ns.servicebus.windows.net",
            ),
            // Several hosts, as Redis Sentinel URLs have.
            (
                "redis+sentinel://:hunter2@h1:26379,h2:26379/mymaster",
                "redis+sentinel://:<redacted>@h1:26379,h2:26379/mymaster",
            ),
        ] {
            let e = InvalidInput::new("endpoint", given, "fix");
            assert_eq!(e.value, shown, "{given}");
            assert!(!e.to_string().contains("hunter"), "{e}");
        }
        // A password and an `@` in the path: more is hidden, never less.
        for given in [
            "https://partner:hunter2@api.example.com/p@v1",
            "https://partner:hunter2@api.example.com:bad/",
        ] {
            let e = InvalidInput::new("endpoint", given, "fix");
            assert!(!e.to_string().contains("hunter"), "{e}");
        }
        // No password: shown as given, not normalized.
        for given in [
            "https://partner@api.example.com",
            "http://api.example.com:8080/p@v1",
            "user@contoso.com",
            "contoso.onmicrosoft.com",
        ] {
            let e = InvalidInput::new("endpoint", given, "fix");
            assert_eq!(e.value, given);
        }
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

    #[cfg(any(feature = "amqp", feature = "https"))]
    #[test]
    fn unauthorized_names_the_token_tenant_and_both_sides_fixes() {
        let err = Error::from(EventHubsError::Unauthorized {
            namespace: "ns.servicebus.windows.net".into(),
            hub: "telemetry".into(),
            token_tenant: "home-tenant-id".into(),
            app_id: "app-id".into(),
            detail: "SubCode=40100: Unauthorized".into(),
        });
        let remedy = err.remedy().unwrap();
        assert_eq!(remedy.party, Party::Either);
        assert!(remedy.action.contains("home-tenant-id"), "{remedy}");
        assert!(
            remedy.action.contains("partner's own home tenant"),
            "{remedy}"
        );
        assert!(
            remedy.action.contains("Azure Event Hubs Data Sender"),
            "{remedy}"
        );
        let text = err.to_string();
        assert!(text.contains("partner's own home tenant"), "{text}");
        assert!(text.contains("resource_tenant"), "{text}");
        assert!(!text.contains("belongs to"), "{text}");
        assert!(err.as_eventhubs().is_some() && err.as_aggregator().is_none());
    }

    #[test]
    fn every_error_answers_who_acts() {
        let input = Error::from(InvalidInput::new("hub", "a/b", "give a hub name"));
        let r = input.remedy().unwrap();
        assert_eq!(r.party, Party::Partner);
        assert!(r.action.contains("give a hub name"), "{r}");
        assert!(input.as_invalid_input().is_some());
        let forbidden = Error::from(AggregatorError::Forbidden {
            method: "GET".into(),
            url: "https://api/x".into(),
            client: "c".into(),
            mode: "on behalf of",
            reason: Some("no role c.Read".into()),
        });
        assert_eq!(forbidden.remedy().unwrap().party, Party::ResourceOwner);
        let body = br#"{"error":"invalid_client","error_codes":[7000229]}"#;
        let entra = EntraError::parse(400, body, "t", "c", None).unwrap();
        let inside = Error::from(AggregatorError::Token {
            purpose: TokenPurpose::Api,
            scope: "api://x/.default".into(),
            source: Box::new(entra.into()),
        });
        assert_eq!(inside.as_entra().unwrap().code(), Some(7000229));
        assert_eq!(inside.remedy().unwrap().party, Party::ResourceOwner);
    }

    #[test]
    fn a_transport_cause_stays_reachable_for_downcasting() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::transport_caused("token request to https://login", io, true);
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut found = false;
        while let Some(e) = current {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                found = io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            current = e.source();
        }
        assert!(found, "io::Error not reachable through source()");
        assert!(err.to_string().contains("refused"), "{err}");
        let cloned = err.clone();
        assert!(cloned.is_transient());
    }
}
