//! The validator against the sandbox identity provider's real endpoints
//! (OpenID configuration and JWKS over HTTPS, tokens from its token
//! endpoint) and against a loopback metadata server the test controls
//! (v2 tokens, outages, floods of unknown `kid`s).

mod common;

use common::*;
use crosstenant_validator::{Access, MetadataVersion, Refusal, TokenProblem, Validator};
use serde_json::{json, Value};
use std::time::Duration;

/// Both tokens, as `authorize_tokens` takes them.
async fn check(
    v: &Validator,
    caller: &str,
    secondary: Option<&str>,
    client: &str,
    access: Access,
) -> Result<crosstenant_validator::Authorized, Refusal> {
    v.authorize_tokens(Some(&bearer(caller)), secondary, client, access)
        .await
}

/// A token with the same header and signature but another payload.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(claims).unwrap()),
        parts[2]
    )
}

/// A token with the same payload and signature but another header.
fn with_header(token: &str, header: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        parts[1],
        parts[2]
    )
}

use base64::Engine as _;

fn assert_no_token(r: &Refusal) {
    let text = format!("{r} {r:?} {}", r.body());
    assert!(!text.contains("eyJ"), "a token leaked: {text}");
}

#[tokio::test]
async fn sandbox_tokens_pass_on_behalf_of_a_client_and_as_the_client_itself() {
    let world = World::start().await;
    let v = world.builder().build().unwrap();
    let (a, b) = (world.caller_token().await, world.secondary_token().await);

    let ok = check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    assert!(ok.on_behalf_of());
    assert_eq!(ok.caller_id(), world.w.app.app_id);
    assert_eq!(ok.client().name(), "clientXYZ");
    assert_eq!(ok.secondary().unwrap().aud, "api://clientXYZ");
    assert!(!ok.caller().is_v2());
    // The client by its application id in the route is the same client.
    let by_id = check(&v, &a, Some(&b), &world.xyz_app_id, Access::Read)
        .await
        .unwrap();
    assert_eq!(by_id.client().name(), "clientXYZ");

    // clientXYZ calling for itself needs no second token.
    let own = world
        .token_for(
            &world.xyz_app_id,
            &world.xyz_secret,
            "api://secure-api/.default",
        )
        .await;
    let ok = check(&v, &own, None, "clientXYZ", Access::Write)
        .await
        .unwrap();
    assert!(!ok.on_behalf_of());
    // ...but the client comes from the route: on clientABC's path it is
    // just another caller without a secondary token.
    let r = check(&v, &own, None, "clientABC", Access::Read)
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::NoSecondaryToken { .. }), "{r}");
    assert_eq!(r.status(), 403);

    // The headers path reads the configured header.
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", bearer(&a).parse().unwrap());
    headers.insert("x-secondary-token", b.parse().unwrap());
    assert!(v
        .authorize(&headers, "clientXYZ", Access::Read)
        .await
        .is_ok());
    v.set_secondary_token_header("X-Client-Token").unwrap();
    let r = v
        .authorize(&headers, "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(r.to_string().contains("X-Client-Token"), "{r}");
}

#[tokio::test]
async fn each_bad_secondary_token_is_refused_with_its_own_reason() {
    let world = World::start().await;
    let v = world.builder().build().unwrap();
    let (a, b) = (world.caller_token().await, world.secondary_token().await);
    let genuine = payload(&b);
    let now = crosstenant_sandbox::jwt::now_secs();
    let partner = world.w.partner.id.clone();
    let owner = world.owner().to_string();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = genuine.clone();
        f(&mut c);
        c
    };
    let forger = crosstenant_sandbox::jwt::TokenIssuer::new().unwrap();
    let other_client = world
        .token_for(
            &world.w.app.app_id,
            world.w.client_secret(),
            "api://clientABC/.default",
        )
        .await;
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: header(&b)["kid"].as_str().map(String::from),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &genuine,
        &jsonwebtoken::EncodingKey::from_secret(b"the public key, as a secret"),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b.split('.').nth(1).unwrap()
    );

    type Expect = fn(&Refusal) -> bool;
    let cases: Vec<(&str, String, Access, Expect)> = vec![
        (
            "forged (another key, every claim right)",
            forger
                .sign(&edit(&|c| {
                    c["roles"] = json!(["clientXYZ.Read", "clientXYZ.Write"])
                }))
                .unwrap(),
            Access::Write,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::UnknownKey { .. })),
        ),
        (
            "tampered (a role added under the genuine signature)",
            with_payload(
                &b,
                &edit(&|c| c["roles"] = json!(["clientXYZ.Read", "clientXYZ.Write"])),
            ),
            Access::Write,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::BadSignature)),
        ),
        (
            "alg none",
            alg_none,
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::AlgorithmNotAllowed { alg }) if alg == "none"),
        ),
        (
            "HS256 with the genuine kid",
            hs256,
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::AlgorithmNotAllowed { alg }) if alg == "HS256"),
        ),
        (
            "no kid",
            with_header(&b, &json!({"alg": "RS256", "typ": "JWT"})),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::NoKeyId)),
        ),
        (
            "unknown kid",
            with_header(
                &b,
                &json!({"alg": "RS256", "typ": "JWT", "kid": "not-published"}),
            ),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::UnknownKey { kid }) if kid == "not-published"),
        ),
        (
            "expired",
            world.sign(&edit(&|c| {
                c["iat"] = json!(now - 3700);
                c["nbf"] = json!(now - 3700);
                c["exp"] = json!(now - 100);
            })),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::Expired)),
        ),
        (
            "not yet valid",
            world.sign(&edit(&|c| c["nbf"] = json!(now + 600))),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::NotYetValid)),
        ),
        (
            "wrong issuer (another tenant's issuer on this tenant's token)",
            world.sign(&edit(&|c| {
                c["iss"] = json!(format!("https://sts.windows.net/{partner}/"))
            })),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::WrongIssuer { .. })),
        ),
        (
            "wrong issuer (not the cloud's)",
            world.sign(&edit(&|c| {
                c["iss"] = json!(format!("https://issuer.invalid/{owner}/v2.0"))
            })),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::WrongIssuer { .. })),
        ),
        (
            "other tenant",
            world.sign(&edit(&|c| {
                c["tid"] = json!(partner);
                c["iss"] = json!(format!("https://sts.windows.net/{partner}/"));
            })),
            Access::Read,
            |r| {
                matches!(
                    r,
                    Refusal::SecondaryToken(TokenProblem::TenantNotAllowed { .. })
                )
            },
        ),
        (
            "other client (a genuine token for clientABC)",
            other_client,
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::WrongAudience { actual, .. }) if actual == "api://clientABC"),
        ),
        (
            "other caller",
            world.sign(&edit(&|c| {
                c["appid"] = json!("0000aaaa-0000-0000-0000-00000000beef");
                c["azp"] = json!("0000aaaa-0000-0000-0000-00000000beef");
            })),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryForOtherCaller { .. }),
        ),
        (
            "missing role (write with a read grant)",
            b.clone(),
            Access::Write,
            |r| matches!(r, Refusal::SecondaryLacksClientRole { role, .. } if role == "clientXYZ.Write"),
        ),
        (
            "delegated (scp)",
            world.sign(&edit(&|c| c["scp"] = json!("user_impersonation"))),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::NotAppOnly(_))),
        ),
        (
            "delegated (idtyp user)",
            world.sign(&edit(&|c| c["idtyp"] = json!("user"))),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::NotAppOnly(_))),
        ),
        (
            "no caller claim",
            world.sign(&edit(&|c| {
                c.as_object_mut().unwrap().remove("appid");
            })),
            Access::Read,
            |r| {
                matches!(
                    r,
                    Refusal::SecondaryToken(TokenProblem::NoCaller { claim: "appid" })
                )
            },
        ),
        ("not a JWT", "not-a-jwt".into(), Access::Read, |r| {
            matches!(r, Refusal::SecondaryToken(TokenProblem::Malformed(_)))
        }),
        (
            "too large",
            "a".repeat(crosstenant_validator::MAX_TOKEN_LEN + 1),
            Access::Read,
            |r| matches!(r, Refusal::SecondaryToken(TokenProblem::TooLarge { .. })),
        ),
    ];
    for (name, token, access, expected) in &cases {
        let r = check(&v, &a, Some(token), "clientXYZ", *access)
            .await
            .expect_err(name);
        assert!(
            expected(&r),
            "{name}: refused for the wrong reason: {r} ({})",
            r.code()
        );
        assert_eq!(r.status(), 403, "{name}");
        assert!(r.body()["ForbidReason"].is_string(), "{name}");
        assert_no_token(&r);
    }
    // The genuine pair still passes: the refusals above were about the tokens.
    check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    let r = check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::NoSecondaryToken { .. }), "{r}");

    // With the partner tenant allowed too, a partner-issued secondary token
    // is still refused: it is not from the caller's tenant.
    let both = world.builder().allow_tenant(&partner).build().unwrap();
    let foreign = world.sign(&edit(&|c| {
        c["tid"] = json!(partner);
        c["iss"] = json!(format!("https://sts.windows.net/{partner}/"));
    }));
    let r = check(&both, &a, Some(&foreign), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::SecondaryFromOtherTenant { ref tenant, .. } if *tenant == partner),
        "{r}"
    );
}

#[tokio::test]
async fn each_bad_caller_token_is_a_401_with_a_challenge() {
    let world = World::start().await;
    let v = world.builder().build().unwrap();
    let (a, b) = (world.caller_token().await, world.secondary_token().await);
    let genuine = payload(&a);
    let now = crosstenant_sandbox::jwt::now_secs();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = genuine.clone();
        f(&mut c);
        c
    };
    let r = v
        .authorize_tokens(None, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert_eq!(r, Refusal::NoCallerToken);
    assert_eq!(r.www_authenticate("api").unwrap(), "Bearer realm=\"api\"");
    let r = v
        .authorize_tokens(
            Some(&format!("Basic {a}")),
            Some(&b),
            "clientXYZ",
            Access::Read,
        )
        .await
        .unwrap_err();
    assert_eq!(r, Refusal::NoCallerToken);

    type Expect = fn(&TokenProblem) -> bool;
    let cases: Vec<(&str, String, Expect)> = vec![
        ("the secondary token as caller token", b.clone(), |p| {
            matches!(p, TokenProblem::WrongAudience { .. })
        }),
        (
            "forged",
            crosstenant_sandbox::jwt::TokenIssuer::new()
                .unwrap()
                .sign(&genuine)
                .unwrap(),
            |p| matches!(p, TokenProblem::UnknownKey { .. }),
        ),
        (
            "expired",
            world.sign(&edit(&|c| c["exp"] = json!(now - 1))),
            |p| matches!(p, TokenProblem::Expired),
        ),
        (
            "other tenant",
            world.sign(&edit(&|c| {
                let p = world.w.partner.id.clone();
                c["iss"] = json!(format!("https://sts.windows.net/{p}/"));
                c["tid"] = json!(p);
            })),
            |p| matches!(p, TokenProblem::TenantNotAllowed { .. }),
        ),
    ];
    for (name, token, expected) in &cases {
        let r = check(&v, token, Some(&b), "clientXYZ", Access::Read)
            .await
            .expect_err(name);
        let Refusal::CallerToken(p) = &r else {
            panic!("{name}: {r}")
        };
        assert!(expected(p), "{name}: {p}");
        assert_eq!(r.status(), 401, "{name}");
        let challenge = r.www_authenticate("api").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert_no_token(&r);
    }

    // A valid token without the API role: 403, not 401.
    let no_role = world.sign(&edit(&|c| c["roles"] = json!(["API.Read"])));
    let r = check(&v, &no_role, Some(&b), "clientXYZ", Access::Write)
        .await
        .unwrap_err();
    assert!(
        matches!(&r, Refusal::CallerLacksApiRole { role, .. } if role == "API.Write"),
        "{r}"
    );
    assert_eq!(r.status(), 403);
    let r = check(&v, &a, Some(&b), "clientNOPE", Access::Read)
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::UnknownClient { .. }), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_mid_run_refuses_no_good_token() {
    let world = std::sync::Arc::new(World::start().await);
    let v = world
        .builder()
        .min_key_refresh_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    v.refresh_keys().await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (world, v, stop) = (world.clone(), v.clone(), stop.clone());
        workers.spawn(async move {
            let (mut ok, mut refused, mut kids) =
                (0u32, Vec::new(), std::collections::HashSet::new());
            let mut old: Option<(String, String)> = None;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Fresh tokens (signed with whatever key is current) and the
                // previous pair (signed with an older key, still published).
                let pair = (world.caller_token().await, world.secondary_token().await);
                kids.insert(header(&pair.0)["kid"].as_str().unwrap().to_string());
                for (a, b) in std::iter::once(&pair).chain(old.as_ref()) {
                    match check(&v, a, Some(b), "clientXYZ", Access::Read).await {
                        Ok(_) => ok += 1,
                        Err(r) => refused.push(r.to_string()),
                    }
                }
                old = Some(pair);
            }
            (ok, refused, kids)
        });
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        world.w.sandbox.issuer().rotate(false).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut kids = std::collections::HashSet::new();
    let mut total = 0;
    while let Some(r) = workers.join_next().await {
        let (ok, refused, k) = r.unwrap();
        assert!(refused.is_empty(), "good tokens were refused: {refused:?}");
        total += ok;
        kids.extend(k);
    }
    assert!(
        kids.len() >= 3,
        "tokens of {} keys were checked",
        kids.len()
    );
    assert!(total > 10, "only {total} checks ran");
}

#[tokio::test]
async fn v2_tokens_are_checked_with_their_own_issuer_and_caller_claim() {
    // The sandbox identity provider issues v1 tokens; v2-shaped tokens are
    // signed here with a key the loopback metadata server publishes.
    let idp = MetadataServer::start().await;
    let tid = "4a0c1b6e-0000-4000-8000-00000000c0de";
    let v = idp.builder(tid).build().unwrap();
    let a = idp.sign(&idp.claims(true, tid, "api-app", "agg-app", &["API.Read"]));
    let b = idp.sign(&idp.claims(true, tid, "xyz-app", "agg-app", &["clientXYZ.Read"]));
    let ok = check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    assert!(ok.caller().is_v2());
    assert_eq!(ok.caller_id(), "agg-app");
    // A v1 secondary token of the same caller pairs with a v2 caller token.
    let b1 = idp.sign(&idp.claims(
        false,
        tid,
        "api://clientXYZ",
        "agg-app",
        &["clientXYZ.Read"],
    ));
    check(&v, &a, Some(&b1), "clientXYZ", Access::Read)
        .await
        .unwrap();
    // v2 names the caller in azp: appid alone does not count.
    let mut c = idp.claims(true, tid, "xyz-app", "agg-app", &["clientXYZ.Read"]);
    c.as_object_mut().unwrap().remove("azp");
    c["appid"] = json!("agg-app");
    let r = check(&v, &a, Some(&idp.sign(&c)), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(
            r,
            Refusal::SecondaryToken(TokenProblem::NoCaller { claim: "azp" })
        ),
        "{r}"
    );
    // Another caller's v2 token.
    let theirs = idp.sign(&idp.claims(true, tid, "xyz-app", "other-app", &["clientXYZ.Read"]));
    let r = check(&v, &a, Some(&theirs), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::SecondaryForOtherCaller { .. }), "{r}");
    // The public cloud's v2 issuer is not this authority's.
    let mut c = idp.claims(true, tid, "api-app", "agg-app", &["API.Read"]);
    c["iss"] = json!(format!("https://login.microsoftonline.com/{tid}/v2.0"));
    let r = check(&v, &idp.sign(&c), Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::WrongIssuer { .. })),
        "{r}"
    );
    assert_eq!(idp.v1_metadata_requests(), 0);

    // The v1 OpenID configuration, when asked for, is the one read.
    let v1 = idp
        .builder(tid)
        .metadata_version(MetadataVersion::V1)
        .build()
        .unwrap();
    check(&v1, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    assert_eq!(idp.v1_metadata_requests(), 1);
}

#[tokio::test]
async fn a_metadata_outage_is_survived_with_the_keys_held() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-outage";
    let v = idp
        .builder(tid)
        .key_refresh_interval(Duration::from_millis(100))
        .min_key_refresh_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let a = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();

    idp.set_down(true);
    let before = idp.metadata_requests();
    // Background refreshes fail during the outage...
    tokio::time::timeout(Duration::from_secs(30), async {
        while idp.metadata_requests() < before + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the background refresh kept trying during the outage");
    // ...and the keys held keep verifying.
    for _ in 0..5 {
        check(&v, &a, None, "clientXYZ", Access::Read)
            .await
            .unwrap();
    }
    // A key rotated in during the outage cannot be known yet: refused as
    // unknown, not as "keys unavailable".
    idp.issuer.rotate(false).unwrap();
    let fresh = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    let r = check(&v, &fresh, None, "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::UnknownKey { .. })),
        "{r}"
    );
    // The outage ends: the new key is picked up.
    idp.set_down(false);
    tokio::time::timeout(Duration::from_secs(30), async {
        while check(&v, &fresh, None, "clientXYZ", Access::Read)
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the new key was never picked up after the outage");
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_start_up_is_retried_at_most_once_per_interval() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-cold";
    idp.set_down(true);
    let v = idp
        .builder(tid)
        .min_key_refresh_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    let a = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (v, a) = (v.clone(), a.clone());
        set.spawn(async move { check(&v, &a, None, "clientXYZ", Access::Read).await });
    }
    while let Some(r) = set.join_next().await {
        let r = r.unwrap().unwrap_err();
        assert!(
            matches!(r, Refusal::CallerToken(TokenProblem::KeysUnavailable(_))),
            "{r}"
        );
        assert_eq!(r.status(), 401);
    }
    assert_eq!(idp.metadata_requests(), 1, "the outage was hammered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_makes_at_most_one_jwks_request_per_interval() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-flood";
    let v = idp
        .builder(tid)
        .min_key_refresh_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let a = idp.sign(&idp.claims(false, tid, "api://api", "agg-app", &["API.Read"]));
    let b = idp.sign(&idp.claims(
        false,
        tid,
        "api://clientXYZ",
        "agg-app",
        &["clientXYZ.Read"],
    ));
    check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 1);

    let flood = |wave: u32| {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..300 {
            let forged = with_header(
                &b,
                &json!({"alg": "RS256", "typ": "JWT", "kid": format!("forged-{wave}-{i}")}),
            );
            let (v, a) = (v.clone(), a.clone());
            set.spawn(async move { check(&v, &a, Some(&forged), "clientXYZ", Access::Read).await });
        }
        set
    };
    let started = tokio::time::Instant::now();
    for wave in 0..2 {
        let mut set = flood(wave);
        while let Some(r) = set.join_next().await {
            let r = r.unwrap().unwrap_err();
            assert!(
                matches!(r, Refusal::SecondaryToken(TokenProblem::UnknownKey { .. })),
                "{r}"
            );
        }
    }
    let jwks = idp.jwks_requests();
    // One for the first forged kid; more only if the waves outlasted the
    // interval on this (shared, slow) machine.
    let intervals = started.elapsed().as_secs() + 1;
    assert!(
        jwks - 1 <= intervals,
        "{} JWKS requests for 600 forged kids in {} s",
        jwks - 1,
        started.elapsed().as_secs_f32()
    );
    assert!(jwks >= 2, "an unknown kid should cause one re-fetch");
    // The genuine tokens were never in doubt.
    check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_verified_token_cache_still_checks_lifetime_roles_and_audience() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-cache";
    let v = idp
        .builder(tid)
        .clock_skew(Duration::ZERO)
        .verified_token_cache(true)
        .build()
        .unwrap();
    let now = crosstenant_sandbox::jwt::now_secs();
    let mut c = idp.claims(false, tid, "api://api", "agg-app", &["API.Read"]);
    c["exp"] = json!(now + 2);
    let a = idp.sign(&c);
    let b = idp.sign(&idp.claims(
        false,
        tid,
        "api://clientXYZ",
        "agg-app",
        &["clientXYZ.Read"],
    ));
    check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap();
    // Remembered, and still: the secondary token as caller token is the
    // wrong audience, and write needs roles it lacks.
    let r = check(&v, &b, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::WrongAudience { .. })),
        "{r}"
    );
    let r = check(&v, &a, Some(&b), "clientXYZ", Access::Write)
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::CallerLacksApiRole { .. }), "{r}");
    // A tampered copy of a remembered token is verified in full.
    let mut more = payload(&b);
    more["roles"] = json!(["clientXYZ.Read", "clientXYZ.Write"]);
    let r = check(
        &v,
        &a,
        Some(&with_payload(&b, &more)),
        "clientXYZ",
        Access::Read,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(r, Refusal::SecondaryToken(TokenProblem::BadSignature)),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = check(&v, &a, Some(&b), "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::Expired)),
        "{r}"
    );
}

#[tokio::test]
async fn keys_come_only_from_an_https_jwks_uri_and_an_empty_jwks_replaces_nothing() {
    use std::sync::atomic::Ordering;
    let idp = MetadataServer::start().await;
    let tid = "tenant-jwks";
    let a = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));

    idp.state().plain_jwks_uri.store(true, Ordering::SeqCst);
    let v = idp.builder(tid).build().unwrap();
    let r = check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(&r, Refusal::CallerToken(TokenProblem::KeysUnavailable(why)) if why.contains("not https")),
        "{r}"
    );
    assert_eq!(
        idp.jwks_requests(),
        0,
        "keys were read from an http jwks_uri"
    );
    idp.state().plain_jwks_uri.store(false, Ordering::SeqCst);

    let v = idp
        .builder(tid)
        .key_refresh_interval(Duration::from_millis(100))
        .min_key_refresh_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();
    idp.state().empty_jwks.store(true, Ordering::SeqCst);
    let before = idp.jwks_requests();
    tokio::time::timeout(Duration::from_secs(30), async {
        while idp.jwks_requests() < before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("no refresh ran");
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_remembered_token_is_verified_again_once_its_key_is_gone() {
    use crosstenant_validator::keys::StaticJwks;
    let idp = MetadataServer::start().await;
    let tid = "tenant-static";
    let jwks = serde_json::to_value(idp.issuer.jwks()).unwrap();
    let keys = std::sync::Arc::new(StaticJwks::new(&jwks));
    let v = idp
        .builder(tid)
        .key_source(keys.clone())
        .verified_token_cache(true)
        .build()
        .unwrap();
    let a = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();
    check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap();
    // The key leaves the key set: the remembered token is not trusted.
    keys.replace(&json!({ "keys": [] }));
    let r = check(&v, &a, None, "clientXYZ", Access::Read)
        .await
        .unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::UnknownKey { .. })),
        "{r}"
    );
    assert_eq!(idp.metadata_requests(), 0, "a static key source fetched");
}

#[tokio::test]
async fn the_sandbox_api_reads_its_keys_from_the_identity_providers_metadata_over_https() {
    let world = World::start().await;
    let (a, b) = (world.caller_token().await, world.secondary_token().await);
    let stats = world.w.sandbox.identity().stats();
    let before = stats.discovery_requests();
    let ca = reqwest::Certificate::from_pem(world.w.sandbox.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let url = format!("{}api/clientXYZ/data", world.w.sandbox.api().url());
    for _ in 0..3 {
        let resp = http
            .get(&url)
            .bearer_auth(&a)
            .header("X-Secondary-Token", &b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // One fetch of the OpenID configuration (then the JWKS) for three calls.
    assert_eq!(stats.discovery_requests() - before, 1);
    // A token the sandbox's own signer never made: refused by the same
    // validator, with its reason.
    let forged = crosstenant_sandbox::jwt::TokenIssuer::new()
        .unwrap()
        .sign(&payload(&b))
        .unwrap();
    let resp = http
        .get(&url)
        .bearer_auth(&a)
        .header("X-Secondary-Token", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(
        body["ForbidReason"]
            .as_str()
            .unwrap()
            .contains("signature is invalid"),
        "{body}"
    );
}
