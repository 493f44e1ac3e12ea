//! `crosstenant`: the partner's command line for cross-tenant access.
//!
//! ```sh
//! # Shell 1: the offline two-tenant world, until Ctrl-C.
//! crosstenant sandbox --env-file sandbox.env
//!
//! # Shell 2: point the CLI (or any Azure SDK tool) at it, then use it.
//! source sandbox.env
//! crosstenant token
//! echo '{"temp":21.5}' | crosstenant \
//!     send --transport https
//! crosstenant \
//!     call --api "$AGGREGATOR_API_URL" --api-scope api://secure-api --client clientXYZ data
//! crosstenant doctor --send-probe
//! ```
//!
//! Subcommands:
//! - `token`: asks the resource owner's tenant for a token and prints its
//!   decoded claims (`--json` for JSON). The token itself is printed only
//!   with `--show-token`.
//! - `send`: sends JSON Lines (stdin or `--file`) to an Event Hub in batches,
//!   with a progress bar on a terminal and a summary; exits non-zero if any
//!   event was not accepted.
//! - `call`: one aggregator call on behalf of a client (two tokens); prints
//!   the JSON answer or the API's reason for refusing.
//! - `doctor`: walks the chain (configuration, tenant, token, claims, clock,
//!   Event Hubs, aggregator API) and prints PASS/FAIL per check with, for a
//!   failure, the fix and who must make it.
//! - `sandbox`: runs the demo world standalone and prints the `export` lines
//!   that point the other subcommands at it.
//!
//! The credential is configured as every Azure SDK is: `AZURE_TENANT_ID` (here
//! the **resource owner's** tenant), `AZURE_CLIENT_ID`, and one of
//! `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH` (+
//! `AZURE_CLIENT_CERTIFICATE_PASSWORD`) or `AZURE_FEDERATED_TOKEN_FILE`;
//! optionally `AZURE_AUTHORITY_HOST`. Extra trusted roots come from
//! `SSL_CERT_FILE`. Every setting but the secrets also has a flag.
//!
//! Exit codes: 0 success, 1 an operation failed (or a check did), 2 the
//! command line or configuration is invalid.

mod call;
mod config;
mod doctor;
mod error;
mod output;
mod sandbox;
mod send;
mod targets;
mod token;

use clap::{Parser, Subcommand};
use config::{CredentialArgs, ENVIRONMENT_HELP};
use error::CliError;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "crosstenant",
    version,
    about = "Cross-tenant access on Microsoft Entra ID, from the partner's side",
    after_help = ENVIRONMENT_HELP
)]
struct Cli {
    #[command(flatten)]
    config: CredentialArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Get a token from the resource owner's tenant and show its claims.
    Token(token::TokenArgs),
    /// Send JSON Lines to an Event Hub in the resource owner's namespace.
    Send(send::SendArgs),
    /// Call an API on behalf of a client (the aggregator's two-token call).
    Call(call::CallArgs),
    /// Check the whole chain and say who must fix what.
    Doctor(doctor::DoctorArgs),
    /// Run the offline demo world until Ctrl-C and print how to use it.
    Sandbox(sandbox::SandboxArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr, and only when RUST_LOG asks; the library never logs
    // a secret or token.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Token(args) => token::token(&cli.config, args).await,
        Command::Send(args) => send::send(&cli.config, args).await,
        Command::Call(args) => call::call(&cli.config, args).await,
        Command::Doctor(args) => doctor::doctor(&cli.config, args).await,
        Command::Sandbox(args) => sandbox::sandbox(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
