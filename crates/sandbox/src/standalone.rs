//! The sandbox as a program: starts the demo world, prints every endpoint,
//! the CA file and the demo credentials, writes an env file, and runs until
//! Ctrl-C or SIGTERM.
//!
//! The `crosstenant-sandbox` binary and the `crosstenant sandbox` subcommand
//! both call [`run`], so a team writing Python, .NET or Java can point its
//! own clients at the sandbox with nothing but the printed settings. Every
//! line it prints but the `export` lines is a shell comment, so the whole
//! output can be saved and sourced. The output names the demo client secret:
//! worthless outside this process, and the point of the program.
//!
//! Every listener is on 127.0.0.1 only; there is no option to listen on
//! another address.
//!
//! `SSL_CERT_FILE` replaces a TLS stack's whole trust store, so the exported
//! value is never the sandbox CA alone: it names a bundle file written next
//! to the CA (`<ca file>.bundle.pem`) holding the trust the shell had — the
//! file the user's own `SSL_CERT_FILE` names, else the system bundle — and
//! the sandbox CA after it. The banner says which file was combined, and
//! warns when there was none. `SANDBOX_CA_FILE` names the CA alone, for
//! clients that take one extra root (`connection_verify`, `verify=`).

use crate::demo::{DemoWorld, API_URI, API_V2_URI, CLIENT, HUB};
use crate::SandboxError;
use std::path::{Path, PathBuf};

/// What [`run`] is told.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where to write the sandbox CA (PEM); `None`: a file in the temp
    /// directory, removed on exit.
    pub ca_file: Option<PathBuf>,
    /// Also write the `export` lines to this file (mode 0600 on Unix: it
    /// holds the demo secret), to `source` in another shell.
    pub env_file: Option<PathBuf>,
}

/// Starts the demo world, prints its settings and serves until Ctrl-C (or
/// SIGTERM on Unix). Call inside a Tokio runtime.
pub async fn run(options: Options) -> Result<(), SandboxError> {
    let world = DemoWorld::start().await?;
    let (ca_file, remove_on_exit) = match options.ca_file {
        Some(path) => (path, false),
        None => (
            std::env::temp_dir().join(format!("crosstenant-sandbox-ca-{}.pem", std::process::id())),
            true,
        ),
    };
    std::fs::write(&ca_file, world.sandbox.ca_pem()).map_err(|e| {
        SandboxError(format!(
            "cannot write the CA to {}: {e}; give a writable path with --ca-file",
            ca_file.display()
        ))
    })?;

    let user_bundle = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let bundle = trust_bundle(&ca_file, world.sandbox.ca_pem(), user_bundle)?;
    for line in banner(&world, &ca_file, &bundle) {
        println!("{line}");
    }

    let ca_text = ca_file.to_string_lossy().into_owned();
    let exports: Vec<String> = world
        .environment(&ca_text)
        .into_iter()
        .map(|(name, value)| match name {
            "SSL_CERT_FILE" => (name, bundle.path.to_string_lossy().into_owned()),
            _ => (name, value),
        })
        .map(|(name, value)| format!("export {name}={}", shell_quote(&value)))
        .collect();
    let mut exports = exports;
    exports.extend(secretless_alternatives(&world));
    for line in &exports {
        println!("{line}");
    }
    if let Some(path) = &options.env_file {
        write_private(path, &(exports.join("\n") + "\n")).map_err(|e| {
            SandboxError(format!(
                "cannot write the env file {}: {e}; give a writable path with --env-file",
                path.display()
            ))
        })?;
        println!("# also written to {}", path.display());
    }
    println!("# running until Ctrl-C");

    let stopped = shutdown_signal().await;
    if remove_on_exit {
        let _ = std::fs::remove_file(&ca_file);
        let _ = std::fs::remove_file(&bundle.path);
    }
    drop(world);
    match stopped {
        Ok(()) => {
            println!("# stopped");
            Ok(())
        }
        Err(e) => Err(SandboxError(format!("waiting for Ctrl-C: {e}"))),
    }
}

/// The `SSL_CERT_FILE` the env file exports: the trust the shell had plus
/// the sandbox CA.
struct TrustBundle {
    /// The bundle file.
    path: PathBuf,
    /// Where the trust it keeps came from (`None`: nowhere, sandbox CA only).
    base: Option<PathBuf>,
    /// Whether that was the user's own `SSL_CERT_FILE`.
    from_user: bool,
}

/// The system CA bundles of common systems (Debian/Ubuntu, Fedora/RHEL,
/// openSUSE, Alpine, macOS with Homebrew's OpenSSL).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Writes `<ca_file>.bundle.pem`: the user's `SSL_CERT_FILE` (`user`,
/// else the first system bundle found), then the sandbox CA.
fn trust_bundle(
    ca_file: &Path,
    ca_pem: &str,
    user: Option<PathBuf>,
) -> Result<TrustBundle, SandboxError> {
    let (base, from_user) = match &user {
        Some(p) => (Some(p.clone()), true),
        None => (
            SYSTEM_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
            false,
        ),
    };
    let mut text = match &base {
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            SandboxError(format!(
                "cannot read {} to keep its certificates beside the sandbox CA: {e}; fix or \
                 unset SSL_CERT_FILE",
                p.display()
            ))
        })?,
        None => String::new(),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(ca_pem);
    let mut path = ca_file.as_os_str().to_owned();
    path.push(".bundle.pem");
    let path = PathBuf::from(path);
    std::fs::write(&path, text).map_err(|e| {
        SandboxError(format!(
            "cannot write the trust bundle {}: {e}; give a writable path with --ca-file",
            path.display()
        ))
    })?;
    Ok(TrustBundle {
        path,
        base,
        from_user,
    })
}

/// The comment lines naming every endpoint, tenant, API and credential.
fn banner(world: &DemoWorld, ca_file: &Path, bundle: &TrustBundle) -> Vec<String> {
    let eh = world.sandbox.eventhubs();
    let authority = world.sandbox.authority_host();
    let owner = &world.owner.id;
    let mut out = vec![
        "# crosstenant sandbox: the demo world, offline, listening on 127.0.0.1 only".to_string(),
        format!(
            "#   partner tenant (Fabrikam):  {} ({})",
            world.partner.id,
            world.partner.domains.join(", ")
        ),
        format!(
            "#   resource tenant (Contoso):  {owner} ({})",
            world.owner.domains.join(", ")
        ),
        format!("#   partner app (multi-tenant): {}", world.app.app_id),
        format!(
            "#     client secret:            {} (a sandbox secret, worthless elsewhere)",
            world.client_secret()
        ),
        format!(
            "#   secretless app:             {} ({}; federated credentials only)",
            world.secretless.app_id,
            crate::demo::SECRETLESS_APP
        ),
        format!(
            "#     managed identity:         {} client id {}, principal id {}",
            crate::demo::MANAGED_IDENTITY,
            world.managed_identity.client_id,
            world.managed_identity.object_id
        ),
        format!(
            "#     IDENTITY_ENDPOINT:        {} (App Service protocol, plain HTTP)",
            world.managed_identity_host().endpoint
        ),
        format!(
            "#     GitHub OIDC issuer:       {} (subject {})",
            world.sandbox.github_actions().issuer(),
            world.sandbox.github_actions().subject()
        ),
        format!("#   identity provider:          {authority}"),
        format!("#     token (v2 endpoint):      {authority}{owner}/oauth2/v2.0/token"),
        format!("#     token (v1 endpoint):      {authority}{owner}/oauth2/token"),
        format!(
            "#     discovery v2 / v1:        {authority}{owner}/v2.0/.well-known/openid-configuration"
        ),
        format!("#                               {authority}{owner}/.well-known/openid-configuration"),
        format!("#     keys (JWKS):              {authority}{owner}/discovery/v2.0/keys"),
        "#     client auth:              client_secret_post, client_secret_basic, private_key_jwt"
            .to_string(),
        format!("#   Event Hubs:                 {} / {HUB}", world.namespace),
        format!("#     AMQP over TLS:            {}", eh.amqps_endpoint()),
        format!("#     AMQP plain (loopback):    {}", eh.amqp_endpoint()),
        format!("#     AMQP over WebSockets:     {}", eh.websocket_endpoint()),
        format!("#     HTTPS:                    {}", eh.https_endpoint()),
        "#     scope:                    https://eventhubs.azure.net/.default".to_string(),
        format!(
            "#   aggregator API:             {} ({API_URI}, client {CLIENT})",
            world.sandbox.api().url(),
        ),
        format!("#     scope (v1.0 tokens):      {API_URI}/.default"),
        format!(
            "#   v2.0-token API:             {API_V2_URI}/.default (or api://{}/.default), client id {}",
            world.api_v2.app_id, world.api_v2.app_id
        ),
        "#     (its tokens carry ver 2.0 and aud = that client id; a token audience, not a served API)"
            .to_string(),
        format!("#   CA certificate:             {}", ca_file.display()),
    ];
    out.push(match (&bundle.base, bundle.from_user) {
        (Some(base), true) => format!(
            "#   SSL_CERT_FILE:              {} = your SSL_CERT_FILE ({}) + the sandbox CA",
            bundle.path.display(),
            base.display()
        ),
        (Some(base), false) => format!(
            "#   SSL_CERT_FILE:              {} = the system bundle ({}) + the sandbox CA",
            bundle.path.display(),
            base.display()
        ),
        (None, _) => format!(
            "#   SSL_CERT_FILE:              {} = the sandbox CA only. WARNING: no system CA \
             bundle was found, so tools in a shell that sources this trust nothing else; set \
             SSL_CERT_FILE to your bundle and restart to keep it",
            bundle.path.display()
        ),
    });
    out.extend(
        [
            "# In another shell, run these lines (or source --env-file), then e.g.:",
            "#   crosstenant token",
            "#   crosstenant send --transport https < events.jsonl",
            "#   crosstenant call --client clientXYZ data",
            "#   crosstenant doctor --send-probe",
        ]
        .map(String::from),
    );
    out
}

/// The secretless ways, as commented `export` lines to uncomment instead of
/// the secret app's `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`: the managed
/// identity way (App Service's `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`,
/// selected by `CROSSTENANT_MANAGED_IDENTITY`) and the GitHub Actions way
/// (`ACTIONS_ID_TOKEN_REQUEST_URL`/`…_TOKEN`, selected by
/// `CROSSTENANT_GITHUB_OIDC`).
fn secretless_alternatives(world: &DemoWorld) -> Vec<String> {
    let block = |title: &str, env: Vec<(&'static str, String)>| {
        let mut lines = vec![format!("# {title}")];
        lines.push("#   unset AZURE_CLIENT_SECRET".to_string());
        lines.extend(
            env.into_iter()
                .map(|(n, v)| format!("#   export {n}={}", shell_quote(&v))),
        );
        lines
    };
    let mut out = block(
        &format!(
            "secretless, managed identity ({} on host {}): uncomment instead of the secret",
            crate::demo::MANAGED_IDENTITY,
            crate::demo::MANAGED_IDENTITY_HOST
        ),
        world.managed_identity_environment(),
    );
    out.extend(block(
        &format!(
            "secretless, GitHub Actions OIDC (job {}): uncomment instead of the secret",
            world.sandbox.github_actions().subject()
        ),
        world.github_oidc_environment(),
    ));
    out
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and service managers send).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// Writes a file only its owner can read: it holds the demo secret.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// Quotes a value for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_banner_names_every_endpoint_api_and_credential() {
        let world = DemoWorld::start().await.unwrap();
        let dir = std::env::temp_dir().join(format!("sbx-banner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let user = dir.join("mine.pem");
        std::fs::write(
            &user,
            "-----BEGIN CERTIFICATE-----\nMINE\n-----END CERTIFICATE-----",
        )
        .unwrap();
        let bundle = trust_bundle(&ca, world.sandbox.ca_pem(), Some(user.clone())).unwrap();
        let text = banner(&world, &ca, &bundle).join("\n");
        let eh = world.sandbox.eventhubs();
        for needed in [
            eh.amqps_endpoint().to_string(),
            eh.amqp_endpoint().to_string(),
            eh.websocket_endpoint().to_string(),
            eh.https_endpoint().to_string(),
            world.sandbox.authority_host().to_string(),
            world.sandbox.api().url().to_string(),
            format!("{API_URI}/.default"),
            format!("{API_V2_URI}/.default"),
            world.api_v2.app_id.clone(),
            world.client_secret().to_string(),
            world.app.app_id.clone(),
            world.partner.id.clone(),
            world.owner.id.clone(),
            "client_secret_basic".to_string(),
            "127.0.0.1 only".to_string(),
        ] {
            assert!(text.contains(&needed), "the banner lacks {needed}:\n{text}");
        }
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");

        // The user's own SSL_CERT_FILE is kept, the sandbox CA after it, and
        // the banner says so.
        let combined = std::fs::read_to_string(&bundle.path).unwrap();
        assert!(combined.starts_with("-----BEGIN CERTIFICATE-----\nMINE\n"));
        assert!(combined.ends_with(world.sandbox.ca_pem()));
        assert!(text.contains(&format!("your SSL_CERT_FILE ({})", user.display())));
        // An unreadable SSL_CERT_FILE is an error naming it, not a silent drop.
        let missing = dir.join("missing.pem");
        let err = trust_bundle(&ca, world.sandbox.ca_pem(), Some(missing.clone()))
            .err()
            .expect("an unreadable SSL_CERT_FILE is refused");
        assert!(err.0.contains(&missing.display().to_string()), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_environment_names_both_apis_and_every_endpoint() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let world = rt.block_on(DemoWorld::start()).unwrap();
        let env = world.environment("/tmp/ca.pem");
        let names: Vec<&str> = env.iter().map(|(n, _)| *n).collect();
        for needed in [
            "AZURE_AUTHORITY_HOST",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "SSL_CERT_FILE",
            "SANDBOX_CA_FILE",
            "PARTNER_TENANT_ID",
            "EVENTHUBS_AMQP_ENDPOINT",
            "EVENTHUBS_AMQP_PLAIN_ENDPOINT",
            "EVENTHUBS_WEBSOCKET_ENDPOINT",
            "EVENTHUBS_HTTPS_ENDPOINT",
            "AGGREGATOR_API_URL",
            "AGGREGATOR_API_SCOPE",
            "API_V2_SCOPE",
            "API_V2_CLIENT_ID",
        ] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
        drop(world);
    }

    #[tokio::test]
    async fn the_secretless_ways_are_offered_as_commented_alternatives() {
        let world = DemoWorld::start().await.unwrap();
        let lines = secretless_alternatives(&world);
        assert!(lines.iter().all(|l| l.starts_with('#')), "{lines:#?}");
        let text = lines.join("\n");
        for needed in [
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "CROSSTENANT_MANAGED_IDENTITY",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "CROSSTENANT_GITHUB_OIDC",
            world.secretless.app_id.as_str(),
            world.owner.id.as_str(),
            world.managed_identity.client_id.as_str(),
        ] {
            assert!(text.contains(needed), "{needed} missing:\n{text}");
        }
    }

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote("plain"), "'plain'");
    }
}
