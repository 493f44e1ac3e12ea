//! What the subcommands talk to besides Entra ID: the Event Hub (`send`,
//! `doctor`) and the aggregator API (`call`, `doctor`), from flags or the
//! `EVENTHUBS_*` / `AGGREGATOR_*` variables the sandbox's env file sets.
//!
//! Not for the credential's own settings (`config`).

use crate::config::{env_var, given, required};
use crate::error::CliError;
use clap::{Args, ValueEnum};
use crosstenant::aggregator::AggregatorClient;
use crosstenant::eventhubs::{EventHubSender, Transport};
use crosstenant::{CrossTenantCredential, Error};
use serde_json::Value;
use std::sync::Arc;

/// Where events go: the namespace, the hub, the transport and an optional
/// address to connect to instead of the namespace's own.
#[derive(Args)]
pub(crate) struct EventHubArgs {
    /// The resource owner's namespace: `contoso` or `contoso.servicebus.windows.net`.
    #[arg(long, env = "EVENTHUBS_NAMESPACE")]
    namespace: Option<String>,
    /// The Event Hub.
    #[arg(long, env = "EVENTHUBS_HUB")]
    hub: Option<String>,
    /// How to talk to the namespace.
    #[arg(long, value_enum, default_value = "amqp")]
    transport: TransportArg,
    /// Connect here instead of the namespace's address (a proxy, a private
    /// endpoint, the sandbox). Defaults to EVENTHUBS_AMQP_ENDPOINT for amqp
    /// and EVENTHUBS_HTTPS_ENDPOINT for https, when set.
    #[arg(long)]
    endpoint: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TransportArg {
    /// AMQP 1.0 over TLS, port 5671.
    Amqp,
    /// AMQP 1.0 over WebSockets, port 443.
    AmqpWs,
    /// The HTTPS REST API, port 443.
    Https,
}

#[derive(Args)]
pub(crate) struct ApiArgs {
    /// The API's base URL.
    #[arg(long, env = "AGGREGATOR_API_URL")]
    api: Option<String>,
    /// The API's App ID URI or scope, e.g. api://secure-api.
    #[arg(long, env = "AGGREGATOR_API_SCOPE")]
    api_scope: Option<String>,
    /// The client to act for: clientXYZ, api://clientXYZ or its app id.
    #[arg(long, env = "AGGREGATOR_CLIENT")]
    client: Option<String>,
}

/// The resolved Event Hubs target: namespace, hub, transport, endpoint.
pub(crate) struct EventHubTarget {
    namespace: String,
    hub: String,
    transport: Transport,
    endpoint: Option<String>,
}

impl EventHubArgs {
    /// `None` when neither namespace nor hub is given (doctor skips the
    /// check); an error when only one is.
    pub(crate) fn target(&self) -> Result<Option<EventHubTarget>, CliError> {
        let (namespace, hub) = match (given(&self.namespace), given(&self.hub)) {
            (None, None) => return Ok(None),
            (Some(n), Some(h)) => (n.to_string(), h.to_string()),
            (None, Some(_)) => {
                return Err(CliError::Usage(
                    "give --namespace (or set EVENTHUBS_NAMESPACE) with --hub".into(),
                ))
            }
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "give --hub (or set EVENTHUBS_HUB) with --namespace".into(),
                ))
            }
        };
        let (transport, endpoint_variable) = match self.transport {
            TransportArg::Amqp => (Transport::Amqp, Some("EVENTHUBS_AMQP_ENDPOINT")),
            TransportArg::AmqpWs => (Transport::AmqpWebSockets, None),
            TransportArg::Https => (Transport::Https, Some("EVENTHUBS_HTTPS_ENDPOINT")),
        };
        let endpoint = given(&self.endpoint)
            .map(str::to_string)
            .or_else(|| endpoint_variable.and_then(env_var));
        Ok(Some(EventHubTarget {
            namespace,
            hub,
            transport,
            endpoint,
        }))
    }
}

impl EventHubTarget {
    pub(crate) async fn open(
        &self,
        credential: Arc<CrossTenantCredential>,
    ) -> Result<EventHubSender<Value>, Error> {
        let http = credential.http_settings().clone();
        let mut builder = EventHubSender::<Value>::builder(&self.namespace, &self.hub, credential)
            .http_settings(http)
            .transport(self.transport);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint(endpoint);
        }
        builder.open().await
    }

    /// The host and port a connection goes to: the endpoint's, else the
    /// namespace's on the transport's port.
    pub(crate) fn address(&self) -> (String, u16) {
        let default_port = match self.transport {
            Transport::Https | Transport::AmqpWebSockets => 443,
            _ => 5671,
        };
        if let Some(url) = self
            .endpoint
            .as_deref()
            .and_then(|e| url::Url::parse(e).ok())
        {
            let host = url
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string();
            return (host, url.port_or_known_default().unwrap_or(default_port));
        }
        let host = if self.namespace.contains('.') {
            self.namespace.trim_end_matches('/').to_ascii_lowercase()
        } else {
            format!(
                "{}.servicebus.windows.net",
                self.namespace.to_ascii_lowercase()
            )
        };
        (host, default_port)
    }
}

impl ApiArgs {
    /// `None` when no API is named (doctor skips the check).
    pub(crate) fn client(
        &self,
        credential: Arc<CrossTenantCredential>,
    ) -> Result<Option<(AggregatorClient, String)>, CliError> {
        if given(&self.api).is_none() && given(&self.api_scope).is_none() {
            return Ok(None);
        }
        let api = required(&self.api, "--api", Some("AGGREGATOR_API_URL"))?;
        let scope = required(&self.api_scope, "--api-scope", Some("AGGREGATOR_API_SCOPE"))?;
        let client = required(&self.client, "--client", Some("AGGREGATOR_CLIENT"))?;
        let http = credential.http_settings().clone();
        let aggregator = AggregatorClient::builder(api, scope, credential)
            .http_settings(http)
            .build()?;
        Ok(Some((aggregator, client.to_string())))
    }
}
