//! An axum API protected by crosstenant-validator in a few lines, called by
//! a plain HTTP client with the two headers and by the partner's
//! `AggregatorClient`.
//!
//! On the embedded sandbox (no network needed):
//!
//! ```sh
//! cargo run -p crosstenant-validator --features axum --example protected_api
//! ```
//!
//! The sandbox plays Entra ID (Contoso's tenant with the API `secureAPI`,
//! its client `clientXYZ`, and Fabrikam's aggregator granted `API.Read`,
//! `API.Write` and `clientXYZ.Read`). Against the real Entra ID, the API part
//! is the same with `Cloud::public()` and without `extra_root_pem`. Exits
//! non-zero if any outcome differs from the expected one.

use axum::routing::get;
use axum::{Json, Router};
use crosstenant::aggregator::AggregatorClient;
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::demo::{DemoWorld, API_URI};
use crosstenant_validator::{Authorized, Client, Cloud, Validator};
use serde_json::{json, Value};
use std::process::ExitCode;

/// The protected handler: it runs only when both tokens passed.
async fn read(ok: Authorized) -> Json<Value> {
    Json(json!({
        "client": ok.client().name(),
        "caller": ok.caller_id(),
        "on_behalf_of": ok.on_behalf_of(),
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            println!("\n{n} expected outcome(s) did not happen.");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("the example could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<u32, Box<dyn std::error::Error>> {
    let world = DemoWorld::start().await?;
    let sandbox = &world.sandbox;
    let directory = sandbox.directory();
    let api_app = directory.resource_app(API_URI).ok_or("no API app")?;
    let xyz = directory
        .resource_app("api://clientXYZ")
        .ok_or("no clientXYZ")?;

    // ---- The resource owner's API: this is all the protection. ----
    let validator = Validator::builder(
        Cloud::custom(sandbox.authority_host().as_str())?, // Cloud::public() on Entra
        &world.owner.id,
    )
    .api_audiences([API_URI, api_app.app_id.as_str()])
    .client(Client::new("clientXYZ", &xyz.app_id)?.app_id_uri("api://clientXYZ"))
    .extra_root_pem(sandbox.ca_pem()) // the sandbox CA; not needed on Entra
    .build()?;
    let app = Router::new()
        .route("/api/{client}/data", get(read))
        .with_state(validator);
    // ----------------------------------------------------------------

    let server = crosstenant_sandbox::tls::serve_https(&sandbox.shared().ca, app).await?;
    let url = format!("{}api/clientXYZ/data", server.url());
    println!("API protected by the validator at {url}");
    let mut misses = 0;

    // A plain HTTP client: two tokens from the token endpoint, two headers.
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(sandbox.ca_pem().as_bytes())?])
        .build()?;
    let token = |scope: &'static str| {
        let (http, world) = (http.clone(), world.clone());
        async move {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &world.app.app_id)
                .append_pair("client_secret", world.client_secret())
                .append_pair("scope", scope)
                .finish();
            let resp = http
                .post(world.sandbox.identity().token_endpoint(&world.owner.id))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await?;
            let body: Value = serde_json::from_slice(&resp.bytes().await?)?;
            body["access_token"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("no token: {body}").into())
        }
    };
    let api_token: String = token("api://secure-api/.default")
        .await
        .map_err(|e: Box<dyn std::error::Error>| e)?;
    let secondary: String = token("api://clientXYZ/.default")
        .await
        .map_err(|e: Box<dyn std::error::Error>| e)?;

    println!("\n== reqwest with Authorization and X-Secondary-Token");
    let resp = http
        .get(&url)
        .bearer_auth(&api_token)
        .header("X-Secondary-Token", &secondary)
        .send()
        .await?;
    let status = resp.status();
    println!("  {status}: {}", resp.text().await?);
    misses += u32::from(status != 200);

    println!("\n== reqwest without the secondary token");
    let resp = http.get(&url).bearer_auth(&api_token).send().await?;
    let status = resp.status();
    println!("  {status}: {}", resp.text().await?);
    misses += u32::from(status != 403);

    println!("\n== the partner's AggregatorClient on behalf of clientXYZ");
    let credential = CrossTenantCredential::builder()
        .resource_tenant(&world.owner.id)
        .client_id(&world.app.app_id)
        .client_secret(world.client_secret())
        .authority_host(sandbox.authority_host().as_str())
        .root_certificates_pem(sandbox.ca_pem())
        .build()?;
    // The client is handed its HTTP settings (here: the credential's, which
    // trust the sandbox CA), never reading them out of the credential.
    let client = AggregatorClient::builder(server.url(), API_URI, credential.clone())
        .http_settings(credential.http_settings().clone())
        .build()?;
    match client.on_behalf_of("clientXYZ")?.get::<Value>("data").await {
        Ok(v) => {
            println!("  200: {v}");
            misses += u32::from(v["on_behalf_of"] != true);
        }
        Err(e) => {
            println!("  error: {e}");
            misses += 1;
        }
    }
    Ok(misses)
}
