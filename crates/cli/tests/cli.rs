//! The `crosstenant` CLI, run for real: the built binary as a
//! subprocess, pointed at a demo world in this process through nothing but
//! the environment `DemoWorld::environment` gives (the same `export` lines
//! the `sandbox` subcommand prints), and its CA in a file named by
//! `SSL_CERT_FILE`.
//!
//! The binary is `CARGO_BIN_EXE_crosstenant`, which cargo builds before these
//! tests.

use base64::Engine as _;
use crosstenant_sandbox::demo::{DemoWorld, CLIENT, HUB};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How long one CLI run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn cli_binary() -> &'static Path {
    // Cargo builds the package's binaries before its integration tests and
    // names them here, so the binary under test is always the current code.
    Path::new(env!("CARGO_BIN_EXE_crosstenant"))
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!(
            "crosstenant-cli-test-{}-{n}-{name}",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What one CLI run did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    fn succeeded(&self) -> bool {
        self.code == Some(0)
    }
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

/// The demo world and the CA file the CLI trusts.
struct Harness {
    world: DemoWorld,
    ca: TempFile,
}

impl Harness {
    async fn start() -> Self {
        // Build (or find) the binary before the world runs, so no sandbox
        // waits on a build.
        cli_binary();
        let world = DemoWorld::start().await.expect("the demo world starts");
        let ca = TempFile::new("ca.pem");
        std::fs::write(&ca.0, world.sandbox.ca_pem()).expect("the CA is written");
        Self { world, ca }
    }

    fn environment(&self) -> Vec<(String, String)> {
        self.world
            .environment(&self.ca.0.to_string_lossy())
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }

    fn env(&self, name: &str) -> String {
        self.environment()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("the demo environment has {name}"))
    }

    /// Runs the CLI with the demo environment, `overrides` on top of it.
    async fn run(&self, args: &[&str], overrides: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut env = self.environment();
        for (name, value) in overrides {
            env.retain(|(n, _)| n != name);
            env.push((name.to_string(), value.to_string()));
        }
        run_cli(args, env, stdin).await
    }
}

/// Runs the CLI with exactly `env` (nothing inherited: a developer's own
/// AZURE_* variables must not change the outcome).
async fn run_cli(args: &[&str], env: Vec<(String, String)>, stdin: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(cli_binary());
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the CLI starts");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .expect("stdin is written");
        drop(pipe);
    }
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("the CLI finishes in time")
        .expect("the CLI's output is read");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A compact JWT begins with a base64url JSON header: `eyJ`.
fn contains_jwt(text: &str) -> bool {
    text.contains("eyJ")
}

fn stored_bodies(h: &Harness) -> Vec<serde_json::Value> {
    h.world
        .sandbox
        .eventhubs()
        .events(&h.world.namespace, HUB)
        .iter()
        .map(|e| serde_json::from_slice(&e.body).expect("stored events are JSON"))
        .collect()
}

const THREE_LINES: &str = "{\"reading\":1}\n{\"reading\":2}\n\n{\"reading\":3}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_an_api_that_takes_v2_tokens_shows_its_client_id_as_audience() {
    let h = Harness::start().await;
    let scope = format!("{}/.default", crosstenant_sandbox::demo::API_V2_URI);
    for extra in [None, Some("--no-audience-check")] {
        let mut args = vec!["token", "--json", "--scope", scope.as_str()];
        args.extend(extra);
        let out = h.run(&args, &[], None).await;
        assert!(out.succeeded(), "{extra:?}: {out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
        assert_eq!(v["claims"]["ver"], "2.0", "{out:?}");
        assert_eq!(
            v["claims"]["aud"],
            h.world.api_v2.app_id.as_str(),
            "{out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_shows_the_resource_tenant_and_never_the_token() {
    let h = Harness::start().await;
    let owner = h.world.owner.id.clone();

    let text = h.run(&["token"], &[], None).await;
    assert!(text.succeeded(), "{text:?}");
    assert!(text.stdout.contains(&format!("tid    {owner}")), "{text:?}");
    assert!(text.stdout.contains(&h.world.app.app_id), "{text:?}");
    assert!(!contains_jwt(&text.output()), "{text:?}");

    let json = h
        .run(
            &[
                "token",
                "--json",
                "--scope",
                "https://eventhubs.azure.net/.default",
            ],
            &[],
            None,
        )
        .await;
    assert!(json.succeeded(), "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("--json prints JSON");
    assert_eq!(v["claims"]["tid"], owner.as_str());
    assert_eq!(v["claims"]["aud"], "https://eventhubs.azure.net");
    assert!(v.get("access_token").is_none(), "{json:?}");
    assert!(!contains_jwt(&json.output()), "{json:?}");

    // The explicit flag does print it, so the checks above could fail.
    let shown = h.run(&["token", "--show-token"], &[], None).await;
    assert!(shown.succeeded(), "{shown:?}");
    let token = shown
        .stdout
        .lines()
        .find(|l| l.starts_with("eyJ"))
        .expect("--show-token prints the token");
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["tid"], owner.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_https_stores_every_line() {
    let h = Harness::start().await;
    let endpoint = h.env("EVENTHUBS_HTTPS_ENDPOINT");
    let run = h
        .run(
            &[
                "send",
                "--namespace",
                &h.world.namespace,
                "--hub",
                HUB,
                "--transport",
                "https",
                "--endpoint",
                &endpoint,
            ],
            &[],
            Some(THREE_LINES),
        )
        .await;
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("sent 3, failed 0"), "{run:?}");
    // Without a partition key no order is promised (stdin goes through the
    // buffered sender, which sends to several partitions at once).
    let mut stored = readings(&stored_bodies(&h));
    stored.sort_unstable();
    assert_eq!(stored, vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_amqp_trusts_the_ca_in_ssl_cert_file() {
    let h = Harness::start().await;
    // Namespace, hub and the amqps endpoint all come from the environment.
    let run = h
        .run(&["send", "--transport", "amqp"], &[], Some(THREE_LINES))
        .await;
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("sent 3, failed 0"), "{run:?}");
    assert!(run.stdout.contains("over AMQP"), "{run:?}");
    assert_eq!(stored_bodies(&h).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_a_home_tenant_token_fails_with_40100() {
    let h = Harness::start().await;
    let partner = h.world.partner.id.clone();
    let run = h
        .run(
            &["send", "--transport", "https"],
            &[("AZURE_TENANT_ID", &partner)],
            Some(THREE_LINES),
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.output().contains("40100"), "{run:?}");
    assert!(run.stdout.contains("sent 0, failed 3"), "{run:?}");
    assert!(stored_bodies(&h).is_empty());
}

/// `n` JSON Lines `{"reading": i}` in a file.
fn readings_file(n: usize) -> TempFile {
    padded_readings_file(n, 0)
}

/// `n` JSON Lines `{"reading": i, "pad": "…"}` with `pad` bytes of padding.
fn padded_readings_file(n: usize, pad: usize) -> TempFile {
    let file = TempFile::new("readings.jsonl");
    let pad = "x".repeat(pad);
    let text: String = (0..n)
        .map(|i| format!("{{\"reading\":{i},\"pad\":\"{pad}\"}}\n"))
        .collect();
    std::fs::write(&file.0, text).expect("write the input file");
    file
}

fn readings(bodies: &[serde_json::Value]) -> Vec<u64> {
    bodies
        .iter()
        .map(|b| b["reading"].as_u64().expect("a reading"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_through_the_buffered_sender_and_every_line_is_stored_once() {
    let h = Harness::start().await;
    let file = readings_file(3_000);
    let path = file.0.to_string_lossy().to_string();
    let run = h
        .run(
            &[
                "send",
                "--transport",
                "amqp",
                "--batch-size",
                "100",
                "--file",
                &path,
            ],
            &[],
            None,
        )
        .await;
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("sent 3000, failed 0"), "{run:?}");
    let mut stored = readings(&stored_bodies(&h));
    assert_eq!(stored.len(), 3_000, "every line stored once");
    stored.sort_unstable();
    assert_eq!(
        stored,
        (0..3_000).collect::<Vec<_>>(),
        "no line lost or doubled"
    );
    // Without a key the buffered sender spreads events over partitions.
    let partitions: std::collections::BTreeSet<_> = h
        .world
        .sandbox
        .eventhubs()
        .events(&h.world.namespace, HUB)
        .iter()
        .map(|e| e.partition)
        .collect();
    assert!(
        partitions.len() > 1,
        "sent to one partition only: {partitions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_with_a_partition_key_is_stored_in_order() {
    let h = Harness::start().await;
    let file = readings_file(1_200);
    let path = file.0.to_string_lossy().to_string();
    let run = h
        .run(
            &[
                "send",
                "--transport",
                "https",
                "--batch-size",
                "100",
                "--file",
                &path,
                "--partition-key",
                "device-7",
            ],
            &[],
            None,
        )
        .await;
    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("sent 1200, failed 0"), "{run:?}");
    assert_eq!(readings(&stored_bodies(&h)), (0..1_200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_refused_with_40100_stops_reading_and_drops_what_is_buffered() {
    let h = Harness::start().await;
    let partner = h.world.partner.id.clone();
    // 64 KB events: about 15 per batch, so 2,000 of them need well over a
    // hundred batches.
    let file = padded_readings_file(2_000, 64 * 1024);
    let path = file.0.to_string_lossy().to_string();
    let run = h
        .run(
            &[
                "send",
                "--transport",
                "https",
                "--batch-size",
                "100",
                "--file",
                &path,
            ],
            &[("AZURE_TENANT_ID", &partner)],
            None,
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.output().contains("40100"), "{run:?}");
    assert!(run.stdout.contains("sent 0, failed"), "{run:?}");
    assert!(run.stdout.contains("stopped after line"), "{run:?}");
    // Each distinct failure is printed once, not once per event.
    assert!(run.stderr.matches("40100").count() < 10, "{run:?}");
    assert!(stored_bodies(&h).is_empty());
    // The first refusal stops the run: the rest is not sent just to be
    // refused too (a request per lane in flight, not one per batch).
    let requests = h
        .world
        .sandbox
        .eventhubs()
        .stats()
        .https_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("HTTPS send requests: {requests}");
    assert!(
        requests <= 16,
        "{requests} requests after a refusal retrying cannot fix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_counts_a_line_that_is_not_json_as_failed() {
    let h = Harness::start().await;
    let run = h
        .run(
            &["send", "--transport", "https"],
            &[],
            Some("{\"ok\":1}\nnot json\n{\"ok\":2}\n"),
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("line 2: not JSON"), "{run:?}");
    assert!(run.stdout.contains("sent 2, failed 1"), "{run:?}");
    assert_eq!(stored_bodies(&h).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_prints_the_clients_data() {
    let h = Harness::start().await;
    let api = h.env("AGGREGATOR_API_URL");
    let run = h
        .run(
            &[
                "call",
                "--api",
                &api,
                "--api-scope",
                "api://secure-api",
                "--client",
                CLIENT,
                "data",
            ],
            &[],
            None,
        )
        .await;
    assert!(run.succeeded(), "{run:?}");
    let printed: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON answer");
    assert_eq!(Some(printed), h.world.sandbox.api().data(CLIENT));
    assert!(!contains_jwt(&run.output()), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_put_on_a_read_only_grant_prints_the_forbid_reason() {
    let h = Harness::start().await;
    let before = h.world.sandbox.api().data(CLIENT);
    let run = h
        .run(
            &[
                "call",
                "--method",
                "PUT",
                "data",
                "--body",
                r#"{"items":["x"]}"#,
            ],
            &[],
            None,
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("403; ForbidReason:"), "{run:?}");
    assert!(run.stderr.contains("not clientXYZ.Write"), "{run:?}");
    assert_eq!(h.world.sandbox.api().data(CLIENT), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_every_check_on_the_demo_world() {
    let h = Harness::start().await;
    let run = h
        .run(
            &["doctor", "--transport", "https", "--send-probe"],
            &[],
            None,
        )
        .await;
    assert!(run.succeeded(), "{run:?}");
    assert!(!run.stdout.contains("[FAIL]"), "{run:?}");
    assert!(!run.stdout.contains("[SKIP]"), "{run:?}");
    for check in [
        "configuration",
        "tenant resolution",
        "token",
        "claims: tid",
        "claims: appid",
        "claims: aud",
        "claims: expiry",
        "clock skew",
        "Event Hubs: network",
        "Event Hubs: sender",
        "Event Hubs: send",
        "API token",
        "secondary token",
        "API call GET data",
    ] {
        assert!(
            run.stdout.contains(&format!("[PASS] {check}")),
            "{check}: {run:?}"
        );
    }
    assert!(run.stdout.contains("clientXYZ.Read"), "{run:?}");
    assert_eq!(stored_bodies(&h).len(), 1, "the probe event is stored");
    assert!(!contains_jwt(&run.output()), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_partner_for_a_wrong_secret() {
    let h = Harness::start().await;
    let run = h
        .run(
            &["doctor"],
            &[("AZURE_CLIENT_SECRET", "not-the-secret")],
            None,
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("[FAIL] token: AADSTS7000215"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("who: the partner (owner of the app registration)"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("fix: use the secret's *value*"),
        "{run:?}"
    );
    assert!(!run.output().contains("not-the-secret"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_both_sides_fixes_for_a_home_tenant_token() {
    let h = Harness::start().await;
    let partner = h.world.partner.id.clone();
    let run = h
        .run(
            &["doctor", "--transport", "https", "--send-probe"],
            &[("AZURE_TENANT_ID", &partner)],
            None,
        )
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let send = run
        .stdout
        .split("[FAIL] Event Hubs: send:")
        .nth(1)
        .expect("the probe fails");
    assert!(send.contains("40100"), "{run:?}");
    // The commonest cause is the partner's own mistake (its home tenant set
    // as the resource tenant), the other the owner's missing role: both are
    // named, with the token's tenant.
    assert!(
        send.contains("who: the partner or the resource owner"),
        "{run:?}"
    );
    let fix = send.split("fix:").nth(1).expect("a fix line");
    assert!(
        fix.contains(&partner) && fix.contains("home tenant") && fix.contains("Data Sender"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_subcommand_prints_exports_that_work() {
    cli_binary();
    let ca = TempFile::new("sandbox-ca.pem");
    let mut child = tokio::process::Command::new(cli_binary())
        .args(["sandbox", "--ca-file"])
        .arg(&ca.0)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the sandbox starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut exports: Vec<(String, String)> = Vec::new();
    let read_exports = async {
        while let Some(line) = lines.next_line().await.expect("stdout is readable") {
            if line.starts_with("# running") {
                return;
            }
            if let Some((name, value)) = line
                .strip_prefix("export ")
                .and_then(|rest| rest.split_once('='))
            {
                let value = value.trim_matches('\'').to_string();
                exports.push((name.to_string(), value));
            } else {
                assert!(
                    line.starts_with('#'),
                    "every other line is a comment: {line}"
                );
            }
        }
        panic!("the sandbox stopped before it was ready");
    };
    tokio::time::timeout(RUN_TIMEOUT, read_exports)
        .await
        .expect("the sandbox is ready in time");
    let get = |name: &str| {
        exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is exported"))
    };
    assert_eq!(get("SANDBOX_CA_FILE"), ca.0.to_string_lossy());
    let ca_pem = std::fs::read_to_string(&ca.0).expect("the CA file is written");
    assert!(ca_pem.contains("BEGIN CERTIFICATE"));
    // SSL_CERT_FILE is a bundle that keeps the trust the shell had (here the
    // system bundle) and adds the sandbox CA, never the CA alone.
    let bundle = get("SSL_CERT_FILE");
    assert_eq!(bundle, format!("{}.bundle.pem", ca.0.to_string_lossy()));
    assert!(std::fs::read_to_string(&bundle)
        .expect("the bundle is written")
        .ends_with(&ca_pem));

    let token = run_cli(&["token", "--json"], exports.clone(), None).await;
    assert!(token.succeeded(), "{token:?}");
    let v: serde_json::Value = serde_json::from_str(&token.stdout).expect("JSON");
    assert_eq!(v["claims"]["tid"], get("AZURE_TENANT_ID").as_str());
    let sent = run_cli(
        &["send", "--transport", "https"],
        exports.clone(),
        Some("{\"a\":1}\n"),
    )
    .await;
    assert!(sent.stdout.contains("sent 1, failed 0"), "{sent:?}");

    #[cfg(unix)]
    {
        // SIGTERM stops it cleanly.
        let pid = child.id().expect("still running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
            .await
            .expect("the sandbox stops in time")
            .expect("its status is read");
        assert!(status.success(), "{status:?}");
        let rest = lines.next_line().await.ok().flatten();
        assert_eq!(rest.as_deref(), Some("# stopped"));
    }
}
