//! Why an aggregator call failed, in terms the caller can act on.
//!
//! Every variant names the method, the URL (never a query string: the client
//! sends none) and, where relevant, the client acted for. No variant carries a
//! token: texts copied from an answer are cut short, and any token the call
//! sent is blanked out of them before they are kept.

use super::{Cause, Party, Remedy};

/// Which token could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenPurpose {
    /// The API token (`Authorization: Bearer …`, scope `{API App ID URI}/.default`).
    Api,
    /// The client-scoped secondary token for this client id.
    Secondary(String),
}

impl std::fmt::Display for TokenPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenPurpose::Api => f.write_str("the API token"),
            TokenPurpose::Secondary(client) => {
                write!(f, "the secondary token for client {client}")
            }
        }
    }
}

/// Why an aggregator call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AggregatorError {
    /// The API answered `403 Forbidden`: the caller is known but not allowed.
    /// `reason` is the API's `ForbidReason`, when its body carries one.
    #[error(
        "the API refused {method} {url} ({mode} client {client}) with 403 Forbidden: {}. \
         Permissions live in Entra ID: API roles are granted to your app by the API owner's \
         tenant admin, client roles (such as {client}.Read) by the client",
        reason.as_deref().unwrap_or("no reason given")
    )]
    Forbidden {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// The client id in the path.
        client: String,
        /// `on behalf of` or `as` (the caller acting for itself).
        mode: &'static str,
        /// The API's `ForbidReason`, if any.
        reason: Option<String>,
    },

    /// The API answered `401 Unauthorized` even after one token refresh and
    /// one retry (or the credential could not give a different token).
    #[error(
        "the API refused the API token for {method} {url} with 401 Unauthorized{}{}; check that \
         the API App ID URI (scope {scope}) is the API's and that the token comes from the API \
         owner's tenant",
        challenge.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        if *refreshed { ", after one refresh and retry" } else { "" }
    )]
    Unauthorized {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// The API token's scope.
        scope: String,
        /// The `WWW-Authenticate` challenge, shortened.
        challenge: Option<String>,
        /// Whether a fresh token was tried.
        refreshed: bool,
    },

    /// Any other unsuccessful status (after the transport's own retries for
    /// 408, 429 and 5xx).
    #[error("{method} {url} answered HTTP {status}: {excerpt}")]
    Status {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body, tokens blanked out.
        excerpt: String,
    },

    /// A successful answer whose body is not the JSON the caller asked for.
    #[error(
        "{method} {url} answered HTTP {status} with a body that is not the expected JSON: {reason}"
    )]
    Decode {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// The status code.
        status: u16,
        /// What serde said.
        reason: String,
    },

    /// The request body could not be serialized to JSON.
    #[error("the body for {method} {url} could not be serialized to JSON: {reason}")]
    Encode {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// What serde said.
        reason: String,
    },

    /// The call could not be completed: connection refused, TLS failure,
    /// timeout, dropped connection (after the transport's retries).
    #[error("{method} {url} failed: {reason}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
        /// Whether trying again later may succeed.
        transient: bool,
        /// The error underneath (azure_core's, reqwest's).
        #[source]
        cause: Option<Cause>,
    },

    /// A token could not be obtained from the credential.
    #[error("could not get {purpose} (scope {scope}): {source}")]
    Token {
        /// Which token.
        purpose: TokenPurpose,
        /// The scope asked for.
        scope: String,
        /// The credential's error.
        #[source]
        source: Box<super::Error>,
    },
}

impl AggregatorError {
    /// Whether trying again later may succeed: throttling, a busy or
    /// unreachable API, or a transient token failure. A 401 or 403 is not
    /// transient: the grant must change first.
    pub fn is_transient(&self) -> bool {
        match self {
            AggregatorError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            AggregatorError::Transport { transient, .. } => *transient,
            AggregatorError::Token { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// Who must act, and what to do.
    pub fn remedy(&self) -> Remedy {
        match self {
            AggregatorError::Forbidden { reason, .. } => Remedy::new(
                Party::ResourceOwner,
                format!(
                    "grant what the API's reason names ({}): API roles come from the API owner's \
                     tenant admin, client roles from the client",
                    reason.as_deref().unwrap_or("no reason given")
                ),
            ),
            AggregatorError::Unauthorized { scope, .. } => Remedy::new(
                Party::Partner,
                format!(
                    "check that {scope} is the API's App ID URI and that the credential's \
                     resource tenant (AZURE_TENANT_ID) is the API owner's tenant"
                ),
            ),
            AggregatorError::Token { source, .. } => source
                .remedy()
                .unwrap_or_else(|| Remedy::new(Party::Either, "see the token error above")),
            AggregatorError::Encode { .. } | AggregatorError::Decode { .. } => Remedy::new(
                Party::Partner,
                "match the body types to the API's JSON contract",
            ),
            _ => Remedy::new(
                Party::Either,
                "check the API's URL and that it is up; retry if it was transient",
            ),
        }
    }

    /// The HTTP status the API answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AggregatorError::Forbidden { .. } => Some(403),
            AggregatorError::Unauthorized { .. } => Some(401),
            AggregatorError::Status { status, .. } | AggregatorError::Decode { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The API's `ForbidReason` of a 403, when it gave one.
    pub fn forbid_reason(&self) -> Option<&str> {
        match self {
            AggregatorError::Forbidden { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }
}
