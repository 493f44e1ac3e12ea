//! The credential from the environment every Azure SDK reads: one token from
//! the **resource owner's** tenant, shown as its claims.
//!
//! ```sh
//! cargo run --example credential_from_env
//! ```
//!
//! With `AZURE_TENANT_ID` set (the resource owner's tenant), it uses
//! `AZURE_CLIENT_ID` and one of `AZURE_CLIENT_SECRET`,
//! `AZURE_CLIENT_CERTIFICATE_PATH` or `AZURE_FEDERATED_TOKEN_FILE` (and
//! `AZURE_AUTHORITY_HOST` if set), e.g. after `source sandbox.env` from
//! `crosstenant-sandbox --env-file sandbox.env`. Without it, it starts the
//! demo world and runs itself again with the world's environment, the same
//! variables the sandbox's env file holds: no value is passed in code.

use crosstenant::{CrossTenantCredential, TokenClaims};
use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let result = if std::env::var_os("AZURE_TENANT_ID").is_some() {
        from_env().await
    } else {
        in_demo_world().await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credential_from_env: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a partner's program does: the credential from `AZURE_*`, a token.
async fn from_env() -> Result<(), Box<dyn std::error::Error>> {
    let credential = CrossTenantCredential::from_env()?;
    let token = credential.token(EVENTHUBS_SCOPE).await?;
    let claims = TokenClaims::decode(token.token.secret())?;
    println!("token for {EVENTHUBS_SCOPE} (the token itself is never printed):");
    println!("  tid    {}", claims.tenant_id().unwrap_or("-"));
    println!("  appid  {}", claims.app_id().unwrap_or("-"));
    println!("  aud    {}", claims.audience().unwrap_or("-"));
    let roles = claims.roles();
    println!(
        "  roles  {}",
        if roles.is_empty() {
            "-".into()
        } else {
            roles.join(", ")
        }
    );
    // The classic mistake: a token from the partner's home tenant, which the
    // resource owner's services refuse. `tid` must be the tenant asked.
    let asked = credential.resolved_tenant_id().await?;
    if claims.tenant_id() != Some(asked.as_str()) {
        return Err(format!("tid is not the tenant asked ({asked})").into());
    }
    println!("tid is the resource owner's tenant, as asked");
    Ok(())
}

/// Starts the demo world and runs this program again, pointed at it by
/// nothing but environment variables.
async fn in_demo_world() -> Result<(), Box<dyn std::error::Error>> {
    let world = DemoWorld::start().await?;
    let ca_file =
        std::env::temp_dir().join(format!("crosstenant-example-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, world.sandbox.ca_pem())?;
    let environment = world.environment(&ca_file.to_string_lossy());
    println!("demo world started; running again with:");
    for (name, value) in &environment {
        let shown = if name.contains("SECRET") {
            "***"
        } else {
            value
        };
        println!("  {name}={shown}");
    }
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .envs(environment)
        .status()
        .await;
    let _ = std::fs::remove_file(&ca_file);
    match status? {
        s if s.success() => Ok(()),
        s => Err(format!("the run with the demo environment failed ({s})").into()),
    }
}
