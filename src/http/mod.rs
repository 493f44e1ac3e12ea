//! HTTP settings shared by every client in the crate: trusted roots,
//! timeouts and retries, on top of `azure_core`'s pipeline.
//!
//! Each client is handed its settings explicitly (the credential's
//! builder, `EventHubSenderBuilder::http_settings`,
//! `AggregatorClientBuilder::http_settings`); a client never reads them out
//! of another. Clients also take azure_core's `ClientOptions`, whose per-call
//! and per-try policies run inside this crate's own.
//!
//! Every HTTPS call (token requests, Event Hubs REST, the aggregator API) goes
//! through `azure_core`'s pipeline with a `reqwest` client built here, so
//! connections are pooled and kept alive, transient failures (408, 429 with
//! `Retry-After`, 500, 502, 503, 504, I/O errors) are retried by
//! `azure_core`'s exponential policy with jitter, and extra trusted roots (the
//! sandbox CA, an enterprise proxy's CA) are **added** to the platform's
//! roots. Certificate verification is never turned off.

pub(crate) mod bearer;
mod transport;

pub use transport::REASON_PHRASE;

use crate::error::{Error, InvalidInput};
use azure_core::http::policies::Policy;
use azure_core::http::{
    ClientOptions, ExponentialRetryOptions, HttpClient, Pipeline, PipelineSendOptions, RawResponse,
    Request, RetryOptions, Transport,
};
use std::sync::Arc;
use std::time::Duration;

/// How HTTPS clients are built: extra trusted roots, timeouts, retries.
#[derive(Clone)]
pub struct HttpSettings {
    extra_roots: Vec<reqwest::Certificate>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: ExponentialRetryOptions,
    resolve: Vec<(String, std::net::SocketAddr)>,
    transport: Option<Arc<dyn HttpClient>>,
    /// One reqwest client (one connection pool) shared by every clone of
    /// these settings, once [`share_pool`](Self::share_pool) made it; any
    /// change to the settings drops it.
    pool: Option<reqwest::Client>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("extra_roots", &self.extra_roots.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("resolve", &self.resolve)
            .field("custom_transport", &self.transport.is_some())
            .field("shared_pool", &self.pool.is_some())
            .finish()
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // Bounded: at most 4 retries within 30 s, waits growing from
            // 200 ms and never beyond 10 s (or what Retry-After asks).
            retry: ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 4,
                max_total_elapsed: azure_core::time::Duration::seconds(30),
                max_delay: azure_core::time::Duration::seconds(10),
            },
            resolve: Vec::new(),
            transport: None,
            pool: None,
        }
    }
}

impl HttpSettings {
    /// Adds trusted root certificates from PEM text (one or more
    /// `CERTIFICATE` blocks), on top of the platform's roots.
    pub fn add_root_certificates_pem(&mut self, pem: &str) -> Result<(), Error> {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            InvalidInput::new(
                "root certificate",
                &pem.chars().take(40).collect::<String>(),
                format!("it is not PEM certificate text ({e}); give the CA certificate in PEM"),
            )
        })?;
        if certs.is_empty() {
            return Err(InvalidInput::new(
                "root certificate",
                &pem.chars().take(40).collect::<String>(),
                "it holds no `-----BEGIN CERTIFICATE-----` block; give the CA certificate in PEM",
            )
            .into());
        }
        self.extra_roots.extend(certs);
        self.pool = None;
        Ok(())
    }

    /// Adds trusted roots from a PEM file (what `SSL_CERT_FILE` names).
    pub fn add_root_certificates_file(&mut self, path: &std::path::Path) -> Result<(), Error> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            InvalidInput::new(
                "root certificate file",
                &path.display().to_string(),
                format!("it cannot be read ({e}); give the path of a PEM CA certificate"),
            )
        })?;
        self.add_root_certificates_pem(&pem)
    }

    /// Sets the TCP+TLS connect timeout (default 10 s).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.pool = None;
        self.connect_timeout = timeout;
    }

    /// Sets the timeout of one HTTP attempt (default 30 s). A slow answer
    /// past it counts as a transient failure and is retried.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.pool = None;
        self.request_timeout = timeout;
    }

    /// Sets the retry policy for transient failures.
    pub fn set_retry(&mut self, retry: ExponentialRetryOptions) {
        self.retry = retry;
    }

    /// The retry policy.
    pub fn retry(&self) -> &ExponentialRetryOptions {
        &self.retry
    }

    /// Connects to `addr` whenever a URL names `host`, keeping `host` for
    /// TLS verification and the `Host` header: how a client reaches a proxy
    /// or the sandbox while requests still name the real service.
    pub fn resolve(&mut self, host: &str, addr: std::net::SocketAddr) {
        self.pool = None;
        self.resolve.push((host.to_ascii_lowercase(), addr));
    }

    /// Sends every request through `client` instead of the built-in
    /// reqwest transport: a test double answering canned responses, a
    /// recording transport. The trusted roots, timeouts and
    /// [`resolve`](Self::resolve) entries above are the built-in transport's
    /// and do not apply to another; the retry policy still does.
    pub fn set_transport(&mut self, client: Arc<dyn HttpClient>) {
        self.transport = Some(client);
    }

    /// Builds the HTTPS client now and makes every clone of these settings
    /// (and every client made from them) share it: one connection pool, so
    /// one TLS connection to a host serves them all. A later change to the
    /// settings (roots, timeouts, resolve) goes back to a client per use.
    pub fn share_pool(&mut self) -> Result<(), Error> {
        self.pool = None;
        self.pool = Some(self.reqwest_client()?);
        Ok(())
    }

    /// A `reqwest` client: rustls with the platform verifier plus the extra
    /// roots, HTTP keep-alive, the timeouts above. The shared one, if
    /// [`share_pool`](Self::share_pool) made one.
    pub(crate) fn reqwest_client(&self) -> Result<reqwest::Client, Error> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let mut builder = reqwest::Client::builder();
        for (host, addr) in &self.resolve {
            builder = builder.resolve(host, *addr);
        }
        builder
            .tls_certs_merge(self.extra_roots.iter().cloned())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| Error::transport("building the HTTPS client", e, false))
    }

    /// `azure_core` client options: the transport (the custom one, or the
    /// pooled reqwest client keeping reason phrases) and this retry policy,
    /// with the user's per-call and per-try policies, user agent and
    /// instrumentation from `user` (its transport, if set, wins; its retry
    /// options do not: these settings own retries).
    pub(crate) fn client_options(
        &self,
        user: Option<&ClientOptions>,
    ) -> Result<ClientOptions, Error> {
        let transport = match (user.and_then(|u| u.transport.clone()), &self.transport) {
            (Some(t), _) => t,
            (None, Some(custom)) => Transport::new(custom.clone()),
            (None, None) => Transport::new(Arc::new(transport::ReqwestTransport(
                self.reqwest_client()?,
            ))),
        };
        let mut options = user.cloned().unwrap_or_default();
        options.transport = Some(transport);
        options.retry = RetryOptions::exponential(self.retry.clone());
        Ok(options)
    }

    /// An `azure_core` pipeline over these settings: `per_call` first (this
    /// crate's authorization policy), then azure_core's own policies and the
    /// user's, the retry policy, the transport.
    pub(crate) fn pipeline(
        &self,
        user: Option<&ClientOptions>,
        per_call: Vec<Arc<dyn Policy>>,
    ) -> Result<Pipeline, Error> {
        Ok(Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            self.client_options(user)?,
            per_call,
            Vec::new(),
            None,
        ))
    }
}

/// Sends `request` and returns the answer whatever its status: every caller
/// reads the service's own error body (Entra's JSON, Event Hubs' `SubCode`,
/// the API's `ForbidReason`), which azure_core's status check would discard.
pub(crate) async fn send_unchecked(
    pipeline: &Pipeline,
    request: &mut Request,
) -> azure_core::Result<RawResponse> {
    bearer::ensure_client_request_id(request);
    pipeline
        .send(
            &azure_core::http::Context::new(),
            request,
            Some(PipelineSendOptions {
                skip_checks: true,
                ..Default::default()
            }),
        )
        .await
}
