//! No secret, key, assertion or token reaches `Debug`, `Display`, error text
//! or logs, even with every crate tracing at TRACE level.
#![cfg(feature = "sandbox")]

mod common;

use common::{rsa_certificate, world, EVENTHUBS_SCOPE};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_key_assertion_or_token_is_ever_printed_or_logged() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let w = world().await;
    let cert = rsa_certificate("leak-check");
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, &cert.cert_der)
        .unwrap();
    let mut printed = String::new();

    // Secret: success and failure.
    let cred = w.credential();
    printed += &format!("{cred:?}");
    let token = cred.token(EVENTHUBS_SCOPE).await.unwrap();
    printed += &format!("{token:?}");
    let bad = w
        .builder(&w.owner.id)
        .client_secret("Sup3r-S3cret-Value~")
        .build()
        .unwrap();
    printed += &format!("{bad:?}");
    let err = bad.token(EVENTHUBS_SCOPE).await.unwrap_err();
    printed += &format!("{err} {err:?}");

    // Certificate: the assertion is signed and sent.
    let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
    let by_cert = w
        .builder(&w.owner.id)
        .certificate_pem(&pem)
        .build()
        .unwrap();
    printed += &format!("{by_cert:?}");
    let cert_token = by_cert.token(EVENTHUBS_SCOPE).await.unwrap();
    let err = by_cert
        .token("https://eventhubs.azure.net")
        .await
        .unwrap_err();
    printed += &format!("{err} {err:?}");
    let loaded = crosstenant::credential::ClientCertificate::from_pem(pem.as_bytes()).unwrap();
    printed += &format!("{loaded:?}");

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logging was captured"
    );
    let key_body: String = cert
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    for (what, value) in [
        ("client secret", w.secret.as_str()),
        ("wrong client secret", "Sup3r-S3cret-Value~"),
        ("access token", token.token.secret()),
        ("access token (certificate)", cert_token.token.secret()),
        ("private key", &key_body[..64]),
    ] {
        assert!(!printed.contains(value), "{what} printed: {printed}");
        assert!(!logs.contains(value), "{what} logged");
    }
    // Tokens and assertions are JWTs: a base64url JSON header starts `eyJ`.
    // None may appear anywhere (this also covers the client assertions,
    // which the test never sees).
    assert!(!printed.contains("eyJ"), "a JWT was printed: {printed}");
    if let Some(at) = logs.find("eyJ") {
        panic!(
            "a JWT was logged: …{}…",
            &logs[at.saturating_sub(200)..(at + 40).min(logs.len())]
        );
    }
}
