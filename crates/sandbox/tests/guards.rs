//! The sandbox's refusals, each proven: for every check the client's tests
//! rely on, a request that only that check refuses, beside a control request
//! that the same set-up accepts. Removing the check makes the refused
//! request succeed, so its test fails.
//!
//! These talk to the sandbox over its real endpoints (HTTPS with its CA
//! added as a root), as any client would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use crosstenant_sandbox::api::{Access, API_READ, API_WRITE};
use crosstenant_sandbox::demo::{DemoWorld, API_URI, CLIENT, EVENTHUBS_SCOPE, HUB};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An HTTPS client that trusts the sandbox CA (and nothing is switched off).
fn client(world: &DemoWorld) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(world.sandbox.ca_pem().as_bytes()).expect("CA is PEM");
    reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client builds")
}

/// A certificate registered on the demo app, with its private key.
struct AppCertificate {
    key_pem: String,
    x5t: String,
}

fn register_certificate(world: &DemoWorld) -> AppCertificate {
    let (der, key_pem) = self_signed("fabrikam-integration");
    world
        .sandbox
        .directory()
        .add_certificate(&world.app.app_id, &der)
        .expect("certificate registers");
    let x5t = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &der,
    ));
    AppCertificate { key_pem, x5t }
}

fn self_signed(cn: &str) -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.der().to_vec(), key.serialize_pem())
}

/// A client assertion as Microsoft's "certificate credentials" doc shapes
/// it: RS256, `x5t`, `iss` = `sub` = client id, `aud` = the token endpoint.
fn assertion(world: &DemoWorld, key_pem: &str, x5t: &str, aud: &str, jti: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(x5t.to_string());
    let now = now_secs();
    let claims = json!({
        "aud": aud,
        "iss": world.app.app_id,
        "sub": world.app.app_id,
        "jti": jti,
        "nbf": now,
        "exp": now + 600,
    });
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("RSA PEM");
    jsonwebtoken::encode(&header, &claims, &key).expect("assertion signs")
}

fn token_endpoint(world: &DemoWorld) -> String {
    world.sandbox.identity().token_endpoint(&world.owner.id)
}

/// Asks the owner's token endpoint for an Event Hubs token with an
/// assertion; the status and the JSON answer.
async fn exchange(world: &DemoWorld, assertion: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &world.app.app_id)
        .append_pair("scope", EVENTHUBS_SCOPE)
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    let response = client(world)
        .post(token_endpoint(world))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the token endpoint answers");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

fn aadsts(answer: &Value) -> Option<u64> {
    answer["error_codes"][0].as_u64()
}

#[tokio::test]
async fn certificate_assertion_for_another_audience_is_refused() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    let right = assertion(
        &world,
        &cert.key_pem,
        &cert.x5t,
        &token_endpoint(&world),
        "a-1",
    );
    let (status, answer) = exchange(&world, &right).await;
    assert_eq!(status, 200, "the control assertion is accepted: {answer}");

    // Signed by the registered key, fresh jti: only the audience is wrong.
    let elsewhere = "https://login.microsoftonline.com/another-tenant/oauth2/v2.0/token";
    let wrong = assertion(&world, &cert.key_pem, &cert.x5t, elsewhere, "a-2");
    let (status, answer) = exchange(&world, &wrong).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(aadsts(&answer), Some(50013), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("audience")),
        "the answer names the audience: {answer}"
    );
}

#[tokio::test]
async fn replayed_client_assertion_is_refused() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    let once = assertion(
        &world,
        &cert.key_pem,
        &cert.x5t,
        &token_endpoint(&world),
        "r-1",
    );
    let (status, answer) = exchange(&world, &once).await;
    assert_eq!(status, 200, "the first use is accepted: {answer}");
    let (status, answer) = exchange(&world, &once).await;
    assert_eq!(status, 401, "the same jti again is a replay: {answer}");
    assert_eq!(aadsts(&answer), Some(50013), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already used")),
        "{answer}"
    );
}

#[tokio::test]
async fn assertion_signed_by_another_key_is_refused() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    // The registered certificate's thumbprint, but another key's signature:
    // what someone who saw the (public) certificate could make.
    let (_, other_key) = self_signed("attacker");
    let forged = assertion(
        &world,
        &other_key,
        &cert.x5t,
        &token_endpoint(&world),
        "s-1",
    );
    let (status, answer) = exchange(&world, &forged).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(aadsts(&answer), Some(700027), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("signature")),
        "{answer}"
    );
    let genuine = assertion(
        &world,
        &cert.key_pem,
        &cert.x5t,
        &token_endpoint(&world),
        "s-2",
    );
    let (status, answer) = exchange(&world, &genuine).await;
    assert_eq!(
        status, 200,
        "the registered key's assertion is accepted: {answer}"
    );
}

/// A v1 app token the sandbox's issuer signs for the demo app in `tenant`,
/// with `aud` and `roles` as given: what Entra would issue after the
/// matching grants (Microsoft's "access token claims reference").
fn minted(world: &DemoWorld, tenant: &str, aud: &str, roles: &[&str]) -> String {
    let now = now_secs();
    let oid = world
        .sandbox
        .directory()
        .service_principal(tenant, &world.app.app_id)
        .map(|sp| sp.object_id)
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    let claims = json!({
        "aud": aud,
        "iss": AccessClaims::issuer_for(tenant),
        "appid": world.app.app_id,
        "azp": world.app.app_id,
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
        "uti": format!("guard-{now}"),
    });
    world.sandbox.issuer().sign(&claims).expect("token signs")
}

/// Sends one event to the demo hub over HTTPS with `token`; the status.
async fn send_https(world: &DemoWorld, token: &str, body: &str) -> u16 {
    send_https_to(world, &format!("{HUB}/messages"), token, body).await
}

/// Sends one event to `path` (under the namespace) over HTTPS with
/// `token`; the status.
async fn send_https_to(world: &DemoWorld, path: &str, token: &str, body: &str) -> u16 {
    let endpoint = world.sandbox.eventhubs().https_endpoint();
    let url = endpoint
        .join(&format!("{path}?timeout=60&api-version=2014-01"))
        .expect("URL");
    client(world)
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("host", world.namespace.as_str())
        .header(
            "content-type",
            "application/atom+xml;type=entry;charset=utf-8",
        )
        .body(body.to_string())
        .send()
        .await
        .expect("the namespace answers")
        .status()
        .as_u16()
}

fn stored(world: &DemoWorld, body: &str) -> bool {
    world
        .sandbox
        .eventhubs()
        .events(&world.namespace, HUB)
        .iter()
        .any(|e| e.body_text() == Some(body))
}

#[tokio::test]
async fn namespace_refuses_a_token_for_another_resource() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let resource = EVENTHUBS_SCOPE.trim_end_matches("/.default");
    let right = minted(&world, &world.owner.id, resource, &[]);
    assert_eq!(send_https(&world, &right, "control").await, 201);
    assert!(stored(&world, "control"));

    // Same tenant, same principal (which holds Data Sender), valid signature
    // and lifetime: only the audience is another resource's.
    let other = minted(&world, &world.owner.id, API_URI, &[API_READ]);
    assert_eq!(send_https(&world, &other, "for-the-api").await, 401);
    assert!(!stored(&world, "for-the-api"), "nothing is stored");
}

/// Calls the demo API's data path for [`CLIENT`] with the two tokens.
async fn call_api(
    world: &DemoWorld,
    method: reqwest::Method,
    caller: &str,
    secondary: &str,
) -> (u16, String) {
    let url = world
        .sandbox
        .api()
        .url()
        .join(&format!("api/{CLIENT}/data"))
        .expect("URL");
    let mut request = client(world)
        .request(method.clone(), url)
        .header("authorization", format!("Bearer {caller}"))
        .header("x-secondary-token", secondary);
    if method == reqwest::Method::PUT {
        request = request
            .header("content-type", "application/json")
            .body(r#"{"written":true}"#);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn api_refuses_an_api_token_from_another_tenant() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let client_uri = format!("api://{CLIENT}");
    let read = Access::Read.client_role(CLIENT);
    let secondary = minted(&world, &world.owner.id, &client_uri, &[&read]);
    let caller = minted(&world, &world.owner.id, API_URI, &[API_READ]);
    let (status, body) = call_api(&world, reqwest::Method::GET, &caller, &secondary).await;
    assert_eq!(status, 200, "the control call is served: {body}");

    // Signed by the same issuer keys, right audience and roles, but issued
    // by the partner's tenant (where the app also has a principal): the
    // API serves only its own tenant's tokens.
    world
        .sandbox
        .directory()
        .create_service_principal(&world.partner.id, &world.app.app_id)
        .ok();
    let foreign = minted(&world, &world.partner.id, API_URI, &[API_READ]);
    let (status, body) = call_api(&world, reqwest::Method::GET, &foreign, &secondary).await;
    assert!(status == 401 || status == 403, "refused: {status} {body}");
    assert_eq!(
        world.sandbox.api().stats().served(),
        1,
        "only the control was served"
    );
}

#[tokio::test]
async fn a_write_needs_the_api_write_role() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let client_uri = format!("api://{CLIENT}");
    let client_write = Access::Write.client_role(CLIENT);
    // The client grants writing; the API token carries only API.Read.
    let secondary = minted(&world, &world.owner.id, &client_uri, &[&client_write]);
    let read_only = minted(&world, &world.owner.id, API_URI, &[API_READ]);
    let (status, body) = call_api(&world, reqwest::Method::PUT, &read_only, &secondary).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(API_WRITE),
        "the reason names the missing role: {body}"
    );

    let writer = minted(&world, &world.owner.id, API_URI, &[API_WRITE]);
    let (status, body) = call_api(&world, reqwest::Method::PUT, &writer, &secondary).await;
    assert!(
        (200..300).contains(&status),
        "the control write is served: {status} {body}"
    );
}

/// A partition id names one of the hub's partitions, `0` to `count - 1`
/// (the demo hub has 4): the last one is accepted, and `4`, a negative or a
/// non-numeric id are refused with 400 and nothing stored, as the service
/// refuses a partition the hub does not have (Event Hubs REST API, "Send
/// partition event"). Kills the `<` → `<=` mutant of `check_partition`.
#[tokio::test]
async fn a_partition_the_hub_does_not_have_is_refused_and_the_last_one_accepted() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let resource = EVENTHUBS_SCOPE.trim_end_matches("/.default");
    let token = minted(&world, &world.owner.id, resource, &[]);
    let send = |partition: &'static str| {
        let path = format!("{HUB}/partitions/{partition}/messages");
        let body = format!("to-{partition}");
        let (world, token) = (&world, &token);
        async move { send_https_to(world, &path, token, &body).await }
    };
    assert_eq!(send("3").await, 201);
    assert!(stored(&world, "to-3"));
    for bad in ["4", "-1", "x"] {
        assert_eq!(send(bad).await, 400, "partition {bad}");
        assert!(!stored(&world, &format!("to-{bad}")), "partition {bad}");
    }
}
