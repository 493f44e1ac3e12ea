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
            other => {
                // The library says who must act and what to do; print it
                // under the message.
                let mut message = other.to_string();
                if let Some(remedy) = other.remedy() {
                    message.push_str(&format!(
                        "\n  who must act: {}\n  what to do: {}",
                        remedy.party, remedy.action
                    ));
                }
                CliError::Failed(message)
            }
        }
    }
}

/// What a subcommand returns: its exit code, or why it could not run.
pub(crate) type Outcome = Result<ExitCode, CliError>;
