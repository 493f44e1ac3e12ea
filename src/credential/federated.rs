//! Secretless proofs: an **external assertion** (a managed identity's token,
//! a GitHub Actions ID token, a projected token file, a callback's) that
//! the partner's app trusts through a federated identity credential, and
//! presents as `client_assertion` at the resource tenant (Microsoft's
//! "Workload identity federation"; "Configure an application to trust a
//! managed identity").
//!
//! - **managed identity**: through azure_identity's
//!   `ManagedIdentityCredential` (App Service's `IDENTITY_ENDPOINT` +
//!   `IDENTITY_HEADER`, or IMDS on a VM), with the credential's HTTP
//!   settings, for the audience `api://AzureADTokenExchange`
//!   (`…USGov` / `…China` in those clouds);
//! - **GitHub Actions**: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
//!   `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered
//!   `{"value": "<JWT>"}` (GitHub's "About security hardening with OpenID
//!   Connect"). The request token is a secret: it is held as
//!   [`Secret`] and never printed;
//! - **file** and **callback**: as before, now cached too.
//!
//! **Caching.** An assertion is valid until its own `exp` (read without
//! verifying: it is the issuer's token, not ours to verify), and the same
//! assertion may be presented many times: one managed identity token serves
//! every token request, for every scope and every resource tenant of a
//! [`PartnerApp`](super::PartnerApp), until shortly before it expires (the
//! last quarter of its remaining life, at most five minutes). Concurrent
//! callers wait for one fetch (single flight); a failed fetch is handed to
//! the callers that waited for it and never cached. A token file is not
//! cached: it is read for every token request (a local read, next to a
//! network round trip), so the platform's rotation is picked up at once. An
//! assertion that does not decode as a JWT with an `exp` is not cached; one
//! past its `exp` by more than the five minutes of clock skew Entra allows
//! is refused before it is sent.

use crate::error::{AssertionInfo, Error, FederationError, InvalidInput};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Method, Request};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The audience a federated credential expects in the public cloud.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The audience in Azure US Government.
pub const TOKEN_EXCHANGE_AUDIENCE_US_GOV: &str = "api://AzureADTokenExchangeUSGov";
/// The audience in Azure operated by 21Vianet (China).
pub const TOKEN_EXCHANGE_AUDIENCE_CHINA: &str = "api://AzureADTokenExchangeChina";

/// Environment variable selecting a managed identity as the proof for
/// `from_env`: `system`, `client_id=<guid>`, `object_id=<guid>` or
/// `resource_id=<ARM resource id>`.
pub const ENV_MANAGED_IDENTITY: &str = "CROSSTENANT_MANAGED_IDENTITY";
/// Environment variable selecting GitHub Actions OIDC as the proof for
/// `from_env`: `1` or `true`.
pub const ENV_GITHUB_OIDC: &str = "CROSSTENANT_GITHUB_OIDC";
/// GitHub Actions' ID token request URL (set for jobs with
/// `permissions: id-token: write`).
pub const ENV_ACTIONS_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions' ID token request bearer token (a secret).
pub const ENV_ACTIONS_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// The clock skew Entra allows on an assertion's `exp` ("Microsoft
/// identity platform application authentication certificate
/// credentials"): an assertion is refused here only once it is past its
/// `exp` by more than this, as Entra would surely refuse it.
const ALLOWED_SKEW_SECS: i64 = 300;
/// The most an assertion is renewed ahead of its `exp`.
const MAX_AHEAD: Duration = Duration::from_secs(300);

/// Which managed identity proves the partner's app: the host's
/// system-assigned one, or a user-assigned one named by its client id,
/// object (principal) id or ARM resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentity {
    /// The host's system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity by its client (application) id.
    ClientId(String),
    /// A user-assigned identity by its object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by its ARM resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…`).
    /// azure_identity 1.1.0-beta.1 cannot send it to App Service's endpoint
    /// (Azure/azure-sdk-for-rust#2407); there, use the client or object id.
    ResourceId(String),
}

impl std::fmt::Display for ManagedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagedIdentity::SystemAssigned => f.write_str("system-assigned"),
            ManagedIdentity::ClientId(id) => write!(f, "client_id={id}"),
            ManagedIdentity::ObjectId(id) => write!(f, "object_id={id}"),
            ManagedIdentity::ResourceId(id) => write!(f, "resource_id={id}"),
        }
    }
}

impl ManagedIdentity {
    /// Parses [`ENV_MANAGED_IDENTITY`]'s value: `system`,
    /// `client_id=<guid>` (or the bare client id), `object_id=<guid>` or
    /// `resource_id=<arm id>`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let v = value.trim();
        let bad = |why: &str| {
            Error::from(InvalidInput::new(
                ENV_MANAGED_IDENTITY,
                value,
                format!(
                    "{why}; give `system` (the host's system-assigned identity), \
                     `client_id=<guid>` or `object_id=<guid>` (a user-assigned identity, from \
                     `az identity show -n <name> -g <group> --query \"{{clientId:clientId, \
                     objectId:principalId}}\"`), or `resource_id=/subscriptions/…/providers/\
                     Microsoft.ManagedIdentity/userAssignedIdentities/<name>`"
                ),
            ))
        };
        if v.eq_ignore_ascii_case("system") || v.eq_ignore_ascii_case("system-assigned") {
            return Ok(ManagedIdentity::SystemAssigned);
        }
        // A bare GUID is a client id, as the Azure SDKs read a managed
        // identity's `AZURE_CLIENT_ID`.
        if crate::tenant::is_guid(v) {
            return Ok(ManagedIdentity::ClientId(v.to_ascii_lowercase()));
        }
        let Some((key, id)) = v.split_once('=') else {
            return Err(bad("it is neither `system`, a client id nor `key=value`"));
        };
        let id = id.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "client_id" | "object_id" if !crate::tenant::is_guid(id) => {
                Err(bad(&format!("`{id}` is not a GUID")))
            }
            "client_id" => Ok(ManagedIdentity::ClientId(id.to_ascii_lowercase())),
            "object_id" => Ok(ManagedIdentity::ObjectId(id.to_ascii_lowercase())),
            "resource_id" => {
                let lower = id.to_ascii_lowercase();
                if lower.starts_with("/subscriptions/")
                    && lower
                        .contains("/providers/microsoft.managedidentity/userassignedidentities/")
                {
                    Ok(ManagedIdentity::ResourceId(id.to_string()))
                } else {
                    Err(bad(&format!(
                        "`{id}` is not a user-assigned identity's ARM resource id"
                    )))
                }
            }
            other => Err(bad(&format!(
                "`{other}` is not one of client_id, object_id, resource_id"
            ))),
        }
    }

    fn user_assigned(&self) -> Option<azure_identity::UserAssignedId> {
        use azure_identity::UserAssignedId;
        match self {
            ManagedIdentity::SystemAssigned => None,
            ManagedIdentity::ClientId(id) => Some(UserAssignedId::ClientId(id.clone())),
            ManagedIdentity::ObjectId(id) => Some(UserAssignedId::ObjectId(id.clone())),
            ManagedIdentity::ResourceId(id) => Some(UserAssignedId::ResourceId(id.clone())),
        }
    }

    /// Checks a value given to the builder (a GUID where one is needed).
    pub(super) fn check(&self) -> Result<(), Error> {
        match self {
            ManagedIdentity::SystemAssigned => Ok(()),
            ManagedIdentity::ClientId(id) => Self::parse(&format!("client_id={id}")).map(|_| ()),
            ManagedIdentity::ObjectId(id) => Self::parse(&format!("object_id={id}")).map(|_| ()),
            ManagedIdentity::ResourceId(id) => {
                Self::parse(&format!("resource_id={id}")).map(|_| ())
            }
        }
    }
}

/// A boxed future returning a client assertion.
pub(super) type CallbackFuture =
    Pin<Box<dyn Future<Output = Result<String, Box<dyn std::error::Error + Send + Sync>>> + Send>>;
pub(super) type AssertionCallback = Arc<dyn Fn() -> CallbackFuture + Send + Sync>;

/// Where an external assertion comes from.
#[derive(Clone)]
pub(super) enum ExternalSource {
    File(PathBuf),
    Callback(AssertionCallback),
    ManagedIdentity(ManagedIdentity),
    GitHub { url: url::Url, token: Secret },
}

impl ExternalSource {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            ExternalSource::File(_) => "federated token file",
            ExternalSource::Callback(_) => "client assertion callback",
            ExternalSource::ManagedIdentity(_) => "managed identity",
            ExternalSource::GitHub { .. } => "GitHub Actions OIDC",
        }
    }

    /// GitHub Actions' settings from its two variables.
    pub(super) fn github(url: Option<String>, token: Option<String>) -> Result<Self, Error> {
        let hint = "run in a GitHub Actions job with `permissions: id-token: write`, which \
                    sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN";
        let Some(url_text) = url.filter(|u| !u.trim().is_empty()) else {
            return Err(
                InvalidInput::new(ENV_ACTIONS_URL, "", format!("it is not set; {hint}")).into(),
            );
        };
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            return Err(
                InvalidInput::secret(ENV_ACTIONS_TOKEN, format!("it is not set; {hint}")).into(),
            );
        };
        let url = url::Url::parse(url_text.trim()).map_err(|e| {
            InvalidInput::new(
                ENV_ACTIONS_URL,
                &redact_query(&url_text),
                format!("it is not a URL ({e}); {hint}"),
            )
        })?;
        if url.scheme() != "https" {
            return Err(InvalidInput::new(
                ENV_ACTIONS_URL,
                &redact_query(&url_text),
                "it must be https://: the request carries a bearer token",
            )
            .into());
        }
        Ok(ExternalSource::GitHub {
            url,
            token: Secret::new(token.trim().to_string()),
        })
    }
}

/// Scheme, host and path of a URL: its query may carry more than we want
/// in a message.
fn redact_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.path()
        ),
        Err(_) => url.split('?').next().unwrap_or("").to_string(),
    }
}

struct Cached {
    value: Secret,
    use_until: Instant,
    info: Option<AssertionInfo>,
}

/// An external assertion source with its cache, shared (as an `Arc`) by
/// every credential of one partner app.
pub(super) struct ExternalAssertion {
    pub(super) source: ExternalSource,
    /// The audience asked of a managed identity or GitHub.
    pub(super) audience: String,
    /// The partner app's client id, for errors.
    client_id: String,
    /// HTTP settings for the managed identity and GitHub requests.
    options: ClientOptions,
    slot: Mutex<Option<Cached>>,
    flight: tokio::sync::Mutex<()>,
    /// Completed fetch attempts, and the last failure with its number.
    attempts: AtomicU64,
    last_failure: Mutex<Option<(u64, Error)>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for ExternalAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAssertion")
            .field("source", &self.source.kind())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// What an assertion's claims say, read without verifying.
fn inspect(source: &'static str, assertion: &str) -> Option<AssertionInfo> {
    let claims = crate::claims::TokenClaims::decode(assertion).ok()?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let audiences = match claims.get("aud") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Some(AssertionInfo {
        source,
        issuer: text("iss"),
        subject: text("sub"),
        audiences,
        expires_at: claims.expires_at(),
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ExternalAssertion {
    pub(super) fn new(
        source: ExternalSource,
        audience: String,
        client_id: String,
        options: ClientOptions,
    ) -> Self {
        Self {
            source,
            audience,
            client_id,
            options,
            slot: Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the source was asked (not cache hits).
    pub(super) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<(Secret, Option<AssertionInfo>)> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|c| Instant::now() < c.use_until)
            .map(|c| (c.value.clone(), c.info.clone()))
    }

    /// Forgets the cached assertion (Entra said it had expired).
    pub(super) fn invalidate(&self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The current assertion and what its claims say: from the cache, or
    /// fetched once for every concurrent caller.
    pub(super) async fn get(&self) -> Result<(Secret, Option<AssertionInfo>), Error> {
        if let Some(hit) = self.cached() {
            return Ok(hit);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _flight = self.flight.lock().await;
        if let Some(hit) = self.cached() {
            return Ok(hit);
        }
        // The fetch this caller waited for failed: hand its error on
        // instead of asking again at once.
        if self.attempts.load(Ordering::Acquire) != seen {
            if let Some((n, e)) = &*self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) {
                if *n > seen {
                    return Err(e.clone());
                }
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        let n = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, e.clone()));
                return Err(e);
            }
        };
        let info = inspect(self.source.kind(), &value);
        let now = Instant::now();
        let mut use_until = now;
        if let Some(exp) = info.as_ref().and_then(|i| i.expires_at) {
            let left = exp - now_unix();
            if left + ALLOWED_SKEW_SECS <= 0 {
                let e = Error::from(FederationError::AssertionExpired {
                    client_id: self.client_id.clone(),
                    presented: info,
                    entra: None,
                });
                *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((n, e.clone()));
                return Err(e);
            }
            if left > 0 && !matches!(self.source, ExternalSource::File(_)) {
                let left = Duration::from_secs(left as u64);
                let ahead = (left / 4).min(MAX_AHEAD);
                use_until = now + (left - ahead);
            }
        }
        let secret = Secret::new(value);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            value: secret.clone(),
            use_until,
            info: info.clone(),
        });
        Ok((secret, info))
    }

    async fn fetch(&self) -> Result<String, Error> {
        match &self.source {
            ExternalSource::File(path) => {
                let s = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| Error::Assertion {
                        source_name: path.display().to_string(),
                        reason: format!(
                            "{e}; check AZURE_FEDERATED_TOKEN_FILE points at the projected token"
                        ),
                    })?;
                let s = s.trim().to_string();
                if s.is_empty() {
                    return Err(Error::Assertion {
                        source_name: path.display().to_string(),
                        reason: "the file is empty".into(),
                    });
                }
                Ok(s)
            }
            ExternalSource::Callback(callback) => callback().await.map_err(|e| Error::Assertion {
                source_name: "client assertion callback".into(),
                reason: e.to_string(),
            }),
            ExternalSource::ManagedIdentity(id) => self.managed_identity(id).await,
            ExternalSource::GitHub { url, token } => self.github(url, token).await,
        }
    }

    async fn managed_identity(&self, id: &ManagedIdentity) -> Result<String, Error> {
        // Where azure_identity will ask: App Service's variable, else IMDS.
        let endpoint = std::env::var("IDENTITY_ENDPOINT")
            .ok()
            .map(|e| redact_query(&e))
            .unwrap_or_else(|| {
                "http://169.254.169.254/metadata/identity/oauth2/token (IMDS)".into()
            });
        let options = azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: id.user_assigned(),
            client_options: self.options.clone(),
        };
        // A new credential per fetch, on purpose: azure_identity's own cache
        // would hand the same token back until five minutes before it
        // expires, under this module's cache. Fetches are rare (one per
        // assertion lifetime); the HTTP client in `options` is shared.
        let credential =
            azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(|e| {
                FederationError::ManagedIdentityRefused {
                    endpoint: endpoint.clone(),
                    identity: id.to_string(),
                    status: None,
                    detail: crate::error::shorten(&e.to_string()),
                }
            })?;
        let scope = format!("{}/.default", self.audience);
        let token = credential
            .get_token(&[&scope], None)
            .await
            .map_err(|e| classify_mi_error(&endpoint, id, &e))?;
        tracing::debug!(identity = %id, audience = %self.audience, "managed identity assertion obtained");
        Ok(token.token.secret().to_string())
    }

    async fn github(&self, url: &url::Url, token: &Secret) -> Result<String, Error> {
        let shown = redact_query(url.as_str());
        let mut request_url = url.clone();
        request_url
            .query_pairs_mut()
            .append_pair("audience", &self.audience);
        let mut request = Request::new(request_url, Method::Get);
        request.insert_header("authorization", format!("bearer {}", token.secret()));
        request.insert_header("accept", "application/json; api-version=2.0");
        let pipeline = azure_core::http::Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            self.options.clone(),
            Vec::new(),
            Vec::new(),
            None,
        );
        let refused = |status: Option<u16>, detail: String| FederationError::GitHubTokenRefused {
            url: shown.clone(),
            status,
            detail,
        };
        let response = pipeline
            .send(
                &azure_core::http::Context::new(),
                &mut request,
                Some(azure_core::http::PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| refused(None, crate::error::shorten(&crate::error::chain(&e))))?;
        let status = u16::from(response.status());
        let body: &[u8] = response.body();
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(body);
            return Err(refused(Some(status), crate::error::shorten_to(text.trim(), 160)).into());
        }
        let value = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("value").and_then(|v| v.as_str()).map(str::to_string))
            .filter(|v| !v.is_empty());
        value.ok_or_else(|| {
            refused(
                Some(status),
                "the answer holds no `value` (expected {\"value\": \"<JWT>\"})".into(),
            )
            .into()
        })
    }
}

/// azure_identity's managed identity error as ours: an HTTP answer is a
/// refusal, anything else an unreachable endpoint.
fn classify_mi_error(endpoint: &str, id: &ManagedIdentity, err: &azure_core::Error) -> Error {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(az) = e.downcast_ref::<azure_core::Error>() {
            if let azure_core::error::ErrorKind::HttpResponse {
                status,
                raw_response,
                ..
            } = az.kind()
            {
                let body = raw_response
                    .as_ref()
                    .map(|r| {
                        String::from_utf8_lossy(r.body().as_ref())
                            .trim()
                            .to_string()
                    })
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| az.to_string());
                return FederationError::ManagedIdentityRefused {
                    endpoint: endpoint.to_string(),
                    identity: id.to_string(),
                    status: Some(u16::from(*status)),
                    detail: crate::error::shorten_to(&body, 200),
                }
                .into();
            }
            if let Some(inner) = az.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = e.source();
    }
    FederationError::ManagedIdentityUnreachable {
        endpoint: endpoint.to_string(),
        identity: id.to_string(),
        reason: crate::error::shorten(&crate::error::chain(err)),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_identity_values_parse_or_say_what_to_give() {
        assert_eq!(
            ManagedIdentity::parse(" system ").unwrap(),
            ManagedIdentity::SystemAssigned
        );
        assert_eq!(
            ManagedIdentity::parse("client_id=00001111-AAAA-2222-bbbb-3333cccc4444").unwrap(),
            ManagedIdentity::ClientId("00001111-aaaa-2222-bbbb-3333cccc4444".into())
        );
        assert_eq!(
            ManagedIdentity::parse("00001111-aaaa-2222-bbbb-3333cccc4444").unwrap(),
            ManagedIdentity::ClientId("00001111-aaaa-2222-bbbb-3333cccc4444".into())
        );
        let arm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi";
        assert_eq!(
            ManagedIdentity::parse(&format!("resource_id={arm}")).unwrap(),
            ManagedIdentity::ResourceId(arm.into())
        );
        for bad in [
            "",
            "yes",
            "client_id=nope",
            "object_id=",
            "principal=00001111-aaaa-2222-bbbb-3333cccc4444",
            "resource_id=/x",
        ] {
            let err = ManagedIdentity::parse(bad).unwrap_err().to_string();
            assert!(err.contains(ENV_MANAGED_IDENTITY), "{err}");
            assert!(err.contains(bad), "{bad}: {err}");
            assert!(err.contains("client_id=<guid>"), "{err}");
        }
    }

    #[test]
    fn github_settings_are_checked_and_the_token_never_shown() {
        let err = ExternalSource::github(None, Some("tok-3e7".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(ENV_ACTIONS_URL) && err.contains("id-token: write"),
            "{err}"
        );
        let err = ExternalSource::github(Some("https://x/y?a=1".into()), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(ENV_ACTIONS_TOKEN), "{err}");
        let err = ExternalSource::github(Some("http://x/y?a=1".into()), Some("tok-3e7".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("https://") && !err.contains("tok-3e7"),
            "{err}"
        );
        assert!(ExternalSource::github(Some("https://x/y?a=1".into()), Some("t".into())).is_ok());
    }
}
