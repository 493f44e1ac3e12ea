//! A read-only view of a JWT's claims, for checks and diagnostics.
//!
//! The partner side cannot verify an access token's signature (the token is
//! for the resource, and Microsoft asks clients to treat it as opaque), but it
//! can read the claims to catch the cross-tenant mistakes early: a `tid` from
//! the wrong tenant, an unexpected audience, a missing role. This module does
//! exactly that and nothing more: **it never verifies a signature**, so what it
//! returns must not be used to make authorization decisions.
//!
//! Input is bounded and every failure names the segment at fault; the token
//! itself is never echoed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Tokens larger than this are refused unread. Entra access tokens are a few
/// kilobytes; even with large group overage claims they stay far below this.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

pub use crate::error::ClaimsError;

/// The claims of a JWT, decoded but **not verified**.
///
/// Accessors cover the claims that matter in a cross-tenant setup; every
/// other claim is reachable through [`TokenClaims::get`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClaims {
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl TokenClaims {
    /// Decodes the header and payload of a compact JWT.
    pub fn decode(token: &str) -> Result<Self, ClaimsError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ClaimsError::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClaimsError::Segments {
                segments: token.split('.').count(),
            });
        };
        Ok(Self {
            header: decode_segment("header", header)?,
            claims: decode_segment("payload", payload)?,
        })
    }

    /// Any claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// Any header parameter by name (`alg`, `kid`, `x5t`…).
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.header.get(name)
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn time_claim(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }

    /// `tid`: the tenant that issued the token.
    pub fn tenant_id(&self) -> Option<&str> {
        self.str_claim("tid")
    }

    /// The client the token was issued to: `appid` (v1 tokens) or `azp` (v2).
    pub fn app_id(&self) -> Option<&str> {
        self.str_claim("appid").or_else(|| self.str_claim("azp"))
    }

    /// `oid`: the service principal's object id in the issuing tenant.
    pub fn object_id(&self) -> Option<&str> {
        self.str_claim("oid")
    }

    /// `iss`: the issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.str_claim("iss")
    }

    /// `aud`: the first audience (Entra issues a single string).
    pub fn audience(&self) -> Option<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => Some(s),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// `roles`: the app roles granted to the client for this audience.
    pub fn roles(&self) -> Vec<&str> {
        match self.claims.get("roles") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `exp` in seconds since the Unix epoch.
    pub fn expires_at(&self) -> Option<i64> {
        self.time_claim("exp")
    }

    /// `nbf` in seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<i64> {
        self.time_claim("nbf")
    }

    /// `iat` in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<i64> {
        self.time_claim("iat")
    }

    /// `idtyp`: `app` for an application token.
    pub fn identity_type(&self) -> Option<&str> {
        self.str_claim("idtyp")
    }

    /// All claims, e.g. for printing as JSON. Contains no signature.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.claims
    }
}

impl std::fmt::Debug for TokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims are not secret, but keep Debug short and stable.
        f.debug_struct("TokenClaims")
            .field("tid", &self.tenant_id())
            .field("appid", &self.app_id())
            .field("aud", &self.audience())
            .field("roles", &self.roles())
            .field("exp", &self.expires_at())
            .finish()
    }
}

fn decode_segment(segment: &'static str, text: &str) -> Result<Map<String, Value>, ClaimsError> {
    if text.is_empty() {
        return Err(ClaimsError::Segment {
            segment,
            reason: "it is empty".into(),
        });
    }
    // Tolerate padding some encoders add, then insist on base64url.
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| ClaimsError::Segment {
            segment,
            reason: format!("not base64url ({e})"),
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ClaimsError::Segment {
            segment,
            reason: "it is JSON but not an object".into(),
        }),
        Err(e) => Err(ClaimsError::Segment {
            segment,
            reason: format!("not JSON ({e})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_the_cross_tenant_claims() {
        let t = jwt(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"tid":"t","appid":"a","aud":"https://eventhubs.azure.net","roles":["r1"],"exp":5}"#,
        );
        let c = TokenClaims::decode(&t).unwrap();
        assert_eq!(c.tenant_id(), Some("t"));
        assert_eq!(c.app_id(), Some("a"));
        assert_eq!(c.audience(), Some("https://eventhubs.azure.net"));
        assert_eq!(c.roles(), vec!["r1"]);
        assert_eq!(c.expires_at(), Some(5));
        assert_eq!(c.header("kid").and_then(Value::as_str), Some("k1"));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_them() {
        let secretish = "eyJzZWNyZXQiOiJzM2NyM3QifQ";
        for (t, want) in [
            (String::new(), "segment"),
            (format!("{secretish}.{secretish}"), "2 segment"),
            (format!("!!.{secretish}.x"), "header"),
            (jwt("[]", "{}"), "not an object"),
            (jwt("{}", "nope"), "payload"),
            ("a.b.c.d".to_string(), "4 segment"),
        ] {
            let err = TokenClaims::decode(&t).unwrap_err().to_string();
            assert!(err.contains(want), "{t}: {err}");
            assert!(!err.contains(secretish), "{err}");
        }
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            TokenClaims::decode(&huge),
            Err(ClaimsError::TooLarge { .. })
        ));
    }
}
