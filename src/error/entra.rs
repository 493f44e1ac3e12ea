//! Entra ID's `AADSTS…` errors, explained for a cross-tenant setup.
//!
//! A failed token request answers with JSON: `error`, `error_description`
//! (`AADSTSnnnn: …` followed by Trace ID, Correlation ID and Timestamp),
//! `error_codes`, `trace_id`, `correlation_id`, `timestamp`, `error_uri`
//! (Microsoft's "Microsoft Entra authentication and authorization error
//! codes"). In a cross-tenant setup the same code can be the partner's
//! mistake or the resource owner's missing step, so each code worth a hint
//! maps to the party who must act and what they must do. Microsoft warns that
//! description texts change; the hints key on the numeric codes only.

use super::{Party, Remedy};
use serde::Deserialize;
use std::fmt;

/// What a code means here, and who must do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Who must act.
    pub party: Party,
    /// What happened, in cross-tenant terms.
    pub meaning: String,
    /// What to do.
    pub action: String,
}

/// A token request refused by Entra ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// HTTP status of the answer.
    pub status: u16,
    /// OAuth error, e.g. `invalid_client`.
    pub error: String,
    /// `error_codes`; the first is the `AADSTS` number.
    pub codes: Vec<u32>,
    /// The first line of `error_description`, without trace lines.
    pub description: String,
    /// `trace_id`, for a support case.
    pub trace_id: Option<String>,
    /// `correlation_id`, for a support case.
    pub correlation_id: Option<String>,
    /// `timestamp`.
    pub timestamp: Option<String>,
    /// The tenant asked.
    pub tenant: String,
    /// The partner's client id.
    pub client_id: String,
    /// The scope requested, if any.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    timestamp: Option<String>,
}

impl EntraError {
    /// Parses an Entra error answer. `None` if `body` is not Entra's JSON
    /// error shape (a proxy's HTML page, say).
    pub fn parse(
        status: u16,
        body: &[u8],
        tenant: &str,
        client_id: &str,
        scope: Option<&str>,
    ) -> Option<Self> {
        let parsed: Body = serde_json::from_slice(body).ok()?;
        if parsed.error.is_empty() && parsed.error_codes.is_empty() {
            return None;
        }
        let mut codes = parsed.error_codes;
        if codes.is_empty() {
            codes.extend(code_in_description(&parsed.error_description));
        }
        let description = parsed
            .error_description
            .split(['\r', '\n'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Some(Self {
            status,
            error: parsed.error,
            codes,
            description,
            trace_id: parsed.trace_id,
            correlation_id: parsed.correlation_id,
            timestamp: parsed.timestamp,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            scope: scope.map(str::to_string),
        })
    }

    /// The `AADSTS` code.
    pub fn code(&self) -> Option<u32> {
        self.codes.first().copied()
    }

    /// Whether trying again later may succeed: throttling (429) and server
    /// errors (5xx). Configuration errors never are.
    pub fn is_transient(&self) -> bool {
        self.status == 429 || self.status >= 500
    }

    /// Who must act, and what to do: the [`hint`](Self::hint)'s party and
    /// action for a known code; otherwise where to look the code up, with
    /// the trace id a support case needs.
    pub fn remedy(&self) -> Remedy {
        match self.hint() {
            Some(hint) => Remedy::new(hint.party, hint.action),
            None => Remedy::new(
                Party::Either,
                format!(
                    "look the code up in Microsoft's \"Microsoft Entra authentication and \
                     authorization error codes\"; quote trace id {} to support",
                    self.trace_id.as_deref().unwrap_or("-")
                ),
            ),
        }
    }

    /// The cross-tenant explanation of this error, for the codes a
    /// cross-tenant setup meets most and a few more.
    pub fn hint(&self) -> Option<Hint> {
        let tenant = &self.tenant;
        let client = &self.client_id;
        let scope = self.scope.as_deref().unwrap_or("the requested scope");
        let h = |party, meaning: String, action: String| {
            Some(Hint {
                party,
                meaning,
                action,
            })
        };
        match self.code()? {
            7000229 => h(
                Party::ResourceOwner,
                format!("the resource owner's tenant {tenant} has no service principal for the partner app {client}"),
                format!("an admin of tenant {tenant} creates one from the client id: `az ad sp create --id {client}` (or grants admin consent), then assigns it the role the resource needs"),
            ),
            700016 => h(
                Party::Either,
                format!("app {client} is not known in tenant {tenant}"),
                format!("the partner checks that the tenant is the resource owner's and that app {client} is multi-tenant (`az ad app update --id {client} --sign-in-audience AzureADMultipleOrgs`); the resource owner checks that a service principal for {client} exists in {tenant}"),
            ),
            90002 => h(
                Party::Partner,
                format!("tenant {tenant} does not exist in this cloud"),
                "check the resource owner's tenant id or verified domain with them, and the authority host (public, US Government or China cloud)".into(),
            ),
            7000215 => h(
                Party::Partner,
                format!("the client secret sent for app {client} is not one of its secrets"),
                format!("use the secret's *value* (not its ID) from app {client} in the partner's home tenant; create a new one with `az ad app credential reset --id {client} --append` if it is lost"),
            ),
            7000222 => h(
                Party::Partner,
                format!("the client secret of app {client} has expired"),
                format!("create a new secret (`az ad app credential reset --id {client} --append`) and deploy it; consider a certificate or federated credential instead"),
            ),
            700027 => h(
                Party::Partner,
                format!("the certificate that signed the assertion is not registered on app {client}, or the signature does not verify"),
                format!("upload the certificate's public part to app {client} (`az ad app credential reset --id {client} --cert @cert.pem --append`) and sign with its matching private key"),
            ),
            700024 => h(
                Party::Partner,
                "the client assertion is outside its valid time window".into(),
                "fix this machine's clock (NTP); assertions are valid from nbf to exp and Entra allows only a few minutes of skew".into(),
            ),
            700021 | 50013 | 50027 => h(
                Party::Partner,
                "the client assertion is malformed or addressed wrongly".into(),
                format!("iss and sub must be the client id {client}, aud the resource tenant's token endpoint, jti unique per request"),
            ),
            50166 => h(
                Party::Partner,
                "Entra could not read the OpenID configuration or keys of the federated assertion's issuer".into(),
                "make the issuer serve `/.well-known/openid-configuration` and its JWKS over public HTTPS, and the federated credential's issuer exactly that URL; the resource owner has nothing to do".into(),
            ),
            700211 | 700212 | 700213 | 70021 | 70025 => h(
                Party::Partner,
                format!("no federated identity credential on app {client} matches the presented assertion"),
                format!("add a federated credential to app {client} whose issuer, subject and audience (api://AzureADTokenExchange) match the workload's token (`az ad app federated-credential create --id {client} --parameters @credential.json`); the resource owner has nothing to do"),
            ),
            500011 => h(
                Party::Either,
                format!("the resource of {scope} does not exist in tenant {tenant}"),
                format!("the partner checks the scope's resource (App ID URI) for typos; the resource owner checks that the resource is registered or consented in {tenant}"),
            ),
            501051 => h(
                Party::ResourceOwner,
                format!("app {client} holds no role on the resource of {scope}, which requires one"),
                format!("an admin of tenant {tenant} assigns an app role of the resource to the service principal of {client}"),
            ),
            1002012 | 70011 => h(
                Party::Partner,
                format!("the scope {scope} is not valid for the client-credentials grant"),
                "request exactly one scope of the form `{resource}/.default`, e.g. `https://eventhubs.azure.net/.default`".into(),
            ),
            7000218 | 900144 => h(
                Party::Partner,
                "the token request is missing the client's credential or id".into(),
                "configure a client secret, certificate or assertion for the credential".into(),
            ),
            _ if self.is_transient() => h(
                Party::Either,
                "Entra ID is throttling or temporarily unavailable".into(),
                "retry later; the credential already retried with backoff".into(),
            ),
            _ => None,
        }
    }
}

fn code_in_description(description: &str) -> Option<u32> {
    let rest = description.strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write!(f, "AADSTS{code}")?,
            None => write!(f, "{}", self.error)?,
        }
        write!(
            f,
            " (HTTP {}) from tenant {} for client {}",
            self.status, self.tenant, self.client_id
        )?;
        if let Some(hint) = self.hint() {
            write!(
                f,
                ": {}. To fix: {} — {}.",
                hint.meaning, hint.party, hint.action
            )?;
        } else {
            f.write_str(".")?;
        }
        if !self.description.is_empty() {
            write!(f, " Entra said: {}", self.description)?;
        }
        if let (Some(t), Some(c)) = (&self.trace_id, &self.correlation_id) {
            write!(f, " [trace id {t}, correlation id {c}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for EntraError {}

/// What an answer that is not Entra's JSON most likely came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerKind {
    /// `429 Too Many Requests`: Entra ID (or a gateway) is throttling.
    Throttled,
    /// An HTML page, or an error status with a body that is not Entra's
    /// JSON: a proxy, gateway or firewall answered instead of Entra ID.
    Proxy,
    /// A success status whose body is not a token answer: the authority host
    /// is not Entra ID.
    NotEntra,
}

/// An answer from the token endpoint (or tenant discovery) that is not Entra
/// ID's JSON, after the retry budget ran out. It keeps the HTTP status, the
/// `Retry-After` the answer asked for, its content type and the start of its
/// body (control characters escaped); a token is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnexpectedAnswer {
    /// What was asked: `token request to https://…`.
    pub operation: String,
    /// The HTTP status.
    pub status: u16,
    /// What it most likely came from.
    pub kind: AnswerKind,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The `Content-Type` header, as sent.
    pub content_type: Option<String>,
    /// The start of the body, shortened (empty when there was none).
    pub excerpt: String,
}

impl UnexpectedAnswer {
    /// Classifies an answer that did not parse as Entra's JSON.
    pub(crate) fn classify(
        operation: String,
        status: u16,
        retry_after: Option<String>,
        content_type: Option<String>,
        body: &[u8],
    ) -> Self {
        let text = String::from_utf8_lossy(body);
        let html = content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("html"))
            || text.trim_start().starts_with('<');
        let kind = if status == 429 {
            AnswerKind::Throttled
        } else if (200..300).contains(&status) && !html {
            AnswerKind::NotEntra
        } else {
            AnswerKind::Proxy
        };
        Self {
            operation,
            status,
            kind,
            retry_after,
            content_type,
            excerpt: super::shorten_to(text.trim(), 160),
        }
    }

    /// Whether trying again later may succeed: throttling and server errors.
    pub fn is_transient(&self) -> bool {
        self.status == 429 || self.status >= 500
    }

    /// Who must act, and what to do.
    pub fn remedy(&self) -> Remedy {
        match self.kind {
            AnswerKind::Throttled => Remedy::new(
                Party::Partner,
                format!(
                    "wait{} and retry; build the credential once and share it, so its cache \
                     answers repeated requests instead of Entra ID",
                    self.retry_after
                        .as_deref()
                        .map(|r| format!(" at least {r} s (Retry-After)"))
                        .unwrap_or_default()
                ),
            ),
            AnswerKind::Proxy => Remedy::new(
                Party::Partner,
                "check the proxy or firewall between this machine and Entra ID (HTTPS_PROXY, \
                 allow-lists for login.microsoftonline.com) and retry; the answer did not come \
                 from Entra ID",
            ),
            AnswerKind::NotEntra => Remedy::new(
                Party::Partner,
                "check that the authority host (AZURE_AUTHORITY_HOST) is Entra ID's, e.g. \
                 https://login.microsoftonline.com, and that no proxy rewrites its answers",
            ),
        }
    }
}

impl fmt::Display for UnexpectedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered HTTP {}", self.operation, self.status)?;
        match self.kind {
            AnswerKind::Throttled => {
                f.write_str(": throttled (429 Too Many Requests)")?;
                if let Some(r) = &self.retry_after {
                    write!(f, ", Retry-After {r}")?;
                }
                f.write_str(", and the retries ran out")?;
            }
            AnswerKind::Proxy => {
                f.write_str(" with an answer that is not Entra ID's JSON")?;
                if let Some(c) = &self.content_type {
                    write!(f, " ({c})")?;
                }
                f.write_str(": a proxy, gateway or firewall answered instead of Entra ID")?;
            }
            AnswerKind::NotEntra => {
                f.write_str(" with a body that is not a token answer")?;
                if let Some(c) = &self.content_type {
                    write!(f, " ({c})")?;
                }
                f.write_str(": the authority host does not look like Entra ID")?;
            }
        }
        if self.excerpt.is_empty() {
            f.write_str("; the body was empty")?;
        } else {
            write!(f, "; it began: {}", self.excerpt)?;
        }
        let remedy = self.remedy();
        write!(f, ". To fix: {remedy}")
    }
}

impl std::error::Error for UnexpectedAnswer {}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u32) -> Vec<u8> {
        serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS{code}: Something.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: x"),
            "error_codes": [code],
            "trace_id": "t", "correlation_id": "c", "timestamp": "x",
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn every_design_code_has_a_hint_naming_who_acts() {
        for code in [
            7000229, 700016, 90002, 7000215, 7000222, 700027, 700024, 500011, 501051, 1002012,
            70011,
        ] {
            let e = EntraError::parse(400, &body(code), "tenant-x", "client-y", Some("s/.default"))
                .unwrap();
            let hint = e.hint().unwrap_or_else(|| panic!("no hint for {code}"));
            let text = e.to_string();
            assert!(text.contains(&format!("AADSTS{code}")), "{text}");
            assert!(
                text.contains("tenant-x") && text.contains("client-y"),
                "{text}"
            );
            assert!(text.contains(&hint.party.to_string()), "{text}");
            assert!(!text.contains("Trace ID:"), "description trimmed: {text}");
        }
        let e = EntraError::parse(400, &body(7000229), "t", "c", None).unwrap();
        assert_eq!(e.hint().unwrap().party, Party::ResourceOwner);
        assert!(e.hint().unwrap().action.contains("az ad sp create --id c"));
    }

    #[test]
    fn non_entra_bodies_are_not_mistaken_for_entra_errors() {
        assert!(EntraError::parse(502, b"<html>bad gateway</html>", "t", "c", None).is_none());
        assert!(EntraError::parse(400, b"{}", "t", "c", None).is_none());
        let e = EntraError::parse(
            400,
            br#"{"error":"invalid_scope","error_description":"AADSTS70011: bad"}"#,
            "t",
            "c",
            None,
        )
        .unwrap();
        assert_eq!(e.code(), Some(70011));
    }
}
