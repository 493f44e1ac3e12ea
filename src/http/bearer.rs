//! The one authorization policy: a bearer token on every request, and one
//! fresh token after a refusal a new token can fix.
//!
//! Both the Event Hubs HTTPS sender and the aggregator client put this policy
//! first in their azure_core pipeline (before azure_core's own per-call
//! policies and its retry policy), so:
//!
//! - it sets `x-ms-client-request-id` itself when the request has none.
//!   azure_core's `ClientRequestIdPolicy` would do it too, but it looks the
//!   header up with `get_optional_str`, which builds an `azure_core::Error`
//!   (with a captured backtrace when `RUST_BACKTRACE` is set) for every
//!   request that lacks it; finding the header present, it builds nothing;
//! - it adds `Authorization: Bearer <token>` from the client's credential
//!   (the credential's cache answers, so this costs no request once warm);
//! - on a `401` it reads the service's sub-code, from the body
//!   (`<Detail>SubCode=40106: …</Detail>`) or, when the body has none, from
//!   the status line's reason phrase (`401 SubCode=40100: Unauthorized`,
//!   kept by [`super::transport`]). A `401` with no sub-code (an API's plain
//!   refusal), `40106` (expired) or `40103` (signed with a key the service no
//!   longer trusts: Entra rotated its keys) gets exactly one fresh token and
//!   one retry; any other sub-code (40100: wrong tenant or no role, 40104:
//!   wrong audience) is a grant problem a new token cannot fix, and is
//!   answered as it came. A credential that gives the refused token back
//!   (one that cannot drop it from a cache) is not retried.
//!
//! The answer goes back to the client whatever its status; the client
//! explains it. When the policy retried, the answer carries the
//! [`TOKEN_REFRESHED`] header so the explanation can say so.

use crate::credential::TokenSource;
use azure_core::http::headers::{HeaderName, HeaderValue};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{AsyncRawResponse, Context, Request};
use std::sync::Arc;

const AUTHORIZATION: HeaderName = HeaderName::from_static("authorization");
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");

/// Set on an answer after the policy refreshed the token and retried once.
pub(crate) const TOKEN_REFRESHED: HeaderName =
    HeaderName::from_static("crosstenant-token-refreshed");

/// Adds the bearer token for one scope; see the module docs.
#[derive(Debug)]
pub(crate) struct BearerPolicy {
    source: TokenSource,
    scope: String,
}

impl BearerPolicy {
    pub(crate) fn policy(source: TokenSource, scope: impl Into<String>) -> Arc<dyn Policy> {
        Arc::new(Self {
            source,
            scope: scope.into(),
        })
    }

    async fn bearer(&self) -> azure_core::Result<(azure_core::credentials::AccessToken, String)> {
        let token = self
            .source
            .token(&self.scope)
            .await
            .map_err(crate::Error::into_azure)?;
        let mut header = String::with_capacity(7 + token.token.secret().len());
        header.push_str("Bearer ");
        header.push_str(token.token.secret());
        Ok((token, header))
    }
}

/// Sets `x-ms-client-request-id` when missing, without the error azure_core's
/// lookup would build (see the module docs).
pub(crate) fn ensure_client_request_id(request: &mut Request) {
    let present = request
        .headers()
        .get_optional_with(&CLIENT_REQUEST_ID, |_| {
            Ok::<(), std::convert::Infallible>(())
        })
        .ok()
        .flatten()
        .is_some();
    if !present {
        request.insert_header(CLIENT_REQUEST_ID, azure_core::Uuid::new_v4().to_string());
    }
}

#[async_trait::async_trait]
impl Policy for BearerPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        ensure_client_request_id(request);
        let (token, header) = self.bearer().await?;
        request.insert_header(AUTHORIZATION, header);
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if u16::from(response.status()) != 401 {
            return Ok(response);
        }
        let (status, mut headers, body) = response.deconstruct();
        let bytes = body.collect().await?;
        let subcode = subcode_of(
            &String::from_utf8_lossy(&bytes),
            headers
                .get_optional_with(&super::transport::REASON_PHRASE, |v| {
                    Ok::<&str, std::convert::Infallible>(v.as_str())
                })
                .ok()
                .flatten(),
        );
        if !matches!(subcode, None | Some(40106 | 40103)) {
            return Ok(AsyncRawResponse::from_bytes(status, headers, bytes));
        }
        self.source.invalidate(&self.scope, &token);
        let (fresh, header) = self.bearer().await?;
        if fresh.token.secret() == token.token.secret() {
            // The credential could not give a new token; the same one would
            // only be refused again.
            return Ok(AsyncRawResponse::from_bytes(status, headers, bytes));
        }
        tracing::debug!(?subcode, "401: retrying once with a fresh token");
        request.insert_header(AUTHORIZATION, header);
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let (status, h, body) = response.deconstruct();
        headers = h;
        headers.insert(TOKEN_REFRESHED, HeaderValue::from_static("true"));
        Ok(AsyncRawResponse::from_bytes(
            status,
            headers,
            body.collect().await?,
        ))
    }
}

/// The service's sub-code of a `401`: `SubCode=40106` in the body, or else
/// in the reason phrase.
pub(crate) fn subcode_of(body: &str, reason_phrase: Option<&str>) -> Option<u32> {
    fn find(text: &str) -> Option<u32> {
        let rest = &text[text.find("SubCode=")? + "SubCode=".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    }
    find(body).or_else(|| reason_phrase.and_then(find))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcode_is_read_from_the_body_or_else_the_reason_phrase() {
        let body = "<Error><Code>401</Code><Detail>SubCode=40106: expired</Detail></Error>";
        assert_eq!(subcode_of(body, None), Some(40106));
        assert_eq!(
            subcode_of(body, Some("SubCode=40100: Unauthorized")),
            Some(40106)
        );
        assert_eq!(
            subcode_of("", Some("SubCode=40100: Unauthorized")),
            Some(40100)
        );
        assert_eq!(subcode_of("", Some("Unauthorized")), None);
        assert_eq!(subcode_of("no code", None), None);
    }

    #[test]
    fn a_missing_client_request_id_is_set_and_a_given_one_kept() {
        let url = url::Url::parse("https://example.com/").unwrap();
        let mut request = Request::new(url.clone(), azure_core::http::Method::Get);
        ensure_client_request_id(&mut request);
        let set = request
            .headers()
            .get_optional_string(&CLIENT_REQUEST_ID)
            .expect("set");
        assert_eq!(set.len(), 36, "a UUID: {set}");
        let mut given = Request::new(url, azure_core::http::Method::Get);
        given.insert_header(CLIENT_REQUEST_ID, "caller-chosen");
        ensure_client_request_id(&mut given);
        assert_eq!(
            given
                .headers()
                .get_optional_string(&CLIENT_REQUEST_ID)
                .as_deref(),
            Some("caller-chosen")
        );
    }
}
