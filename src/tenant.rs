//! The resource owner's tenant and the cloud whose authority issues its tokens.
//!
//! In a cross-tenant setup the partner's app asks the **resource owner's**
//! tenant for tokens, never its own home tenant. This module holds that tenant
//! (a GUID or a verified domain) and the authority host of the cloud it lives
//! in. It does no I/O: a domain is resolved to its GUID by the credential, once.

use crate::error::{Error, InvalidInput};
use std::fmt;
use url::Url;

/// The resource owner's Entra ID tenant, as a directory (tenant) ID or as one
/// of its verified domains (`contoso.onmicrosoft.com`, `contoso.com`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ResourceTenant {
    /// A directory ID such as `72f988bf-86f1-41af-91ab-2d7cd011db47`.
    Id(String),
    /// A verified domain; resolved to its directory ID through the tenant's
    /// OpenID configuration the first time a token is requested.
    Domain(String),
}

impl ResourceTenant {
    /// Parses a tenant given as a GUID or a domain name.
    ///
    /// Refuses `common`, `organizations` and `consumers`: a cross-tenant
    /// client-credentials request must name the one tenant that owns the
    /// resource, or Entra would pick the app's home tenant.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let trimmed = value.trim();
        let invalid = |reason: &str| {
            Error::InvalidInput(InvalidInput::new(
                "resource_tenant",
                trimmed,
                format!(
                    "{reason}; give the resource owner's directory (tenant) ID, a GUID such as \
                     72f988bf-86f1-41af-91ab-2d7cd011db47, or one of its verified domains such as \
                     contoso.onmicrosoft.com"
                ),
            ))
        };
        if trimmed.is_empty() {
            return Err(invalid("the tenant is empty"));
        }
        if is_guid(trimmed) {
            return Ok(Self::Id(trimmed.to_ascii_lowercase()));
        }
        let lower = trimmed.to_ascii_lowercase();
        if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
            return Err(invalid(
                "a multi-tenant alias cannot name the resource owner's tenant",
            ));
        }
        if is_domain(&lower) {
            return Ok(Self::Domain(lower));
        }
        Err(invalid("it is neither a GUID nor a domain name"))
    }

    /// The tenant as it appears in an authority URL path.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Id(id) | Self::Domain(id) => id,
        }
    }

    /// The directory ID, when the tenant was given as one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Id(id) => Some(id),
            Self::Domain(_) => None,
        }
    }
}

impl fmt::Display for ResourceTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ResourceTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "ResourceTenant::Id({id})"),
            Self::Domain(d) => write!(f, "ResourceTenant::Domain({d})"),
        }
    }
}

impl std::str::FromStr for ResourceTenant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// Whether `value` is a GUID in its 8-4-4-4-12 hex form.
pub(crate) fn is_guid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A DNS name of at least two labels, letters, digits and hyphens only.
fn is_domain(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    value.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// The Microsoft cloud whose authority issues tokens, or a custom authority
/// host (the sandbox, a sovereign cloud not listed here).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Cloud {
    /// Azure public cloud, `https://login.microsoftonline.com`.
    #[default]
    Public,
    /// Azure US Government, `https://login.microsoftonline.us`.
    UsGovernment,
    /// Azure operated by 21Vianet, `https://login.chinacloudapi.cn`.
    China,
    /// Any other authority host; it must use HTTPS.
    Custom(Url),
}

impl Cloud {
    /// The authority host of this cloud.
    pub fn authority_host(&self) -> Url {
        let s = match self {
            Self::Public => "https://login.microsoftonline.com/",
            Self::UsGovernment => "https://login.microsoftonline.us/",
            Self::China => "https://login.chinacloudapi.cn/",
            Self::Custom(url) => return url.clone(),
        };
        // These literals are valid URLs; parsing cannot fail.
        Url::parse(s).unwrap_or_else(|_| unreachable!("static authority URL"))
    }

    /// Parses an authority host such as `AZURE_AUTHORITY_HOST` gives it.
    ///
    /// Only HTTPS is accepted: a token request carries the partner's secret or
    /// a signed assertion, and must never cross the wire in clear text. The
    /// sandbox speaks HTTPS too, so it needs no exception.
    pub fn from_authority_host(value: &str) -> Result<Self, Error> {
        let invalid = |reason: String| {
            Error::InvalidInput(InvalidInput::new("authority_host", value, reason))
        };
        let url = Url::parse(value.trim()).map_err(|e| {
            invalid(format!(
                "it is not a URL ({e}); give e.g. https://login.microsoftonline.com"
            ))
        })?;
        if url.scheme() != "https" {
            return Err(invalid(format!(
                "the scheme is `{}`; an authority must use https:// so the client secret or \
                 assertion is never sent in clear text",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host".into()));
        }
        Ok(match url.host_str().unwrap_or_default() {
            "login.microsoftonline.com" => Self::Public,
            "login.microsoftonline.us" => Self::UsGovernment,
            "login.chinacloudapi.cn" => Self::China,
            _ => Self::Custom(url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_and_domain_are_told_apart() {
        assert_eq!(
            ResourceTenant::parse("72F988BF-86f1-41af-91ab-2d7cd011db47").unwrap(),
            ResourceTenant::Id("72f988bf-86f1-41af-91ab-2d7cd011db47".into())
        );
        assert_eq!(
            ResourceTenant::parse(" Contoso.onmicrosoft.com ").unwrap(),
            ResourceTenant::Domain("contoso.onmicrosoft.com".into())
        );
    }

    #[test]
    fn malformed_tenants_are_refused_with_the_value() {
        for bad in [
            "",
            "  ",
            "not a tenant",
            "common",
            "contoso",
            "a/b.com",
            "-x.com",
            "1.2",
        ] {
            let err = ResourceTenant::parse(bad).unwrap_err().to_string();
            assert!(err.contains("resource_tenant"), "{err}");
            assert!(err.contains(bad.trim()), "{err}");
        }
    }

    #[test]
    fn only_https_authorities_are_accepted() {
        assert_eq!(
            Cloud::from_authority_host("https://login.microsoftonline.com").unwrap(),
            Cloud::Public
        );
        let err = Cloud::from_authority_host("http://127.0.0.1:8080")
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");
        assert!(Cloud::from_authority_host("https://127.0.0.1:4443/").is_ok());
    }
}
