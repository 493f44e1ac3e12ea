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

use crate::demo::{DemoWorld, API_URI, CLIENT, HUB};
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

    let eh = world.sandbox.eventhubs();
    println!("# crosstenant sandbox: the demo world, offline on 127.0.0.1");
    println!(
        "#   partner tenant (Fabrikam):  {} ({})",
        world.partner.id,
        world.partner.domains.join(", ")
    );
    println!(
        "#   resource tenant (Contoso):  {} ({})",
        world.owner.id,
        world.owner.domains.join(", ")
    );
    println!("#   partner app (multi-tenant): {}", world.app.app_id);
    println!(
        "#   identity provider:          {}",
        world.sandbox.authority_host()
    );
    println!(
        "#   Event Hubs:                 {} / {HUB}",
        world.namespace
    );
    println!("#     AMQP over TLS:            {}", eh.amqps_endpoint());
    println!("#     HTTPS:                    {}", eh.https_endpoint());
    println!(
        "#   aggregator API:             {} ({API_URI}, client {CLIENT})",
        world.sandbox.api().url(),
    );
    println!("#   CA certificate:             {}", ca_file.display());
    println!("# In another shell, run these lines (or source --env-file), then e.g.:");
    println!("#   crosstenant token");
    println!("#   crosstenant send --transport https < events.jsonl");
    println!("#   crosstenant call --client clientXYZ data");
    println!("#   crosstenant doctor --send-probe");

    let ca_text = ca_file.to_string_lossy().into_owned();
    let exports: Vec<String> = world
        .environment(&ca_text)
        .into_iter()
        .map(|(name, value)| format!("export {name}={}", shell_quote(&value)))
        .collect();
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
    use super::shell_quote;

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote("plain"), "'plain'");
    }
}
