//! The identity provider's refusals that mutation testing found unproven
//! (docs/MUTANTS.md, "Sandbox identity provider and directory"): for each,
//! a request that only that check refuses, beside a control request the
//! same set-up accepts. Each test fails when its check is switched off.
//!
//! Codes and messages: Microsoft's "Microsoft Entra authentication and
//! authorization error codes", "Microsoft identity platform application
//! authentication certificate credentials" (the client assertion's claims)
//! and "Configure an application to trust a managed identity".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE};
use crosstenant_sandbox::directory::{ManagedIdentityKind, TOKEN_EXCHANGE_AUDIENCE};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims, TokenVersion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SUBJECT: &str = "system:serviceaccount:telemetry:sender";

/// An HTTPS client that trusts the sandbox CA.
fn client(world: &DemoWorld) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(world.sandbox.ca_pem().as_bytes()).expect("CA is PEM");
    reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client builds")
}

fn token_endpoint(world: &DemoWorld) -> String {
    world.sandbox.identity().token_endpoint(&world.owner.id)
}

/// Asks the owner's token endpoint for an Event Hubs token as `app_id`
/// with `assertion`; the status and the JSON answer.
async fn exchange(world: &DemoWorld, app_id: &str, assertion: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", app_id)
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
    (status, response.json().await.unwrap_or(Value::Null))
}

fn aadsts(answer: &Value) -> Option<u64> {
    answer["error_codes"][0].as_u64()
}

/// A certificate registered on the demo app: its private key and `x5t`.
struct AppCertificate {
    key_pem: String,
    x5t: String,
    der: Vec<u8>,
}

fn register_certificate(world: &DemoWorld) -> AppCertificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fabrikam-integration");
    let cert = params.self_signed(&key).expect("self-signed");
    world
        .sandbox
        .directory()
        .add_certificate(&world.app.app_id, cert.der())
        .expect("certificate registers");
    let x5t = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        cert.der(),
    ));
    AppCertificate {
        key_pem: key.serialize_pem(),
        x5t,
        der: cert.der().to_vec(),
    }
}

/// The claims of a well-formed certificate assertion for the demo app, as
/// Microsoft's "certificate credentials" doc lists them: `iss` = `sub` =
/// the client id, `aud` = the token endpoint, a fresh `jti`, ten minutes.
fn certificate_claims(world: &DemoWorld) -> Value {
    let now = now_secs();
    json!({
        "aud": token_endpoint(world),
        "iss": world.app.app_id,
        "sub": world.app.app_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "exp": now + 600,
    })
}

/// `claims` signed RS256 by the certificate's key, with its `x5t`.
fn signed_by(cert: &AppCertificate, claims: &Value) -> String {
    signed_with_header(cert, claims, None)
}

/// The same, with `x5c` (the chain, standard base64 DER) in the header
/// when given.
fn signed_with_header(cert: &AppCertificate, claims: &Value, x5c: Option<&[u8]>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(cert.x5t.clone());
    header.x5c = x5c.map(|der| vec![base64::engine::general_purpose::STANDARD.encode(der)]);
    let key = EncodingKey::from_rsa_pem(cert.key_pem.as_bytes()).expect("RSA PEM");
    jsonwebtoken::encode(&header, claims, &key).expect("assertion signs")
}

#[tokio::test]
async fn a_certificate_assertion_whose_subject_is_not_the_client_is_refused_with_aadsts700021() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &signed_by(&cert, &certificate_claims(&world)),
    )
    .await;
    assert_eq!(status, 200, "the control assertion is accepted: {answer}");

    // Signed by the registered key, right `iss`, `aud` and lifetime, fresh
    // `jti`: only `sub` names another application.
    let mut claims = certificate_claims(&world);
    claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700021)), "{answer}");
}

#[tokio::test]
async fn a_certificate_assertion_whose_issuer_is_not_the_client_is_refused_with_aadsts700021() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    // `x5t` names the app's certificate and the key signs, but `iss` (and
    // `sub`) name another application: Entra answers that the assertion's
    // application identifier does not match `client_id`.
    let other = uuid::Uuid::new_v4().to_string();
    let mut claims = certificate_claims(&world);
    claims["iss"] = json!(other);
    claims["sub"] = json!(other);
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700021)), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("client_id")),
        "{answer}"
    );
}

#[tokio::test]
async fn only_an_assertion_whose_x5c_starts_with_the_registered_certificate_counts_as_carrying_its_chain(
) {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    let stats = world.sandbox.identity().stats();
    // No `x5c`: accepted, no chain.
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &signed_with_header(&cert, &certificate_claims(&world), None),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stats.assertions_with_chain(), 0);
    // `x5c` starting with another certificate: accepted (the signature is
    // the registered key's, and `x5c` is optional in Microsoft's
    // "certificate credentials" doc) but not counted as carrying the chain.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .self_signed(&other)
        .expect("self-signed");
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &signed_with_header(&cert, &certificate_claims(&world), Some(other.der())),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stats.assertions_with_chain(), 0);
    // `x5c` starting with the registered certificate: counted.
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &signed_with_header(&cert, &certificate_claims(&world), Some(&cert.der)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stats.assertions_with_chain(), 1);
}

#[tokio::test]
async fn an_app_with_a_federated_credential_still_signs_in_with_its_certificate() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    // The same app also trusts a workload issuer: a certificate assertion
    // (`iss` = the client id) is still the app's own, not a federated one.
    let issuer = world.sandbox.identity().federated_issuer("aks");
    world
        .sandbox
        .directory()
        .add_federated_credential(&world.app.app_id, &issuer, SUBJECT)
        .expect("credential adds");
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &signed_by(&cert, &certificate_claims(&world)),
    )
    .await;
    assert_eq!(status, 200, "the certificate is accepted: {answer}");
    let federated = world
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .expect("mints");
    let (status, answer) = exchange(&world, &world.app.app_id, &federated).await;
    assert_eq!(status, 200, "and so is the federated assertion: {answer}");
}

#[tokio::test]
async fn an_assertion_expired_within_entras_five_minutes_of_skew_is_accepted_and_beyond_is_700024()
{
    let world = DemoWorld::start().await.expect("sandbox starts");
    let cert = register_certificate(&world);
    let now = now_secs();
    // Expired two minutes ago: inside the five minutes of clock skew Entra
    // allows on assertions.
    let mut claims = certificate_claims(&world);
    claims["nbf"] = json!(now - 600);
    claims["exp"] = json!(now - 120);
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!(status, 200, "within the skew: {answer}");
    // Expired seven minutes ago: refused.
    let mut claims = certificate_claims(&world);
    claims["nbf"] = json!(now - 900);
    claims["exp"] = json!(now - 420);
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700024)), "{answer}");
    // Valid from two minutes on: inside the skew; from seven minutes on: not.
    let mut claims = certificate_claims(&world);
    claims["nbf"] = json!(now + 120);
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!(status, 200, "within the skew: {answer}");
    let mut claims = certificate_claims(&world);
    claims["nbf"] = json!(now + 420);
    claims["exp"] = json!(now + 900);
    let (status, answer) = exchange(&world, &world.app.app_id, &signed_by(&cert, &claims)).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700024)), "{answer}");
}

/// A managed identity token as the sandbox's managed identity endpoint
/// issues it for token exchange: v2.0, signed by Entra's keys, `iss` =
/// `https://login.microsoftonline.com/{tid}/v2.0`, `sub` = `oid` = the
/// identity's object id, `uti` and no `jti`.
fn managed_identity_token(world: &DemoWorld, tenant_id: &str, object_id: &str) -> String {
    let now = now_secs();
    let claims = json!({
        "aud": TOKEN_EXCHANGE_AUDIENCE,
        "iss": AccessClaims::v2_issuer_for(tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "azp": uuid::Uuid::new_v4().to_string(),
        "azpacr": "2",
        "idtyp": "app",
        "oid": object_id,
        "sub": object_id,
        "tid": tenant_id,
        "roles": [],
        "uti": uuid::Uuid::new_v4().to_string(),
        "ver": "2.0",
    });
    world
        .sandbox
        .issuer()
        .sign_as(&claims, TokenVersion::V2)
        .expect("token signs")
}

#[tokio::test]
async fn a_managed_identity_stands_as_an_apps_federated_credential_only_if_user_assigned_in_the_issuers_tenant(
) {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let secretless = world.secretless.app_id.clone();
    // The control: the demo's user-assigned identity, which the secretless
    // app trusts.
    let uami = &world.managed_identity;
    let (status, answer) = exchange(
        &world,
        &secretless,
        &managed_identity_token(&world, &world.partner.id, &uami.object_id),
    )
    .await;
    assert_eq!(status, 200, "the user-assigned identity: {answer}");

    // A system-assigned identity of the same tenant, named by a federated
    // credential exactly as the user-assigned one is: "system-assigned
    // identities aren't supported".
    let d = world.sandbox.directory();
    let sami = d
        .add_managed_identity(
            &world.partner.id,
            "fabrikam-web",
            ManagedIdentityKind::SystemAssigned,
        )
        .expect("identity adds");
    d.add_federated_credential(
        &secretless,
        &AccessClaims::v2_issuer_for(&world.partner.id),
        &sami.object_id,
    )
    .expect("credential adds");
    let (status, answer) = exchange(
        &world,
        &secretless,
        &managed_identity_token(&world, &world.partner.id, &sami.object_id),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(70021)), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("user-assigned")),
        "{answer}"
    );

    // A user-assigned identity of another tenant (the owner's), named under
    // the partner tenant's issuer: the identity must live in the tenant
    // whose issuer the credential names.
    let foreign = d
        .add_managed_identity(
            &world.owner.id,
            "contoso-shared",
            ManagedIdentityKind::UserAssigned,
        )
        .expect("identity adds");
    d.add_federated_credential(
        &secretless,
        &AccessClaims::v2_issuer_for(&world.partner.id),
        &foreign.object_id,
    )
    .expect("credential adds");
    let (status, answer) = exchange(
        &world,
        &secretless,
        &managed_identity_token(&world, &world.partner.id, &foreign.object_id),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(70021)), "{answer}");
}

#[tokio::test]
async fn a_managed_identity_token_is_single_use_by_its_uti_when_single_use_is_on() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    world
        .sandbox
        .identity()
        .set_federated_assertions_single_use(true);
    // Managed identity tokens carry `uti` where other issuers put `jti`.
    let token =
        managed_identity_token(&world, &world.partner.id, &world.managed_identity.object_id);
    let (status, answer) = exchange(&world, &world.secretless.app_id, &token).await;
    assert_eq!(status, 200, "the first use: {answer}");
    let (status, answer) = exchange(&world, &world.secretless.app_id, &token).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(50013)), "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already used")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_federated_assertion_may_carry_its_audience_in_an_array() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let issuer = world.sandbox.identity().federated_issuer("aks");
    world
        .sandbox
        .directory()
        .add_federated_credential(&world.app.app_id, &issuer, SUBJECT)
        .expect("credential adds");
    let now = now_secs();
    let claims = |aud: Value| {
        json!({
            "iss": issuer, "sub": SUBJECT, "aud": aud,
            "iat": now, "nbf": now, "exp": now + 600,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    };
    let sign = |claims: &Value| {
        world
            .sandbox
            .identity()
            .sign_as_workload_issuer("aks", claims)
            .expect("signs")
    };
    // RFC 7519 section 4.1.3: `aud` may be an array; one of its values is
    // the credential's audience.
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &sign(&claims(json!([
            "https://other.example",
            TOKEN_EXCHANGE_AUDIENCE
        ]))),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // An array without it is refused as another audience.
    let (status, answer) = exchange(
        &world,
        &world.app.app_id,
        &sign(&claims(json!(["https://other.example"]))),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700212)), "{answer}");
}

/// Asks the owner's token endpoint for an Event Hubs token with
/// `client_secret_post` and the form's `client_id` as given.
async fn ask_with_secret(world: &DemoWorld, client_id: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", world.client_secret())
        .append_pair("scope", EVENTHUBS_SCOPE)
        .finish();
    let response = client(world)
        .post(token_endpoint(world))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the token endpoint answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_request_with_an_empty_client_id_is_refused_with_aadsts900144() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let (status, answer) = ask_with_secret(&world, &world.app.app_id).await;
    assert_eq!(status, 200, "the control request is served: {answer}");
    // Entra's answer to a request whose `client_id` is missing or blank:
    // 400 `invalid_request`, AADSTS900144 naming the parameter.
    for blank in ["", "   "] {
        let (status, answer) = ask_with_secret(&world, blank).await;
        assert_eq!(
            (status, aadsts(&answer)),
            (400, Some(900144)),
            "{blank:?}: {answer}"
        );
        assert!(
            answer["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("'client_id'")),
            "{answer}"
        );
    }
}
