//! `crosstenant sandbox`: the sandbox crate's standalone program run
//! in-process, so one installed command is enough to try everything offline.
//!
//! Its output and its `--env-file` / `--ca-file` contract are the
//! `crosstenant-sandbox` binary's; scripts rely on both.

use crate::error::{CliError, Outcome};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct SandboxArgs {
    /// Where to write the sandbox CA (PEM); default a file in the temp
    /// directory, removed on exit.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Also write the `export` lines to this file (mode 0600 on Unix: it
    /// holds the demo secret), to `source` in another shell.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

/// The sandbox crate's standalone program, in-process: the same output and
/// `--env-file` / `--ca-file` contract as the `crosstenant-sandbox` binary.
pub(crate) async fn sandbox(args: SandboxArgs) -> Outcome {
    let options = crosstenant_sandbox::standalone::Options {
        ca_file: args.ca_file,
        env_file: args.env_file,
    };
    crosstenant_sandbox::standalone::run(options)
        .await
        .map(|()| ExitCode::SUCCESS)
        .map_err(|e| CliError::Failed(e.to_string()))
}
