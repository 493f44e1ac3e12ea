//! `crosstenant doctor`: walks the chain one link at a time (configuration,
//! tenant, token, claims, clock, Event Hubs, aggregator API) and prints
//! PASS/FAIL/SKIP per check, with, for a failure, who must act and what to do.
//!
//! With a secretless proof (a managed identity or GitHub Actions OIDC) the
//! token link is three: the assertion's endpoint is reachable, an assertion
//! comes back (its iss, sub and aud are shown, never the token: they are
//! what the app's federated credential must match), and the resource tenant
//! exchanges it for a token.
//!
//! It checks what this machine can see; what an error means and who fixes it
//! is the library's answer (`Error::remedy`).

use crate::config::{auth_method, build_credential, env_var, CredentialArgs};
use crate::error::{CliError, Outcome};
use crate::output::{now_secs, relative, summary, timestamp, transport_name};
use crate::targets::{ApiArgs, EventHubArgs, EventHubTarget};
use clap::Args;
use crosstenant::aggregator::{AggregatorClient, NamedClient};
use crosstenant::credential::entra::Party;
use crosstenant::credential::ProofKind;
use crosstenant::eventhubs::EVENTHUBS_SCOPE;
use crosstenant::{CrossTenantCredential, Error, Remedy, TokenClaims};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub(crate) struct DoctorArgs {
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

/// The doctor's report: one line per check, and for a failure who must act
/// and what they must do.
#[derive(Default)]
pub(crate) struct Checks {
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
        let remedy = error.remedy().unwrap_or_else(|| Remedy {
            party: Party::Either,
            action: "see the message above".into(),
        });
        self.fail(check, summary(error), remedy.party, &remedy.action);
    }

    fn skip(&mut self, check: &str, why: impl std::fmt::Display) {
        println!("[SKIP] {check}: {why}");
    }
}

pub(crate) async fn doctor(config: &CredentialArgs, args: DoctorArgs) -> Outcome {
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

pub(crate) async fn run_checks(
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
                 AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE, \
                 CROSSTENANT_MANAGED_IDENTITY or CROSSTENANT_GITHUB_OIDC=1",
            );
            return Ok(());
        }
    };

    // 1b. Secretless: the assertion's source, then the assertion.
    if credential.proof().is_federated() && !check_assertion_source(checks, &credential).await {
        return Ok(());
    }

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
    let token_check = if credential.proof().is_federated() {
        "token exchange at the resource tenant"
    } else {
        "token"
    };
    let token = match credential.token(&args.scope).await {
        Ok(t) => {
            checks.pass(
                token_check,
                format!("issued for {} by tenant {tenant_id}", args.scope),
            );
            t
        }
        Err(e) => {
            checks.fail_with(token_check, &e);
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

/// The secretless links before the exchange: the endpoint the assertion
/// comes from accepts connections, and it hands out an assertion (whose
/// iss, sub and aud are shown; never the assertion). `false` when a link
/// is broken (the rest is skipped).
async fn check_assertion_source(checks: &mut Checks, credential: &CrossTenantCredential) -> bool {
    let (name, endpoint) =
        match credential.proof() {
            ProofKind::ManagedIdentity => (
                "managed identity endpoint",
                Some(env_var("IDENTITY_ENDPOINT").unwrap_or_else(|| {
                    "http://169.254.169.254/metadata/identity/oauth2/token".into()
                })),
            ),
            ProofKind::GitHubActionsOidc => (
                "GitHub Actions token service",
                env_var(crosstenant::credential::ENV_ACTIONS_URL),
            ),
            _ => ("assertion source", None),
        };
    if let Some(endpoint) = endpoint {
        match reachable(&endpoint).await {
            Ok(shown) => checks.pass(name, format!("{shown} accepts connections")),
            Err((shown, why)) => {
                let fix = if name.starts_with("managed") {
                    "run on an Azure host with a managed identity enabled (App Service /                      Functions: `az webapp identity assign`, which sets IDENTITY_ENDPOINT and                      IDENTITY_HEADER; a VM: `az vm identity assign`); the resource owner has                      nothing to do"
                } else {
                    "run in a GitHub Actions job with `permissions: id-token: write`; the                      resource owner has nothing to do"
                };
                checks.fail(name, format!("{shown}: {why}"), Party::Partner, fix);
                checks.skip("assertion", "the endpoint above is needed first");
                return false;
            }
        }
    }
    match credential.federated_assertion().await {
        Ok(Some(info)) => {
            let expiry = info
                .expires_at
                .map(|exp| format!(", expires {}", relative(exp - now_secs())))
                .unwrap_or_default();
            checks.pass(
                "assertion",
                format!(
                    "from the {}: {info}{expiry} (the app's federated credential must match                      these)",
                    info.source
                ),
            );
            true
        }
        Ok(None) => {
            checks.pass(
                "assertion",
                "obtained (not a JWT: its claims cannot be shown)",
            );
            true
        }
        Err(e) => {
            checks.fail_with("assertion", &e);
            false
        }
    }
}

/// Whether `url`'s host and port accept a TCP connection within 5 s. The
/// URL is shown without its query.
async fn reachable(url: &str) -> Result<String, (String, String)> {
    let parsed = url::Url::parse(url).map_err(|e| (url.to_string(), e.to_string()))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let shown = format!("{}://{host}:{port}{}", parsed.scheme(), parsed.path());
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(shown),
        Ok(Err(e)) => Err((shown, format!("cannot connect: {e}"))),
        Err(_) => Err((shown, "no answer within 5 s".into())),
    }
}

pub(crate) fn check_claims(
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

pub(crate) async fn check_eventhubs(
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

pub(crate) async fn check_api(
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
            match credential.token(scope).await {
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
