//! The aggregator blanks the tokens it sent out of any text it copies from
//! the API's answer into an error. An API that echoes the request back (a
//! debugging proxy, a verbose error page, a `WWW-Authenticate` challenge
//! quoting the bad token) must not turn a logged error into a leaked
//! token. A tiny TLS server plays such an API: it copies the API token and
//! the secondary token it received into the 401 challenge, the 403
//! `ForbidReason` and a 400 body. With the scrubbing removed, each of the
//! three tests below fails.
#![cfg(feature = "https")]

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use crosstenant::aggregator::{AggregatorClient, AggregatorError};
use crosstenant::HttpSettings;
use crosstenant_sandbox::tls::SandboxCa;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Short and distinctive, so that clipping the echo to the error's length
/// limit cannot be what hides them: only the scrubbing can.
const API_TOKEN: &str = "api-token-7Qm2vX9";
const SECONDARY_TOKEN: &str = "secondary-token-K4pZ8w";

/// One fixed token per scope: the API token for the API's scope, the
/// secondary token for a client's. The same token on every call, as a
/// credential's cache would hand it out.
#[derive(Debug)]
struct Fixed;

#[async_trait::async_trait]
impl TokenCredential for Fixed {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = if scopes == ["api://secure-api/.default"] {
            API_TOKEN
        } else {
            SECONDARY_TOKEN
        };
        Ok(AccessToken::new(
            token.to_string(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// The value of header `name` in a request head, or "".
fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_default()
}

/// An API that echoes what it was sent. The client id in the path picks
/// the answer: `/api/unauthorized/…` a 401 whose challenge quotes the
/// Authorization header, `/api/forbidden/…` a 403 whose `ForbidReason`
/// quotes both tokens, anything else a 400 whose body quotes both.
async fn echoing_api() -> (String, String) {
    let ca = SandboxCa::generate().unwrap();
    let config = ca.server_config(&[b"http/1.1"]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            loop {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                if !head.ends_with(b"\r\n\r\n") {
                    break;
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let length: usize = header(&head, "content-length").parse().unwrap_or(0);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).await.is_err() {
                    break;
                }
                let authorization = header(&head, "authorization");
                let secondary = header(&head, "x-secondary-token");
                let echo = format!(
                    "you sent Authorization: {authorization} and X-Secondary-Token: {secondary}"
                );
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                let (status, extra, body) = if path.contains("/api/unauthorized/") {
                    (
                        "401 Unauthorized",
                        format!("WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"{echo}\"\r\n"),
                        String::new(),
                    )
                } else if path.contains("/api/forbidden/") {
                    (
                        "403 Forbidden",
                        "Content-Type: application/json\r\n".to_string(),
                        serde_json::json!({ "ForbidReason": echo }).to_string(),
                    )
                } else {
                    ("400 Bad Request", String::new(), echo)
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if tls.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    });
    (format!("https://{addr}/"), ca.pem().to_string())
}

async fn aggregator() -> AggregatorClient {
    let (url, ca) = echoing_api().await;
    let mut http = HttpSettings::default();
    http.add_root_certificates_pem(&ca).unwrap();
    let credential: Arc<dyn TokenCredential> = Arc::new(Fixed);
    AggregatorClient::builder(url, "api://secure-api", credential)
        .http_settings(http)
        .build()
        .unwrap()
}

/// The error's every printable form: Display, Debug and the typed fields.
fn assert_no_token(err: &crosstenant::Error) {
    let text = format!("{err} {err:?}");
    for token in [API_TOKEN, SECONDARY_TOKEN] {
        assert!(!text.contains(token), "{token} leaked into: {text}");
    }
    // What the API said is kept, with the tokens blanked.
    assert!(text.contains("<token>"), "{text}");
}

#[tokio::test]
async fn a_401_challenge_quoting_the_api_token_is_scrubbed() {
    let err = aggregator()
        .await
        .on_behalf_of("unauthorized")
        .unwrap()
        .get::<serde_json::Value>("data")
        .await
        .unwrap_err();
    match err.as_aggregator().expect("an aggregator error") {
        AggregatorError::Unauthorized { challenge, .. } => {
            let challenge = challenge.as_deref().expect("the challenge is kept");
            assert!(challenge.contains("invalid_token"), "{challenge}");
        }
        other => panic!("expected Unauthorized, got {other}"),
    }
    assert_no_token(&err);
}

#[tokio::test]
async fn a_403_reason_quoting_both_tokens_is_scrubbed() {
    let err = aggregator()
        .await
        .on_behalf_of("forbidden")
        .unwrap()
        .get::<serde_json::Value>("data")
        .await
        .unwrap_err();
    let aggregator = err.as_aggregator().expect("an aggregator error");
    let reason = aggregator
        .forbid_reason()
        .expect("the ForbidReason is kept");
    assert!(reason.contains("you sent Authorization"), "{reason}");
    assert_no_token(&err);
}

#[tokio::test]
async fn an_error_body_quoting_both_tokens_is_scrubbed() {
    let err = aggregator()
        .await
        .on_behalf_of("teapot")
        .unwrap()
        .get::<serde_json::Value>("data")
        .await
        .unwrap_err();
    match err.as_aggregator().expect("an aggregator error") {
        AggregatorError::Status {
            status, excerpt, ..
        } => {
            assert_eq!(*status, 400);
            assert!(excerpt.contains("you sent Authorization"), "{excerpt}");
        }
        other => panic!("expected Status, got {other}"),
    }
    assert_no_token(&err);
}
