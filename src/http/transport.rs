//! The HTTP transport under every pipeline: `reqwest`, as azure_core's own,
//! but keeping what Event Hubs says only in the status line.
//!
//! Event Hubs answers a token from another tenant with
//! `HTTP/1.1 401 SubCode=40100: Unauthorized` and an empty body: the sub-code
//! is only in the reason phrase. hyper keeps a non-canonical reason phrase as
//! the `hyper::ext::ReasonPhrase` extension of the response, and reqwest
//! hands extensions on, but azure_core's `HttpClient` for reqwest builds its
//! response from the status, headers and body only, so the phrase is lost
//! there. This transport does the same work and copies such a phrase into
//! the [`REASON_PHRASE`] response header, where a policy can read it.
//! (azure_core lets a client plug its own transport through
//! `ClientOptions::transport`.)
//!
//! Not here: retries, timeouts (the reqwest client's), authentication.

use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request};
use std::collections::HashMap;

/// The response header holding a non-canonical HTTP/1 reason phrase (one
/// that is not the status code's standard text), such as
/// `SubCode=40100: Unauthorized`. Absent when the phrase was the standard
/// one, or over HTTP/2 (which has none).
pub const REASON_PHRASE: HeaderName = HeaderName::from_static("crosstenant-reason-phrase");

/// azure_core's `HttpClient` over a `reqwest::Client` that keeps the
/// reason phrase (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct ReqwestTransport(pub(crate) reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::ErrorKind;
        let method = match request.method() {
            Method::Delete => reqwest::Method::DELETE,
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Patch => reqwest::Method::PATCH,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            other => reqwest::Method::from_bytes(other.to_string().as_bytes()).map_err(|e| {
                azure_core::Error::with_error(ErrorKind::Other, e, "unsupported HTTP method")
            })?,
        };
        let mut builder = self.0.request(method, request.url().clone());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let builder = match request.body() {
            azure_core::http::Body::Bytes(bytes) => builder.body(bytes.clone()),
            // Every request of this crate has its body in memory; a
            // streaming body (a user's policy could set one) would need
            // reqwest's `stream` feature, which this crate does not build.
            #[allow(unreachable_patterns)]
            _ => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    "crosstenant's transport sends bodies held in memory only; \
                     give the request a Body::Bytes",
                ))
            }
        };
        let response = builder.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            azure_core::Error::with_error(kind, e, "the HTTPS request failed")
        })?;
        let status = response.status().as_u16();
        let mut map: HashMap<HeaderName, HeaderValue> =
            HashMap::with_capacity(response.headers().len() + 1);
        for (name, value) in response.headers() {
            // azure_core's headers are text; a header that is not (rare,
            // and never one this crate reads) is left out, as azure_core's
            // own reqwest transport does.
            if let Ok(value) = value.to_str() {
                map.insert(
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_owned()),
                );
            }
        }
        if let Some(reason) = response.extensions().get::<hyper::ext::ReasonPhrase>() {
            let text = String::from_utf8_lossy(reason.as_bytes()).into_owned();
            map.insert(REASON_PHRASE, HeaderValue::from(text));
        }
        let body = response.bytes().await.map_err(|e| {
            azure_core::Error::with_error(ErrorKind::Io, e, "reading the HTTPS answer failed")
        })?;
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(map),
            body,
        ))
    }
}
