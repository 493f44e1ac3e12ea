//! The claims of an Entra access token that the validator reads, per
//! "Access token claims reference". Only what authorization needs: a claim
//! the validator does not check is not read.

use serde::{Deserialize, Serialize};

/// The verified claims of an access token.
///
/// Nothing here is secret, but nothing here is the token either: the token
/// itself is never kept in a `Claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The audience: the resource's App ID URI or client id.
    pub aud: String,
    /// The issuer: `https://sts.windows.net/{tid}/` (v1) or
    /// `https://login.microsoftonline.com/{tid}/v2.0` (v2).
    pub iss: String,
    /// The tenant that issued the token.
    pub tid: String,
    /// The caller's client id, in v1 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The caller's client id, in v2 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The caller's service principal object id in the issuing tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// The subject (equals `oid` for app-only tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// App roles granted to the caller on the audience.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated scopes: present only in tokens obtained for a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// `app` for app-only tokens (an optional claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    /// `1.0` or `2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

impl Claims {
    /// Whether this is a v2 token (`ver` = `2.0`).
    pub fn is_v2(&self) -> bool {
        self.ver.as_deref() == Some("2.0")
    }

    /// The client id of the application the token was issued to: `azp` in
    /// v2 tokens, `appid` in v1 tokens ("Access token claims reference").
    pub fn caller(&self) -> Option<&str> {
        let id = if self.is_v2() { &self.azp } else { &self.appid };
        id.as_deref().filter(|s| !s.is_empty())
    }
}
