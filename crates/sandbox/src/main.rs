//! `crosstenant-sandbox`: the offline two-tenant world as a standalone
//! program, for teams whose own clients (Python, .NET, Java, the Azure CLI's
//! libraries) should run against it. Prints every endpoint, the CA file and
//! the demo credentials as `export` lines, and runs until Ctrl-C.
//!
//! Exit codes: 0 stopped cleanly, 1 could not start or serve, 2 bad command
//! line.

#![forbid(unsafe_code)]

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The offline two-tenant world (identity, Event Hubs, aggregator API) on
/// 127.0.0.1, until Ctrl-C.
#[derive(Parser)]
#[command(name = "crosstenant-sandbox", version)]
struct Cli {
    /// Where to write the sandbox CA (PEM); default a file in the temp
    /// directory, removed on exit.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Also write the `export` lines to this file (mode 0600 on Unix: it
    /// holds the demo secret), to `source` in another shell.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = crosstenant_sandbox::standalone::Options {
        ca_file: cli.ca_file,
        env_file: cli.env_file,
    };
    match crosstenant_sandbox::standalone::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
