//! Workload identity federation as Entra checks it: each mismatch between a
//! federated assertion and the app's federated identity credentials gets
//! Entra's own AADSTS code, beside a control assertion the same set-up
//! accepts. Disabling any one check makes its flawed assertion succeed, so
//! its test fails.
//!
//! Codes: "Microsoft Entra authentication and authorization error codes" and
//! Entra's answers for workload identity federation (AADSTS70025, 700211,
//! 700212, 700213, 700024, 700027).

use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE};
use crosstenant_sandbox::directory::{TOKEN_EXCHANGE_AUDIENCE, TOKEN_EXCHANGE_AUDIENCE_USGOV};
use crosstenant_sandbox::jwt::now_secs;
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SUBJECT: &str = "system:serviceaccount:telemetry:sender";

fn client(world: &DemoWorld) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(world.sandbox.ca_pem().as_bytes()).expect("CA is PEM");
    reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client builds")
}

/// Asks Contoso's token endpoint for an Event Hubs token as `app_id` with a
/// federated assertion; the status and the JSON answer.
async fn exchange(world: &DemoWorld, app_id: &str, assertion: &str) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", app_id)
        .append_pair("scope", EVENTHUBS_SCOPE)
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    let response = client(world)
        .post(world.sandbox.identity().token_endpoint(&world.owner.id))
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

/// The demo world with a federated credential on the partner's app for
/// workload issuer `aks` and [`SUBJECT`].
async fn world_with_fic() -> (DemoWorld, String) {
    let w = DemoWorld::start().await.expect("sandbox starts");
    let issuer = w.sandbox.identity().federated_issuer("aks");
    w.sandbox
        .directory()
        .add_federated_credential(&w.app.app_id, &issuer, SUBJECT)
        .expect("credential adds");
    (w, issuer)
}

/// Claims of a well-formed assertion from `iss`.
fn claims(iss: &str, sub: &str, aud: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": iss, "sub": sub, "aud": aud,
        "iat": now, "nbf": now, "exp": now + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(w: &DemoWorld, issuer_name: &str, claims: &Value) -> String {
    w.sandbox
        .identity()
        .sign_as_workload_issuer(issuer_name, claims)
        .expect("signs")
}

#[tokio::test]
async fn a_matching_assertion_is_exchanged_for_a_token() {
    let (w, _) = world_with_fic().await;
    let assertion = w
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .unwrap();
    let (status, answer) = exchange(&w, &w.app.app_id, &assertion).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].is_string());
    // Entra's fetches of the issuer's metadata are not client discovery.
    assert_eq!(w.sandbox.identity().stats().discovery_requests(), 0);
}

#[tokio::test]
async fn an_app_without_federated_credentials_answers_70025() {
    let w = DemoWorld::start().await.expect("sandbox starts");
    let assertion = w
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .unwrap();
    let (status, answer) = exchange(&w, &w.app.app_id, &assertion).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(aadsts(&answer), Some(70025), "{answer}");
}

#[tokio::test]
async fn another_issuer_answers_700211() {
    let (w, issuer) = world_with_fic().await;
    let other = w.sandbox.identity().federated_issuer("other-cluster");
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(
            &w,
            "other-cluster",
            &claims(&other, SUBJECT, TOKEN_EXCHANGE_AUDIENCE),
        ),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700211)), "{answer}");
    assert!(answer["error_description"]
        .as_str()
        .unwrap()
        .contains(&other));
    // Issuers are compared exactly: a trailing slash is another issuer.
    let slash = format!("{issuer}/");
    let (_, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(&w, "aks", &claims(&slash, SUBJECT, TOKEN_EXCHANGE_AUDIENCE)),
    )
    .await;
    assert_eq!(aadsts(&answer), Some(700211), "{answer}");
}

#[tokio::test]
async fn another_subject_answers_700213() {
    let (w, issuer) = world_with_fic().await;
    // Subjects are compared case-sensitively.
    let sub = SUBJECT.to_uppercase();
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(&w, "aks", &claims(&issuer, &sub, TOKEN_EXCHANGE_AUDIENCE)),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700213)), "{answer}");
}

#[tokio::test]
async fn another_audience_answers_700212_and_a_listed_sovereign_one_is_accepted() {
    let (w, issuer) = world_with_fic().await;
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(
            &w,
            "aks",
            &claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE_USGOV),
        ),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700212)), "{answer}");

    // A credential listing the US Government audience accepts it.
    let d = w.sandbox.directory();
    d.add_federated_credential_with_audiences(
        &w.app.app_id,
        &issuer,
        "system:serviceaccount:telemetry:usgov",
        &[TOKEN_EXCHANGE_AUDIENCE_USGOV],
    )
    .unwrap();
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(
            &w,
            "aks",
            &claims(
                &issuer,
                "system:serviceaccount:telemetry:usgov",
                TOKEN_EXCHANGE_AUDIENCE_USGOV,
            ),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn an_assertion_signed_by_another_issuers_key_answers_700027() {
    let (w, issuer) = world_with_fic().await;
    // Right iss, sub and aud, but signed with the key of another issuer
    // (which publishes it, at its own JWKS URL).
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(
            &w,
            "other-cluster",
            &claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE),
        ),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700027)), "{answer}");
    // The issuer's own key id on a signature by another key: the signature
    // itself is checked, not only the key id.
    let genuine = w
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .unwrap();
    let kid = jsonwebtoken::decode_header(&genuine).unwrap().kid.unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid);
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE),
        &jsonwebtoken::EncodingKey::from_rsa_pem(stranger.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let (status, answer) = exchange(&w, &w.app.app_id, &forged).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700027)), "{answer}");
    // Nor does Entra's own key stand in for the issuer's.
    let entra_signed = w
        .sandbox
        .issuer()
        .sign(&claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE))
        .unwrap();
    let (_, answer) = exchange(&w, &w.app.app_id, &entra_signed).await;
    assert_eq!(aadsts(&answer), Some(700027), "{answer}");
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_assertion_answers_700024() {
    let (w, issuer) = world_with_fic().await;
    let now = now_secs();
    let mut expired = claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE);
    expired["nbf"] = json!(now - 3600);
    expired["exp"] = json!(now - 600);
    let (status, answer) = exchange(&w, &w.app.app_id, &sign(&w, "aks", &expired)).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700024)), "{answer}");

    let mut early = claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE);
    early["nbf"] = json!(now + 1200);
    early["exp"] = json!(now + 1800);
    let (_, answer) = exchange(&w, &w.app.app_id, &sign(&w, "aks", &early)).await;
    assert_eq!(aadsts(&answer), Some(700024), "{answer}");
}

#[tokio::test]
async fn a_federated_assertion_is_reusable_unless_single_use_is_switched_on() {
    let (w, _) = world_with_fic().await;
    let assertion = w
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .unwrap();
    // As in Entra: the same projected token serves every request.
    for _ in 0..2 {
        let (status, answer) = exchange(&w, &w.app.app_id, &assertion).await;
        assert_eq!(status, 200, "{answer}");
    }
    w.sandbox
        .identity()
        .set_federated_assertions_single_use(true);
    let fresh = w
        .sandbox
        .identity()
        .mint_federated_assertion("aks", SUBJECT, 600)
        .unwrap();
    let (first, answer) = exchange(&w, &w.app.app_id, &fresh).await;
    assert_eq!(first, 200, "{answer}");
    let (second, answer) = exchange(&w, &w.app.app_id, &fresh).await;
    assert_eq!((second, aadsts(&answer)), (401, Some(50013)), "{answer}");
}

#[tokio::test]
async fn an_issuer_whose_metadata_cannot_be_fetched_answers_50166() {
    let w = DemoWorld::start().await.expect("sandbox starts");
    // A registered issuer URL on the sandbox's host that serves no
    // discovery document.
    let issuer = format!("{}federation/never-created", w.sandbox.authority_host());
    w.sandbox
        .directory()
        .add_federated_credential(&w.app.app_id, &issuer, SUBJECT)
        .unwrap();
    let (status, answer) = exchange(
        &w,
        &w.app.app_id,
        &sign(
            &w,
            "aks",
            &claims(&issuer, SUBJECT, TOKEN_EXCHANGE_AUDIENCE),
        ),
    )
    .await;
    assert_eq!((status, aadsts(&answer)), (401, Some(50166)), "{answer}");
}

#[test]
fn the_three_argument_form_keeps_the_default_audience() {
    let d = crosstenant_sandbox::directory::Directory::default();
    let t = d.add_tenant("T", &["t.example"]);
    let app = d.register_app(&t.id, "a", true).unwrap();
    d.add_federated_credential(&app.app_id, "https://issuer.example", "s")
        .unwrap();
    let fic = &d.app(&app.app_id).unwrap().federated[0];
    assert_eq!(fic.audiences, vec![TOKEN_EXCHANGE_AUDIENCE.to_string()]);
}

/// `core.getIDToken(audience)` as the actions toolkit does it.
async fn github_id_token(w: &DemoWorld, bearer: Option<&str>, audience: &str) -> (u16, Value) {
    let gh = w.sandbox.github_actions();
    let url = format!(
        "{}&audience={}",
        gh.request_url(),
        url::form_urlencoded::byte_serialize(audience.as_bytes()).collect::<String>()
    );
    let mut req = client(w)
        .get(url)
        .header("accept", "application/json; api-version=2.0");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let r = req.send().await.expect("the issuer answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_github_actions_token_is_shaped_like_githubs_and_exchanged_by_its_credential() {
    let w = DemoWorld::start().await.expect("sandbox starts");
    let gh = w.sandbox.github_actions();
    let token = gh.request_token().to_string();

    // The request token is required and must match.
    assert_eq!(
        github_id_token(&w, None, TOKEN_EXCHANGE_AUDIENCE).await.0,
        401
    );
    assert_eq!(
        github_id_token(&w, Some("nope"), TOKEN_EXCHANGE_AUDIENCE)
            .await
            .0,
        401
    );
    let (status, body) = github_id_token(&w, Some(&token), TOKEN_EXCHANGE_AUDIENCE).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["value"]
        .as_str()
        .expect("{\"value\": jwt}")
        .to_string();
    let claims = crosstenant_sandbox::jwt::unverified_claims(&jwt).unwrap();
    assert_eq!(claims["iss"], gh.issuer());
    assert!(!gh.issuer().ends_with('/'));
    assert_eq!(claims["sub"], "repo:fabrikam/telemetry:ref:refs/heads/main");
    assert_eq!(claims["aud"], TOKEN_EXCHANGE_AUDIENCE);
    assert_eq!(claims["repository"], "fabrikam/telemetry");
    assert_eq!(claims["ref"], "refs/heads/main");
    assert_eq!(
        claims["job_workflow_ref"],
        "fabrikam/telemetry/.github/workflows/deploy.yml@refs/heads/main"
    );
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // Its own key, published at its own JWKS, not Entra's.
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    let kid = header.kid.unwrap();
    assert!(gh.keys().jwks().find(&kid).is_some());
    assert!(w.sandbox.issuer().jwks().find(&kid).is_none());
    // Without an audience, GitHub's default: the owner's URL.
    let (_, body) = github_id_token(&w, Some(&token), "").await;
    let default_aud =
        crosstenant_sandbox::jwt::unverified_claims(body["value"].as_str().unwrap()).unwrap();
    assert_eq!(default_aud["aud"], "https://github.com/fabrikam");
    assert_eq!(gh.token_requests(), 4);
    assert_eq!(gh.tokens_issued(), 2);

    // Exchanged through a credential naming GitHub's issuer and subject.
    w.sandbox
        .directory()
        .add_federated_credential(&w.app.app_id, &gh.issuer(), &gh.subject())
        .unwrap();
    let (status, answer) = exchange(&w, &w.app.app_id, &jwt).await;
    assert_eq!(status, 200, "{answer}");
    // A token of another branch is another subject.
    gh.set_job(crosstenant_sandbox::github::GitHubJob {
        git_ref: "refs/heads/feature".into(),
        ..gh.job()
    });
    let (_, body) = github_id_token(&w, Some(&token), TOKEN_EXCHANGE_AUDIENCE).await;
    let (status, answer) = exchange(&w, &w.app.app_id, body["value"].as_str().unwrap()).await;
    assert_eq!((status, aadsts(&answer)), (401, Some(700213)), "{answer}");
}
