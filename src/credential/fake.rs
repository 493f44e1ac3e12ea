//! A fake token service for unit tests: an azure_core `HttpClient` that
//! answers canned responses in order and records what was asked, plugged in
//! through [`HttpSettings::set_transport`](crate::HttpSettings::set_transport).

use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One canned answer.
#[derive(Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Entra's token answer for `token`.
    pub(crate) fn token(token: &str) -> Self {
        Self::new(
            200,
            serde_json::json!({
                "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                "access_token": token,
            })
            .to_string(),
        )
        .header("content-type", "application/json; charset=utf-8")
    }
}

/// Answers in order (the last one repeated); records `METHOD url` of each
/// request.
#[derive(Default)]
pub(crate) struct FakeTransport {
    answers: Mutex<VecDeque<Answer>>,
    last: Mutex<Option<Answer>>,
    pub(crate) requests: Mutex<Vec<String>>,
    /// The `authorization` header of each request, if any.
    pub(crate) authorizations: Mutex<Vec<Option<String>>>,
}

impl std::fmt::Debug for FakeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeTransport")
    }
}

impl FakeTransport {
    pub(crate) fn new(answers: Vec<Answer>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into()),
            ..Default::default()
        })
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl HttpClient for FakeTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{} {}", request.method(), request.url()));
        self.authorizations.lock().unwrap().push(
            request
                .headers()
                .get_optional_str(&HeaderName::from_static("authorization"))
                .map(str::to_string),
        );
        let next = self.answers.lock().unwrap().pop_front();
        let answer = match next {
            Some(a) => {
                *self.last.lock().unwrap() = Some(a.clone());
                a
            }
            None => self
                .last
                .lock()
                .unwrap()
                .clone()
                .expect("at least one answer"),
        };
        let (status, headers, body) = (answer.status, answer.headers, answer.body);
        let map: HashMap<HeaderName, HeaderValue> = headers
            .into_iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from(v)))
            .collect();
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(map),
            body,
        ))
    }
}

/// A JWT (unsigned: the credential reads claims, it never verifies) with
/// these claims.
pub(crate) fn jwt(claims: serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2ln",
        b64(&serde_json::json!({"alg": "RS256"})),
        b64(&claims)
    )
}

/// The resource owner's tenant id the fake answers are issued for.
pub(crate) const OWNER: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The partner's client id.
pub(crate) const CLIENT: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";
/// The Event Hubs scope.
pub(crate) const SCOPE: &str = "https://eventhubs.azure.net/.default";

/// A valid token for [`SCOPE`] from [`OWNER`].
pub(crate) fn owner_token() -> String {
    jwt(serde_json::json!({
        "tid": OWNER, "aud": "https://eventhubs.azure.net", "appid": CLIENT,
    }))
}

/// A credential for `tenant` whose every request goes to `fake`, with a
/// short retry budget (one retry, 10 ms apart) so throttling tests are quick.
pub(crate) fn credential(
    tenant: &str,
    fake: Arc<FakeTransport>,
) -> Arc<crate::CrossTenantCredential> {
    let mut http = crate::HttpSettings::default();
    http.set_transport(fake);
    http.set_retry(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(10),
        max_retries: 1,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::milliseconds(50),
    });
    crate::CrossTenantCredential::builder()
        .resource_tenant(tenant)
        .client_id(CLIENT)
        .client_secret("s3cr3t-value")
        .http_settings(http)
        .build()
        .expect("builds")
}
