//! Tenant discovery: a resource tenant given as a verified domain
//! (`contoso.onmicrosoft.com`) is resolved once to its directory id through
//! the tenant's OpenID configuration (Microsoft's "OpenID Connect on the
//! Microsoft identity platform": `token_endpoint` names the tenant GUID).

use super::Inner;
use crate::error::{EntraError, Error, UnexpectedAnswer};
use azure_core::http::{Method, Request};
use url::Url;

impl Inner {
    /// Resolves a domain to its tenant id through
    /// `{authority}/{domain}/v2.0/.well-known/openid-configuration`, whose
    /// `token_endpoint` names the GUID.
    pub(super) async fn discover(&self, domain: &str) -> Result<String, Error> {
        let url = format!(
            "{}/{domain}/v2.0/.well-known/openid-configuration",
            self.authority.as_str().trim_end_matches('/')
        );
        let operation = format!("resolving tenant {domain} at {url}");
        let parsed = Url::parse(&url).map_err(|e| Error::transport(&operation, e, false))?;
        let pipeline = self.http.pipeline(None, Vec::new())?;
        let mut request = Request::new(parsed, Method::Get);
        let response = crate::http::send_unchecked(&pipeline, &mut request)
            .await
            .map_err(|e| Error::transport_caused(&operation, e, true))?;
        let status = u16::from(response.status());
        let body: &[u8] = response.body();
        let doc = if (200..300).contains(&status) {
            serde_json::from_slice::<serde_json::Value>(body).ok()
        } else {
            None
        };
        let Some(doc) = doc else {
            if let Some(e) = EntraError::parse(status, body, domain, &self.client_id, None) {
                return Err(e.into());
            }
            let header = |name: &'static str| {
                response
                    .headers()
                    .get_optional_string(&azure_core::http::headers::HeaderName::from_static(name))
            };
            return Err(UnexpectedAnswer::classify(
                operation,
                status,
                header("retry-after"),
                header("content-type"),
                body,
            )
            .into());
        };
        let endpoint = doc
            .get("token_endpoint")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        endpoint
            .split('/')
            .find(|seg| crate::tenant::is_guid(seg))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                Error::transport(
                    &operation,
                    "the OpenID configuration names no tenant id in its token_endpoint",
                    false,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{credential, owner_token, Answer, FakeTransport, OWNER, SCOPE};
    use crate::error::entra::AnswerKind;

    fn openid_configuration(tenant: &str) -> Answer {
        Answer::new(
            200,
            serde_json::json!({
                "token_endpoint": format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
                "issuer": format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            })
            .to_string(),
        )
    }

    #[tokio::test]
    async fn a_domain_resolves_once_to_the_tenant_id_of_its_openid_configuration() {
        let fake = FakeTransport::new(vec![
            openid_configuration(OWNER),
            Answer::token(&owner_token()),
        ]);
        let cred = credential("contoso.onmicrosoft.com", fake.clone());
        cred.token(SCOPE).await.unwrap();
        assert_eq!(cred.resolved_tenant_id().await.unwrap(), OWNER);
        cred.token("https://eventhubs.azure.net//.default")
            .await
            .unwrap(); // another cache entry: a new token request, no new discovery
        let requests = fake.requests();
        assert!(
            requests[0].starts_with("GET ")
                && requests[0]
                    .ends_with("/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"),
            "{requests:?}"
        );
        assert!(
            requests[1].starts_with("POST ")
                && requests[1].contains(&format!("/{OWNER}/oauth2/v2.0/token")),
            "{requests:?}"
        );
        assert!(
            requests[2..].iter().all(|r| r.starts_with("POST ")),
            "discovery is done once: {requests:?}"
        );
    }

    #[tokio::test]
    async fn a_configuration_without_a_tenant_id_is_refused_naming_the_domain() {
        let fake = FakeTransport::new(vec![Answer::new(200, r#"{"issuer":"x"}"#)]);
        let err = credential("contoso.onmicrosoft.com", fake)
            .token(SCOPE)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("contoso.onmicrosoft.com") && text.contains("token_endpoint"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_proxy_page_instead_of_the_configuration_is_named_as_such() {
        let fake = FakeTransport::new(vec![Answer::new(
            403,
            "<html><body>Blocked by corporate proxy</body></html>",
        )
        .header("content-type", "text/html")]);
        let err = credential("contoso.onmicrosoft.com", fake)
            .token(SCOPE)
            .await
            .unwrap_err();
        let answer = err.as_unexpected_answer().expect("an unexpected answer");
        assert_eq!(answer.kind, AnswerKind::Proxy);
        let text = err.to_string();
        assert!(
            text.contains("HTTP 403") && text.contains("proxy") && text.contains("text/html"),
            "{text}"
        );
    }
}
