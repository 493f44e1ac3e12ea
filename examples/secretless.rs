//! Secretless cross-tenant access: the partner's app proves itself with its
//! **managed identity** (or a GitHub Actions job's OIDC token) through a
//! federated identity credential. No secret, no certificate, nothing to
//! rotate; the resource owner's side is exactly as for any partner app.
//!
//! ```sh
//! cargo run --example secretless
//! ```
//!
//! With `AZURE_TENANT_ID` set (the resource owner's tenant) and one of
//! `CROSSTENANT_MANAGED_IDENTITY` (`client_id=<guid>` of the partner's
//! user-assigned identity, on an App Service / Functions host or a VM) or
//! `CROSSTENANT_GITHUB_OIDC=1` (in a job with `permissions: id-token:
//! write`), plus `AZURE_CLIENT_ID` (and `AZURE_AUTHORITY_HOST` if set), it
//! runs against those tenants; with `EVENTHUBS_NAMESPACE` and
//! `EVENTHUBS_HUB` it also sends one event over HTTPS. Without them, it
//! starts the demo world, prints the set-up each side makes (with the
//! world's values), and runs itself again, once per secretless way, with
//! the environment a process on the App Service host, or a workflow job,
//! has there: no value is passed in code.

use crosstenant::credential::PartnerApp;
use crosstenant::eventhubs::{EventHubSender, Transport};
use crosstenant::TokenClaims;
use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE, HUB};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let secretless = std::env::var_os("CROSSTENANT_MANAGED_IDENTITY").is_some()
        || std::env::var_os("CROSSTENANT_GITHUB_OIDC").is_some();
    let result = if std::env::var_os("AZURE_TENANT_ID").is_some() && secretless {
        from_env().await
    } else {
        in_demo_world().await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secretless: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the partner's program does: the app from the environment, a
/// credential for the resource owner's tenant, a token, an event.
async fn from_env() -> Result<(), Box<dyn std::error::Error>> {
    let app = PartnerApp::from_env()?;
    let tenant = std::env::var("AZURE_TENANT_ID")?;
    let credential = app.credential(&tenant)?;
    println!("proof: {:?}", app.proof());
    // What the app's federated credential must match (never the assertion).
    if let Some(info) = credential.federated_assertion().await? {
        println!("  assertion from the {}: {info}", info.source);
    }
    let token = credential.token(EVENTHUBS_SCOPE).await?;
    let claims = TokenClaims::decode(token.token.secret())?;
    println!(
        "  token for {EVENTHUBS_SCOPE}: tid {}, appid {}",
        claims.tenant_id().unwrap_or("-"),
        claims.app_id().unwrap_or("-")
    );
    if let (Ok(namespace), Ok(hub)) = (
        std::env::var("EVENTHUBS_NAMESPACE"),
        std::env::var("EVENTHUBS_HUB"),
    ) {
        let mut builder =
            EventHubSender::<serde_json::Value>::builder(&namespace, &hub, credential.clone())
                .http_settings(app.http_settings().clone())
                .transport(Transport::Https);
        if let Ok(endpoint) = std::env::var("EVENTHUBS_HTTPS_ENDPOINT") {
            builder = builder.endpoint(endpoint);
        }
        let sender = builder.open().await?;
        sender
            .send(&serde_json::json!({"sent": "without a secret"}))
            .await?;
        println!("  one event accepted by {namespace}/{hub}");
    }
    Ok(())
}

/// Starts the demo world, prints each side's set-up, and runs this program
/// again with each secretless way's environment.
async fn in_demo_world() -> Result<(), Box<dyn std::error::Error>> {
    let world = DemoWorld::start().await?;
    let app = world.secretless_app().app_id.clone();
    let mi = &world.managed_identity;
    let gh = world.sandbox.github_actions();

    println!("The partner (Fabrikam, tenant {}):", world.partner.id);
    println!("  az ad app create --display-name fabrikam-secretless --sign-in-audience AzureADMultipleOrgs");
    println!("  az identity create -n {} -g <group>       # user-assigned: only these can be an app's federated credential", mi.name);
    println!(
        "  az webapp identity assign -n fabrikam-web -g <group> --identities {}",
        mi.resource_id
    );
    println!(
        "  az ad app federated-credential create --id {app} --parameters managed-identity.json"
    );
    println!(
        "    {{\"name\":\"{}\",\"issuer\":\"https://login.microsoftonline.com/{}/v2.0\",\"subject\":\"{}\",\"audiences\":[\"api://AzureADTokenExchange\"]}}",
        mi.name, world.partner.id, mi.object_id
    );
    println!("  az ad app federated-credential create --id {app} --parameters github.json");
    println!(
        "    {{\"name\":\"github-main\",\"issuer\":\"{}\",\"subject\":\"{}\",\"audiences\":[\"api://AzureADTokenExchange\"]}}",
        gh.issuer(),
        gh.subject()
    );
    println!("    (live: issuer https://token.actions.githubusercontent.com)");
    println!("  no secret, no certificate: hand the resource owner the client id {app}");
    println!();
    println!(
        "The resource owner (Contoso, tenant {}), as for any partner app:",
        world.owner.id
    );
    println!("  az ad sp create --id {app}");
    println!("  az role assignment create --assignee {app} --role \"Azure Event Hubs Data Sender\" --scope <namespace id>");
    println!("  (nothing about the federation: that is all the partner's)");
    println!();

    let ca_file =
        std::env::temp_dir().join(format!("crosstenant-example-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, world.sandbox.ca_pem())?;
    let ca = ca_file.to_string_lossy().to_string();
    let eh = world.sandbox.eventhubs();
    let targets = [
        ("SSL_CERT_FILE", ca.clone()),
        ("EVENTHUBS_NAMESPACE", world.namespace.clone()),
        ("EVENTHUBS_HUB", HUB.to_string()),
        ("EVENTHUBS_HTTPS_ENDPOINT", eh.https_endpoint().to_string()),
    ];
    let mut outcome: Result<(), String> = Ok(());
    for (way, environment) in [
        (
            "the managed identity (on the App Service host)",
            world.managed_identity_environment(),
        ),
        (
            "GitHub Actions OIDC (in the workflow job)",
            world.github_oidc_environment(),
        ),
    ] {
        println!("Running again with {way}:");
        for (name, value) in environment.iter().chain(targets.iter()) {
            let shown = if name.contains("HEADER") || name.contains("REQUEST_TOKEN") {
                "***"
            } else {
                value.as_str()
            };
            println!("  {name}={shown}");
        }
        let status = tokio::process::Command::new(std::env::current_exe()?)
            .env_remove("AZURE_CLIENT_SECRET")
            .envs(environment)
            .envs(targets.clone())
            .status()
            .await?;
        if !status.success() {
            outcome = Err(format!("the run with {way} failed ({status})"));
        }
        println!();
    }
    let _ = std::fs::remove_file(&ca_file);
    outcome?;
    println!(
        "{} events in {}/{HUB}, sent with no secret anywhere",
        eh.events(&world.namespace, HUB).len(),
        world.namespace
    );
    Ok(())
}
