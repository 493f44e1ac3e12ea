//! What an error means for the doctor: a one-line summary, who must act
//! (partner, resource owner, either) and what they must do.

use crosstenant::aggregator::AggregatorError;
use crosstenant::credential::entra::Party;
use crosstenant::eventhubs::EventHubsError;
use crosstenant::Error;

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

/// Who must act on an error, and what they must do.
pub(crate) fn diagnose(error: &Error) -> (Party, String) {
    match error {
        Error::Entra(e) => match e.hint() {
            Some(hint) => (hint.party, hint.action),
            None => (
                Party::Either,
                format!(
                    "look the code up in Microsoft's \"Entra authentication and authorization \
                     error codes\"; quote trace id {} to support",
                    e.trace_id.as_deref().unwrap_or("-")
                ),
            ),
        },
        Error::WrongTenant { expected, .. } => (
            Party::Partner,
            format!(
                "point AZURE_AUTHORITY_HOST and AZURE_TENANT_ID at the resource owner's tenant \
                 {expected}"
            ),
        ),
        Error::WrongAudience { expected, .. } => (
            Party::Partner,
            format!("request the scope {expected}/.default"),
        ),
        Error::InvalidInput(i) => (Party::Partner, i.fix.clone()),
        Error::Certificate(_) | Error::Assertion { .. } => (
            Party::Partner,
            "fix the certificate or assertion source named above".into(),
        ),
        Error::Transport { .. } => (
            Party::Partner,
            "check that this machine reaches the service (DNS, firewall, proxy) and trusts its \
             certificate (SSL_CERT_FILE for a private CA); retry if it was transient"
                .into(),
        ),
        Error::EventHubs(e) => diagnose_eventhubs(e),
        Error::Aggregator(e) => diagnose_aggregator(e),
        _ => (Party::Either, "see the message above".into()),
    }
}

pub(crate) fn diagnose_eventhubs(error: &EventHubsError) -> (Party, String) {
    match error {
        EventHubsError::NotAccepted { cause, .. } => diagnose_eventhubs(cause),
        EventHubsError::Unauthorized {
            app_id,
            token_tenant,
            ..
        } => (
            Party::ResourceOwner,
            format!(
                "make sure the namespace belongs to tenant {token_tenant} (if it does not, the \
                 partner must request tokens at the namespace's tenant instead), and assign \
                 \"Azure Event Hubs Data Sender\" to the service principal of {app_id} on the \
                 namespace or hub"
            ),
        ),
        EventHubsError::TokenRejected { .. } => (
            Party::Partner,
            "request the token with the scope https://eventhubs.azure.net/.default from Entra \
             ID of the namespace's cloud"
                .into(),
        ),
        EventHubsError::NotFound { .. } => (
            Party::Either,
            "agree on the namespace and hub names with the resource owner".into(),
        ),
        EventHubsError::Forbidden { .. } => (
            Party::ResourceOwner,
            "check the namespace's network rules, quotas and that the hub is enabled".into(),
        ),
        EventHubsError::TooLarge { .. } | EventHubsError::Serialize { .. } => {
            (Party::Partner, "send smaller, valid JSON events".into())
        }
        _ => (
            Party::Either,
            "retry later; if it persists the resource owner checks the namespace's health and \
             throughput units"
                .into(),
        ),
    }
}

pub(crate) fn diagnose_aggregator(error: &AggregatorError) -> (Party, String) {
    match error {
        AggregatorError::Forbidden { reason, .. } => (
            Party::ResourceOwner,
            format!(
                "grant what the API's reason names ({}): API roles come from the API owner's \
                 tenant admin, client roles from the client",
                reason.as_deref().unwrap_or("no reason given")
            ),
        ),
        AggregatorError::Unauthorized { .. } => (
            Party::Partner,
            "check that --api-scope is the API's App ID URI and AZURE_TENANT_ID the API owner's \
             tenant"
                .into(),
        ),
        AggregatorError::Token { source, .. } => diagnose(source),
        _ => (
            Party::Either,
            "check the API's URL and that it is up; retry if it was transient".into(),
        ),
    }
}
