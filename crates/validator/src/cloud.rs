//! Which Entra cloud issues the tokens: its authority host (where the
//! tenant's OpenID configuration and keys are published) and the issuer
//! values its access tokens carry.
//!
//! Not for choosing *which tenants* are accepted: that is the validator's
//! allow-list.

use url::Url;

/// The placeholder replaced by the tenant id in issuer templates, as Entra's
/// multi-tenant metadata documents write it.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Which OpenID configuration document the keys are read from.
///
/// Both documents of a tenant publish the same signing keys; they differ in
/// the `issuer` they advertise (v1: `https://sts.windows.net/{tid}/`, v2:
/// `https://login.microsoftonline.com/{tid}/v2.0`). Which *tokens* are
/// accepted does not depend on this choice: v1 and v2 issuers are both
/// checked against the cloud's templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataVersion {
    /// `{authority}/{tenant}/.well-known/openid-configuration`.
    V1,
    /// `{authority}/{tenant}/v2.0/.well-known/openid-configuration`.
    #[default]
    V2,
}

/// An Entra cloud: authority host and token issuers.
///
/// Issuers per "Microsoft identity platform access tokens" (v1 tokens carry
/// `https://sts.windows.net/{tid}/`, v2 tokens
/// `https://login.microsoftonline.com/{tid}/v2.0`) and, for the national
/// clouds, "National clouds" (US Government: v1 `sts.windows.net`, v2
/// `login.microsoftonline.us`; China operated by 21Vianet: v1
/// `sts.chinacloudapi.cn`, v2 `login.partner.microsoftonline.cn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    authority_host: Url,
    issuers: Vec<String>,
}

impl Cloud {
    /// The global (commercial) cloud: `https://login.microsoftonline.com/`.
    pub fn public() -> Self {
        Self::known(
            "https://login.microsoftonline.com/",
            &[
                "https://sts.windows.net/{tenantid}/",
                "https://login.microsoftonline.com/{tenantid}/v2.0",
            ],
        )
    }

    /// Azure US Government: `https://login.microsoftonline.us/`.
    pub fn us_government() -> Self {
        Self::known(
            "https://login.microsoftonline.us/",
            &[
                "https://sts.windows.net/{tenantid}/",
                "https://login.microsoftonline.us/{tenantid}/v2.0",
            ],
        )
    }

    /// Azure China operated by 21Vianet: `https://login.chinacloudapi.cn/`.
    pub fn china() -> Self {
        Self::known(
            "https://login.chinacloudapi.cn/",
            &[
                "https://sts.chinacloudapi.cn/{tenantid}/",
                "https://login.partner.microsoftonline.cn/{tenantid}/v2.0",
                "https://login.chinacloudapi.cn/{tenantid}/v2.0",
            ],
        )
    }

    fn known(host: &str, issuers: &[&str]) -> Self {
        Self {
            // The literals above are valid URLs.
            authority_host: Url::parse(host).unwrap_or_else(|_| unreachable!()),
            issuers: issuers.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Another authority host, such as a test identity provider. It must be
    /// `https`. Its tokens are expected to carry the v1 issuer
    /// `https://sts.windows.net/{tenantid}/` or the v2 issuer
    /// `{authority_host}{tenantid}/v2.0`; change that with
    /// [`with_issuer_templates`](Self::with_issuer_templates).
    pub fn custom(authority_host: &str) -> Result<Self, crate::ConfigError> {
        let mut url = Url::parse(authority_host).map_err(|e| {
            crate::ConfigError(format!(
                "the authority host {authority_host:?} is not a URL ({e}); give one like \
                 https://login.microsoftonline.com/"
            ))
        })?;
        if url.scheme() != "https" {
            return Err(crate::ConfigError(format!(
                "the authority host {authority_host:?} is not https; signing keys are only \
                 fetched over HTTPS"
            )));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let v2 = format!("{url}{TENANT_PLACEHOLDER}/v2.0");
        Ok(Self {
            authority_host: url,
            issuers: vec!["https://sts.windows.net/{tenantid}/".into(), v2],
        })
    }

    /// Replaces the issuer templates; each must contain `{tenantid}`.
    pub fn with_issuer_templates<I, S>(mut self, templates: I) -> Result<Self, crate::ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let templates: Vec<String> = templates.into_iter().map(Into::into).collect();
        if templates.is_empty() {
            return Err(crate::ConfigError(
                "no issuer template was given; give at least one, like \
                 https://sts.windows.net/{tenantid}/"
                    .into(),
            ));
        }
        if let Some(t) = templates.iter().find(|t| !t.contains(TENANT_PLACEHOLDER)) {
            return Err(crate::ConfigError(format!(
                "the issuer template {t:?} has no {TENANT_PLACEHOLDER}; each issuer names its \
                 tenant"
            )));
        }
        self.issuers = templates;
        Ok(self)
    }

    /// The authority host, ending in `/`.
    pub fn authority_host(&self) -> &Url {
        &self.authority_host
    }

    /// The OpenID configuration document of `tenant`.
    pub fn metadata_url(&self, tenant: &str, version: MetadataVersion) -> String {
        match version {
            MetadataVersion::V1 => format!(
                "{}{tenant}/.well-known/openid-configuration",
                self.authority_host
            ),
            MetadataVersion::V2 => format!(
                "{}{tenant}/v2.0/.well-known/openid-configuration",
                self.authority_host
            ),
        }
    }

    /// Whether `iss` is an issuer of this cloud for tenant `tid`. Compared
    /// exactly, as issuers are case-sensitive identifiers.
    pub fn is_issuer_for(&self, iss: &str, tid: &str) -> bool {
        self.issuers.iter().any(|t| {
            let Some((before, after)) = t.split_once(TENANT_PLACEHOLDER) else {
                return false;
            };
            iss.len() == before.len() + tid.len() + after.len()
                && iss.starts_with(before)
                && iss.ends_with(after)
                && &iss[before.len()..before.len() + tid.len()] == tid
        })
    }

    /// The issuers this cloud's tokens for `tid` may carry.
    pub fn issuers_for(&self, tid: &str) -> Vec<String> {
        self.issuers
            .iter()
            .map(|t| t.replace(TENANT_PLACEHOLDER, tid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_matched_exactly_per_tenant() {
        let c = Cloud::public();
        assert!(c.is_issuer_for("https://sts.windows.net/t1/", "t1"));
        assert!(c.is_issuer_for("https://login.microsoftonline.com/t1/v2.0", "t1"));
        assert!(!c.is_issuer_for("https://sts.windows.net/t2/", "t1"));
        assert!(!c.is_issuer_for("https://sts.windows.net/t1", "t1"));
        assert!(!c.is_issuer_for("https://login.microsoftonline.us/t1/v2.0", "t1"));
        assert!(
            Cloud::us_government().is_issuer_for("https://login.microsoftonline.us/t1/v2.0", "t1")
        );
        assert!(Cloud::china().is_issuer_for("https://sts.chinacloudapi.cn/t1/", "t1"));
        assert_eq!(
            c.metadata_url("t1", MetadataVersion::V1),
            "https://login.microsoftonline.com/t1/.well-known/openid-configuration"
        );
        assert_eq!(
            c.metadata_url("t1", MetadataVersion::V2),
            "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_custom_authority_must_be_https_and_templates_name_the_tenant() {
        assert!(Cloud::custom("http://127.0.0.1:1/").is_err());
        assert!(Cloud::custom("not a url").is_err());
        let c = Cloud::custom("https://127.0.0.1:8443").unwrap();
        assert!(c.is_issuer_for("https://127.0.0.1:8443/t1/v2.0", "t1"));
        assert!(c.clone().with_issuer_templates(["https://x/"]).is_err());
        assert!(c.with_issuer_templates(Vec::<String>::new()).is_err());
    }
}
