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

use clap::{Args, Parser, Subcommand, ValueEnum};
use crosstenant::aggregator::{AggregatorClient, AggregatorError, NamedClient};
use crosstenant::credential::entra::Party;
use crosstenant::eventhubs::{
    EventHubSender, EventHubsError, SendOptions, Transport, DEFAULT_MAX_MESSAGE_SIZE,
    EVENTHUBS_SCOPE,
};
use crosstenant::{CrossTenantCredential, Error, TokenClaims};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

const ENVIRONMENT_HELP: &str = "\
Environment (the names every Azure SDK reads):
  AZURE_TENANT_ID                    the RESOURCE OWNER's tenant (GUID or verified domain)
  AZURE_CLIENT_ID                    the partner app's client id
  AZURE_CLIENT_SECRET                its client secret, or
  AZURE_CLIENT_CERTIFICATE_PATH      a PEM or PFX certificate (+ AZURE_CLIENT_CERTIFICATE_PASSWORD), or
  AZURE_FEDERATED_TOKEN_FILE         a federated assertion file (workload identity)
  AZURE_AUTHORITY_HOST               the authority (default https://login.microsoftonline.com/)
  SSL_CERT_FILE                      extra trusted roots (PEM), e.g. the sandbox CA
Secrets are read from the environment only: on a command line they would show in `ps` and
shell history.

Exit codes: 0 success, 1 an operation or check failed, 2 invalid command line or configuration.";

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

/// Where the credential's settings come from: a flag, else the usual
/// environment variable. Secrets have no flag (see `ENVIRONMENT_HELP`).
#[derive(Args)]
struct CredentialArgs {
    /// The resource owner's tenant: directory id or verified domain.
    #[arg(long, global = true, env = "AZURE_TENANT_ID")]
    tenant: Option<String>,
    /// The partner app's client (application) id.
    #[arg(long, global = true, env = "AZURE_CLIENT_ID")]
    client_id: Option<String>,
    /// A PEM (certificate + key) or PFX file to authenticate with.
    #[arg(long, global = true, env = "AZURE_CLIENT_CERTIFICATE_PATH")]
    certificate: Option<PathBuf>,
    /// A file holding a federated assertion, re-read for every token.
    #[arg(long, global = true, env = "AZURE_FEDERATED_TOKEN_FILE")]
    federated_token_file: Option<PathBuf>,
    /// The authority host, e.g. https://login.microsoftonline.us/.
    #[arg(long, global = true, env = "AZURE_AUTHORITY_HOST")]
    authority_host: Option<String>,
    /// Extra trusted root certificates (PEM), added to the platform's.
    #[arg(long, global = true, env = "SSL_CERT_FILE")]
    root_certificates: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Get a token from the resource owner's tenant and show its claims.
    Token(TokenArgs),
    /// Send JSON Lines to an Event Hub in the resource owner's namespace.
    Send(SendArgs),
    /// Call an API on behalf of a client (the aggregator's two-token call).
    Call(CallArgs),
    /// Check the whole chain and say who must fix what.
    Doctor(DoctorArgs),
    /// Run the offline demo world until Ctrl-C and print how to use it.
    Sandbox(SandboxArgs),
}

#[derive(Args)]
struct TokenArgs {
    /// The scope, `{resource}/.default`.
    #[arg(long, default_value = EVENTHUBS_SCOPE)]
    scope: String,
    /// Print the claims as JSON.
    #[arg(long)]
    json: bool,
    /// Also print the access token itself. It is a bearer credential: anyone
    /// holding it can use it until it expires.
    #[arg(long)]
    show_token: bool,
}

/// Where events go: the namespace, the hub, the transport and an optional
/// address to connect to instead of the namespace's own.
#[derive(Args)]
struct EventHubArgs {
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
enum TransportArg {
    /// AMQP 1.0 over TLS, port 5671.
    Amqp,
    /// AMQP 1.0 over WebSockets, port 443.
    AmqpWs,
    /// The HTTPS REST API, port 443.
    Https,
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    target: EventHubArgs,
    /// Read JSON Lines from this file instead of stdin (`-` is stdin).
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Send every event with this partition key (one partition, in order).
    #[arg(long)]
    partition_key: Option<String>,
    /// Events per call to the sender; it packs them into as few service
    /// batches as the 1 MB limit allows.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
}

#[derive(Args)]
struct ApiArgs {
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

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The HTTP method.
    #[arg(long, value_enum, ignore_case = true, default_value = "GET")]
    method: MethodArg,
    /// The JSON body, for PUT and POST.
    #[arg(long)]
    body: Option<String>,
    /// The path under /api/{client}/, e.g. `data`.
    path: String,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
enum MethodArg {
    Get,
    Put,
    Post,
    Delete,
}

#[derive(Args)]
struct DoctorArgs {
    /// The scope of the token to check.
    #[arg(long, default_value = EVENTHUBS_SCOPE)]
    scope: String,
    #[command(flatten)]
    eventhub: EventHubArgs,
    /// Send one small event to prove the Data Sender role (it is stored
    /// like any other event).
    #[arg(long)]
    send_probe: bool,
    #[command(flatten)]
    api: ApiArgs,
    /// The path under /api/{client}/ to GET when checking the API.
    #[arg(long, default_value = "data")]
    api_path: String,
}

#[derive(Args)]
struct SandboxArgs {
    /// Where to write the sandbox CA (PEM); default a file in the temp
    /// directory, removed on exit.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Also write the `export` lines to this file (mode 0600 on Unix: it
    /// holds the demo secret), to `source` in another shell.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

/// Why a subcommand could not do its work.
enum CliError {
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

type Outcome = Result<ExitCode, CliError>;

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
        Command::Token(args) => token(&cli.config, args).await,
        Command::Send(args) => send(&cli.config, args).await,
        Command::Call(args) => call(&cli.config, args).await,
        Command::Doctor(args) => doctor(&cli.config, args).await,
        Command::Sandbox(args) => sandbox(args).await,
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

// ---------------------------------------------------------------------------
// Configuration

/// Reads an environment variable, treating an empty value as unset (as the
/// library's `from_env` does).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A flag or environment value, with empty meaning unset.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn required<'a>(
    value: &'a Option<String>,
    flag: &str,
    variable: Option<&str>,
) -> Result<&'a str, CliError> {
    given(value).ok_or_else(|| {
        CliError::Usage(match variable {
            Some(var) => format!("give {flag} or set {var}"),
            None => format!("give {flag}"),
        })
    })
}

/// How the app authenticates, for messages (never the secret itself).
fn auth_method(config: &CredentialArgs) -> &'static str {
    if env_var("AZURE_CLIENT_SECRET").is_some() {
        "a client secret"
    } else if config.certificate.is_some() {
        "a certificate"
    } else if config.federated_token_file.is_some() {
        "a federated token file"
    } else {
        "nothing yet"
    }
}

/// Builds the cross-tenant credential from flags and environment. Every
/// method given is handed to the builder, which insists on exactly one.
fn build_credential(config: &CredentialArgs) -> Result<Arc<CrossTenantCredential>, CliError> {
    let tenant = required(&config.tenant, "--tenant", Some("AZURE_TENANT_ID"))?;
    let client_id = required(&config.client_id, "--client-id", Some("AZURE_CLIENT_ID"))?;
    let mut builder = CrossTenantCredential::builder()
        .resource_tenant(tenant)
        .client_id(client_id);
    if let Some(secret) = env_var("AZURE_CLIENT_SECRET") {
        builder = builder.client_secret(secret);
    }
    if let Some(path) = &config.certificate {
        let password = env_var("AZURE_CLIENT_CERTIFICATE_PASSWORD").unwrap_or_default();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        builder = match extension.as_deref() {
            Some("pfx" | "p12") => builder.certificate_pfx_file(path, &password),
            _ => builder.certificate_pem_file(path),
        };
    }
    if let Some(path) = &config.federated_token_file {
        builder = builder.federated_token_file(path);
    }
    if let Some(host) = given(&config.authority_host) {
        builder = builder.authority_host(host);
    }
    if let Some(path) = &config.root_certificates {
        builder = builder.root_certificates_pem(&read_roots(path)?);
    }
    Ok(builder.build()?)
}

fn read_roots(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the trusted roots in {} (SSL_CERT_FILE / --root-certificates): {e}",
            path.display()
        ))
    })
}

/// The resolved Event Hubs target: namespace, hub, transport, endpoint.
struct EventHubTarget {
    namespace: String,
    hub: String,
    transport: Transport,
    endpoint: Option<String>,
}

impl EventHubArgs {
    /// `None` when neither namespace nor hub is given (doctor skips the
    /// check); an error when only one is.
    fn target(&self) -> Result<Option<EventHubTarget>, CliError> {
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
    async fn open(
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
    fn address(&self) -> (String, u16) {
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
    fn client(
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

// ---------------------------------------------------------------------------
// token

async fn token(config: &CredentialArgs, args: TokenArgs) -> Outcome {
    let credential = build_credential(config)?;
    let token = credential.token(&args.scope).await?;
    let claims = TokenClaims::decode(token.token.secret()).map_err(Error::from)?;
    let now = now_secs();
    if args.json {
        let mut out = json!({
            "scope": args.scope,
            "resource_tenant": credential.resolved_tenant_id().await?,
            "expires_on": token.expires_on.unix_timestamp(),
            "header": {
                "alg": claims.header("alg"),
                "kid": claims.header("kid"),
            },
            "claims": claims.as_map(),
        });
        if args.show_token {
            out["access_token"] = Value::from(token.token.secret());
        }
        println!("{}", pretty(&out));
        return Ok(ExitCode::SUCCESS);
    }

    let show = |v: Option<&str>| v.unwrap_or("-").to_string();
    let roles = claims.roles();
    println!("Token for {}", args.scope);
    println!("  tid    {}  (issuing tenant)", show(claims.tenant_id()));
    println!("  appid  {}  (the partner app)", show(claims.app_id()));
    println!("  aud    {}", show(claims.audience()));
    println!(
        "  oid    {}  (its service principal there)",
        show(claims.object_id())
    );
    println!(
        "  roles  {}",
        if roles.is_empty() {
            "-".to_string()
        } else {
            roles.join(", ")
        }
    );
    println!("  iss    {}", show(claims.issuer()));
    if let Some(iat) = claims.issued_at() {
        println!("  iat    {}", timestamp(iat));
    }
    if let Some(nbf) = claims.not_before() {
        println!("  nbf    {}", timestamp(nbf));
    }
    if let Some(exp) = claims.expires_at() {
        println!("  exp    {}  ({})", timestamp(exp), relative(exp - now));
    }
    if args.show_token {
        println!("\n{}", token.token.secret());
    } else {
        println!("(the token itself is not printed; add --show-token to print it)");
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// send

/// Counts of one `send` run.
#[derive(Default)]
struct Tally {
    sent: usize,
    failed: usize,
    lines: usize,
}

async fn send(config: &CredentialArgs, args: SendArgs) -> Outcome {
    let Some(target) = args.target.target()? else {
        return Err(CliError::Usage(
            "give --namespace and --hub (or set EVENTHUBS_NAMESPACE and EVENTHUBS_HUB)".into(),
        ));
    };
    let credential = build_credential(config)?;
    let options = match &args.partition_key {
        Some(key) => SendOptions::partition_key(key.clone()),
        None => SendOptions::default(),
    };
    let (mut input, expected) = open_input(args.file.as_deref()).await?;
    let sender = target.open(credential).await?;
    let progress = progress_bar(expected);

    let started = Instant::now();
    let batch_size = args.batch_size as usize;
    let mut tally = Tally::default();
    let mut batch: Vec<Value> = Vec::with_capacity(batch_size);
    let mut stopped: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        let read = input
            .read_line(&mut line)
            .await
            .map_err(|e| CliError::Failed(format!("reading line {}: {e}", tally.lines + 1)))?;
        let end = read == 0;
        if !end {
            tally.lines += 1;
            match parse_line(&line) {
                Ok(Some(event)) => batch.push(event),
                Ok(None) => {}
                Err(why) => {
                    progress.suspend(|| eprintln!("line {}: {why}; not sent", tally.lines));
                    tally.failed += 1;
                    progress.inc(1);
                }
            }
        }
        if batch.len() == batch_size || (end && !batch.is_empty()) {
            if let Err(e) = send_one_batch(&sender, &batch, &options, &mut tally, &progress).await {
                if !e.is_transient() && !end {
                    stopped = Some(format!(
                        "stopped after line {}: the failure above will not go away by retrying",
                        tally.lines
                    ));
                    break;
                }
            }
            batch.clear();
        }
        if end {
            break;
        }
    }
    progress.finish_and_clear();
    // Closing is best effort: the outcome of every event is already known.
    let _ = sender.close().await;

    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        tally.sent as f64 / seconds
    } else {
        0.0
    };
    println!(
        "sent {}, failed {} in {seconds:.2} s ({rate:.1} events/s) to {}/{} over {}",
        tally.sent,
        tally.failed,
        sender.namespace(),
        sender.hub(),
        transport_name(sender.transport())
    );
    if let Some(why) = &stopped {
        println!("{why}; the rest of the input was not sent");
    }
    Ok(if tally.failed == 0 && stopped.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The input and, for a file, how many lines it has (for the progress bar).
async fn open_input(
    file: Option<&Path>,
) -> Result<(Box<dyn AsyncBufRead + Unpin + Send>, Option<u64>), CliError> {
    match file {
        Some(path) if path != Path::new("-") => {
            let cannot =
                |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", path.display()));
            // One pass to count lines, so the bar can show how far along it is.
            let mut counter = BufReader::new(tokio::fs::File::open(path).await.map_err(cannot)?);
            let mut count = 0u64;
            let mut scratch = Vec::new();
            while counter
                .read_until(b'\n', &mut scratch)
                .await
                .map_err(cannot)?
                > 0
            {
                count += 1;
                scratch.clear();
            }
            let file = tokio::fs::File::open(path).await.map_err(cannot)?;
            Ok((Box::new(BufReader::new(file)), Some(count)))
        }
        _ => Ok((Box::new(BufReader::new(tokio::io::stdin())), None)),
    }
}

/// One line of JSON Lines: `Ok(None)` for a blank line.
fn parse_line(line: &str) -> Result<Option<Value>, String> {
    let text = line.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Leave room for the envelope; the sender would refuse the whole batch
    // for one oversized event, so refuse just that line here.
    if text.len() as u64 > DEFAULT_MAX_MESSAGE_SIZE - 4096 {
        return Err(format!(
            "{} bytes, over the 1 MB limit of an Event Hubs event",
            text.len()
        ));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not JSON ({e})"))
}

/// Sends one batch and counts its events as sent or failed.
async fn send_one_batch(
    sender: &EventHubSender<Value>,
    batch: &[Value],
    options: &SendOptions,
    tally: &mut Tally,
    progress: &ProgressBar,
) -> Result<(), Error> {
    let total = batch.len();
    let result = sender.send_batch(batch, options.clone()).await;
    let failed = match &result {
        Ok(()) => 0,
        // Events go in order: the first `accepted` of the batch are stored.
        Err(Error::EventHubs(e)) => e.not_accepted(total).len(),
        Err(_) => total,
    };
    tally.sent += total - failed;
    tally.failed += failed;
    progress.inc(total as u64);
    if let Err(e) = &result {
        progress.suspend(|| eprintln!("error: {failed} of {total} events not accepted: {e}"));
    }
    result
}

/// A progress bar on stderr, only when stderr is a terminal: piped or
/// redirected output stays clean.
fn progress_bar(expected: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match expected {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:40} {pos}/{len} lines  {per_sec}  eta {eta}",
        ),
        None => (ProgressBar::no_length(), "{spinner} {pos} lines  {per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

// ---------------------------------------------------------------------------
// call

async fn call(config: &CredentialArgs, args: CallArgs) -> Outcome {
    let body = match (&args.method, &args.body) {
        (MethodArg::Put | MethodArg::Post, None) => {
            return Err(CliError::Usage("PUT and POST need --body JSON".into()))
        }
        (_, Some(text)) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| CliError::Usage(format!("--body is not JSON: {e}")))?,
        ),
        (_, None) => None,
    };
    let credential = build_credential(config)?;
    let Some((api, client)) = args.api.client(credential)? else {
        return Err(CliError::Usage(
            "give --api and --api-scope (or set AGGREGATOR_API_URL and AGGREGATOR_API_SCOPE)"
                .into(),
        ));
    };
    let on_behalf = api.on_behalf_of(&client)?;
    let body = body.unwrap_or(Value::Null);
    let result: Result<Value, Error> = match args.method {
        MethodArg::Get => on_behalf.get(&args.path).await,
        MethodArg::Put => on_behalf.put(&args.path, &body).await,
        MethodArg::Post => on_behalf.post(&args.path, &body).await,
        MethodArg::Delete => on_behalf.delete(&args.path).await,
    };
    match result {
        Ok(answer) => {
            println!("{}", pretty(&answer));
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Aggregator(e)) => {
            match (e.status(), e.forbid_reason()) {
                (Some(status), Some(reason)) => {
                    eprintln!("the API answered {status}; ForbidReason: {reason}")
                }
                (Some(status), None) => eprintln!("the API answered {status}"),
                _ => {}
            }
            Err(CliError::Failed(e.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

// ---------------------------------------------------------------------------
// doctor

/// The doctor's report: one line per check, and for a failure who must act
/// and what they must do.
#[derive(Default)]
struct Checks {
    failed: usize,
}

impl Checks {
    fn pass(&mut self, check: &str, detail: impl std::fmt::Display) {
        println!("[PASS] {check}: {detail}");
    }

    fn fail(&mut self, check: &str, detail: impl std::fmt::Display, who: Party, fix: &str) {
        self.failed += 1;
        println!("[FAIL] {check}: {detail}");
        println!("       who: {who}");
        println!("       fix: {fix}");
    }

    fn fail_with(&mut self, check: &str, error: &Error) {
        let (who, fix) = diagnose(error);
        self.fail(check, summary(error), who, &fix);
    }

    fn skip(&mut self, check: &str, why: impl std::fmt::Display) {
        println!("[SKIP] {check}: {why}");
    }
}

async fn doctor(config: &CredentialArgs, args: DoctorArgs) -> Outcome {
    let mut checks = Checks::default();
    let outcome = run_checks(config, &args, &mut checks).await;
    println!();
    if checks.failed == 0 {
        println!("All checks passed.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} check(s) failed; the fixes are listed above.",
            checks.failed
        );
        outcome.map(|()| ExitCode::FAILURE)
    }
}

async fn run_checks(
    config: &CredentialArgs,
    args: &DoctorArgs,
    checks: &mut Checks,
) -> Result<(), CliError> {
    // 1. Configuration: every value the credential needs, checked locally.
    let credential = match build_credential(config) {
        Ok(c) => {
            checks.pass(
                "configuration",
                format!(
                    "app {} at tenant {}, authenticating with {}",
                    c.client_id(),
                    c.resource_tenant(),
                    auth_method(config)
                ),
            );
            c
        }
        Err(CliError::Usage(why) | CliError::Failed(why)) => {
            checks.fail(
                "configuration",
                why,
                Party::Partner,
                "set AZURE_TENANT_ID to the resource owner's tenant, AZURE_CLIENT_ID to your \
                 app's client id, and exactly one of AZURE_CLIENT_SECRET, \
                 AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE",
            );
            return Ok(());
        }
    };

    // 2. Tenant resolution: a domain becomes a directory id.
    let tenant_id = match credential.resolved_tenant_id().await {
        Ok(id) => {
            let configured = credential.resource_tenant().to_string();
            if configured.eq_ignore_ascii_case(&id) {
                checks.pass("tenant resolution", format!("{id} is a directory id"));
            } else {
                checks.pass(
                    "tenant resolution",
                    format!("{configured} is directory {id}"),
                );
            }
            id
        }
        Err(e) => {
            checks.fail_with("tenant resolution", &e);
            return Ok(());
        }
    };

    // 3. The token, and what it says.
    let token = match credential.token(&args.scope).await {
        Ok(t) => {
            checks.pass(
                "token",
                format!("issued for {} by tenant {tenant_id}", args.scope),
            );
            t
        }
        Err(e) => {
            checks.fail_with("token", &e);
            checks.skip("claims", "no token to read");
            return Ok(());
        }
    };
    let claims = TokenClaims::decode(token.token.secret()).map_err(Error::from)?;
    check_claims(
        checks,
        &claims,
        &tenant_id,
        credential.client_id(),
        &args.scope,
    );

    // 4. Event Hubs, when a namespace is named.
    match args.eventhub.target()? {
        Some(target) => check_eventhubs(checks, &target, credential.clone(), args.send_probe).await,
        None => checks.skip(
            "Event Hubs",
            "no --namespace/--hub (EVENTHUBS_NAMESPACE/EVENTHUBS_HUB) given",
        ),
    }

    // 5. The aggregator API, when one is named.
    match args.api.client(credential.clone()) {
        Ok(Some((api, client))) => {
            check_api(checks, &credential, &api, &client, &args.api_path).await
        }
        Ok(None) => checks.skip(
            "aggregator API",
            "no --api/--api-scope (AGGREGATOR_API_URL/AGGREGATOR_API_SCOPE) given",
        ),
        Err(CliError::Usage(why) | CliError::Failed(why)) => checks.fail(
            "aggregator API",
            why,
            Party::Partner,
            "give the API's base URL (--api), its App ID URI (--api-scope) and the client \
             to act for (--client)",
        ),
    }
    Ok(())
}

fn check_claims(
    checks: &mut Checks,
    claims: &TokenClaims,
    tenant_id: &str,
    client_id: &str,
    scope: &str,
) {
    let tid = claims.tenant_id().unwrap_or("<none>");
    if tid.eq_ignore_ascii_case(tenant_id) {
        checks.pass(
            "claims: tid",
            format!(
                "{tid}, the tenant asked (it must be the resource owner's, not your home tenant)"
            ),
        );
    } else {
        checks.fail(
            "claims: tid",
            format!("{tid}, not the tenant asked ({tenant_id})"),
            Party::Partner,
            "point AZURE_AUTHORITY_HOST and AZURE_TENANT_ID at the resource owner's tenant",
        );
    }

    let appid = claims.app_id().unwrap_or("<none>");
    if appid.eq_ignore_ascii_case(client_id) {
        checks.pass("claims: appid", format!("{appid}, the partner app"));
    } else {
        checks.fail(
            "claims: appid",
            format!("{appid}, not the partner app {client_id}"),
            Party::Partner,
            "check AZURE_CLIENT_ID: the token must be issued to your multi-tenant app",
        );
    }

    let resource = scope.strip_suffix("/.default").unwrap_or(scope);
    let aud = claims.audience().unwrap_or("<none>");
    let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    // Entra puts either the App ID URI or the bare app id in `aud`.
    if norm(aud) == norm(resource) || norm(resource).strip_prefix("api://") == Some(&norm(aud)) {
        checks.pass("claims: aud", aud);
    } else {
        checks.fail(
            "claims: aud",
            format!("{aud}, not {resource}"),
            Party::Partner,
            &format!("request the scope {resource}/.default"),
        );
    }

    let now = now_secs();
    match claims.expires_at() {
        Some(exp) if exp > now => checks.pass(
            "claims: expiry",
            format!("{} ({})", timestamp(exp), relative(exp - now)),
        ),
        Some(exp) => checks.fail(
            "claims: expiry",
            format!("expired at {} ({})", timestamp(exp), relative(exp - now)),
            Party::Partner,
            "check this machine's clock; a freshly issued token cannot be expired",
        ),
        None => checks.fail(
            "claims: expiry",
            "the token has no exp claim",
            Party::Either,
            "make sure the token comes from Entra ID (check AZURE_AUTHORITY_HOST)",
        ),
    }

    // Entra stamps iat/nbf with its own clock, seconds before we read them;
    // a large gap means this machine's clock is off, which breaks client
    // assertions (AADSTS700024) and makes tokens look expired or not yet valid.
    const MAX_SKEW: i64 = 300;
    match claims.issued_at().or(claims.not_before()) {
        Some(issued) if (now - issued).abs() <= MAX_SKEW => checks.pass(
            "clock skew",
            format!(
                "this machine's clock is within {}s of the issuer's",
                (now - issued).abs()
            ),
        ),
        Some(issued) => checks.fail(
            "clock skew",
            format!("this machine's clock is {}s off the issuer's", now - issued),
            Party::Partner,
            "synchronise this machine's clock (NTP); Entra allows only a few minutes of skew",
        ),
        None => checks.skip("clock skew", "the token has neither iat nor nbf"),
    }
}

async fn check_eventhubs(
    checks: &mut Checks,
    target: &EventHubTarget,
    credential: Arc<CrossTenantCredential>,
    send_probe: bool,
) {
    let (host, port) = target.address();
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    match connect {
        Ok(Ok(_)) => checks.pass(
            "Event Hubs: network",
            format!("{host}:{port} accepts connections"),
        ),
        Ok(Err(e)) => {
            checks.fail(
                "Event Hubs: network",
                format!("cannot connect to {host}:{port}: {e}"),
                Party::Either,
                "the partner checks DNS, firewall and proxy for this port; the resource owner \
                 checks the namespace's network rules (public access, IP firewall, private \
                 endpoint)",
            );
            return;
        }
        Err(_) => {
            checks.fail(
                "Event Hubs: network",
                format!("no answer from {host}:{port} within 10 s"),
                Party::Either,
                "the partner checks firewall and proxy for this port; the resource owner checks \
                 the namespace's network rules",
            );
            return;
        }
    }
    let sender = match target.open(credential).await {
        Ok(s) => {
            checks.pass(
                "Event Hubs: sender",
                format!(
                    "opened for {}/{} over {}",
                    s.namespace(),
                    s.hub(),
                    transport_name(s.transport())
                ),
            );
            s
        }
        Err(e) => {
            checks.fail_with("Event Hubs: sender", &e);
            return;
        }
    };
    if !send_probe {
        checks.skip(
            "Event Hubs: send",
            "add --send-probe to send one small event and prove the Data Sender role",
        );
        return;
    }
    let probe = json!({ "crosstenant_doctor_probe": true, "sent_at": now_secs() });
    match sender.send(&probe).await {
        Ok(()) => checks.pass(
            "Event Hubs: send",
            "one probe event accepted: the app holds the Data Sender role",
        ),
        Err(e) => checks.fail_with("Event Hubs: send", &e),
    }
    let _ = sender.close().await;
}

async fn check_api(
    checks: &mut Checks,
    credential: &CrossTenantCredential,
    api: &AggregatorClient,
    client: &str,
    path: &str,
) {
    // The API token: its roles are what the API owner granted the app.
    let failed_before = checks.failed;
    match credential.token(api.api_scope()).await {
        Ok(t) => match TokenClaims::decode(t.token.secret()) {
            Ok(c) if !c.roles().is_empty() => checks.pass(
                "API token",
                format!(
                    "{} grants roles [{}]",
                    api.api_scope(),
                    c.roles().join(", ")
                ),
            ),
            Ok(_) => checks.fail(
                "API token",
                format!("{} carries no roles", api.api_scope()),
                Party::ResourceOwner,
                "the API owner's tenant admin assigns an API app role (e.g. API.Read) to \
                 your app's service principal",
            ),
            Err(e) => checks.fail_with("API token", &e.into()),
        },
        Err(e) => checks.fail_with("API token", &e),
    }
    // The secondary token: its roles are what the client granted the app.
    match NamedClient::parse(client) {
        Ok(named) => {
            let scope = named.scope();
            match credential.token(&scope).await {
                Ok(t) => match TokenClaims::decode(t.token.secret()) {
                    Ok(c) if !c.roles().is_empty() => checks.pass(
                        "secondary token",
                        format!("{scope} grants roles [{}]", c.roles().join(", ")),
                    ),
                    Ok(_) => checks.fail(
                        "secondary token",
                        format!("{scope} carries no roles"),
                        Party::ResourceOwner,
                        &format!(
                            "client {client} grants your app one of its roles (e.g. \
                             {}.Read), through an admin of the tenant it is registered in",
                            named.path_id()
                        ),
                    ),
                    Err(e) => checks.fail_with("secondary token", &e.into()),
                },
                Err(e) => checks.fail_with("secondary token", &e),
            }
        }
        Err(e) => checks.fail_with("secondary token", &e),
    }
    // One real read on behalf of the client, once both tokens are there.
    let check = format!("API call GET {path} for {client}");
    if checks.failed > failed_before {
        checks.skip(&check, "the tokens above are needed first");
        return;
    }
    match api.on_behalf_of(client) {
        Ok(handle) => match handle.get::<Value>(path).await {
            Ok(_) => checks.pass(&check, "answered 200 with JSON"),
            Err(e) => checks.fail_with(&check, &e),
        },
        Err(e) => checks.fail_with(&check, &e),
    }
}

/// An error in a line: Entra's refusals by code and meaning (the fix goes on
/// its own line), everything else as the library words it.
fn summary(error: &Error) -> String {
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
fn diagnose(error: &Error) -> (Party, String) {
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

fn diagnose_eventhubs(error: &EventHubsError) -> (Party, String) {
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

fn diagnose_aggregator(error: &AggregatorError) -> (Party, String) {
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

// ---------------------------------------------------------------------------
// sandbox

/// The sandbox crate's standalone program, in-process: the same output and
/// `--env-file` / `--ca-file` contract as the `crosstenant-sandbox` binary.
async fn sandbox(args: SandboxArgs) -> Outcome {
    let options = crosstenant_sandbox::standalone::Options {
        ca_file: args.ca_file,
        env_file: args.env_file,
    };
    crosstenant_sandbox::standalone::run(options)
        .await
        .map(|()| ExitCode::SUCCESS)
        .map_err(|e| CliError::Failed(e.to_string()))
}

// ---------------------------------------------------------------------------
// Small helpers

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Amqp => "AMQP",
        Transport::AmqpWebSockets => "AMQP over WebSockets",
        Transport::Https => "HTTPS",
        _ => "another transport",
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A Unix time as RFC 3339.
fn timestamp(seconds: i64) -> String {
    azure_core::time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| azure_core::time::to_rfc3339(&t))
        .unwrap_or_else(|_| seconds.to_string())
}

/// `in 59 min 58 s` / `3 s ago`.
fn relative(seconds: i64) -> String {
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
