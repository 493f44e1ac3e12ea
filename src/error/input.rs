//! A value refused before anything was sent: a builder setting, an argument,
//! an environment variable.

use super::{shorten, Party, Remedy};

/// A value that was refused before anything was sent.
///
/// `field` names the builder method or variable, `value` shows what was given
/// (or `<redacted>` when the value could be a secret), and `fix` says what to
/// give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} `{value}`: {fix}")]
pub struct InvalidInput {
    /// The setting or argument, e.g. `resource_tenant`, `AZURE_CLIENT_ID`.
    pub field: String,
    /// The value given, shortened, or `<redacted>` for secrets.
    pub value: String,
    /// What is wrong and what to give instead.
    pub fix: String,
}

impl InvalidInput {
    /// A refusal naming a non-secret value (shortened to 120 characters,
    /// control characters escaped).
    pub fn new(field: impl Into<String>, value: &str, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: shorten(value),
            fix: fix.into(),
        }
    }

    /// A refusal of a value that may be secret: the value is never shown.
    pub fn secret(field: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: "<redacted>".into(),
            fix: fix.into(),
        }
    }
}

impl InvalidInput {
    /// The partner gives another value: what [`fix`](Self::fix) says.
    pub fn remedy(&self) -> Remedy {
        Remedy::new(Party::Partner, format!("{}: {}", self.field, self.fix))
    }
}
