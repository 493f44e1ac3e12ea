//! An aggregator calling the resource owner's API on behalf of a client:
//! two tokens on every call, every permission held in Entra ID.
//!
//! ```sh
//! cargo run --example on_behalf_of
//! ```
//!
//! With `AGGREGATOR_API_URL` set, it calls that API: `AGGREGATOR_API_SCOPE`
//! (its App ID URI, `api://secure-api`), `AGGREGATOR_CLIENT` (`clientXYZ`),
//! `AGGREGATOR_PATH` (default `data`, under `/api/{client}/`) and the
//! credential from the `AZURE_*` variables (`AZURE_TENANT_ID` is the API
//! owner's tenant). Otherwise it uses the demo world, where `clientXYZ`
//! grants the app `clientXYZ.Read` only, and shows three answers: a read on
//! behalf of clientXYZ is allowed; the same read without the secondary token
//! is 403; a write is 403. Exits non-zero if an answer differs.

#[path = "../tests/common/demo.rs"]
mod demo;

use crosstenant::aggregator::AggregatorClient;
use crosstenant::{CrossTenantCredential, Error};
use crosstenant_sandbox::demo::{DemoWorld, API_URI, CLIENT};
use demo::DemoCredential;
use serde_json::{json, Value};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let result = match std::env::var("AGGREGATOR_API_URL") {
        Ok(url) => live(&url).await,
        Err(_) => demo_world().await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("on_behalf_of: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn live(url: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let scope = std::env::var("AGGREGATOR_API_SCOPE")?;
    let client = std::env::var("AGGREGATOR_CLIENT")?;
    let path = std::env::var("AGGREGATOR_PATH").unwrap_or_else(|_| "data".into());
    let credential = CrossTenantCredential::from_env()?;
    let http = credential.http_settings().clone();
    let api = AggregatorClient::builder(url, &scope, credential)
        .http_settings(http)
        .build()?;
    let answer = api.on_behalf_of(&client)?.get::<Value>(&path).await;
    show(&format!("GET {path} on behalf of {client}"), &answer);
    Ok(answer.is_ok())
}

async fn demo_world() -> Result<bool, Box<dyn std::error::Error>> {
    let world = DemoWorld::start().await?;
    // The client is handed the credential's HTTP settings: the sandbox CA.
    let credential = world.credential()?;
    let http = credential.http_settings().clone();
    let api = AggregatorClient::builder(world.sandbox.api().url(), API_URI, credential)
        .http_settings(http)
        .build()?;

    // Authorization: the API token; X-Secondary-Token: the client's token.
    let read = api.on_behalf_of(CLIENT)?.get::<Value>("data").await;
    show("read on behalf of clientXYZ", &read);
    // The API token alone: the aggregator acting as if it were the client.
    let bare = api.as_client(CLIENT)?.get::<Value>("data").await;
    show("the same read without the secondary token", &bare);
    let write = api
        .on_behalf_of(CLIENT)?
        .put::<_, Value>("data", &json!({"items": ["overwritten"]}))
        .await;
    show("a write with clientXYZ's read-only grant", &write);

    Ok(read.is_ok() && forbidden(&bare) && forbidden(&write))
}

fn forbidden(answer: &Result<Value, Error>) -> bool {
    matches!(answer, Err(Error::Aggregator(e)) if e.status() == Some(403))
}

/// The JSON answer, or the API's reason (its `ForbidReason`) for a refusal.
fn show(what: &str, answer: &Result<Value, Error>) {
    match answer {
        Ok(value) => println!("{what}: allowed, {value}"),
        Err(Error::Aggregator(e)) => match (e.status(), e.forbid_reason()) {
            (Some(status), Some(reason)) => println!("{what}: {status}, {reason}"),
            _ => println!("{what}: {e}"),
        },
        Err(e) => println!("{what}: {e}"),
    }
}
