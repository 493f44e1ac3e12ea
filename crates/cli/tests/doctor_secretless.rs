//! `crosstenant doctor` (and `token`) with a secretless proof, the CLI run
//! for real as a subprocess: the partner's managed identity (App Service's
//! `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, which each subprocess gets in
//! its own environment, so nothing here changes this process's) or the
//! GitHub Actions job's token. The doctor walks endpoint → assertion →
//! exchange at the resource tenant, and names the broken link.

use crosstenant_sandbox::demo::DemoWorld;
use crosstenant_sandbox::directory::{ManagedIdentity, ManagedIdentityKind};
use crosstenant_sandbox::managed_identity::ManagedIdentityHost;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn cli_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_crosstenant"))
}

struct World {
    demo: DemoWorld,
    ca: PathBuf,
    identity: ManagedIdentity,
    unfederated: ManagedIdentity,
    host: ManagedIdentityHost,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca);
    }
}

/// The demo world whose app trusts a user-assigned managed identity of the
/// partner (and the GitHub job), on an App Service host with a second,
/// unfederated identity.
async fn world(name: &str) -> World {
    cli_binary();
    let demo = DemoWorld::start().await.expect("the demo world starts");
    let d = demo.sandbox.directory();
    let identity = d
        .add_managed_identity(
            &demo.partner.id,
            "fabrikam-sender",
            ManagedIdentityKind::UserAssigned,
        )
        .unwrap();
    let unfederated = d
        .add_managed_identity(
            &demo.partner.id,
            "fabrikam-other",
            ManagedIdentityKind::UserAssigned,
        )
        .unwrap();
    d.add_federated_credential(
        &demo.app.app_id,
        &format!("https://login.microsoftonline.com/{}/v2.0", demo.partner.id),
        &identity.object_id,
    )
    .unwrap();
    let gh = demo.sandbox.github_actions();
    d.add_federated_credential(&demo.app.app_id, &gh.issuer(), &gh.subject())
        .unwrap();
    let host = demo
        .sandbox
        .managed_identity()
        .add_host("fabrikam-tests", &[identity.clone(), unfederated.clone()]);
    let ca = std::env::temp_dir().join(format!(
        "crosstenant-doctor-secretless-{}-{name}.pem",
        std::process::id()
    ));
    std::fs::write(&ca, demo.sandbox.ca_pem()).unwrap();
    World {
        demo,
        ca,
        identity,
        unfederated,
        host,
    }
}

impl World {
    /// The demo environment without the client secret, plus `extra`.
    fn env(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .demo
            .environment(&self.ca.to_string_lossy())
            .into_iter()
            .filter(|(n, _)| *n != "AZURE_CLIENT_SECRET")
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        for (n, v) in extra {
            env.retain(|(m, _)| m != n);
            env.push((n.to_string(), v.clone()));
        }
        env
    }

    fn managed_identity(&self, identity: &ManagedIdentity) -> Vec<(String, String)> {
        self.env(&[
            (
                "CROSSTENANT_MANAGED_IDENTITY",
                format!("client_id={}", identity.client_id),
            ),
            ("IDENTITY_ENDPOINT", self.host.endpoint.to_string()),
            ("IDENTITY_HEADER", self.host.identity_header().to_string()),
        ])
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

async fn run(args: &[&str], env: Vec<(String, String)>) -> Run {
    let child = tokio::process::Command::new(cli_binary())
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the CLI starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finishes in time")
        .expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_walks_the_managed_identity_chain_and_shows_the_assertion_not_the_token() {
    let w = world("ok").await;
    let r = run(&["doctor"], w.managed_identity(&w.identity)).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    for check in [
        "[PASS] configuration",
        "a managed identity (secretless)",
        "[PASS] managed identity endpoint",
        "[PASS] assertion: from the managed identity",
        "[PASS] token exchange at the resource tenant",
        "[PASS] claims: tid",
    ] {
        assert!(r.stdout.contains(check), "{check}: {r:?}");
    }
    let expected = format!(
        "iss https://login.microsoftonline.com/{}/v2.0, sub {}, aud api://AzureADTokenExchange",
        w.demo.partner.id, w.identity.object_id
    );
    assert!(r.stdout.contains(&expected), "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(!all.contains("eyJ"), "no token in the output: {r:?}");
    assert!(!all.contains(w.host.identity_header()), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_an_unreachable_managed_identity_endpoint_and_stops_there() {
    let w = world("unreachable").await;
    let endpoint = format!(
        "http://127.0.0.1:{}/fabrikam-tests/msi/token",
        closed_port()
    );
    let mut env = w.managed_identity(&w.identity);
    env.retain(|(n, _)| n != "IDENTITY_ENDPOINT");
    env.push(("IDENTITY_ENDPOINT".into(), endpoint));
    let r = run(&["doctor"], env.clone()).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stdout.contains("[FAIL] managed identity endpoint"),
        "{r:?}"
    );
    assert!(r.stdout.contains("who: the partner"), "{r:?}");
    assert!(r.stdout.contains("az webapp identity assign"), "{r:?}");
    assert!(r.stdout.contains("[SKIP] assertion"), "{r:?}");
    assert!(!r.stdout.contains("token exchange"), "{r:?}");

    // The library's own error, through `token`: typed, with who and what.
    let r = run(&["token"], env).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("could not be reached"), "{r:?}");
    assert!(r.stderr.contains("who must act: the partner"), "{r:?}");
    assert!(
        r.stderr.contains("resource owner has nothing to do"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_federated_credential_an_identity_lacks() {
    let w = world("subject").await;
    let r = run(&["doctor"], w.managed_identity(&w.unfederated)).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("[PASS] assertion"), "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("sub {}", w.unfederated.object_id)),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("[FAIL] token exchange at the resource tenant: AADSTS700213"),
        "{r:?}"
    );
    assert!(r.stdout.contains("who: the partner"), "{r:?}");
    assert!(
        r.stdout.contains("az ad app federated-credential create"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(&format!(
            "subject must be exactly {}",
            w.unfederated.object_id
        )),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_walks_the_github_actions_chain() {
    let w = world("github").await;
    let gh = w.demo.sandbox.github_actions();
    let env = w.env(&[
        ("CROSSTENANT_GITHUB_OIDC", "1".into()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", gh.request_url()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.request_token().into()),
    ]);
    let r = run(&["doctor"], env).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("[PASS] GitHub Actions token service"),
        "{r:?}"
    );
    assert!(r.stdout.contains(&format!("sub {}", gh.subject())), "{r:?}");
    assert!(
        r.stdout
            .contains("[PASS] token exchange at the resource tenant"),
        "{r:?}"
    );
    assert!(!r.stdout.contains(gh.request_token()), "{r:?}");
}
