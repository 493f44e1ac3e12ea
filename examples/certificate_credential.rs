//! A certificate instead of a secret: the partner uploads the certificate
//! (public part) to its app registration and signs a client assertion with
//! the key for each token request.
//!
//! ```sh
//! cargo run --example certificate_credential
//! ```
//!
//! On the demo world it makes a self-signed RSA certificate, registers it on
//! the demo app in the sandbox's directory (as "Certificates & secrets" does
//! in the Entra admin center) and gets a token with it. With
//! `AZURE_CLIENT_CERTIFICATE_PATH` set (a PEM holding certificate and key, or
//! a PFX with `AZURE_CLIENT_CERTIFICATE_PASSWORD`), plus `AZURE_TENANT_ID`
//! (the resource owner's tenant) and `AZURE_CLIENT_ID`, it uses those instead.

use crosstenant::{CrossTenantCredential, TokenClaims};
use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certificate_credential: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Kept alive until the end: the sandbox stops when it is dropped.
    let mut _world = None;
    let credential: Arc<CrossTenantCredential> =
        if std::env::var_os("AZURE_CLIENT_CERTIFICATE_PATH").is_some() {
            CrossTenantCredential::from_env()?
        } else {
            let world = DemoWorld::start().await?;
            let (cert_der, pem) = self_signed("fabrikam-integration")?;
            world
                .sandbox
                .directory()
                .add_certificate(&world.app.app_id, &cert_der)?;
            println!("certificate registered on app {}", world.app.app_id);
            let credential = CrossTenantCredential::builder()
                .resource_tenant(&world.owner.id)
                .client_id(&world.app.app_id)
                .certificate_pem(pem)
                .authority_host(world.sandbox.authority_host().as_str())
                .root_certificates_pem(world.sandbox.ca_pem())
                .build()?;
            _world = Some(world);
            credential
        };
    let token = credential.token(EVENTHUBS_SCOPE).await?;
    let claims = TokenClaims::decode(token.token.secret())?;
    // `appidacr` says how the app proved itself: 1 a secret, 2 a certificate.
    let proof = claims.get("appidacr").and_then(|v| v.as_str());
    println!(
        "token from tenant {} for app {}, appidacr={}",
        claims.tenant_id().unwrap_or("-"),
        claims.app_id().unwrap_or("-"),
        proof.unwrap_or("-")
    );
    if proof != Some("2") {
        return Err("the token does not say the app signed in with a certificate".into());
    }
    Ok(())
}

/// A self-signed RSA certificate: its DER (what the directory stores) and
/// the PEM of certificate and key (what the partner keeps).
fn self_signed(name: &str) -> Result<(Vec<u8>, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    Ok((cert.der().to_vec(), pem))
}
