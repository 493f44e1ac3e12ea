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
    /// control characters escaped). A URL's password (`scheme://user:pass@`)
    /// is shown as `<redacted>`: a base URL, endpoint or authority given
    /// with credentials in it is refused without printing them.
    pub fn new(field: impl Into<String>, value: &str, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: shorten(&hide_url_password(value)),
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

/// `value` with the password of a URL's user information replaced by
/// `<redacted>`, and otherwise as given (not normalized, so the message shows
/// what the user typed). A URL the `url` crate reads without a password is
/// kept whole; any other text with `://` is read as text, so a URL the crate
/// refuses (a `/` in the password, several hosts) is covered too: from the
/// first `:` after `://` to the last `@` is hidden, which may hide a host,
/// port or path as well, never less than the password.
pub(crate) fn hide_url_password(value: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = value.find("://").map(|i| i + 3) else {
        return value.into();
    };
    if url::Url::parse(value).is_ok_and(|u| u.password().is_none()) {
        return value.into();
    }
    let rest = &value[start..];
    let (Some(at), Some(colon)) = (rest.rfind('@'), rest.find(':')) else {
        return value.into();
    };
    if colon > at {
        return value.into();
    }
    format!("{}<redacted>{}", &value[..start + colon + 1], &rest[at..]).into()
}

impl InvalidInput {
    /// The partner gives another value: what [`fix`](Self::fix) says.
    pub fn remedy(&self) -> Remedy {
        Remedy::new(Party::Partner, format!("{}: {}", self.field, self.fix))
    }
}
