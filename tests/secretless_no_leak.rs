//! The GitHub Actions way leaks nothing, with every crate tracing at TRACE:
//! not the job's request token (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`), not the
//! ID token (the assertion), not an access token, in `Debug`, `Display`,
//! errors or logs. (Its own binary: it installs the global log subscriber.
//! The managed identity's header is checked the same way at the end of
//! `tests/secretless_mi.rs`.)
#![cfg(all(feature = "amqp", feature = "https"))]

#[path = "common/secretless.rs"]
mod secretless;

use crosstenant_sandbox::demo::EVENTHUBS_SCOPE;
use crosstenant_sandbox::github::GitHubJob;
use secretless::Secretless;
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
async fn the_request_token_the_id_token_and_the_access_token_are_never_printed_or_logged() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = Secretless::start(0).await;
    let (url, request_token) = s.github();
    let mut printed = String::new();
    let builder = s
        .builder(&s.world.owner.id)
        .github_actions_oidc_endpoint(&url, request_token.clone());
    printed += &format!("{builder:?}");
    let credential = builder.build().unwrap();
    printed += &format!("{credential:?}");
    let token = credential.token(EVENTHUBS_SCOPE).await.unwrap();
    printed += &format!("{token:?}");
    let info = credential.federated_assertion().await.unwrap().unwrap();
    printed += &format!("{info:?} {info}");

    // Refusals: a wrong request token (401), and a job Entra refuses.
    let wrong = s
        .builder(&s.world.owner.id)
        .github_actions_oidc_endpoint(&url, "Wr0ng-Request-T0ken")
        .build()
        .unwrap();
    let err = wrong.token(EVENTHUBS_SCOPE).await.unwrap_err();
    printed += &format!("{err} {err:?}");
    s.world.sandbox.github_actions().set_job(GitHubJob {
        git_ref: "refs/heads/other".into(),
        ..GitHubJob::default()
    });
    let refused = s
        .builder(&s.world.owner.id)
        .github_actions_oidc_endpoint(&url, request_token.clone())
        .build()
        .unwrap();
    let err = refused.token(EVENTHUBS_SCOPE).await.unwrap_err();
    assert!(err.as_federation().is_some(), "{err:?}");
    printed += &format!("{err} {err:?}");

    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(!logged.is_empty(), "the capture works");
    for (what, text) in [("printed", &printed), ("logged", &logged)] {
        for secret in [
            request_token.as_str(),
            "Wr0ng-Request-T0ken",
            token.token.secret(),
        ] {
            assert!(!text.contains(secret), "{what}: a secret in {text}");
        }
        assert!(!text.contains("eyJ"), "{what}: a JWT in the output");
    }
}
