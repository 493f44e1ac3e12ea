//! How a subcommand fails, and the exit code each failure maps to: 2 for a
//! bad command line or configuration, 1 for an operation that failed.

use crosstenant::Error;
use std::process::ExitCode;

/// Why a subcommand could not do its work.
pub(crate) enum CliError {
    /// The command line or configuration is wrong: exit code 2.
    Usage(String),
    /// The operation failed: exit code 1.
    Failed(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(_) => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// What a subcommand returns: its exit code, or why it could not run.
pub(crate) type Outcome = Result<ExitCode, CliError>;
