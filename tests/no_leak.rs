//! No secret, key, assertion or token reaches `Debug`, `Display`, error text
//! or logs, even with every crate tracing at TRACE level: the credential,
//! the Event Hubs sender on both transports and the aggregator client.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{rsa_certificate, world, EVENTHUBS_SCOPE};
use crosstenant::aggregator::AggregatorClient;
use crosstenant_sandbox::api::Access;
use crosstenant_sandbox::faults::{Fault, Service};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    // The builder too: it holds the secret before `build()` and is what a
    // configuration error or a `dbg!` would print.
    let builder = w.builder(&w.owner.id).client_secret("Sup3r-S3cret-Value~");
    printed += &format!("{builder:?}");
    let bad = builder.build().unwrap();
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

    // Event Hubs on both transports: the token travels in a CBS put-token
    // body (AMQP) and an Authorization header (HTTPS); success, a refusal
    // (the partner's home-tenant token: 40100) and a busy answer.
    let ns = common::eventhubs_namespace(&w);
    let home = w
        .builder(&w.partner.id)
        .client_secret(&w.secret)
        .build()
        .unwrap();
    let mut eh_tokens = Vec::new();
    for transport in [
        crosstenant::eventhubs::Transport::Https,
        crosstenant::eventhubs::Transport::Amqp,
    ] {
        let builder = crosstenant::eventhubs::EventHubSender::<serde_json::Value>::builder(
            &ns,
            "telemetry",
            cred.clone(),
        )
        .transport(transport);
        printed += &format!("{builder:?}");
        let sender = common::sender::<serde_json::Value>(&w, &ns, cred.clone(), transport)
            .await
            .unwrap();
        printed += &format!("{sender:?}");
        w.sandbox.faults().inject(
            match transport {
                crosstenant::eventhubs::Transport::Https => Service::EventHubsHttps,
                _ => Service::EventHubsAmqp,
            },
            Fault::Status {
                status: 503,
                retry_after: None,
            },
            1,
        );
        // Bounded: an AMQP stall (see tests/faults.rs) must not hang this test.
        let sent = tokio::time::timeout(
            Duration::from_secs(90),
            sender.send(&serde_json::json!({"reading": 1})),
        )
        .await;
        printed += &format!("{sent:?}");
        if let Ok(refused) =
            common::sender::<serde_json::Value>(&w, &ns, home.clone(), transport).await
        {
            let sent = tokio::time::timeout(
                Duration::from_secs(90),
                refused.send(&serde_json::json!({"reading": 2})),
            )
            .await;
            if let Ok(Err(e)) = &sent {
                printed += &format!("{e} {e:?}");
            }
        }
    }
    eh_tokens.push(cred.token(EVENTHUBS_SCOPE).await.unwrap());
    eh_tokens.push(home.token(EVENTHUBS_SCOPE).await.unwrap());

    // The aggregator: both tokens of the two-token call, a 403 and a 401.
    let api = w.sandbox.api();
    api.register_api(&w.owner.id, "api://secure-api").unwrap();
    api.register_client("clientXYZ").unwrap();
    api.grant_api(&w.app.app_id, &[Access::Read]).unwrap();
    api.grant_client(&w.app.app_id, "clientXYZ", &[Access::Read])
        .unwrap();
    let agg = AggregatorClient::builder(api.url(), "api://secure-api", cred.clone())
        .http_settings(cred.http_settings().clone())
        .build()
        .unwrap();
    printed += &format!("{agg:?}");
    let xyz = agg.on_behalf_of("clientXYZ").unwrap();
    printed += &format!("{xyz:?}");
    let data = xyz.get::<serde_json::Value>("data").await;
    printed += &format!("{data:?}");
    let write = xyz
        .put::<_, serde_json::Value>("data", &serde_json::json!({"x": 1}))
        .await;
    printed += &format!("{write:?}");
    w.sandbox.faults().inject(
        Service::Api,
        Fault::Status {
            status: 401,
            retry_after: None,
        },
        2,
    );
    let err = xyz.get::<serde_json::Value>("data").await.unwrap_err();
    printed += &format!("{err} {err:?}");
    let api_token = cred.token("api://secure-api/.default").await.unwrap();
    let client_token = cred.token("api://clientXYZ/.default").await.unwrap();

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
        ("Event Hubs token", eh_tokens[0].token.secret()),
        ("home-tenant token", eh_tokens[1].token.secret()),
        ("API token", api_token.token.secret()),
        ("secondary (client) token", client_token.token.secret()),
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
