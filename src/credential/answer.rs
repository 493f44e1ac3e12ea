//! Reading Entra's answer to a token request: the checks every token passes
//! (its `tid` is the resource tenant, its `aud` the resource asked for), and
//! the errors: Entra's JSON becomes an [`EntraError`]; an answer that is not
//! Entra's JSON (a 429 with no body, a proxy's HTML page, a 200 that is not a
//! token) becomes an [`UnexpectedAnswer`] naming the status and what to do,
//! never a parser's bare "EOF while parsing a value".

use super::Inner;
use crate::error::{chain, EntraError, Error, UnexpectedAnswer};
use azure_core::credentials::AccessToken;
use azure_core::http::Request;
use std::sync::Arc;

/// First-party resources whose client id a v2.0 token names in `aud`
/// instead of their App ID URI (Microsoft's "Authorize access to Event Hubs
/// resources using Microsoft Entra ID": the Event Hubs resource
/// `https://eventhubs.azure.net`, whose service principal is
/// "Microsoft.EventHubs", 80369ed6-5f11-4dd9-bef3-692475845e77).
const FIRST_PARTY_CLIENT_IDS: &[(&str, &str)] = &[
    (
        "https://eventhubs.azure.net",
        "80369ed6-5f11-4dd9-bef3-692475845e77",
    ),
    (
        "https://servicebus.azure.net",
        "80369ed6-5f11-4dd9-bef3-692475845e77",
    ),
];

/// Whether a token's `aud` names the resource asked for, as Microsoft's
/// "access token claims reference" describes it: a v1.0 token carries the
/// App ID URI or the client id the client asked for; a v2.0 token always
/// carries the resource's client id (a GUID), whichever form was asked. The
/// token version is the resource owner's setting
/// (`accessTokenAcceptedVersion`), not the partner's. `Err` says which case
/// was met and why it does not fit.
fn audience_matches(resource: &str, aud: &str, version: &str) -> Result<(), String> {
    let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    let resource_n = norm(resource);
    let aud_n = norm(aud);
    // The resource asked for by client id: `{guid}` or `api://{guid}`.
    let asked_guid = Some(resource_n.strip_prefix("api://").unwrap_or(&resource_n))
        .filter(|g| crate::tenant::is_guid(g));
    let first_party = FIRST_PARTY_CLIENT_IDS
        .iter()
        .find(|(uri, _)| *uri == resource_n)
        .map(|(_, id)| *id);
    if version == "2.0" {
        if !crate::tenant::is_guid(&aud_n) {
            return Err(format!(
                "a v2.0 token names the resource by its client id, but {aud} is not a GUID"
            ));
        }
        return match asked_guid.or(first_party) {
            Some(id) if id == aud_n => Ok(()),
            Some(id) => Err(format!(
                "a v2.0 token for this resource would carry its client id {id}"
            )),
            // An App ID URI of the resource owner's own API: a v2.0 token
            // names it by a client id only the owner's directory can tie to
            // the URI. Refuse only what is certainly another resource: a
            // first-party service's client id.
            None => match FIRST_PARTY_CLIENT_IDS.iter().find(|(_, id)| *id == aud_n) {
                Some((uri, _)) => Err(format!("a v2.0 token for {uri}, another resource")),
                None => Ok(()),
            },
        };
    }
    if aud_n == resource_n || asked_guid == Some(aud_n.as_str()) {
        return Ok(());
    }
    Err(format!(
        "a v{version} token carries the App ID URI or client id that was asked for"
    ))
}

impl Inner {
    /// Checks the token's `tid` and `aud` against what was asked.
    pub(super) fn check(
        &self,
        tenant_id: &str,
        scope: &str,
        token: &AccessToken,
    ) -> Result<(), Error> {
        let claims = crate::claims::TokenClaims::decode(token.token.secret())?;
        let tid = claims.tenant_id().unwrap_or("<none>");
        if !tid.eq_ignore_ascii_case(tenant_id) {
            return Err(Error::WrongTenant {
                expected: tenant_id.to_string(),
                actual: tid.to_string(),
                client_id: self.client_id.clone(),
            });
        }
        if self.check_audience {
            let resource = scope.strip_suffix("/.default").unwrap_or(scope);
            let aud = claims.audience().unwrap_or("<none>");
            let version = claims.get("ver").and_then(|v| v.as_str()).unwrap_or("1.0");
            if let Err(case) = audience_matches(resource, aud, version) {
                return Err(Error::WrongAudience {
                    scope: scope.to_string(),
                    expected: resource.to_string(),
                    actual: aud.to_string(),
                    case,
                });
            }
        }
        Ok(())
    }

    /// Turns azure_identity's error into ours: Entra's JSON answer becomes
    /// an [`entra::EntraError`]; our own assertion errors come back as they
    /// were; anything else is a transport error.
    pub(super) fn explain(&self, tenant_id: &str, scope: &str, err: azure_core::Error) -> Error {
        if let Some(ours) = Error::from_azure(&err) {
            return ours.clone();
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = current {
            if let Some(az) = e.downcast_ref::<azure_core::Error>() {
                if let azure_core::error::ErrorKind::HttpResponse {
                    status,
                    raw_response,
                    ..
                } = az.kind()
                {
                    let status = u16::from(*status);
                    let (headers, body) = match raw_response {
                        Some(resp) => (Some(resp.headers()), resp.body().as_ref()),
                        None => (None, &[][..]),
                    };
                    if let Some(entra) =
                        EntraError::parse(status, body, tenant_id, &self.client_id, Some(scope))
                    {
                        return entra.into();
                    }
                    let header = |name: &'static str| {
                        headers.and_then(|h| {
                            h.get_optional_string(
                                &azure_core::http::headers::HeaderName::from_static(name),
                            )
                        })
                    };
                    return UnexpectedAnswer::classify(
                        format!("token request to {}", self.token_endpoint(tenant_id)),
                        status,
                        header("retry-after"),
                        header("content-type"),
                        body,
                    )
                    .into();
                }
                if let Some(inner) = az.get_ref() {
                    current = Some(inner);
                    continue;
                }
            }
            current = e.source();
        }
        let transient = matches!(
            err.kind(),
            azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
        ) || chain(&err).contains("error sending request");
        Error::transport_caused(
            format!("token request to {}", self.token_endpoint(tenant_id)),
            err,
            transient,
        )
    }
}

/// An answer [`CaptureEntraAnswer`] kept: every failed one, and a
/// successful one whose body is not a token.
pub(super) struct Captured {
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: azure_core::Bytes,
}

/// Where [`CaptureEntraAnswer`] leaves a token request's answer.
#[derive(Default)]
pub(super) struct CapturedAnswer(std::sync::Mutex<Option<Captured>>);

impl CapturedAnswer {
    pub(super) fn take(&self) -> Option<Captured> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Keeps the answer of a token request that failed, or that succeeded
/// without a token, for explaining it.
///
/// azure_identity 1.1.0-beta.1 deserializes Entra's `error_description`
/// into a borrowed `&str`, which fails for every real answer (they contain
/// escaped `\r\n` before the trace id), so its error carries neither the
/// AADSTS code nor the body; and for an answer that is not JSON at all (a
/// 429 with no body, a proxy's HTML page) it says only "EOF while parsing a
/// value". This per-try policy copies such an answer (status, `Retry-After`,
/// `Content-Type`, body) into a slot the credential put in the request
/// context, and hands the response on unchanged; it does nothing for
/// requests without such a slot. A token answer is never kept.
#[derive(Debug)]
pub(super) struct CaptureEntraAnswer;

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for CaptureEntraAnswer {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let Some(slot) = ctx.value::<Arc<CapturedAnswer>>() else {
            return Ok(response);
        };
        let (status, headers, body) = response.deconstruct();
        let bytes = body.collect().await?;
        let is_token = status.is_success()
            && serde_json::from_slice::<serde_json::Value>(&bytes)
                .is_ok_and(|v| v.get("access_token").is_some_and(|t| t.is_string()));
        if !is_token {
            let header = |name: &'static str| {
                headers
                    .get_optional_string(&azure_core::http::headers::HeaderName::from_static(name))
            };
            *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Captured {
                status: u16::from(status),
                retry_after: header("retry-after"),
                content_type: header("content-type"),
                body: bytes.clone(),
            });
        }
        Ok(azure_core::http::AsyncRawResponse::from_bytes(
            status, headers, bytes,
        ))
    }
}

impl Inner {
    /// The error for a kept answer: Entra's JSON explained, or what else
    /// answered and what to do.
    pub(super) fn answer_error(
        &self,
        operation: String,
        tenant: &str,
        scope: Option<&str>,
        captured: Captured,
    ) -> Error {
        if let Some(entra) = EntraError::parse(
            captured.status,
            &captured.body,
            tenant,
            &self.client_id,
            scope,
        ) {
            return entra.into();
        }
        UnexpectedAnswer::classify(
            operation,
            captured.status,
            captured.retry_after,
            captured.content_type,
            &captured.body,
        )
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CrossTenantCredential;

    const CLIENT: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";

    fn jwt(claims: serde_json::Value) -> AccessToken {
        use base64::Engine as _;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.c2ln",
            b64(&serde_json::json!({"alg": "RS256"})),
            b64(&claims)
        );
        AccessToken::new(token, azure_core::time::OffsetDateTime::now_utc())
    }

    #[test]
    fn a_token_from_another_tenant_or_for_another_audience_is_refused() {
        let owner = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let partner = "11111111-2222-3333-4444-555555555555";
        let cred = CrossTenantCredential::builder()
            .resource_tenant(owner)
            .client_id(CLIENT)
            .client_secret("s")
            .build()
            .unwrap();
        let scope = "https://eventhubs.azure.net/.default";
        let home = jwt(serde_json::json!({"tid": partner, "aud": "https://eventhubs.azure.net"}));
        let err = cred.inner.check(owner, scope, &home).unwrap_err();
        assert!(matches!(err, Error::WrongTenant { .. }));
        let text = err.to_string();
        assert!(
            text.contains(owner) && text.contains(partner) && text.contains("40100"),
            "{text}"
        );

        let other_aud = jwt(serde_json::json!({"tid": owner, "aud": "https://storage.azure.com"}));
        assert!(matches!(
            cred.inner.check(owner, scope, &other_aud),
            Err(Error::WrongAudience { .. })
        ));
        let ok = jwt(serde_json::json!({"tid": owner, "aud": "https://eventhubs.azure.net/"}));
        cred.inner.check(owner, scope, &ok).unwrap();
        let guid_aud = jwt(serde_json::json!({"tid": owner, "aud": CLIENT}));
        cred.inner
            .check(owner, &format!("api://{CLIENT}/.default"), &guid_aud)
            .unwrap();
    }

    #[test]
    fn v2_tokens_name_the_resource_by_its_client_id() {
        let owner = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let api = "0d9f2b7e-1c3a-4a5b-9c8d-7e6f5a4b3c2d";
        let cred = CrossTenantCredential::builder()
            .resource_tenant(owner)
            .client_id(CLIENT)
            .client_secret("s")
            .build()
            .unwrap();
        let v2 = |aud: &str| jwt(serde_json::json!({"tid": owner, "aud": aud, "ver": "2.0"}));
        // The resource owner's API takes v2.0 tokens: asked by App ID URI,
        // the token names the API by its client id.
        cred.inner
            .check(owner, "api://secure-api/.default", &v2(api))
            .unwrap();
        // Asked by client id, it must be that client id.
        cred.inner
            .check(owner, &format!("api://{api}/.default"), &v2(api))
            .unwrap();
        let err = cred
            .inner
            .check(owner, &format!("api://{api}/.default"), &v2(CLIENT))
            .unwrap_err();
        assert!(err.to_string().contains("v2.0"), "{err}");
        // Event Hubs' v2.0 tokens carry its client id; a v2.0 token for Event
        // Hubs is another resource when the API was asked for.
        let eventhubs = "80369ed6-5f11-4dd9-bef3-692475845e77";
        cred.inner
            .check(
                owner,
                "https://eventhubs.azure.net/.default",
                &v2(eventhubs),
            )
            .unwrap();
        let err = cred
            .inner
            .check(owner, "api://secure-api/.default", &v2(eventhubs))
            .unwrap_err();
        assert!(
            matches!(&err, Error::WrongAudience { case, .. } if case.contains("eventhubs.azure.net")),
            "{err}"
        );
        let err = cred
            .inner
            .check(owner, "https://eventhubs.azure.net/.default", &v2(api))
            .unwrap_err();
        assert!(err.to_string().contains(eventhubs), "{err}");
        // A v2.0 token's aud is never a URI.
        assert!(cred
            .inner
            .check(owner, "api://secure-api/.default", &v2("api://secure-api"))
            .is_err());
        // A v1.0 token with a GUID for a URI scope is not what Entra issues.
        let v1_guid = jwt(serde_json::json!({"tid": owner, "aud": api, "ver": "1.0"}));
        let err = cred
            .inner
            .check(owner, "api://secure-api/.default", &v1_guid)
            .unwrap_err();
        assert!(err.to_string().contains("v1.0"), "{err}");
    }

    mod answers {
        use crate::credential::fake::{
            credential, jwt, owner_token, Answer, FakeTransport, CLIENT, OWNER, SCOPE,
        };
        use crate::error::entra::AnswerKind;
        use crate::{Error, Party};

        async fn token_error(answers: Vec<Answer>) -> Error {
            credential(OWNER, FakeTransport::new(answers))
                .token(SCOPE)
                .await
                .unwrap_err()
        }

        fn assert_no_parser_text(text: &str) {
            assert!(
                !text.contains("EOF") && !text.contains("expected value"),
                "a parser's words leaked: {text}"
            );
        }

        #[tokio::test]
        async fn a_token_answer_is_checked_and_kept() {
            let fake = FakeTransport::new(vec![Answer::token(&owner_token())]);
            let cred = credential(OWNER, fake.clone());
            let token = cred.token(SCOPE).await.unwrap();
            assert_eq!(token.token.secret(), owner_token());
            cred.token(SCOPE).await.unwrap();
            assert_eq!(fake.requests().len(), 1, "the second comes from the cache");
        }

        #[tokio::test]
        async fn a_token_from_the_home_tenant_is_refused_before_use() {
            let home = jwt(serde_json::json!({
                "tid": "11111111-2222-3333-4444-555555555555",
                "aud": "https://eventhubs.azure.net", "appid": CLIENT,
            }));
            let err = token_error(vec![Answer::token(&home)]).await;
            assert!(matches!(err, Error::WrongTenant { .. }), "{err}");
            assert_eq!(err.remedy().unwrap().party, Party::Partner);
        }

        #[tokio::test]
        async fn entra_json_is_explained_by_its_code() {
            let body = serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t\r\nCorrelation ID: c",
                "error_codes": [7000215], "trace_id": "t", "correlation_id": "c",
            })
            .to_string();
            let err = token_error(vec![Answer::new(401, body)]).await;
            let entra = err.as_entra().expect("an Entra error");
            assert_eq!(entra.code(), Some(7000215));
            assert_eq!(entra.tenant, OWNER);
            assert_eq!(err.remedy().unwrap().party, Party::Partner);
        }

        #[tokio::test]
        async fn a_429_with_an_empty_body_says_throttled_and_when_to_retry() {
            let err = token_error(vec![Answer::new(429, "").header("retry-after", "1")]).await;
            let answer = err.as_unexpected_answer().expect("an unexpected answer");
            assert_eq!(answer.kind, AnswerKind::Throttled);
            let text = err.to_string();
            assert!(
                text.contains("HTTP 429")
                    && text.contains("throttled")
                    && text.contains("Retry-After 1"),
                "{text}"
            );
            assert_no_parser_text(&text);
            assert!(err.is_transient());
            let remedy = err.remedy().unwrap();
            assert!(remedy.action.contains("at least 1 s"), "{remedy}");
        }

        #[tokio::test]
        async fn a_503_html_page_from_a_proxy_is_named_as_a_proxy() {
            let err = token_error(vec![Answer::new(
                503,
                "<html><head><title>503 Service Unavailable</title></head></html>",
            )
            .header("content-type", "text/html; charset=utf-8")])
            .await;
            let answer = err.as_unexpected_answer().expect("an unexpected answer");
            assert_eq!(answer.kind, AnswerKind::Proxy);
            let text = err.to_string();
            assert!(
                text.contains("HTTP 503") && text.contains("proxy") && text.contains("text/html"),
                "{text}"
            );
            assert_no_parser_text(&text);
            assert!(err.is_transient());
        }

        #[tokio::test]
        async fn a_200_whose_body_is_not_json_is_not_taken_for_entra() {
            let err = token_error(vec![Answer::new(200, "hello from a captive portal")
                .header("content-type", "text/plain")])
            .await;
            let answer = err.as_unexpected_answer().expect("an unexpected answer");
            assert_eq!(answer.kind, AnswerKind::NotEntra);
            let text = err.to_string();
            assert!(
                text.contains("HTTP 200") && text.contains("not a token answer"),
                "{text}"
            );
            assert_no_parser_text(&text);
            assert!(!err.is_transient());
            let remedy = err.remedy().unwrap();
            assert!(remedy.action.contains("AZURE_AUTHORITY_HOST"), "{remedy}");
        }
    }
}
