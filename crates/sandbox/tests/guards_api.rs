//! The sandbox aggregator API's answers found unproven by mutation testing
//! (docs/MUTANTS.md in the repository root): a client the API does not know
//! is a 404 naming it, never a success, and the API's counters count its
//! refusals (tests read them to tell which check fired).

use crosstenant_sandbox::api::{Access, API_READ};
use crosstenant_sandbox::demo::{DemoWorld, API_URI, CLIENT};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims};
use serde_json::json;

/// A v1 app token for the demo app in the resource owner's tenant, with
/// `aud` and `roles`, signed by the sandbox's issuer: what Entra would issue
/// after the matching grants (Microsoft's "access token claims reference").
fn minted(world: &DemoWorld, aud: &str, roles: &[&str]) -> String {
    let now = now_secs();
    let tenant = &world.owner.id;
    let oid = world
        .sandbox
        .directory()
        .service_principal(tenant, &world.app.app_id)
        .expect("service principal")
        .object_id;
    let claims = json!({
        "aud": aud,
        "iss": AccessClaims::issuer_for(tenant),
        "appid": world.app.app_id,
        "appidacr": "1",
        "idtyp": "app",
        "ver": "1.0",
        "oid": oid,
        "sub": oid,
        "tid": tenant,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "uti": format!("api-{now}"),
    });
    world.sandbox.issuer().sign(&claims).expect("token signs")
}

/// `GET /api/{client}/data` with the two tokens (the sandbox CA trusted).
async fn get(world: &DemoWorld, client: &str, caller: &str, secondary: &str) -> (u16, String) {
    let ca = reqwest::Certificate::from_pem(world.sandbox.ca_pem().as_bytes()).expect("CA");
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client");
    let url = world
        .sandbox
        .api()
        .url()
        .join(&format!("api/{client}/data"))
        .expect("URL");
    let response = http
        .get(url)
        .header("authorization", format!("Bearer {caller}"))
        .header("x-secondary-token", secondary)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn an_unknown_client_is_a_404_naming_it_and_bad_api_tokens_are_counted_as_401() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let read = Access::Read.client_role(CLIENT);
    let secondary = minted(&world, &format!("api://{CLIENT}"), &[&read]);
    let caller = minted(&world, API_URI, &[API_READ]);
    let (status, body) = get(&world, CLIENT, &caller, &secondary).await;
    assert_eq!(status, 200, "the control call is served: {body}");

    let (status, body) = get(&world, "clientNOPE", &caller, &secondary).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("clientNOPE"), "the answer names it: {body}");

    for bad in ["not-a-token", "still-not-a-token"] {
        let (status, body) = get(&world, CLIENT, bad, &secondary).await;
        assert_eq!(status, 401, "{body}");
    }
    let stats = world.sandbox.api().stats();
    assert_eq!(stats.served(), 1, "only the control was served");
    assert_eq!(stats.unauthorized(), 2, "each bad API token was counted");
}
