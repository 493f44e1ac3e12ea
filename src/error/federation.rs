//! Why a secretless (federated) proof failed: the external assertion could
//! not be obtained (a managed identity endpoint, GitHub Actions' token
//! service), or Entra refused it at the resource tenant.
//!
//! With workload identity federation the partner's app trusts an external
//! issuer through a **federated identity credential** on its app
//! registration, in the partner's home tenant (Microsoft's "Workload
//! identity federation"; "Configure an application to trust a managed
//! identity"). Every link of that chain is the partner's: the app's
//! federated credential, the workload's identity, the CI's permissions. The
//! resource owner has nothing to do with any of them, so every error here
//! names the partner, and says so.
//!
//! Entra's codes for a refused federated assertion (Microsoft's "Microsoft
//! Entra authentication and authorization error codes"): 70021 no matching
//! federated identity record, 700211 no match for the assertion's issuer,
//! 700212 for its audience, 700213 for its subject, 700024 the assertion is
//! outside its valid time range.

use super::entra::EntraError;
use super::{Party, Remedy};
use std::fmt;

/// The claims of an external assertion that say which federated credential
/// it needs: never the assertion itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionInfo {
    /// Where the assertion came from: `managed identity`, `GitHub Actions
    /// OIDC`, `federated token file`, `client assertion callback`.
    pub source: &'static str,
    /// The `iss` claim: the federated credential's issuer must be exactly
    /// this.
    pub issuer: String,
    /// The `sub` claim: the federated credential's subject must be exactly
    /// this (for a managed identity: its object (principal) id).
    pub subject: String,
    /// The `aud` claim(s): one must be among the federated credential's
    /// audiences (`api://AzureADTokenExchange` in the public cloud).
    pub audiences: Vec<String>,
    /// The `exp` claim, seconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

impl fmt::Display for AssertionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "iss {}, sub {}, aud {}",
            self.issuer,
            self.subject,
            self.audiences.join(" ")
        )
    }
}

/// Which claim of the assertion no federated credential on the app matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// AADSTS700211: no federated credential has the assertion's issuer.
    Issuer,
    /// AADSTS700213: a credential has the issuer, none the subject.
    Subject,
    /// AADSTS700212: a credential has the issuer and subject, none the
    /// audience.
    Audience,
    /// AADSTS70021: no federated credential matches (Entra did not say
    /// which claim).
    Unspecified,
    /// AADSTS70025: the app has no federated identity credential at all.
    NoneConfigured,
}

impl Mismatch {
    /// The mismatch of an Entra code, if it is one of the federation codes.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            700211 => Mismatch::Issuer,
            700212 => Mismatch::Audience,
            700213 => Mismatch::Subject,
            70021 => Mismatch::Unspecified,
            70025 => Mismatch::NoneConfigured,
            _ => return None,
        })
    }
}

/// A secretless proof that failed, and who must fix it (always the partner).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FederationError {
    /// Entra found no federated identity credential on the partner's app
    /// matching the presented assertion (AADSTS70021, 700211, 700212,
    /// 700213).
    NoMatchingCredential {
        /// Which claim did not match.
        mismatch: Mismatch,
        /// The partner's client id.
        client_id: String,
        /// What was presented (`None` when the assertion was not a JWT).
        presented: Option<AssertionInfo>,
        /// The audience this credential asks its source for.
        expected_audience: String,
        /// Entra's answer.
        entra: Box<EntraError>,
    },
    /// The assertion was outside its valid time range: Entra said so
    /// (AADSTS700024), or its own `exp` had passed before it was sent.
    AssertionExpired {
        /// The partner's client id.
        client_id: String,
        /// The assertion's source and claims.
        presented: Option<AssertionInfo>,
        /// Entra's answer, when Entra refused it (`None`: refused here,
        /// before sending).
        entra: Option<Box<EntraError>>,
    },
    /// Entra could not read the assertion issuer's OpenID configuration or
    /// keys (AADSTS50166).
    IssuerUnreachable {
        /// The partner's client id.
        client_id: String,
        /// What was presented.
        presented: Option<AssertionInfo>,
        /// Entra's answer.
        entra: Box<EntraError>,
    },
    /// The managed identity endpoint could not be reached (no managed
    /// identity on this host, a firewall, the endpoint down).
    ManagedIdentityUnreachable {
        /// The endpoint asked (`IDENTITY_ENDPOINT`, or IMDS).
        endpoint: String,
        /// Which identity was asked for.
        identity: String,
        /// Why.
        reason: String,
    },
    /// The managed identity endpoint answered, but refused (the identity is
    /// not assigned to this resource, a bad `IDENTITY_HEADER`, …) or could
    /// not be used as configured.
    ManagedIdentityRefused {
        /// The endpoint asked.
        endpoint: String,
        /// Which identity was asked for.
        identity: String,
        /// The HTTP status (`None`: refused before any request).
        status: Option<u16>,
        /// What it said, shortened (never a token).
        detail: String,
    },
    /// GitHub Actions' token service refused the ID token request, or could
    /// not be reached.
    GitHubTokenRefused {
        /// Scheme, host and path of `ACTIONS_ID_TOKEN_REQUEST_URL` (never
        /// the request token).
        url: String,
        /// The HTTP status (`None`: no answer).
        status: Option<u16>,
        /// What it said, shortened.
        detail: String,
    },
}

impl FederationError {
    /// Whether trying again later may succeed: an unreachable endpoint, a
    /// throttled or failing (5xx) one.
    pub fn is_transient(&self) -> bool {
        match self {
            FederationError::ManagedIdentityUnreachable { .. } => true,
            FederationError::ManagedIdentityRefused {
                status: Some(s), ..
            }
            | FederationError::GitHubTokenRefused {
                status: Some(s), ..
            } => *s == 429 || *s >= 500,
            FederationError::GitHubTokenRefused { status: None, .. } => true,
            FederationError::AssertionExpired { .. } => false,
            _ => false,
        }
    }

    /// Entra's answer, when Entra refused the assertion.
    pub fn entra(&self) -> Option<&EntraError> {
        match self {
            FederationError::NoMatchingCredential { entra, .. }
            | FederationError::IssuerUnreachable { entra, .. } => Some(entra),
            FederationError::AssertionExpired { entra, .. } => entra.as_deref(),
            _ => None,
        }
    }

    /// Always the partner (the resource owner has nothing to do), and what
    /// to do.
    pub fn remedy(&self) -> Remedy {
        Remedy::new(Party::Partner, self.action())
    }

    fn action(&self) -> String {
        const NOTHING: &str = "the resource owner has nothing to do";
        match self {
            FederationError::NoMatchingCredential {
                mismatch,
                client_id,
                presented,
                expected_audience,
                ..
            } => {
                let (iss, sub, aud) = match presented {
                    Some(p) => (
                        p.issuer.as_str(),
                        p.subject.as_str(),
                        p.audiences
                            .first()
                            .map(String::as_str)
                            .unwrap_or(expected_audience),
                    ),
                    None => ("<issuer>", "<subject>", expected_audience.as_str()),
                };
                let which = match mismatch {
                    Mismatch::Issuer => format!("its issuer must be exactly {iss}"),
                    Mismatch::Subject => format!(
                        "its subject must be exactly {sub} (for a managed identity: its object \
                         (principal) id, not its client id)"
                    ),
                    Mismatch::Audience => format!(
                        "its audiences must include {aud} (the audience the assertion was \
                         requested for)"
                    ),
                    Mismatch::Unspecified => {
                        format!("issuer {iss}, subject {sub} and audience {aud} must all match")
                    }
                    Mismatch::NoneConfigured => {
                        "the app has none yet; create one for this workload".to_string()
                    }
                };
                format!(
                    "add or fix the federated identity credential on app {client_id} in the \
                     partner's home tenant: {which}: `az ad app federated-credential create --id \
                     {client_id} --parameters '{{\"name\":\"crosstenant\",\"issuer\":\"{iss}\",\
                     \"subject\":\"{sub}\",\"audiences\":[\"{aud}\"]}}'` (list the existing ones \
                     with `az ad app federated-credential list --id {client_id}`); {NOTHING}"
                )
            }
            FederationError::IssuerUnreachable { presented, .. } => format!(
                "make the issuer {} serve its OpenID configuration \
                 (`/.well-known/openid-configuration`) and keys over public HTTPS, reachable from \
                 Entra, and make the federated credential's issuer exactly that URL; {NOTHING}",
                presented
                    .as_ref()
                    .map(|p| p.issuer.as_str())
                    .unwrap_or("of the assertion")
            ),
            FederationError::AssertionExpired { presented, .. } => format!(
                "the {} assertion was past its exp when Entra got it: check this machine's clock \
                 (NTP) and that the source hands out its current token (a projected token file \
                 is refreshed by the platform); the next request fetches a new one; {NOTHING}",
                presented.as_ref().map(|p| p.source).unwrap_or("external")
            ),
            FederationError::ManagedIdentityUnreachable { endpoint, .. } => format!(
                "run on an Azure host with a managed identity enabled (App Service / Functions: \
                 `az webapp identity assign`, which sets IDENTITY_ENDPOINT and IDENTITY_HEADER; a \
                 VM: `az vm identity assign`), or let this host reach {endpoint} (firewall, \
                 proxy: the endpoint must not go through a proxy); {NOTHING}"
            ),
            FederationError::ManagedIdentityRefused {
                identity, status, ..
            } => match status {
                Some(400) | Some(404) => format!(
                    "assign the {identity} managed identity to this resource (`az webapp identity \
                     assign --identities <resource id>`, `az vm identity assign`) or select one \
                     that is assigned (CROSSTENANT_MANAGED_IDENTITY); {NOTHING}"
                ),
                Some(401) | Some(403) => format!(
                    "the endpoint refused this process's IDENTITY_HEADER: run inside the App \
                     Service / Functions host that set it, with its environment unchanged; \
                     {NOTHING}"
                ),
                Some(_) => format!(
                    "retry later; if it persists, check the managed identity of this host in the \
                     portal; {NOTHING}"
                ),
                None => format!(
                    "select the managed identity by client_id= or object_id= \
                     (CROSSTENANT_MANAGED_IDENTITY) instead; {NOTHING}"
                ),
            },
            FederationError::GitHubTokenRefused { status, .. } => match status {
                Some(401) | Some(403) => format!(
                    "give the workflow job `permissions: id-token: write` (GitHub then sets \
                     ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN for it) and run \
                     the step in that job; {NOTHING}"
                ),
                _ => format!(
                    "retry later; if it persists, check GitHub's status and that the runner \
                     reaches its token service; {NOTHING}"
                ),
            },
        }
    }
}

impl fmt::Display for FederationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FederationError::NoMatchingCredential {
                mismatch,
                client_id,
                presented,
                entra,
                ..
            } => {
                let code = entra
                    .code()
                    .map(|c| format!("AADSTS{c}"))
                    .unwrap_or_default();
                let what = match mismatch {
                    Mismatch::Issuer => "issuer",
                    Mismatch::Subject => "subject",
                    Mismatch::Audience => "audience",
                    Mismatch::Unspecified => "issuer, subject and audience",
                    Mismatch::NoneConfigured => "claims (the app has no federated credential)",
                };
                write!(
                    f,
                    "{code} from tenant {}: no federated identity credential on app {client_id} \
                     matches the presented assertion's {what}",
                    entra.tenant
                )?;
                if let Some(p) = presented {
                    write!(f, " (the {} assertion has {p})", p.source)?;
                }
            }
            FederationError::IssuerUnreachable {
                client_id,
                presented,
                entra,
            } => {
                write!(
                    f,
                    "AADSTS50166 from tenant {}: Entra could not read the OpenID configuration or \
                     keys of the issuer of app {client_id}'s assertion",
                    entra.tenant
                )?;
                if let Some(p) = presented {
                    write!(f, " (the {} assertion has {p})", p.source)?;
                }
            }
            FederationError::AssertionExpired {
                client_id,
                presented,
                entra,
            } => {
                match entra {
                    Some(e) => write!(
                        f,
                        "AADSTS700024 from tenant {}: the assertion for app {client_id} is outside \
                         its valid time range",
                        e.tenant
                    )?,
                    None => write!(
                        f,
                        "the assertion for app {client_id} had expired before it was sent"
                    )?,
                }
                if let Some(p) = presented {
                    write!(f, " (the {} assertion has {p}", p.source)?;
                    if let Some(exp) = p.expires_at {
                        write!(f, ", exp {exp}")?;
                    }
                    f.write_str(")")?;
                }
            }
            FederationError::ManagedIdentityUnreachable {
                endpoint,
                identity,
                reason,
            } => write!(
                f,
                "the managed identity endpoint {endpoint} could not be reached for the \
                 {identity} identity: {reason}"
            )?,
            FederationError::ManagedIdentityRefused {
                endpoint,
                identity,
                status,
                detail,
            } => match status {
                Some(s) => write!(
                    f,
                    "the managed identity endpoint {endpoint} refused a token for the {identity} \
                     identity (HTTP {s}): {detail}"
                )?,
                None => write!(
                    f,
                    "the {identity} managed identity cannot be used here: {detail}"
                )?,
            },
            FederationError::GitHubTokenRefused {
                url,
                status,
                detail,
            } => match status {
                Some(s) => write!(
                    f,
                    "GitHub Actions' token service {url} refused the ID token request (HTTP {s}): \
                     {detail}"
                )?,
                None => write!(
                    f,
                    "GitHub Actions' token service {url} could not be reached: {detail}"
                )?,
            },
        }
        write!(f, ". To fix: {}", self.remedy())
    }
}

impl std::error::Error for FederationError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra(code: u32) -> Box<EntraError> {
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS{code}: no match.\r\nTrace ID: t"),
            "error_codes": [code],
        })
        .to_string();
        Box::new(EntraError::parse(400, body.as_bytes(), "owner-tid", "app-id", None).unwrap())
    }

    fn info() -> AssertionInfo {
        AssertionInfo {
            source: "managed identity",
            issuer: "https://login.microsoftonline.com/partner-tid/v2.0".into(),
            subject: "mi-object-id".into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
            expires_at: Some(1),
        }
    }

    #[test]
    fn each_mismatch_names_the_claim_the_partner_and_the_az_command() {
        for (code, needle) in [
            (
                700211,
                "issuer must be exactly https://login.microsoftonline.com/partner-tid/v2.0",
            ),
            (700213, "subject must be exactly mi-object-id"),
            (700212, "audiences must include api://AzureADTokenExchange"),
            (70021, "must all match"),
        ] {
            let e = FederationError::NoMatchingCredential {
                mismatch: Mismatch::from_code(code).unwrap(),
                client_id: "app-id".into(),
                presented: Some(info()),
                expected_audience: "api://AzureADTokenExchange".into(),
                entra: entra(code),
            };
            let r = e.remedy();
            assert_eq!(r.party, Party::Partner);
            assert!(r.action.contains(needle), "{code}: {r}");
            assert!(r
                .action
                .contains("az ad app federated-credential create --id app-id"));
            assert!(r.action.contains("resource owner has nothing to do"), "{r}");
            let text = e.to_string();
            assert!(text.contains(&format!("AADSTS{code}")), "{text}");
            assert!(text.contains("mi-object-id"), "{text}");
        }
        assert_eq!(Mismatch::from_code(700016), None);
    }

    #[test]
    fn endpoint_failures_are_the_partners_and_transient_only_when_retrying_can_help() {
        let unreachable = FederationError::ManagedIdentityUnreachable {
            endpoint: "http://127.0.0.1:1/msi/token".into(),
            identity: "system-assigned".into(),
            reason: "connection refused".into(),
        };
        assert!(unreachable.is_transient());
        assert!(unreachable
            .remedy()
            .action
            .contains("az webapp identity assign"));
        let refused = FederationError::ManagedIdentityRefused {
            endpoint: "e".into(),
            identity: "client_id=x".into(),
            status: Some(400),
            detail: "not assigned".into(),
        };
        assert!(!refused.is_transient());
        assert!(refused.remedy().action.contains("assign the client_id=x"));
        let gh = FederationError::GitHubTokenRefused {
            url: "https://gh/token".into(),
            status: Some(403),
            detail: "no".into(),
        };
        assert!(!gh.is_transient());
        assert!(gh.remedy().action.contains("id-token: write"));
        assert_eq!(gh.remedy().party, Party::Partner);
    }
}
