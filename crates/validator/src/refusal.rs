//! Why a request was refused, as typed values: each check of the validator
//! has its own variant, so a test (or a log) can tell which one fired. Also
//! the HTTP answer each refusal maps to, without any web framework.
//!
//! The texts name claims and configured values (tenant ids, app ids, roles,
//! audiences), never a token and never a key.

use http::{header, HeaderValue, StatusCode};

/// What is wrong with one token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenProblem {
    /// Not a compact JWT, or a claim the validator needs is missing or of
    /// the wrong type.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// Larger than the validator reads.
    #[error("the token is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Its `alg` is not one the validator is configured for (`none` never is).
    #[error("the token's signature algorithm {alg:?} is not accepted")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// Its header names no `kid`.
    #[error("the token's header names no signing key (kid), so its signature cannot be checked")]
    NoKeyId,
    /// Its `kid` is not among the tenant's published keys, even after the
    /// (rate-limited) re-fetch: a forged or retired key.
    #[error(
        "the token's signature is invalid: its signing key {kid} is not published by the tenant"
    )]
    UnknownKey {
        /// The header's `kid`.
        kid: String,
    },
    /// The tenant's keys could not be fetched and none are known yet.
    #[error("the tenant's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    /// The signature does not verify: tampered with, or signed by another key.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The issuer is not the cloud's issuer for the token's tenant.
    #[error("the token's issuer {issuer} is not an issuer of its tenant {tenant}")]
    WrongIssuer {
        /// The token's `iss`.
        issuer: String,
        /// The token's `tid`.
        tenant: String,
    },
    /// Issued by a tenant that is not on the allow-list.
    #[error("the token was issued by tenant {tenant}, which this API does not accept")]
    TenantNotAllowed {
        /// The token's `tid`.
        tenant: String,
    },
    /// Issued for another audience.
    #[error("the token's audience {actual} is not {expected}")]
    WrongAudience {
        /// The token's `aud`.
        actual: String,
        /// The audiences accepted here, joined with `or`.
        expected: String,
    },
    /// Past `exp` (beyond the skew allowed).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (beyond the skew allowed).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A delegated (user) token: it has `scp`, or `idtyp` other than `app`.
    #[error("the token is not an app-only token ({0})")]
    NotAppOnly(String),
    /// It names no caller (`appid` in v1 tokens, `azp` in v2 tokens).
    #[error("the token names no calling application ({claim})")]
    NoCaller {
        /// The claim that was missing.
        claim: &'static str,
    },
}

impl TokenProblem {
    /// A short stable code, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenProblem::Malformed(_) => "malformed",
            TokenProblem::TooLarge { .. } => "too_large",
            TokenProblem::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            TokenProblem::NoKeyId => "no_key_id",
            TokenProblem::UnknownKey { .. } => "unknown_key",
            TokenProblem::KeysUnavailable(_) => "keys_unavailable",
            TokenProblem::BadSignature => "bad_signature",
            TokenProblem::WrongIssuer { .. } => "wrong_issuer",
            TokenProblem::TenantNotAllowed { .. } => "tenant_not_allowed",
            TokenProblem::WrongAudience { .. } => "wrong_audience",
            TokenProblem::Expired => "expired",
            TokenProblem::NotYetValid => "not_yet_valid",
            TokenProblem::NotAppOnly(_) => "not_app_only",
            TokenProblem::NoCaller { .. } => "no_caller",
        }
    }
}

/// Why a request was refused. [`status`](Self::status) is `401` for the
/// caller's token, `403` for everything after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `Authorization: Bearer` token.
    #[error("no bearer token for the API was presented in the Authorization header")]
    NoCallerToken,
    /// The caller's token failed a check.
    #[error("the API token was refused: {0}")]
    CallerToken(TokenProblem),
    /// The route names a client this API does not know.
    #[error("no client {client} is known to this API")]
    UnknownClient {
        /// The client id from the route.
        client: String,
    },
    /// The route has no client parameter (a wiring mistake in the API).
    #[error("the route has no {param} parameter naming the client")]
    NoClientInRoute {
        /// The parameter name looked for.
        param: String,
    },
    /// The HTTP method is mapped to no access.
    #[error("method {method} is not allowed on this API")]
    MethodNotMapped {
        /// The method.
        method: String,
    },
    /// The caller lacks the API role the method needs.
    #[error(
        "app {caller} holds no {role} role on this API (roles: [{roles}]); the API's tenant \
         admin must grant it"
    )]
    CallerLacksApiRole {
        /// The caller's client id.
        caller: String,
        /// The role needed.
        role: String,
        /// The roles the caller holds, comma-separated.
        roles: String,
    },
    /// Someone other than the client calls without a secondary token.
    #[error(
        "app {caller} is not client {client}; acting on its behalf needs a secondary token for \
         {audience} in the {header} header"
    )]
    NoSecondaryToken {
        /// The caller's client id.
        caller: String,
        /// The client's name.
        client: String,
        /// The client's first audience (its App ID URI).
        audience: String,
        /// The header it must come in.
        header: String,
    },
    /// The secondary token failed a check.
    #[error("the secondary token was refused: {0}")]
    SecondaryToken(TokenProblem),
    /// The secondary token comes from another tenant than the caller's.
    #[error("the secondary token was issued by tenant {tenant}, not by the caller's tenant {caller_tenant}")]
    SecondaryFromOtherTenant {
        /// The secondary token's `tid`.
        tenant: String,
        /// The caller token's `tid`.
        caller_tenant: String,
    },
    /// The secondary token was issued to another application.
    #[error("the secondary token was issued to app {issued_to}, not to the caller {caller}")]
    SecondaryForOtherCaller {
        /// The secondary token's `appid`/`azp`.
        issued_to: String,
        /// The caller token's `appid`/`azp`.
        caller: String,
    },
    /// The client did not grant the caller the role the method needs.
    #[error(
        "client {client} granted app {caller} the roles [{roles}], not {role}, which this call \
         needs"
    )]
    SecondaryLacksClientRole {
        /// The client's name.
        client: String,
        /// The caller's client id.
        caller: String,
        /// The role needed.
        role: String,
        /// The roles granted, comma-separated.
        roles: String,
    },
}

impl Refusal {
    /// `401` for a missing or invalid caller token, `500` for a route
    /// without a client, `403` for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCallerToken | Refusal::CallerToken(_) => StatusCode::UNAUTHORIZED,
            Refusal::NoClientInRoute { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// A short stable code naming the check that fired, such as
    /// `caller_token.expired` or `secondary_token.bad_signature`.
    pub fn code(&self) -> String {
        match self {
            Refusal::NoCallerToken => "no_caller_token".into(),
            Refusal::CallerToken(p) => format!("caller_token.{}", p.code()),
            Refusal::UnknownClient { .. } => "unknown_client".into(),
            Refusal::NoClientInRoute { .. } => "no_client_in_route".into(),
            Refusal::MethodNotMapped { .. } => "method_not_mapped".into(),
            Refusal::CallerLacksApiRole { .. } => "caller_lacks_api_role".into(),
            Refusal::NoSecondaryToken { .. } => "no_secondary_token".into(),
            Refusal::SecondaryToken(p) => format!("secondary_token.{}", p.code()),
            Refusal::SecondaryFromOtherTenant { .. } => "secondary_from_other_tenant".into(),
            Refusal::SecondaryForOtherCaller { .. } => "secondary_for_other_caller".into(),
            Refusal::SecondaryLacksClientRole { .. } => "secondary_lacks_client_role".into(),
        }
    }

    /// The `WWW-Authenticate` challenge of a `401` (RFC 6750 section 3):
    /// without an error code when no token was presented, with
    /// `error="invalid_token"` when it was refused.
    pub fn www_authenticate(&self, realm: &str) -> Option<String> {
        let realm = quote(realm);
        match self {
            Refusal::NoCallerToken => Some(format!("Bearer realm=\"{realm}\"")),
            Refusal::CallerToken(_) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                quote(&self.to_string())
            )),
            _ => None,
        }
    }

    /// The JSON body: `{"ForbidReason": "…"}` for a `403` (the reference
    /// two-token sample's shape), `{"error": …, "error_description": …}`
    /// otherwise.
    pub fn body(&self) -> serde_json::Value {
        match self.status() {
            StatusCode::FORBIDDEN => serde_json::json!({ "ForbidReason": self.to_string() }),
            StatusCode::UNAUTHORIZED if matches!(self, Refusal::CallerToken(_)) => {
                serde_json::json!({ "error": "invalid_token", "error_description": self.to_string() })
            }
            StatusCode::UNAUTHORIZED => {
                serde_json::json!({ "error_description": self.to_string() })
            }
            _ => {
                serde_json::json!({ "error": "server_error", "error_description": self.to_string() })
            }
        }
    }

    /// The whole answer, for any HTTP server built on the `http` crate.
    pub fn to_response(&self, realm: &str) -> http::Response<String> {
        let mut resp = http::Response::new(self.body().to_string());
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = self
            .www_authenticate(realm)
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// A quoted-string's content: quotes and backslashes would end or escape it
/// early, and control characters are not allowed in a header.
fn quote(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_token_problems_are_401_with_a_challenge_and_the_rest_403() {
        let r = Refusal::CallerToken(TokenProblem::Expired);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let c = r.www_authenticate("api").unwrap();
        assert!(
            c.starts_with("Bearer realm=\"api\", error=\"invalid_token\""),
            "{c}"
        );
        assert_eq!(
            Refusal::NoCallerToken.www_authenticate("a\"b").unwrap(),
            "Bearer realm=\"a'b\""
        );
        let f = Refusal::SecondaryToken(TokenProblem::BadSignature);
        assert_eq!(f.status(), StatusCode::FORBIDDEN);
        assert!(f.www_authenticate("api").is_none());
        assert_eq!(
            f.body()["ForbidReason"],
            "the secondary token was refused: the token's signature is invalid"
        );
        assert_eq!(f.code(), "secondary_token.bad_signature");
        let resp = r.to_response("api");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn no_token_at_all_gets_no_error_code_and_a_refused_one_gets_invalid_token() {
        // RFC 6750 section 3.1: when the request has no authentication
        // information, the answer SHOULD NOT include an error code.
        let none = Refusal::NoCallerToken;
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        assert!(none.body().get("error").is_none(), "{}", none.body());
        assert_eq!(none.body()["error_description"], none.to_string());
        let refused = Refusal::CallerToken(TokenProblem::Expired);
        assert_eq!(refused.body()["error"], "invalid_token");
        assert_eq!(refused.body()["error_description"], refused.to_string());
    }

    #[test]
    fn a_challenge_never_carries_a_control_character_so_it_is_always_sent() {
        // A header value cannot hold CR, LF or other controls: left in, the
        // challenge would be dropped from the answer (or, with a lax
        // server, split it).
        let c = Refusal::NoCallerToken
            .www_authenticate("api\r\nX-Injected: 1")
            .unwrap();
        assert_eq!(c, "Bearer realm=\"api  X-Injected: 1\"");
        let resp = Refusal::NoCallerToken.to_response("api\nx");
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"api x\""
        );
    }

    #[test]
    fn a_route_without_a_client_is_the_apis_own_mistake_500_not_a_refusal_of_the_caller() {
        let r = Refusal::NoClientInRoute {
            param: "client".into(),
        };
        // Not 403: the caller did nothing wrong, and a 403 would send the
        // partner looking for a role that would not help.
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.body()["error"], "server_error");
        assert!(r.body().get("ForbidReason").is_none());
        assert!(r.www_authenticate("api").is_none());
        assert_eq!(r.code(), "no_client_in_route");
        assert_eq!(r.to_response("api").status(), 500);
    }
}
