//! The harness of the compatibility suite: Microsoft's own Python clients
//! (msal, azure-identity, azure-eventhub, plain `urllib`) run against an
//! in-process sandbox holding the demo world.
//!
//! - The clients come from PyPI at the versions pinned in
//!   `requirements.txt`, installed once into a virtual environment under the
//!   cargo target directory (`<target>/tmp/python-compat-venv-<hash>`, the
//!   hash taken over `requirements.txt` and the interpreter's version), so a
//!   changed pin builds a fresh one. The environment is built in a private
//!   directory and renamed into place when complete: concurrent test threads
//!   wait on one `OnceLock`, concurrent test processes at worst build it twice
//!   and the loser's copy is discarded, and a half-built environment is never
//!   used.
//! - Each check runs one script of this directory with its check name as
//!   argument. The script gets the sandbox through the environment that
//!   [`DemoWorld::environment`] advertises (the same names the standalone
//!   sandbox prints) minus `SSL_CERT_FILE`, plus `SBX_CA_FILE` (the sandbox
//!   CA), `SBX_TENANT_DOMAIN`, `SBX_PARTNER_TENANT_ID` and `SBX_CERT_FILE`
//!   (a PEM key and certificate registered on the demo app). Inherited TLS and
//!   Azure variables are removed, so each client is trusted to reach the
//!   sandbox only through the settings the script gives it.
//! - Without `python3` (or `CROSSTENANT_PYTHON`), without `venv`/`pip`, or
//!   when PyPI cannot be reached, a check prints `SKIPPED: <why>` to stderr
//!   and passes; `CROSSTENANT_PYTHON_COMPAT=require` turns every such skip
//!   into a failure (for CI that must run the suite), `=off` skips on purpose.

#![allow(dead_code)] // each test binary uses its own subset

use crosstenant_sandbox::demo::DemoWorld;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

/// How long one script may run: generous, the machine may be loaded.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// This directory: the scripts and `requirements.txt`.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Why the suite cannot run here, or the venv's interpreter.
fn venv_python() -> &'static Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(build_venv)
}

fn base_python() -> String {
    std::env::var("CROSSTENANT_PYTHON").unwrap_or_else(|_| {
        if cfg!(windows) {
            "python".into()
        } else {
            "python3".into()
        }
    })
}

fn run_quiet(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{text}", out.status))
    }
}

fn venv_bin(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn build_venv() -> Result<PathBuf, String> {
    let python = base_python();
    let version = run_quiet(std::process::Command::new(&python).arg("--version")).map_err(|e| {
        format!("no Python interpreter `{python}` ({e}); install python3 or set CROSSTENANT_PYTHON")
    })?;
    let requirements = scripts_dir().join("requirements.txt");
    let pins = std::fs::read(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let mut keyed = pins.clone();
    keyed.extend_from_slice(version.trim().as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &keyed);
    let hash: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = root.join(format!("python-compat-venv-{hash}"));
    let python_in_venv = venv_bin(&venv);
    if python_in_venv.exists() {
        return Ok(python_in_venv);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    // Built aside and renamed into place, so no process ever sees a
    // half-installed environment.
    let building = root.join(format!(
        "python-compat-venv-{hash}.building-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&building);
    eprintln!(
        "python compat: creating a virtual environment with {} at {}",
        version.trim(),
        venv.display()
    );
    run_quiet(
        std::process::Command::new(&python)
            .args(["-m", "venv"])
            .arg(&building),
    )
    .map_err(|e| {
        format!("`{python} -m venv` is unavailable (on Debian: apt-get install python3-venv): {e}")
    })?;
    let pip = run_quiet(
        std::process::Command::new(venv_bin(&building))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--requirement",
            ])
            .arg(&requirements),
    );
    if let Err(e) = pip {
        let _ = std::fs::remove_dir_all(&building);
        return Err(format!(
            "cannot install the pinned clients from PyPI (offline?): {e}"
        ));
    }
    match std::fs::rename(&building, &venv) {
        Ok(()) => {}
        // Another process finished first: use its copy.
        Err(_) if python_in_venv.exists() => {
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            return Err(format!("cannot move the venv into {}: {e}", venv.display()));
        }
    }
    Ok(python_in_venv)
}

/// The interpreter to run checks with, or `None` after printing why the
/// check is skipped. Panics instead where `CROSSTENANT_PYTHON_COMPAT=require`.
async fn python_or_skip(check: &str) -> Option<PathBuf> {
    let mode = std::env::var("CROSSTENANT_PYTHON_COMPAT").unwrap_or_default();
    if mode == "off" {
        eprintln!(
            "SKIPPED: {check}: CROSSTENANT_PYTHON_COMPAT=off (Microsoft's Python clients were NOT run)"
        );
        return None;
    }
    let found = tokio::task::spawn_blocking(|| venv_python().clone())
        .await
        .unwrap_or_else(|e| Err(format!("venv builder panicked: {e}")));
    match found {
        Ok(p) => Some(p),
        Err(why) if mode == "require" => {
            panic!("{check}: CROSSTENANT_PYTHON_COMPAT=require, but {why}")
        }
        Err(why) => {
            eprintln!(
                "SKIPPED: {check}: Microsoft's Python clients were NOT run: {why}\n\
                 (set CROSSTENANT_PYTHON_COMPAT=require to make this a failure)"
            );
            None
        }
    }
}

/// A private scratch directory for one check, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("python-compat-run-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sandbox a check runs against, with the files and variables a script
/// gets.
pub struct Setup {
    /// The demo world.
    pub world: DemoWorld,
    /// Where its CA and the app's certificate are written.
    pub scratch: Scratch,
    /// Extra variables for the script.
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// Starts the demo world, writes its CA, registers a fresh certificate
    /// (RSA-2048, self-signed) on the demo app and writes key and
    /// certificate as one PEM file.
    pub async fn start() -> Self {
        let world = DemoWorld::start().await.expect("sandbox starts");
        let scratch = Scratch::new();
        let ca_file = scratch.path().join("sandbox-ca.pem");
        std::fs::write(&ca_file, world.sandbox.ca_pem()).expect("write CA");

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fabrikam-integration");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        world
            .sandbox
            .directory()
            .add_certificate(&world.app.app_id, cert.der())
            .expect("register the certificate on the app");
        let cert_file = scratch.path().join("fabrikam-integration.pem");
        std::fs::write(&cert_file, format!("{}{}", key.serialize_pem(), cert.pem()))
            .expect("write certificate");

        let mut env: Vec<(String, String)> = world
            .environment(&ca_file.to_string_lossy())
            .into_iter()
            .filter(|(name, _)| *name != "SSL_CERT_FILE")
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        env.push(("SBX_CA_FILE".into(), ca_file.to_string_lossy().into_owned()));
        env.push((
            "SBX_CERT_FILE".into(),
            cert_file.to_string_lossy().into_owned(),
        ));
        env.push(("SBX_TENANT_DOMAIN".into(), world.owner.domains[0].clone()));
        env.push(("SBX_PARTNER_TENANT_ID".into(), world.partner.id.clone()));
        // The managed identity way: App Service's variables as such (what
        // azure-identity reads), the ids under SBX_ names so the secret
        // app's AZURE_CLIENT_ID stays.
        env.push((
            "IDENTITY_ENDPOINT".into(),
            world.managed_identity_host().endpoint.to_string(),
        ));
        env.push((
            "IDENTITY_HEADER".into(),
            world.managed_identity_host().identity_header().to_string(),
        ));
        env.push((
            "SBX_MI_CLIENT_ID".into(),
            world.managed_identity.client_id.clone(),
        ));
        env.push((
            "SBX_SECRETLESS_CLIENT_ID".into(),
            world.secretless.app_id.clone(),
        ));
        Self {
            world,
            scratch,
            env,
        }
    }

    /// Runs `script` (a file of this directory) with `args` and the
    /// environment above; panics with the script's output unless it exits 0.
    /// Returns its standard output. `None`: skipped (printed why).
    pub async fn run(&self, script: &str, args: &[&str]) -> Option<String> {
        let label = format!("{script} {}", args.join(" "));
        let python = python_or_skip(&label).await?;
        let mut cmd = tokio::process::Command::new(python);
        cmd.arg(scripts_dir().join(script))
            .args(args)
            .current_dir(self.scratch.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os().filter(|(n, _)| {
            let n = n.to_string_lossy();
            n.starts_with("AZURE_")
                || n.starts_with("SSL_CERT")
                || n.starts_with("PYTHON")
                || matches!(
                    n.as_ref(),
                    "REQUESTS_CA_BUNDLE" | "CURL_CA_BUNDLE" | "HTTPS_PROXY" | "https_proxy"
                )
        }) {
            cmd.env_remove(name);
        }
        cmd.env("PYTHONPATH", scripts_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .envs(self.env.iter().map(|(n, v)| (n, v)));
        let out = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{label}: no answer within {SCRIPT_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{label}: cannot start the script: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("--- {label}: stdout\n{stdout}--- {label}: stderr\n{stderr}---");
        assert!(
            out.status.success(),
            "{label} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        Some(stdout)
    }
}

/// Starts a sandbox and runs one check against it.
pub async fn check(script: &str, args: &[&str]) -> Option<(Setup, String)> {
    let setup = Setup::start().await;
    let out = setup.run(script, args).await?;
    Some((setup, out))
}
