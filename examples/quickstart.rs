//! The whole cross-tenant story on the embedded sandbox, step by step.
//!
//! ```sh
//! cargo run --example quickstart --features sandbox
//! ```
//!
//! Starts both tenants in-process (no network needed), then shows each
//! outcome with a mark. Exits non-zero if any expected outcome did not happen.

use crosstenant::credential::entra::Party;
use crosstenant::sandbox::Sandbox;
use crosstenant::{CrossTenantCredential, Error, TokenClaims};
use std::process::ExitCode;

const EVENTHUBS_SCOPE: &str = "https://eventhubs.azure.net/.default";

struct Report {
    failures: usize,
}

impl Report {
    fn step(&self, title: &str) {
        println!("\n== {title}");
    }
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("  [ok]   {what}");
        } else {
            self.failures += 1;
            println!("  [FAIL] {what}");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(0) => {
            println!("\nEvery expected outcome happened.");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("\n{n} expected outcome(s) did not happen.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nquickstart could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<usize, Box<dyn std::error::Error>> {
    let mut report = Report { failures: 0 };
    report.step("Starting the sandbox: two tenants, offline, real HTTPS and JWTs");
    let sandbox = Sandbox::start().await?;
    let d = sandbox.directory();
    let partner = d.add_tenant("Fabrikam (partner)", &["fabrikam.onmicrosoft.com"]);
    let owner = d.add_tenant("Contoso (resource owner)", &["contoso.onmicrosoft.com"]);
    println!("  identity provider: {}", sandbox.authority_host());
    println!(
        "  partner tenant:    {} (fabrikam.onmicrosoft.com)",
        partner.id
    );
    println!(
        "  resource tenant:   {} (contoso.onmicrosoft.com)",
        owner.id
    );

    report.step("The partner registers a multi-tenant app and hands over its client id");
    let app = d.register_app(&partner.id, "fabrikam-telemetry", true)?;
    let secret = d.add_secret(&app.app_id, 3600)?;
    println!(
        "  client id: {} (the secret stays with the partner)",
        app.app_id
    );

    let credential_for = |tenant: &str| {
        CrossTenantCredential::builder()
            .resource_tenant(tenant)
            .client_id(&app.app_id)
            .client_secret(&secret)
            .authority_host(sandbox.authority_host().as_str())
            .root_certificates_pem(sandbox.ca_pem())
            .build()
    };

    report.step("Before the resource owner acts: no service principal in their tenant");
    let early = credential_for("contoso.onmicrosoft.com")?;
    match early.token(EVENTHUBS_SCOPE).await {
        Err(Error::Entra(e)) => {
            report.check(
                e.code() == Some(7000229)
                    && e.hint().map(|h| h.party) == Some(Party::ResourceOwner),
                "refused with AADSTS7000229, explained as the resource owner's step",
            );
            println!("         {e}");
        }
        other => report.check(false, &format!("expected AADSTS7000229, got {other:?}")),
    }

    report.step("The resource owner creates a service principal for that client id");
    let sp = d.create_service_principal(&owner.id, &app.app_id)?;
    println!(
        "  service principal {} in tenant {}",
        sp.object_id, owner.id
    );

    report.step("The partner app asks the RESOURCE OWNER's authority for a token");
    let credential = credential_for("contoso.onmicrosoft.com")?;
    let token = credential.token(EVENTHUBS_SCOPE).await?;
    let claims = TokenClaims::decode(token.token.secret())?;
    println!(
        "  claims: tid={} appid={} aud={} expires_on={} (the token itself is never printed)",
        claims.tenant_id().unwrap_or("-"),
        claims.app_id().unwrap_or("-"),
        claims.audience().unwrap_or("-"),
        token.expires_on
    );
    report.check(
        claims.tenant_id() == Some(owner.id.as_str()),
        "tid is the resource owner's tenant",
    );
    report.check(
        claims.app_id() == Some(app.app_id.as_str()),
        "appid is the partner's app",
    );
    let verified =
        sandbox
            .issuer()
            .verify(token.token.secret(), &["https://eventhubs.azure.net"], 0);
    report.check(
        verified.is_ok(),
        "the token verifies against the resource tenant's JWKS",
    );

    report.step("A token from the partner's HOME tenant is not one the resource owner accepts");
    let home = credential_for(&partner.id)?.token(EVENTHUBS_SCOPE).await?;
    let home_claims = TokenClaims::decode(home.token.secret())?;
    report.check(
        home_claims.tenant_id() == Some(partner.id.as_str()),
        &format!(
            "home-tenant token carries tid={} (services of tenant {} answer it with 401 SubCode=40100)",
            home_claims.tenant_id().unwrap_or("-"),
            owner.id
        ),
    );

    Ok(report.failures)
}
