//! An aggregator calling an API on behalf of a named client: two tokens,
//! every permission in Entra ID.
//!
//! On the embedded sandbox (no network needed):
//!
//! ```sh
//! cargo run --example aggregator
//! ```
//!
//! It sets up the resource owner's API (`api://secure-api`, roles `API.Read`,
//! `API.Write`), a client `clientXYZ` that grants the partner's aggregator
//! only `clientXYZ.Read`, then shows: a read on behalf of clientXYZ succeeds;
//! the same read without the secondary token gets 403; a write with the
//! read-only grant gets 403; each with the API's reason. Exits non-zero if
//! any outcome differs.
//!
//! Against a live API, set all of:
//!
//! - `AGGREGATOR_API_URL`: the API's base URL (`https://api.contoso.com/`);
//! - `AGGREGATOR_API_SCOPE`: its App ID URI or scope (`api://secure-api/.default`);
//! - `AGGREGATOR_CLIENT`: the client to act for (`api://clientXYZ` or `clientXYZ`);
//! - optionally `AGGREGATOR_PATH` (default `data`), under `/api/{clientId}/`;
//! - the credential's `AZURE_TENANT_ID` (the API owner's tenant),
//!   `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (or
//!   `AZURE_CLIENT_CERTIFICATE_PATH`, `AZURE_FEDERATED_TOKEN_FILE`).
//!
//! It then makes one GET on behalf of the client and prints the JSON answer
//! or the typed error.

use crosstenant::aggregator::AggregatorClient;
use crosstenant::{CrossTenantCredential, Error};
use crosstenant_sandbox::api::Access;
use crosstenant_sandbox::Sandbox;
use serde_json::{json, Value};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let live = [
        "AGGREGATOR_API_URL",
        "AGGREGATOR_API_SCOPE",
        "AGGREGATOR_CLIENT",
    ]
    .map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let result = match live {
        [Some(url), Some(scope), Some(client)] => run_live(&url, &scope, &client).await,
        _ => run_sandbox().await,
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            println!("\n{n} expected outcome(s) did not happen.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nthe aggregator example could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_live(
    url: &str,
    scope: &str,
    client: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    let path = std::env::var("AGGREGATOR_PATH").unwrap_or_else(|_| "data".into());
    let credential = CrossTenantCredential::from_env()?;
    let http = credential.http_settings().clone();
    let api = AggregatorClient::builder(url, scope, credential)
        .http_settings(http)
        .build()?;
    let handle = api.on_behalf_of(client)?;
    println!("GET {} on behalf of {client}", handle.url(&path)?);
    match handle.get::<Value>(&path).await {
        Ok(answer) => {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(0)
        }
        Err(e) => {
            println!("refused: {e}");
            Ok(1)
        }
    }
}

fn check(failures: &mut usize, ok: bool, what: &str) {
    if ok {
        println!("  [ok]   {what}");
    } else {
        *failures += 1;
        println!("  [FAIL] {what}");
    }
}

/// The API's reason in a 403, or the error's text for anything else.
fn reason(result: &Result<Value, Error>) -> String {
    match result {
        Err(Error::Aggregator(e)) => e
            .forbid_reason()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        Err(e) => e.to_string(),
        Ok(v) => format!("unexpectedly allowed: {v}"),
    }
}

fn is_403(result: &Result<Value, Error>) -> bool {
    matches!(result, Err(Error::Aggregator(e)) if e.status() == Some(403))
}

async fn run_sandbox() -> Result<usize, Box<dyn std::error::Error>> {
    let mut failures = 0;
    println!("== The sandbox: two tenants, an API and a client, offline");
    let sandbox = Sandbox::start().await?;
    let d = sandbox.directory();
    let partner = d.add_tenant("Fabrikam (partner)", &["fabrikam.onmicrosoft.com"]);
    let owner = d.add_tenant("Contoso (resource owner)", &["contoso.onmicrosoft.com"]);
    let aggregator = d.register_app(&partner.id, "aggregatorABC", true)?;
    let secret = d.add_secret(&aggregator.app_id, 3600)?;
    d.create_service_principal(&owner.id, &aggregator.app_id)?;

    let api = sandbox.api();
    api.register_api(&owner.id, "api://secure-api")?;
    api.register_client("clientXYZ")?;
    api.grant_api(&aggregator.app_id, &[Access::Read, Access::Write])?;
    api.grant_client(&aggregator.app_id, "clientXYZ", &[Access::Read])?;
    println!("  API: {} (api://secure-api, in Contoso)", api.url());
    println!("  aggregatorABC (Fabrikam, multi-tenant): API.Read + API.Write; clientXYZ.Read only");

    let credential = CrossTenantCredential::builder()
        .resource_tenant("contoso.onmicrosoft.com")
        .client_id(&aggregator.app_id)
        .client_secret(secret)
        .authority_host(sandbox.authority_host().as_str())
        .root_certificates_pem(sandbox.ca_pem())
        .build()?;
    // The client trusts the sandbox CA: it is handed the credential's settings.
    let http = credential.http_settings().clone();
    let client = AggregatorClient::builder(api.url(), "api://secure-api", credential)
        .http_settings(http)
        .build()?;

    println!("\n== Read on behalf of clientXYZ (API token + secondary token)");
    let read = client
        .on_behalf_of("api://clientXYZ")?
        .get::<Value>("data")
        .await;
    match &read {
        Ok(v) => println!("  data: {v}"),
        Err(e) => println!("  error: {e}"),
    }
    check(&mut failures, read.is_ok(), "the read is allowed");

    println!("\n== The same read without the secondary token");
    let bare = client.as_client("clientXYZ")?.get::<Value>("data").await;
    println!("  ForbidReason: {}", reason(&bare));
    check(
        &mut failures,
        is_403(&bare),
        "403: the aggregator is not clientXYZ",
    );

    println!("\n== A write with clientXYZ's read-only grant");
    let write = client
        .on_behalf_of("clientXYZ")?
        .put::<_, Value>("data", &json!({"items": ["overwritten"]}))
        .await;
    println!("  ForbidReason: {}", reason(&write));
    check(
        &mut failures,
        is_403(&write),
        "403: clientXYZ granted no clientXYZ.Write",
    );

    println!("\n== Binding: clientXYZ's token never travels on another client's path");
    let escape = client
        .on_behalf_of("clientXYZ")?
        .get::<Value>("../clientABC/data")
        .await;
    println!("  {}", reason(&escape));
    check(
        &mut failures,
        matches!(escape, Err(Error::InvalidInput(_))) && api.stats().requests() == 3,
        "refused before any request",
    );
    Ok(failures)
}
