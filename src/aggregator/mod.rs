//! Calling a protected API **on behalf of a named client**: the two-token
//! scheme of an aggregator.
//!
//! An aggregator app acts for several clients against one API, with every
//! permission kept in Entra ID. Each call carries two tokens:
//!
//! - `Authorization: Bearer <A>`: A is for the API (scope
//!   `{API App ID URI}/.default`) and proves *who calls*; its `roles` hold the
//!   API roles the caller was granted (`API.Read`, `API.Write`);
//! - `X-Secondary-Token: <B>`: B is for the client (scope
//!   `{client App ID URI}/.default`) and proves *what that client allows the
//!   caller*; its `roles` are the client roles the client granted
//!   (`clientXYZ.Read`).
//!
//! A client calling for its own data sends only A ([`AggregatorClient::as_client`]).
//!
//! [`AggregatorClient`] is built once and cloned freely. Both tokens come from
//! the credential's cache, so one API token serves every client and a call
//! costs no token request once the cache is warm. The binding promise: the
//! secondary token for client X is only ever sent on a request whose path
//! names X. Client ids and paths that could leave `/api/{clientId}/` are
//! refused before any request ([`NamedClient`]).
//!
//! ```no_run
//! # async fn demo(credential: std::sync::Arc<crosstenant::CrossTenantCredential>)
//! #     -> Result<(), crosstenant::Error> {
//! use crosstenant::aggregator::AggregatorClient;
//!
//! let api = AggregatorClient::builder("https://api.contoso.com/", "api://secure-api", credential)
//!     .build()?;
//! let data: serde_json::Value = api.on_behalf_of("clientXYZ")?.get("data").await?;
//! # let _ = data; Ok(()) }
//! ```
//!
//! Failures are [`AggregatorError`]s inside [`crate::Error::Aggregator`]: a
//! `403` carries the API's `ForbidReason`; a `401` is answered with one token
//! refresh and one retry (the crate's one authorization policy, first in the
//! client's azure_core pipeline); 408, 429 and 5xx are retried with bounded
//! backoff by `azure_core`'s retry policy ([`crate::HttpSettings`]).
//!
//! Not here: the API side. The `crosstenant-sandbox` crate's API shows how
//! an API must verify both tokens.

mod target;

pub use crate::error::{AggregatorError, TokenPurpose};
pub use target::NamedClient;

use crate::credential::TokenSource;
use crate::error::{chain, Error, InvalidInput};
use crate::http::bearer::{BearerPolicy, TOKEN_REFRESHED};
use crate::http::HttpSettings;
use azure_core::http::headers::HeaderName;
use azure_core::http::{ClientOptions, Method, Pipeline, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use target::ClientPath;
use url::Url;

/// The header the secondary token travels in unless configured otherwise.
pub const DEFAULT_SECONDARY_TOKEN_HEADER: &str = "X-Secondary-Token";

/// How long an excerpt of an answer kept in an error may be.
const EXCERPT: usize = 200;
/// How long a `ForbidReason` or `WWW-Authenticate` challenge kept in an
/// error may be: long enough for a sentence naming apps and roles.
const REASON: usize = 600;

/// Where tokens come from: the crate's one token seam.
#[deprecated(note = "use crosstenant::credential::TokenSource")]
pub type ApiCredential = TokenSource;

/// Builds an [`AggregatorClient`]; values are checked at
/// [`build`](Self::build), nothing is sent.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AggregatorClientBuilder {
    api_base_url: String,
    api_app_id_uri: String,
    credential: TokenSource,
    header: String,
    http: Option<HttpSettings>,
    client_options: Option<ClientOptions>,
    pending_error: Option<Error>,
}

impl AggregatorClientBuilder {
    /// The header the secondary token travels in (default
    /// [`DEFAULT_SECONDARY_TOKEN_HEADER`]).
    pub fn secondary_token_header(mut self, name: impl Into<String>) -> Self {
        self.header = name.into();
        self
    }

    /// The HTTP settings (trusted roots, timeouts, retries); default
    /// [`HttpSettings::default`]. To reach an API in the credential's world
    /// (the sandbox, behind the same proxy), pass the credential's
    /// [`http_settings`](crate::CrossTenantCredential::http_settings).
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http = Some(settings);
        self
    }

    /// azure_core client options: their per-call and per-try policies
    /// (instrumentation, logging, fault injection) run inside the
    /// authorization policy, around the retry policy; their transport, if
    /// set, replaces the built-in one. Retries stay the [`HttpSettings`]'.
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = Some(options);
        self
    }

    /// Adds trusted roots (PEM) on top of the HTTP settings in use.
    pub fn root_certificates_pem(mut self, pem: &str) -> Self {
        let mut settings = self.http.take().unwrap_or_default();
        if let Err(e) = settings.add_root_certificates_pem(pem) {
            self.pending_error.get_or_insert(e);
        }
        self.http = Some(settings);
        self
    }

    /// Checks every value and builds the client. No request is made.
    pub fn build(self) -> Result<AggregatorClient, Error> {
        if let Some(e) = self.pending_error {
            return Err(e);
        }
        let base = parse_base_url(&self.api_base_url)?;
        let api_app_id_uri = target::app_id_uri_of("api_app_id_uri", &self.api_app_id_uri)?;
        // Validate with `http`'s rules (RFC 9110 token), then keep azure_core's
        // lowercase form; header names are case-insensitive.
        if reqwest::header::HeaderName::from_bytes(self.header.as_bytes()).is_err()
            || self.header.eq_ignore_ascii_case("authorization")
        {
            return Err(InvalidInput::new(
                "secondary_token_header",
                &self.header,
                "give an HTTP header name such as X-Secondary-Token (letters, digits, `-`), \
                 other than Authorization",
            )
            .into());
        }
        let http = self.http.unwrap_or_default();
        let api_scope = format!("{api_app_id_uri}/.default");
        let pipeline = http.pipeline(
            self.client_options.as_ref(),
            vec![BearerPolicy::policy(
                self.credential.clone(),
                api_scope.clone(),
            )],
        )?;
        let lower = self.header.to_ascii_lowercase();
        // A static name costs no allocation when cloned into each request.
        let header = if lower == "x-secondary-token" {
            HeaderName::from_static("x-secondary-token")
        } else {
            HeaderName::from(lower)
        };
        Ok(AggregatorClient {
            inner: Arc::new(Inner {
                api_scope,
                base,
                credential: self.credential,
                header,
                header_display: self.header,
                pipeline,
            }),
        })
    }
}

/// The API base URL: HTTPS only (tokens must never cross the wire in clear
/// text), no query or fragment, stored with a trailing `/`.
fn parse_base_url(raw: &str) -> Result<Url, Error> {
    let fix = "give the API's base URL, such as https://api.contoso.com/ (HTTPS, no query)";
    let mut url = Url::parse(raw).map_err(|e| {
        Error::from(InvalidInput::new(
            "api_base_url",
            raw,
            format!("it is not a URL ({e}); {fix}"),
        ))
    })?;
    if url.scheme() != "https"
        || url.cannot_be_a_base()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(InvalidInput::new("api_base_url", raw, fix).into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

struct Inner {
    base: Url,
    api_scope: String,
    credential: TokenSource,
    header: HeaderName,
    header_display: String,
    pipeline: Pipeline,
}

/// Calls a protected API with an API token, on behalf of named clients or as
/// a client itself. Built once with [`AggregatorClient::builder`]; `Clone`
/// (an `Arc` inside) and safe to share across tasks.
#[derive(Clone)]
pub struct AggregatorClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AggregatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorClient")
            .field("api_base_url", &self.inner.base.as_str())
            .field("api_scope", &self.inner.api_scope)
            .field("secondary_token_header", &self.inner.header_display)
            .field("credential", &self.inner.credential)
            .finish_non_exhaustive()
    }
}

impl AggregatorClient {
    /// Starts a builder for the API at `api_base_url` (HTTPS), whose App ID
    /// URI is `api_app_id_uri` (`api://secure-api`; a trailing `/.default`
    /// is accepted), with tokens from `credential`: usually the
    /// [`CrossTenantCredential`](crate::CrossTenantCredential), so the
    /// aggregator may live in another tenant than the API, or any
    /// `Arc<dyn TokenCredential>`.
    pub fn builder(
        api_base_url: impl Into<String>,
        api_app_id_uri: impl Into<String>,
        credential: impl Into<TokenSource>,
    ) -> AggregatorClientBuilder {
        AggregatorClientBuilder {
            api_base_url: api_base_url.into(),
            api_app_id_uri: api_app_id_uri.into(),
            credential: credential.into(),
            header: DEFAULT_SECONDARY_TOKEN_HEADER.to_string(),
            http: None,
            client_options: None,
            pending_error: None,
        }
    }

    /// Calls on behalf of `client`, given as its App ID URI
    /// (`api://clientXYZ`), its bare id (`clientXYZ`) or its application id
    /// GUID; see [`NamedClient::parse`] for the mapping. Every call carries
    /// the API token and the client's secondary token. Ids that could alter
    /// the path are refused here, before any request.
    pub fn on_behalf_of(&self, client: &str) -> Result<ClientHandle, Error> {
        self.handle(NamedClient::parse(client)?)
    }

    /// Calls on behalf of a client whose path id and App ID URI were given
    /// separately ([`NamedClient::new`]).
    pub fn on_behalf_of_client(&self, client: NamedClient) -> ClientHandle {
        // A NamedClient's path id was checked when it was made, and the base
        // URL when the client was built, so this cannot fail; the fallback
        // keeps the promise anyway: a handle that refuses every call.
        self.handle(client.clone())
            .unwrap_or_else(|e| ClientHandle {
                inner: self.inner.clone(),
                client: client.path_id().to_string(),
                path: Err(e),
                secondary: Some(client),
            })
    }

    fn handle(&self, client: NamedClient) -> Result<ClientHandle, Error> {
        Ok(ClientHandle {
            inner: self.inner.clone(),
            client: client.path_id().to_string(),
            path: Ok(ClientPath::new(&self.inner.base, client.path_id())?),
            secondary: Some(client),
        })
    }

    /// Calls as the client itself (the caller's app *is* the client named
    /// `client_id` in the path): only the API token is sent.
    pub fn as_client(&self, client_id: &str) -> Result<ClientHandle, Error> {
        Ok(ClientHandle {
            inner: self.inner.clone(),
            client: client_id.to_string(),
            path: Ok(ClientPath::new(&self.inner.base, client_id)?),
            secondary: None,
        })
    }

    /// The API base URL, with a trailing `/`.
    pub fn api_base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The API token's scope, `{API App ID URI}/.default`.
    pub fn api_scope(&self) -> &str {
        &self.inner.api_scope
    }

    /// The header the secondary token travels in.
    pub fn secondary_token_header(&self) -> &str {
        &self.inner.header_display
    }
}

/// Calls for one client: paths are relative to `/api/{clientId}/`. Cheap to
/// clone; made by [`AggregatorClient::on_behalf_of`] or
/// [`AggregatorClient::as_client`].
#[derive(Clone)]
pub struct ClientHandle {
    inner: Arc<Inner>,
    client: String,
    /// `{base}/api/{client}`, built once.
    path: Result<ClientPath, Error>,
    secondary: Option<NamedClient>,
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("client", &self.client)
            .field(
                "secondary_scope",
                &self.secondary.as_ref().map(NamedClient::scope),
            )
            .finish_non_exhaustive()
    }
}

impl ClientHandle {
    /// The client id in the path.
    pub fn client_id(&self) -> &str {
        &self.client
    }

    /// Whether calls carry the client's secondary token (on behalf of), or
    /// only the API token (as the client itself).
    pub fn is_on_behalf_of(&self) -> bool {
        self.secondary.is_some()
    }

    /// The URL a call to `path` goes to, `{base}/api/{clientId}/{path}`, or
    /// why `path` is refused. No request is made.
    pub fn url(&self, path: &str) -> Result<Url, Error> {
        self.path.as_ref().map_err(Clone::clone)?.url(path)
    }

    /// `GET {path}`, the answer read as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::Get, path, None).await
    }

    /// `PUT {path}` with `body` as JSON, the answer read as JSON.
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let body = self.encode(Method::Put, path, body)?;
        self.call(Method::Put, path, Some(body)).await
    }

    /// `POST {path}` with `body` as JSON, the answer read as JSON. Note that
    /// a POST is retried like any call after 408, 429 or 5xx; make it
    /// idempotent on the API side if a repeat would matter.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let body = self.encode(Method::Post, path, body)?;
        self.call(Method::Post, path, Some(body)).await
    }

    /// `DELETE {path}`, the answer read as JSON (`()` for an empty answer).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::Delete, path, None).await
    }

    fn encode<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(body).map_err(|e| {
            let url = match self.url(path) {
                Ok(url) => url,
                Err(err) => return err,
            };
            AggregatorError::Encode {
                method: method.to_string(),
                url: url.to_string(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    fn mode(&self) -> &'static str {
        if self.secondary.is_some() {
            "on behalf of"
        } else {
            "as"
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let inner = &*self.inner;
        let client_path = self.path.as_ref().map_err(Clone::clone)?;
        let url = client_path.url(path)?;
        // The binding promise, checked on the URL about to be called rather
        // than trusted to the builder above.
        if !client_path.names(&url) {
            return Err(InvalidInput::new(
                "path",
                path,
                "the URL would not name the client the secondary token is for",
            )
            .into());
        }
        let secondary = match &self.secondary {
            Some(client) => Some(inner.credential.token(client.scope()).await.map_err(|e| {
                token_error(
                    TokenPurpose::Secondary(self.client.clone()),
                    client.scope(),
                    e,
                )
            })?),
            None => None,
        };
        let mut request = Request::new(url, method);
        if let Some(b) = &secondary {
            request.insert_header(inner.header.clone(), b.token.secret().to_string());
        }
        request.insert_header(HeaderName::from_static("accept"), "application/json");
        if let Some(body) = body {
            request.insert_header(HeaderName::from_static("content-type"), "application/json");
            request.set_body(body);
        }
        // The API token is added (and refreshed once after a 401) by the
        // bearer policy at the head of the pipeline.
        let sent = crate::http::send_unchecked(&inner.pipeline, &mut request).await;
        let url = request.url();
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.send_error(method, url, secondary.as_ref(), e).await),
        };
        let status = u16::from(response.status());
        tracing::debug!(
            method = %method,
            url = %url,
            client = %self.client,
            on_behalf_of = self.secondary.is_some(),
            status,
            "aggregator call"
        );
        let bytes: &[u8] = response.body();
        if (200..300).contains(&status) {
            // An empty answer (204) reads as JSON `null`, so `()` and
            // `Option<T>` work for calls that return nothing.
            let json: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
                b"null"
            } else {
                bytes
            };
            return serde_json::from_slice(json).map_err(|e| {
                AggregatorError::Decode {
                    method: method.to_string(),
                    url: url.to_string(),
                    status,
                    reason: e.to_string(),
                }
                .into()
            });
        }
        let scrub = Scrub::new(inner, secondary.as_ref()).await;
        Err(match status {
            401 => {
                let challenge = response
                    .headers()
                    .get_optional_string(&HeaderName::from_static("www-authenticate"))
                    .map(|c| clip(&scrub.apply(&c), REASON));
                let refreshed = response
                    .headers()
                    .get_optional_string(&TOKEN_REFRESHED)
                    .is_some();
                self.unauthorized(method.as_ref(), url.as_str(), challenge, refreshed)
            }
            403 => {
                let reason = serde_json::from_slice::<serde_json::Value>(bytes)
                    .ok()
                    .and_then(|v| {
                        v.get("ForbidReason")
                            .and_then(|r| r.as_str())
                            .map(|r| clip(&scrub.apply(r), REASON))
                    });
                AggregatorError::Forbidden {
                    method: method.to_string(),
                    url: url.to_string(),
                    client: self.client.clone(),
                    mode: self.mode(),
                    reason,
                }
                .into()
            }
            _ => {
                let text = String::from_utf8_lossy(bytes);
                AggregatorError::Status {
                    method: method.to_string(),
                    url: url.to_string(),
                    status,
                    excerpt: clip(&scrub.apply(&text), EXCERPT),
                }
                .into()
            }
        })
    }

    /// A call that got no answer: the bearer policy's token failure comes
    /// back as the API token's error; anything else is a transport failure.
    async fn send_error(
        &self,
        method: Method,
        url: &Url,
        secondary: Option<&azure_core::credentials::AccessToken>,
        e: azure_core::Error,
    ) -> Error {
        if matches!(e.kind(), azure_core::error::ErrorKind::Credential) {
            if let Some(ours) = Error::from_azure(&e) {
                return token_error(TokenPurpose::Api, &self.inner.api_scope, ours.clone());
            }
        }
        let transient = matches!(
            e.kind(),
            azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
        );
        let scrub = Scrub::new(&self.inner, secondary).await;
        AggregatorError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            reason: scrub.apply(&chain(&e)),
            transient,
            cause: Some(crate::error::Cause::new(e)),
        }
        .into()
    }

    fn unauthorized(
        &self,
        method: &str,
        url: &str,
        challenge: Option<String>,
        refreshed: bool,
    ) -> Error {
        AggregatorError::Unauthorized {
            method: method.to_string(),
            url: url.to_string(),
            scope: self.inner.api_scope.clone(),
            challenge,
            refreshed,
        }
        .into()
    }
}

fn token_error(purpose: TokenPurpose, scope: &str, source: Error) -> Error {
    AggregatorError::Token {
        purpose,
        scope: scope.to_string(),
        source: Box::new(source),
    }
    .into()
}

/// Blanks the tokens a call sent out of text copied from its answer. Built
/// only on the way to an error: the API token is the one the credential
/// hands out now, which is the one the bearer policy sent last.
struct Scrub(Vec<String>);

impl Scrub {
    async fn new(inner: &Inner, secondary: Option<&azure_core::credentials::AccessToken>) -> Self {
        let mut secrets = Vec::with_capacity(2);
        if let Ok(api) = inner.credential.token(&inner.api_scope).await {
            secrets.push(api.token.secret().to_string());
        }
        if let Some(b) = secondary {
            secrets.push(b.token.secret().to_string());
        }
        Self(secrets)
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.0 {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "<token>");
            }
        }
        text
    }
}

/// Text from an answer, fit for an error: at most `max` characters, control
/// characters escaped so a CR/LF cannot forge log lines.
fn clip(text: &str, max: usize) -> String {
    crate::error::shorten_to(text, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CrossTenantCredential;

    fn credential() -> Arc<CrossTenantCredential> {
        CrossTenantCredential::builder()
            .resource_tenant("contoso.onmicrosoft.com")
            .client_id("00001111-aaaa-2222-bbbb-3333cccc4444")
            .client_secret("s3cr3t-value")
            .build()
            .unwrap()
    }

    #[test]
    fn bad_configuration_is_refused_at_build_naming_the_value() {
        let build = |url: &str, uri: &str, header: &str| {
            AggregatorClient::builder(url, uri, credential())
                .secondary_token_header(header)
                .build()
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let err = build("http://api.example.com", "api://x", "X-Secondary-Token");
        assert!(
            err.contains("api_base_url") && err.contains("http://api"),
            "{err}"
        );
        let err = build(
            "https://api.example.com/?a=b",
            "api://x",
            "X-Secondary-Token",
        );
        assert!(err.contains("api_base_url"), "{err}");
        // Each part a base URL must not have is refused on its own: a
        // fragment, a user name, a password (credentials in the URL would
        // travel beside the tokens), and text that is no URL at all.
        for url in [
            "https://api.example.com/#top",
            "https://partner@api.example.com/",
            "https://:hunter2@api.example.com/",
            "api.example.com",
        ] {
            let err = build(url, "api://x", "X-Secondary-Token");
            assert!(err.contains("api_base_url"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
        let err = build("https://api.example.com", "not a uri", "X-Secondary-Token");
        assert!(
            err.contains("api_app_id_uri") && err.contains("not a uri"),
            "{err}"
        );
        let err = build("https://api.example.com", "api://x", "X Secondary");
        assert!(err.contains("secondary_token_header"), "{err}");
        let err = build("https://api.example.com", "api://x", "Authorization");
        assert!(err.contains("secondary_token_header"), "{err}");
    }

    #[test]
    fn the_client_keeps_the_scope_and_header_and_prints_no_secret() {
        let api = AggregatorClient::builder(
            "https://api.example.com/base",
            "api://secure-api/.default",
            credential(),
        )
        .build()
        .unwrap();
        assert_eq!(api.api_scope(), "api://secure-api/.default");
        assert_eq!(api.api_base_url().as_str(), "https://api.example.com/base/");
        assert_eq!(api.secondary_token_header(), "X-Secondary-Token");
        // Debug shows what a support case needs (where, which scope and
        // header, whose credential), and never the secret.
        let debug = format!("{api:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        for shown in [
            "https://api.example.com/base/",
            "api://secure-api/.default",
            "X-Secondary-Token",
            "00001111-aaaa-2222-bbbb-3333cccc4444",
        ] {
            assert!(debug.contains(shown), "{shown} in {debug}");
        }
        let handle = api.on_behalf_of("api://clientXYZ").unwrap();
        assert!(handle.is_on_behalf_of());
        let debug = format!("{handle:?}");
        assert!(
            debug.contains("clientXYZ") && debug.contains("api://clientXYZ/.default"),
            "{debug}"
        );
        assert_eq!(
            handle.url("data").unwrap().as_str(),
            "https://api.example.com/base/api/clientXYZ/data"
        );
        assert!(!api.as_client("clientXYZ").unwrap().is_on_behalf_of());
        assert!(api.on_behalf_of("client/../XYZ").is_err());
        assert!(api.as_client("").is_err());
    }
}
