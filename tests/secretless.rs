//! Secretless cross-tenant access on the sandbox, with the GitHub Actions
//! OIDC source and workload-issuer assertions: the seed story with no
//! secret or certificate anywhere (the GitHub job's token → a token from
//! the resource owner's tenant → Event Hubs over HTTPS and the aggregator's
//! two-token call), assertion caching counted at the issuer, and each
//! federation failure with its hint and the party who must act.
//!
//! The managed identity source reads the process environment
//! (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`), so its tests have their own
//! binary: `tests/secretless_mi.rs`.
#![cfg(all(feature = "amqp", feature = "https"))]

#[path = "common/secretless.rs"]
mod secretless;

use crosstenant::aggregator::AggregatorClient;
use crosstenant::credential::ProofKind;
use crosstenant::error::{FederationError, Mismatch};
use crosstenant::eventhubs::{EventHubSender, Transport};
use crosstenant::Party;
use crosstenant_sandbox::demo::{API_URI, CLIENT, EVENTHUBS_SCOPE, HUB};
use crosstenant_sandbox::github::GitHubJob;
use secretless::Secretless;

fn github_credential(
    s: &Secretless,
    tenant: &str,
) -> std::sync::Arc<crosstenant::CrossTenantCredential> {
    let (url, token) = s.github();
    s.builder(tenant)
        .github_actions_oidc_endpoint(&url, token)
        .build()
        .expect("builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_job_sends_to_the_owners_hub_and_calls_the_api_with_no_secret_anywhere() {
    let s = Secretless::start(0).await;
    let credential = github_credential(&s, &s.world.owner.id);
    assert_eq!(credential.proof(), ProofKind::GitHubActionsOidc);

    let sender =
        EventHubSender::<serde_json::Value>::builder(&s.world.namespace, HUB, credential.clone())
            .http_settings(credential.http_settings().clone())
            .transport(Transport::Https)
            .endpoint(s.world.sandbox.eventhubs().https_endpoint().as_str())
            .open()
            .await
            .expect("sender opens");
    sender
        .send(&serde_json::json!({"from": "github"}))
        .await
        .expect("the owner's hub accepts the event");
    assert_eq!(
        s.world
            .sandbox
            .eventhubs()
            .events(&s.world.namespace, HUB)
            .len(),
        1
    );

    let api = AggregatorClient::builder(s.world.sandbox.api().url(), API_URI, credential.clone())
        .http_settings(credential.http_settings().clone())
        .build()
        .unwrap();
    let data: serde_json::Value = api.on_behalf_of(CLIENT).unwrap().get("data").await.unwrap();
    assert!(data.is_object() || data.is_array(), "{data}");

    // Three scopes (Event Hubs, the API, the client) from one GitHub token.
    let gh = s.world.sandbox.github_actions();
    assert_eq!(gh.token_requests(), 1, "one ID token for every exchange");
    let info = credential.federated_assertion().await.unwrap().unwrap();
    assert_eq!(info.issuer, gh.issuer());
    assert_eq!(info.subject, gh.subject());
    assert_eq!(
        info.audiences,
        vec!["api://AzureADTokenExchange".to_string()]
    );
    assert_eq!(gh.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tokens_for_many_scopes_cost_one_github_request() {
    let s = Secretless::start(0).await;
    let credential = github_credential(&s, &s.world.owner.id);
    let scopes = [
        EVENTHUBS_SCOPE.to_string(),
        format!("{API_URI}/.default"),
        format!("api://{CLIENT}/.default"),
    ];
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let c = credential.clone();
            let scope = scopes[i % scopes.len()].clone();
            tokio::spawn(async move { c.token(&scope).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("token");
    }
    assert_eq!(s.world.sandbox.github_actions().token_requests(), 1);
}

/// The error of a first token request, for a failure test.
async fn refusal(credential: &crosstenant::CrossTenantCredential) -> crosstenant::Error {
    credential
        .token(EVENTHUBS_SCOPE)
        .await
        .expect_err("the exchange must be refused")
}

fn assert_partners(err: &crosstenant::Error, needles: &[&str]) {
    let remedy = err.remedy().expect("a remedy");
    assert_eq!(remedy.party, Party::Partner, "{err}");
    assert!(
        remedy.action.contains("resource owner has nothing to do"),
        "{remedy}"
    );
    let text = err.to_string();
    for n in needles {
        assert!(text.contains(n), "missing {n:?} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_federation_failure_is_typed_with_its_hint_and_the_partner_as_the_party() {
    let s = Secretless::start(0).await;
    let d = s.world.sandbox.directory();
    let gh = s.world.sandbox.github_actions();
    let owner = s.world.owner.id.clone();

    // Another branch: the subject no longer matches (AADSTS700213).
    gh.set_job(GitHubJob {
        git_ref: "refs/heads/feature".into(),
        ..GitHubJob::default()
    });
    let err = refusal(&github_credential(&s, &owner)).await;
    let Some(FederationError::NoMatchingCredential {
        mismatch,
        presented,
        ..
    }) = err.as_federation()
    else {
        panic!("{err:?}")
    };
    assert_eq!(*mismatch, Mismatch::Subject);
    assert_eq!(
        presented.as_ref().unwrap().subject,
        "repo:fabrikam/telemetry:ref:refs/heads/feature"
    );
    assert_partners(&err, &["AADSTS700213", "refs/heads/feature"]);
    assert!(err
        .remedy()
        .unwrap()
        .action
        .contains("subject must be exactly repo:fabrikam/telemetry:ref:refs/heads/feature"));
    gh.set_job(GitHubJob::default());

    // A workload issuer the app does not trust (AADSTS700211).
    let foreign = s
        .world
        .sandbox
        .identity()
        .mint_federated_assertion("ci-elsewhere", "job-7", 600)
        .unwrap();
    let credential = s
        .builder(&owner)
        .client_assertion(move || {
            let a = foreign.clone();
            async move { Ok(a) }
        })
        .build()
        .unwrap();
    let err = refusal(&credential).await;
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::NoMatchingCredential {
                mismatch: Mismatch::Issuer,
                ..
            })
        ),
        "{err:?}"
    );
    assert_partners(&err, &["AADSTS700211", "federation/ci-elsewhere"]);

    // A credential for the issuer and subject but another audience
    // (AADSTS700212).
    let issuer = s.world.sandbox.identity().federated_issuer("k8s");
    d.add_federated_credential_with_audiences(
        &s.app.app_id,
        &issuer,
        "system:serviceaccount:ns:sa",
        &["api://SomethingElse"],
    )
    .unwrap();
    let k8s = s
        .world
        .sandbox
        .identity()
        .mint_federated_assertion("k8s", "system:serviceaccount:ns:sa", 600)
        .unwrap();
    let file = std::env::temp_dir().join(format!("crosstenant-fic-{}", std::process::id()));
    std::fs::write(&file, &k8s).unwrap();
    let err = refusal(
        &s.builder(&owner)
            .federated_token_file(&file)
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::NoMatchingCredential {
                mismatch: Mismatch::Audience,
                ..
            })
        ),
        "{err:?}"
    );
    assert_partners(&err, &["AADSTS700212"]);
    assert!(err
        .remedy()
        .unwrap()
        .action
        .contains("audiences must include api://AzureADTokenExchange"));

    // An assertion past its exp: refused before anything is sent.
    let expired = s
        .world
        .sandbox
        .identity()
        .mint_federated_assertion("k8s", "system:serviceaccount:ns:sa", -600)
        .unwrap();
    std::fs::write(&file, &expired).unwrap();
    let before = s.world.sandbox.identity().stats().token_requests();
    let err = refusal(
        &s.builder(&owner)
            .federated_token_file(&file)
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::AssertionExpired { entra: None, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        s.world.sandbox.identity().stats().token_requests(),
        before,
        "nothing sent"
    );
    assert_partners(&err, &["expired"]);
    let _ = std::fs::remove_file(&file);

    // The GitHub token service refuses a wrong request token (401).
    let (url, _) = s.github();
    let err = refusal(
        &s.builder(&owner)
            .github_actions_oidc_endpoint(&url, "not-the-request-token")
            .build()
            .unwrap(),
    )
    .await;
    assert!(
        matches!(
            err.as_federation(),
            Some(FederationError::GitHubTokenRefused {
                status: Some(401),
                ..
            })
        ),
        "{err:?}"
    );
    assert_partners(&err, &["id-token: write"]);
    assert!(!format!("{err} {err:?}").contains("not-the-request-token"));

    // (No federated credential at all, AADSTS70025: the sandbox takes an
    // assertion with `x5t` to an app without federated credentials for a
    // certificate assertion and answers 700027, so that case is a unit
    // test on Entra's answer, in src/credential/federated_tests.rs.)
}
