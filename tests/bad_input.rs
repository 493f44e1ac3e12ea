//! Rows of the bad-input table (docs/ERRORS.md) not covered elsewhere: a
//! payload that cannot be serialized, and an expired certificate, which
//! loads (Entra decides) but is warned about with its date.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{eventhubs_namespace, sender, world};
use crosstenant::credential::ClientCertificate;
use crosstenant::eventhubs::{EventHubsError, SendOptions, Transport};
use crosstenant::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn a_payload_that_fails_to_serialize_is_refused_with_nothing_sent() {
    let w = world().await;
    let ns = eventhubs_namespace(&w);
    // JSON object keys must be strings: a tuple-keyed map cannot be encoded.
    let mut bad = HashMap::new();
    bad.insert((1, 2), "value");
    let good = HashMap::new();
    for transport in [Transport::Amqp, Transport::Https] {
        let s = sender::<HashMap<(i32, i32), &str>>(&w, &ns, w.credential(), transport)
            .await
            .unwrap();
        let err = s
            .send_batch(&[good.clone(), bad.clone()], SendOptions::default())
            .await
            .unwrap_err();
        match &err {
            Error::EventHubs(e) => match e.as_ref() {
                EventHubsError::Serialize { index, reason } => {
                    assert_eq!(*index, 1, "{transport:?}");
                    assert!(reason.contains("key must be a string"), "{reason}");
                }
                other => panic!("{transport:?}: expected Serialize, got {other}"),
            },
            other => panic!("{transport:?}: expected an Event Hubs error, got {other}"),
        }
        assert!(err.to_string().contains("nothing was sent"), "{err}");
    }
    assert!(w.sandbox.eventhubs().events(&ns, "telemetry").is_empty());
}

/// Collects what tracing writes, for asserting on a warning.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_expired_certificate_loads_but_is_warned_about_with_its_date() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "expired partner cert");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 6, 30);
    let cert = params.self_signed(&key).unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let loaded = tracing::subscriber::with_default(subscriber, || {
        ClientCertificate::from_pem(pem.as_bytes())
    })
    .expect("an expired certificate still loads: Entra decides");
    assert!(loaded.not_after() < 1_700_000_000);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("has expired"), "{log}");
    assert!(log.contains("2021"), "the warning names the date: {log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}
