//! A certificate given by path follows its file: a renewed certificate
//! (Key Vault sync, cert-manager) replaces the file, usually by an atomic
//! rename, and the credential signs with it without a restart and without a
//! failed call; a replacement that does not load keeps the certificate in
//! use, with a warning naming the file and what is wrong. And
//! `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` sends `x5c`.
//!
//! Every token request here is a real one: each call drops its token from
//! the cache (`invalidate`), so the next call signs a new assertion.

mod common;

use common::{pfx, rsa_certificate, world, TestCert, World, EVENTHUBS_SCOPE};
use crosstenant::credential::RELOAD_CHECK_EVERY;
use crosstenant::CrossTenantCredential;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fresh directory for one test's certificate files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "crosstenant-cert-{name}-{}-{}",
        std::process::id(),
        azure_core::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces `path` the way Key Vault sync and cert-manager do: the new
/// content is written next to it, then renamed over it in one step.
fn replace_atomically(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write replacement");
    std::fs::rename(&tmp, path).expect("rename over the certificate file");
}

fn pem_of(cert: &TestCert) -> String {
    format!("{}{}", cert.cert_pem, cert.key_pem)
}

/// Calls made in the background until stopped: each gets a new token
/// (the previous one is dropped from the cache first).
struct Caller {
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Caller {
    fn start(credential: Arc<CrossTenantCredential>) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, f, s) = (ok.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                match credential.token(EVENTHUBS_SCOPE).await {
                    Ok(t) => {
                        o.fetch_add(1, Ordering::Relaxed);
                        credential.invalidate(EVENTHUBS_SCOPE, &t);
                    }
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        Self {
            ok,
            failed,
            stop,
            task,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` further calls succeeded (or fails the test).
    async fn succeeded(&self, more: u64) {
        let target = self.ok() + more;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.ok() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "calls stopped succeeding: {:?}",
                self.failed.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Long enough for the credential to look at the file again, with calls
    /// going on all along.
    async fn past_a_reload_check(&self) {
        tokio::time::sleep(RELOAD_CHECK_EVERY + Duration::from_millis(600)).await;
        self.succeeded(3).await;
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let ok = self.ok();
        self.task.await.expect("caller task");
        let failed = self.failed.lock().unwrap().clone();
        (ok.max(self.ok.load(Ordering::Relaxed)), failed)
    }
}

/// A certificate whose validity ended in 2021.
fn expired_certificate(cn: &str) -> TestCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 6, 30);
    let cert = params.self_signed(&key).expect("self-signed");
    TestCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_pkcs8_der: key.serialize_der(),
    }
}

fn register(w: &World, cert: &TestCert) {
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, &cert.cert_der)
        .expect("certificate registers");
}

fn unregister(w: &World, cert: &TestCert) {
    assert!(w
        .sandbox
        .directory()
        .remove_certificate(&w.app.app_id, &cert.cert_der)
        .expect("app exists"));
}

/// The rotation as operators run it: register the new certificate on the
/// app, replace the file, later remove the old certificate from the app.
/// Calls go on all along and none fails; after the old certificate is gone
/// they still succeed, so they are signed with the new one.
async fn rotation_without_a_failed_call(pfx_password: Option<&str>) {
    let w = world().await;
    let (old, new) = (
        rsa_certificate("rotation-old"),
        rsa_certificate("rotation-new"),
    );
    register(&w, &old);
    let dir = temp_dir("rotation");
    let content = |c: &TestCert| match pfx_password {
        Some(pw) => pfx(c, pw),
        None => pem_of(c).into_bytes(),
    };
    let (path, builder) = match pfx_password {
        Some(pw) => {
            let path = dir.join("client.pfx");
            std::fs::write(&path, content(&old)).unwrap();
            let b = w.builder(&w.owner.id).certificate_pfx_file(&path, pw);
            (path, b)
        }
        None => {
            let path = dir.join("client.pem");
            std::fs::write(&path, content(&old)).unwrap();
            let b = w.builder(&w.owner.id).certificate_pem_file(&path);
            (path, b)
        }
    };
    let credential = builder.build().expect("credential builds");
    let caller = Caller::start(credential.clone());
    caller.succeeded(5).await;

    register(&w, &new);
    replace_atomically(&path, &content(&new));
    caller.past_a_reload_check().await;
    unregister(&w, &old);
    let after_removal = caller.ok();
    caller.succeeded(10).await;

    let (ok, failed) = caller.stop().await;
    assert!(
        failed.is_empty(),
        "failed calls during rotation: {failed:?}"
    );
    assert!(ok >= after_removal + 10, "{ok} calls");
    // And the old certificate is really refused now: the new one signs.
    let stale = w
        .builder(&w.owner.id)
        .certificate_pem(pem_of(&old))
        .build()
        .unwrap();
    let err = stale.token(EVENTHUBS_SCOPE).await.unwrap_err().to_string();
    assert!(err.contains("700027"), "{err}");
    println!(
        "rotation ({}): {ok} calls, none failed",
        if pfx_password.is_some() { "PFX" } else { "PEM" }
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pem_file_replaced_mid_run_is_used_with_no_failed_call() {
    rotation_without_a_failed_call(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pfx_file_replaced_mid_run_is_used_with_no_failed_call() {
    rotation_without_a_failed_call(Some("correct horse")).await;
}

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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every broken replacement keeps the certificate in use: calls go on
/// succeeding, a warning names the file and what is wrong (never the key);
/// when a good file appears again, it is used.
///
/// A current-thread runtime, so the test's log subscriber sees everything
/// (the sandbox and the credential run on this thread).
#[tokio::test(flavor = "current_thread")]
async fn a_broken_replacement_keeps_the_certificate_in_use_and_warns() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = world().await;
    let old = rsa_certificate("broken-old");
    let other = rsa_certificate("broken-other");
    let next = rsa_certificate("broken-next");
    register(&w, &old);
    let dir = temp_dir("broken");
    let path = dir.join("client.pem");
    std::fs::write(&path, pem_of(&old)).unwrap();
    let credential = w
        .builder(&w.owner.id)
        .certificate_pem_file(&path)
        .build()
        .unwrap();
    let caller = Caller::start(credential.clone());
    caller.succeeded(3).await;

    let good = pem_of(&old);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        // A copy caught halfway: the key is cut off.
        (
            "half-written",
            good.as_bytes()[..good.len() - 200].to_vec(),
            "malformed",
        ),
        // The renewed certificate with the old key.
        (
            "key not matching",
            format!("{}{}", other.cert_pem, old.key_pem).into_bytes(),
            "does not match its certificate",
        ),
        (
            "garbage",
            b"\x00\x01 not a certificate".to_vec(),
            "holds no",
        ),
        // A certificate without its key.
        (
            "no key",
            other.cert_pem.clone().into_bytes(),
            "holds no private key",
        ),
    ];
    for (what, content, reason) in cases {
        let before = logs.text().len();
        replace_atomically(&path, &content);
        caller.past_a_reload_check().await;
        let new_logs = logs.text()[before..].to_string();
        assert!(
            new_logs.contains("WARN")
                && new_logs.contains(&path.display().to_string())
                && new_logs.contains(reason),
            "{what}: no warning naming the file and `{reason}`: {new_logs}"
        );
    }
    // The file removed (between an unlink and a rename): still no outage.
    std::fs::remove_file(&path).unwrap();
    caller.past_a_reload_check().await;

    // A good file again: the next certificate is used (the old one is
    // removed from the app, and calls still succeed).
    register(&w, &next);
    replace_atomically(&path, pem_of(&next).as_bytes());
    caller.past_a_reload_check().await;
    unregister(&w, &old);
    caller.succeeded(5).await;

    // An expired certificate as the replacement: as at load, it is used
    // (Entra decides; the sandbox's registration does not expire) and
    // warned about.
    let expired = expired_certificate("broken-expired");
    register(&w, &expired);
    let before = logs.text().len();
    replace_atomically(&path, pem_of(&expired).as_bytes());
    caller.past_a_reload_check().await;
    unregister(&w, &next);
    caller.succeeded(5).await;
    let new_logs = logs.text()[before..].to_string();
    assert!(new_logs.contains("has expired"), "{new_logs}");

    let (ok, failed) = caller.stop().await;
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    let all = logs.text();
    for key in [
        &old.key_pem,
        &other.key_pem,
        &next.key_pem,
        &expired.key_pem,
    ] {
        let body: String = key.lines().nth(1).unwrap().to_string();
        assert!(!all.contains(&body), "key material in the logs");
    }
    println!("broken replacements: {ok} calls, none failed; warnings:\n{all}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` as azure-identity reads it: `true`
/// or `1` sends the chain in `x5c`; unset or `false` does not; anything
/// else is refused at `build()`, naming the variable.
///
/// The only test of this binary that sets environment variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_client_send_certificate_chain_sends_x5c() {
    let w = world().await;
    let cert = rsa_certificate("x5c");
    register(&w, &cert);
    let dir = temp_dir("x5c");
    let path = dir.join("client.pem");
    std::fs::write(&path, pem_of(&cert)).unwrap();
    std::env::set_var("AZURE_TENANT_ID", &w.owner.id);
    std::env::set_var("AZURE_CLIENT_ID", &w.app.app_id);
    std::env::set_var("AZURE_CLIENT_CERTIFICATE_PATH", &path);
    std::env::set_var("AZURE_AUTHORITY_HOST", w.sandbox.authority_host().as_str());
    let from_env = || {
        CrossTenantCredential::builder()
            .root_certificates_pem(w.sandbox.ca_pem())
            .from_env()
            .build()
    };
    let stats = w.sandbox.identity().stats();

    for (value, sends) in [
        (None, false),
        (Some("false"), false),
        (Some("true"), true),
        (Some("1"), true),
        (Some("TRUE"), true),
    ] {
        match value {
            Some(v) => std::env::set_var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", v),
            None => std::env::remove_var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"),
        }
        let before = stats.assertions_with_chain();
        let token = from_env()
            .expect("credential builds")
            .token(EVENTHUBS_SCOPE)
            .await;
        assert!(token.is_ok(), "{value:?}: {:?}", token.err());
        let with_chain = stats.assertions_with_chain() - before;
        assert_eq!(
            with_chain,
            u64::from(sends),
            "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN={value:?}"
        );
    }

    std::env::set_var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "yes please");
    let err = from_env().unwrap_err().to_string();
    assert!(
        err.contains("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN") && err.contains("yes please"),
        "{err}"
    );
    for name in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    ] {
        std::env::remove_var(name);
    }
    let _ = std::fs::remove_dir_all(dir);
}
