//! Event Hubs' sub-code in the status line only: `HTTP/1.1 401
//! SubCode=40100: Unauthorized` with `Content-Length: 0`, as the service
//! answers a token from another tenant. A tiny TLS server writes exactly
//! that status line (the sandbox may answer in its XML form instead), so
//! the sub-code can only come from the reason phrase.
#![cfg(feature = "https")]

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use crosstenant::eventhubs::{EventHubSender, EventHubsError, Transport};
use crosstenant::{HttpSettings, Party};
use crosstenant_sandbox::tls::SandboxCa;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const APP: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";

/// Hands out a new (unsigned, claims-only) token on every call, so a retry
/// with a fresh token is visible in the requests.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

#[async_trait::async_trait]
impl TokenCredential for Counting {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        use base64::Engine as _;
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let token = format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({
                "tid": TENANT, "appid": APP, "aud": "https://eventhubs.azure.net", "uti": n
            }))
        );
        Ok(AccessToken::new(
            token,
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// What the server saw of each request: its head (request line and headers).
type Seen = Arc<Mutex<Vec<String>>>;

/// A TLS server answering request `i` with `status_lines[i]` (the last one
/// repeated) and an empty body.
async fn status_line_server(status_lines: Vec<&'static str>) -> (String, String, Seen) {
    let ca = SandboxCa::generate().unwrap();
    let config = ca.server_config(&[b"http/1.1"]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            // One connection may carry several requests (keep-alive).
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
                let text = String::from_utf8_lossy(&head).to_string();
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).await.is_err() {
                    break;
                }
                seen_by_server.lock().unwrap().push(text);
                let line = status_lines[n.min(status_lines.len() - 1)];
                n += 1;
                let answer = format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\n\r\n");
                if tls.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    });
    (format!("https://{addr}"), ca.pem().to_string(), seen)
}

async fn sender(endpoint: &str, ca: &str, credential: Arc<Counting>) -> EventHubSender {
    let mut http = HttpSettings::default();
    http.add_root_certificates_pem(ca).unwrap();
    let credential: Arc<dyn TokenCredential> = credential;
    EventHubSender::builder("contoso.servicebus.windows.net", "telemetry", credential)
        .transport(Transport::Https)
        .endpoint(endpoint)
        .http_settings(http)
        .open()
        .await
        .unwrap()
}

fn authorization(head: &str) -> &str {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap_or_default()
}

#[tokio::test]
async fn home_tenant_401_with_the_subcode_only_in_the_reason_phrase_is_explained() {
    let (endpoint, ca, seen) = status_line_server(vec!["401 SubCode=40100: Unauthorized"]).await;
    let credential = Arc::new(Counting::default());
    let s = sender(&endpoint, &ca, credential.clone()).await;
    let err = s.send(&serde_json::json!({"n": 1})).await.unwrap_err();
    match err.as_eventhubs().expect("an Event Hubs error") {
        EventHubsError::Unauthorized {
            token_tenant,
            detail,
            ..
        } => {
            assert_eq!(token_tenant, TENANT);
            assert!(detail.contains("SubCode=40100: Unauthorized"), "{detail}");
        }
        other => panic!("expected Unauthorized, got {other}"),
    }
    // 40100 is a grant problem: no fresh token, no retry.
    assert_eq!(seen.lock().unwrap().len(), 1, "no retry after 40100");
    let remedy = err.remedy().unwrap();
    assert_eq!(remedy.party, Party::Either);
    assert!(remedy.action.contains(TENANT), "{remedy}");
    assert!(remedy.action.contains("home tenant"), "{remedy}");
    // The policy set the request id itself.
    let heads = seen.lock().unwrap();
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("x-ms-client-request-id:"),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn expired_subcode_in_the_reason_phrase_gets_one_fresh_token_and_one_retry() {
    let (endpoint, ca, seen) =
        status_line_server(vec!["401 SubCode=40106: ExpiredToken", "201 Created"]).await;
    let credential = Arc::new(Counting::default());
    let s = sender(&endpoint, &ca, credential.clone()).await;
    s.send(&serde_json::json!({"n": 1})).await.unwrap();
    let heads = seen.lock().unwrap();
    assert_eq!(heads.len(), 2, "one refused, one accepted");
    assert_ne!(
        authorization(&heads[0]),
        authorization(&heads[1]),
        "the retry carries a fresh token"
    );
}

#[tokio::test]
async fn a_second_expired_answer_is_not_retried_again() {
    let (endpoint, ca, seen) = status_line_server(vec!["401 SubCode=40106: ExpiredToken"]).await;
    let s = sender(&endpoint, &ca, Arc::new(Counting::default())).await;
    let err = s.send(&serde_json::json!({"n": 1})).await.unwrap_err();
    match err.as_eventhubs().expect("an Event Hubs error") {
        EventHubsError::TokenRejected {
            subcode, detail, ..
        } => {
            assert_eq!(*subcode, 40106);
            assert!(detail.contains("SubCode=40106"), "{detail}");
        }
        other => panic!("expected TokenRejected, got {other}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 2, "exactly one retry");
}
