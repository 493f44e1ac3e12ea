//! Small formatting helpers shared by the subcommands: transport names,
//! JSON, times. Nothing here decides anything.

use crosstenant::aggregator::AggregatorError;
use crosstenant::eventhubs::Transport;
use crosstenant::Error;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Amqp => "AMQP",
        Transport::AmqpWebSockets => "AMQP over WebSockets",
        Transport::Https => "HTTPS",
        _ => "another transport",
    }
}

pub(crate) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A Unix time as RFC 3339.
pub(crate) fn timestamp(seconds: i64) -> String {
    azure_core::time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| azure_core::time::to_rfc3339(&t))
        .unwrap_or_else(|_| seconds.to_string())
}

/// `in 59 min 58 s` / `3 s ago`.
pub(crate) fn relative(seconds: i64) -> String {
    let magnitude = seconds.unsigned_abs();
    let text = if magnitude >= 60 {
        format!("{} min {} s", magnitude / 60, magnitude % 60)
    } else {
        format!("{magnitude} s")
    };
    if seconds >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// An error in a line: Entra's refusals by code and meaning (the fix goes on
/// its own line), everything else as the library words it.
pub(crate) fn summary(error: &Error) -> String {
    match error {
        Error::Entra(e) => {
            let code = e
                .code()
                .map_or_else(|| e.error.clone(), |c| format!("AADSTS{c}"));
            let meaning = e
                .hint()
                .map_or_else(|| e.description.clone(), |h| h.meaning);
            let trace = e.trace_id.as_deref().unwrap_or("-");
            format!(
                "{code} (HTTP {}) from tenant {}: {meaning} [trace id {trace}]",
                e.status, e.tenant
            )
        }
        Error::Aggregator(e) => match &**e {
            AggregatorError::Token {
                purpose, source, ..
            } => format!("could not get {purpose}: {}", summary(source)),
            other => other.to_string(),
        },
        other => other.to_string(),
    }
}
