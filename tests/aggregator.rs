//! The aggregator's two-token scheme against the sandbox API: a client for
//! its own data, an aggregator on behalf of clients, every kind of bad
//! secondary token, the client's binding promise, token economy at scale,
//! and 401 / 5xx recovery.
#![cfg(all(feature = "amqp", feature = "https"))]

mod common;

use common::{world, World};
use crosstenant::aggregator::{AggregatorClient, AggregatorError, NamedClient};
use crosstenant::{CrossTenantCredential, Error, HttpSettings};
use crosstenant_sandbox::api::Access;
use crosstenant_sandbox::directory::AppRegistration;
use crosstenant_sandbox::faults::{Fault, Service};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims, TokenIssuer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

const API_URI: &str = "api://secure-api";
const API_SCOPE: &str = "api://secure-api/.default";
const XYZ_SCOPE: &str = "api://clientXYZ/.default";

/// The world of section 1b: the API and two clients in the resource owner's
/// tenant; the partner's multi-tenant app as the aggregator, granted both API
/// roles, a read-only grant by clientXYZ and read-write by clientABC.
struct ApiWorld {
    w: World,
    xyz: AppRegistration,
}

async fn api_world() -> ApiWorld {
    let w = world().await;
    let api = w.sandbox.api();
    api.register_api(&w.owner.id, API_URI).unwrap();
    let xyz = api.register_client("clientXYZ").unwrap();
    api.register_client("clientABC").unwrap();
    api.grant_api(&w.app.app_id, &[Access::Read, Access::Write])
        .unwrap();
    api.grant_client(&w.app.app_id, "clientXYZ", &[Access::Read])
        .unwrap();
    api.grant_client(&w.app.app_id, "clientABC", &[Access::Read, Access::Write])
        .unwrap();
    ApiWorld { w, xyz }
}

impl ApiWorld {
    /// The partner's aggregator, through the cross-tenant credential.
    fn aggregator(&self) -> AggregatorClient {
        self.client_for(self.w.credential())
    }

    fn client_for(&self, credential: Arc<CrossTenantCredential>) -> AggregatorClient {
        let http = credential.http_settings().clone();
        AggregatorClient::builder(self.w.sandbox.api().url(), API_URI, credential)
            .http_settings(http)
            .build()
            .unwrap()
    }

    /// A credential for another app registered in the owner's tenant or
    /// with a service principal there.
    fn credential_of(&self, app_id: &str) -> Arc<CrossTenantCredential> {
        let secret = self.w.sandbox.directory().add_secret(app_id, 3600).unwrap();
        self.w
            .builder(&self.w.owner.id)
            .client_id(app_id)
            .client_secret(secret)
            .build()
            .unwrap()
    }

    fn token_requests(&self) -> u64 {
        self.w.sandbox.identity().stats().token_requests()
    }

    fn api_requests(&self) -> u64 {
        self.w.sandbox.api().stats().requests()
    }

    /// A GET with hand-made headers, for tokens our client would never send.
    /// Trusts the sandbox CA; verification stays on.
    async fn raw_get(
        &self,
        client: &str,
        api_token: &str,
        secondary: Option<&str>,
    ) -> (u16, Value) {
        let ca = reqwest::Certificate::from_pem(self.w.sandbox.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_merge([ca])
            .build()
            .unwrap();
        let url = format!("{}api/{client}/data", self.w.sandbox.api().url());
        let mut req = http.get(url).bearer_auth(api_token);
        if let Some(b) = secondary {
            req = req.header("X-Secondary-Token", b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
        (status, body)
    }
}

fn forbid_reason(body: &Value) -> &str {
    body["ForbidReason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_client_reads_and_writes_its_own_data_with_one_token() {
    let aw = api_world().await;
    let api = aw.w.sandbox.api();
    api.grant_api(&aw.xyz.app_id, &[Access::Read, Access::Write])
        .unwrap();
    let client = aw.client_for(aw.credential_of(&aw.xyz.app_id));
    let own = client.as_client("clientXYZ").unwrap();

    let doc = json!({"client": "clientXYZ", "items": [1, 2, 3]});
    let stored: Value = own.put("data", &doc).await.unwrap();
    assert_eq!(stored, doc);
    let read: Value = own.get("data").await.unwrap();
    assert_eq!(read, doc);
    assert_eq!(api.data("clientXYZ"), Some(doc));

    let context: Value = own.get("debug").await.unwrap();
    assert_eq!(context["mode"], "as_client");
    assert_eq!(context["caller"]["appid"], aw.xyz.app_id.as_str());
    assert!(context["secondary"].is_null());
    // One token, for the API; none for its own App ID URI, none on the wire.
    let stats = aw.w.sandbox.identity().stats();
    assert_eq!(stats.token_requests_for(API_SCOPE), 1);
    assert_eq!(stats.token_requests_for(XYZ_SCOPE), 0);
    assert_eq!(api.stats().with_secondary_token(), 0);
    assert_eq!(api.stats().served(), 3);
}

#[tokio::test]
async fn an_aggregator_without_the_secondary_token_gets_403_with_the_reason() {
    let aw = api_world().await;
    let err = aw
        .aggregator()
        .as_client("clientXYZ")
        .unwrap()
        .get::<Value>("data")
        .await
        .unwrap_err();
    let agg = err.as_aggregator().expect("an aggregator error");
    assert_eq!(agg.status(), Some(403));
    let reason = agg.forbid_reason().unwrap();
    assert!(
        reason.contains("X-Secondary-Token") && reason.contains("api://clientXYZ"),
        "{reason}"
    );
    assert!(err.to_string().contains(reason), "{err}");
    assert!(!err.is_transient());
    assert_eq!(aw.w.sandbox.api().stats().forbidden(), 1);
}

#[tokio::test]
async fn with_the_secondary_token_the_aggregator_reads_the_clients_data() {
    let aw = api_world().await;
    let agg = aw.aggregator();
    let xyz = agg.on_behalf_of("api://clientXYZ").unwrap();
    let data: Value = xyz.get("data").await.unwrap();
    assert_eq!(data, json!({"client": "clientXYZ", "items": []}));

    let context: Value = xyz.get("debug").await.unwrap();
    assert_eq!(context["mode"], "on_behalf_of");
    assert_eq!(context["caller"]["appid"], aw.w.app.app_id.as_str());
    assert_eq!(context["caller"]["tid"], aw.w.owner.id.as_str());
    assert_eq!(context["secondary"]["appid"], aw.w.app.app_id.as_str());
    assert_eq!(context["secondary"]["aud"], "api://clientXYZ");
    assert_eq!(context["secondary"]["roles"], json!(["clientXYZ.Read"]));
    // The same handle by the client's bare id and by its application id.
    let by_name: Value = agg
        .on_behalf_of("clientXYZ")
        .unwrap()
        .get("data")
        .await
        .unwrap();
    assert_eq!(by_name, data);
    let by_app_id = agg.on_behalf_of_client(
        NamedClient::new(&aw.xyz.app_id, &format!("api://{}", aw.xyz.app_id)).unwrap(),
    );
    let by_guid: Value = by_app_id.get("data").await.unwrap();
    assert_eq!(by_guid, data);
}

#[tokio::test]
async fn a_write_with_a_read_only_grant_gets_403_with_its_reason() {
    let aw = api_world().await;
    let agg = aw.aggregator();
    let err = agg
        .on_behalf_of("clientXYZ")
        .unwrap()
        .put::<_, Value>("data", &json!({"items": ["overwritten"]}))
        .await
        .unwrap_err();
    let agg_err = err.as_aggregator().expect("an aggregator error");
    assert!(matches!(agg_err, AggregatorError::Forbidden { .. }));
    // The message says whose call it was: the aggregator's, on behalf of
    // the client whose grant fell short.
    assert!(
        err.to_string().contains("PUT https://")
            && err
                .to_string()
                .contains("(on behalf of client clientXYZ) with 403 Forbidden"),
        "{err}"
    );
    let reason = agg_err.forbid_reason().unwrap();
    assert!(
        reason.contains("clientXYZ.Write") && reason.contains("clientXYZ.Read"),
        "{reason}"
    );
    assert_eq!(
        aw.w.sandbox.api().data("clientXYZ"),
        Some(json!({"client": "clientXYZ", "items": []}))
    );
    // A client that granted write is written.
    let written: Value = agg
        .on_behalf_of("clientABC")
        .unwrap()
        .put("data", &json!({"items": ["new"]}))
        .await
        .unwrap();
    assert_eq!(aw.w.sandbox.api().data("clientABC"), Some(written));
}

#[tokio::test]
async fn a_caller_without_the_api_role_is_refused_even_with_the_clients_grant() {
    let aw = api_world().await;
    let d = aw.w.sandbox.directory();
    let api_app = d.resource_app(API_URI).unwrap();
    d.revoke_app_roles(&aw.w.owner.id, &aw.w.app.app_id, &api_app.app_id);
    let err = aw
        .aggregator()
        .on_behalf_of("clientXYZ")
        .unwrap()
        .get::<Value>("data")
        .await
        .unwrap_err();
    let reason = err
        .as_aggregator()
        .expect("an aggregator error")
        .forbid_reason()
        .unwrap()
        .to_string();
    assert!(reason.contains("API.Read"), "{reason}");
}

/// A genuine API token and a genuine secondary token of the aggregator for
/// clientXYZ, to tamper with.
async fn genuine_tokens(aw: &ApiWorld) -> (String, String) {
    let cred = aw.w.credential();
    let a = cred.token(API_SCOPE).await.unwrap();
    let b = cred.token(XYZ_SCOPE).await.unwrap();
    (a.token.secret().to_string(), b.token.secret().to_string())
}

#[tokio::test]
async fn the_genuine_secondary_token_sent_by_hand_is_accepted() {
    // The baseline for the refusals below: the hand-made request itself is fine.
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let (status, body) = aw.raw_get("clientXYZ", &a, Some(&b)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_forged_secondary_token_is_refused() {
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let claims =
        aw.w.sandbox
            .issuer()
            .verify(&b, &["api://clientXYZ"], 0)
            .unwrap();

    // Signed by another key, with every claim right (even Write).
    let mut wanted = claims.clone();
    wanted.roles.push("clientXYZ.Write".into());
    let forger = TokenIssuer::new().unwrap();
    let forged = forger.sign(&wanted).unwrap();
    let (status, body) = aw.raw_get("clientXYZ", &a, Some(&forged)).await;
    assert_eq!(status, 403, "{body}");
    assert!(forbid_reason(&body).contains("signature"), "{body}");

    // The genuine header and signature over a payload with an added role.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = b.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&wanted).unwrap()),
        parts[2]
    );
    let (status, body) = aw.raw_get("clientXYZ", &a, Some(&tampered)).await;
    assert_eq!(status, 403, "{body}");
    assert!(forbid_reason(&body).contains("signature"), "{body}");
}

#[tokio::test]
async fn an_expired_secondary_token_is_refused() {
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let mut claims =
        aw.w.sandbox
            .issuer()
            .verify(&b, &["api://clientXYZ"], 0)
            .unwrap();
    let now = now_secs();
    claims.iat = now - 3700;
    claims.nbf = now - 3700;
    claims.exp = now - 100;
    let expired = aw.w.sandbox.issuer().sign(&claims).unwrap();
    let (status, body) = aw.raw_get("clientXYZ", &a, Some(&expired)).await;
    assert_eq!(status, 403, "{body}");
    assert!(forbid_reason(&body).contains("expired"), "{body}");
}

#[tokio::test]
async fn a_secondary_token_from_another_tenant_is_refused() {
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let mut claims =
        aw.w.sandbox
            .issuer()
            .verify(&b, &["api://clientXYZ"], 0)
            .unwrap();
    claims.tid = aw.w.partner.id.clone();
    claims.iss = AccessClaims::issuer_for(&aw.w.partner.id);
    let foreign = aw.w.sandbox.issuer().sign(&claims).unwrap();
    let (status, body) = aw.raw_get("clientXYZ", &a, Some(&foreign)).await;
    assert_eq!(status, 403, "{body}");
    assert!(forbid_reason(&body).contains(&aw.w.partner.id), "{body}");
}

#[tokio::test]
async fn a_secondary_token_issued_to_another_aggregator_is_refused() {
    let aw = api_world().await;
    let d = aw.w.sandbox.directory();
    let other = d
        .register_app(&aw.w.partner.id, "other-aggregator", true)
        .unwrap();
    d.create_service_principal(&aw.w.owner.id, &other.app_id)
        .unwrap();
    aw.w.sandbox
        .api()
        .grant_client(&other.app_id, "clientXYZ", &[Access::Read])
        .unwrap();
    let theirs = aw
        .credential_of(&other.app_id)
        .token(XYZ_SCOPE)
        .await
        .unwrap();
    let (a, _) = genuine_tokens(&aw).await;
    let (status, body) = aw
        .raw_get("clientXYZ", &a, Some(theirs.token.secret()))
        .await;
    assert_eq!(status, 403, "{body}");
    let reason = forbid_reason(&body);
    assert!(
        reason.contains(&other.app_id) && reason.contains(&aw.w.app.app_id),
        "{reason}"
    );
}

#[tokio::test]
async fn a_secondary_token_for_another_client_is_refused() {
    let aw = api_world().await;
    let (a, _) = genuine_tokens(&aw).await;
    let for_abc =
        aw.w.credential()
            .token("api://clientABC/.default")
            .await
            .unwrap();
    let (status, body) = aw
        .raw_get("clientXYZ", &a, Some(for_abc.token.secret()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(forbid_reason(&body).contains("api://clientABC"), "{body}");
}

#[tokio::test]
async fn a_missing_or_forged_api_token_gets_401_with_a_challenge() {
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let ca = reqwest::Certificate::from_pem(aw.w.sandbox.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let url = format!("{}api/clientXYZ/data", aw.w.sandbox.api().url());
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // The secondary token in the Authorization header: wrong audience.
    let (status, body) = aw.raw_get("clientXYZ", &b, Some(&b)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("audience"));
    let forged = TokenIssuer::new()
        .unwrap()
        .sign(&aw.w.sandbox.issuer().verify(&a, &[API_URI], 0).unwrap())
        .unwrap();
    let (status, _) = aw.raw_get("clientXYZ", &forged, Some(&b)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_client_never_sends_client_xs_token_on_client_ys_path() {
    let aw = api_world().await;
    let agg = aw.aggregator();
    let xyz = agg.on_behalf_of("clientXYZ").unwrap();
    let (api_before, tokens_before) = (aw.api_requests(), aw.token_requests());
    let escape = format!("{}api/clientABC/data", aw.w.sandbox.api().url());
    for path in [
        "../clientABC/data",
        "data/../../clientABC/data",
        "/api/clientABC/data",
        escape.as_str(),
        "data?client=clientABC",
        "data#clientABC",
        "./data",
        "data//x",
    ] {
        let err = xyz.get::<Value>(path).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{path}: {err}");
        assert!(err.to_string().contains("invalid path"), "{path}: {err}");
    }
    // Encoded dots stay literal: the request still names clientXYZ only.
    let url = xyz.url("%2e%2e/clientABC").unwrap();
    assert!(url.path().starts_with("/api/clientXYZ/"), "{url}");
    // An explicit mapping that would pair X's App ID URI with Y's path.
    assert!(NamedClient::new("clientABC", "api://clientXYZ").is_err());
    assert_eq!(aw.api_requests(), api_before, "a request was made");
    assert_eq!(aw.token_requests(), tokens_before, "a token was requested");
}

#[tokio::test]
async fn path_altering_client_ids_are_refused_before_any_request() {
    let aw = api_world().await;
    let agg = aw.aggregator();
    let before = (aw.api_requests(), aw.token_requests());
    for id in [
        "",
        "clientABC/../clientXYZ",
        "client/XYZ",
        "..",
        ".",
        "client?XYZ",
        "client#XYZ",
        "client%2FXYZ",
        "client XYZ",
        "client\r\nXYZ",
        "client\\XYZ",
        "api://contoso.com/clientXYZ",
    ] {
        let err = agg.on_behalf_of(id).unwrap_err();
        let Error::InvalidInput(input) = &err else {
            panic!("{id:?}: {err}");
        };
        assert!(err.to_string().contains(&input.value), "{id:?}: {err}");
        assert!(agg.as_client(id).is_err(), "{id:?}");
    }
    assert_eq!((aw.api_requests(), aw.token_requests()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_for_a_thousand_clients_make_at_most_1001_token_requests() {
    const CLIENTS: usize = 1_000;
    const CALLS: usize = 10_000;
    const IN_FLIGHT: usize = 48;
    let aw = api_world().await;
    let api = aw.w.sandbox.api();
    let names: Vec<String> = (0..CLIENTS).map(|i| format!("client{i:04}")).collect();
    for name in &names {
        api.register_client(name).unwrap();
        api.grant_client(&aw.w.app.app_id, name, &[Access::Read])
            .unwrap();
    }
    let agg = aw.aggregator();
    let handles: Vec<_> = names.iter().map(|n| agg.on_behalf_of(n).unwrap()).collect();
    let tokens_before = aw.token_requests();
    let served_before = api.stats().served();

    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let handle = handles[i % CLIENTS].clone();
        tasks.spawn(async move {
            let data: Value = handle.get("data").await?;
            drop(permit);
            Ok::<_, Error>((handle.client_id().to_string(), data))
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        let (client, data) = joined.unwrap().unwrap();
        assert_eq!(data["client"], client.as_str());
        ok += 1;
    }
    let elapsed = started.elapsed();
    let token_requests = aw.token_requests() - tokens_before;
    println!(
        "{CALLS} calls for {CLIENTS} clients ({IN_FLIGHT} in flight): {elapsed:?}, \
         {token_requests} token requests, {} TLS connections to the API",
        api.connections()
    );
    assert_eq!(ok, CALLS);
    assert_eq!(api.stats().served() - served_before, CALLS as u64);
    assert!(token_requests <= 1_001, "{token_requests} token requests");
    assert_eq!(
        aw.w.sandbox
            .identity()
            .stats()
            .token_requests_for(API_SCOPE),
        1,
        "many clients share one API token"
    );
}

#[tokio::test]
async fn a_401_mid_run_gets_one_refresh_and_one_retry() {
    let aw = api_world().await;
    let xyz = aw.aggregator().on_behalf_of("clientXYZ").unwrap();
    let _: Value = xyz.get("data").await.unwrap();
    let (api_before, tokens_before) = (aw.api_requests(), aw.token_requests());

    aw.w.sandbox.faults().inject(
        Service::Api,
        Fault::Status {
            status: 401,
            retry_after: None,
        },
        1,
    );
    let data: Value = xyz.get("data").await.unwrap();
    assert_eq!(data["client"], "clientXYZ");
    assert_eq!(aw.api_requests() - api_before, 2, "one call, one retry");
    assert_eq!(
        aw.token_requests() - tokens_before,
        1,
        "one refresh of the API token, the client's token kept"
    );

    // A second 401 in a row is reported, not looped on.
    aw.w.sandbox.faults().inject(
        Service::Api,
        Fault::Status {
            status: 401,
            retry_after: None,
        },
        2,
    );
    let (api_before, tokens_before) = (aw.api_requests(), aw.token_requests());
    let err = xyz.get::<Value>("data").await.unwrap_err();
    assert!(
        matches!(
            err.as_aggregator().expect("an aggregator error"),
            AggregatorError::Unauthorized {
                refreshed: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("invalid_token"), "{err}");
    assert_eq!(aw.api_requests() - api_before, 2);
    assert_eq!(aw.token_requests() - tokens_before, 1);
}

#[tokio::test]
async fn a_5xx_is_retried_with_bounded_backoff() {
    let aw = api_world().await;
    let mut http: HttpSettings = aw.w.credential().http_settings().clone();
    http.set_retry(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(10),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(5),
        max_delay: azure_core::time::Duration::milliseconds(50),
    });
    let agg = AggregatorClient::builder(aw.w.sandbox.api().url(), API_URI, aw.w.credential())
        .http_settings(http)
        .build()
        .unwrap();
    let xyz = agg.on_behalf_of("clientXYZ").unwrap();
    let _: Value = xyz.get("data").await.unwrap();

    let faults = aw.w.sandbox.faults();
    faults.inject(
        Service::Api,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        1,
    );
    faults.inject(
        Service::Api,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        1,
    );
    let before = aw.api_requests();
    let data: Value = xyz.get("data").await.unwrap();
    assert_eq!(data["client"], "clientXYZ");
    assert_eq!(aw.api_requests() - before, 3);

    // Bounded: after 3 retries the 5xx is reported, as transient.
    faults.inject(
        Service::Api,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        10,
    );
    let before = aw.api_requests();
    let err = xyz.get::<Value>("data").await.unwrap_err();
    assert_eq!(
        err.as_aggregator().expect("an aggregator error").status(),
        Some(503)
    );
    assert!(err.is_transient());
    assert_eq!(aw.api_requests() - before, 4);
    faults.clear();
}

#[tokio::test]
async fn the_secondary_token_header_is_configurable() {
    let aw = api_world().await;
    let api = aw.w.sandbox.api();
    api.set_secondary_token_header("X-Client-Token");
    let custom = AggregatorClient::builder(api.url(), API_URI, aw.w.credential())
        .http_settings(aw.w.credential().http_settings().clone())
        .secondary_token_header("X-Client-Token")
        .build()
        .unwrap();
    assert_eq!(custom.secondary_token_header(), "X-Client-Token");
    let data: Value = custom
        .on_behalf_of("clientXYZ")
        .unwrap()
        .get("data")
        .await
        .unwrap();
    assert_eq!(data["client"], "clientXYZ");
    let err = aw
        .aggregator()
        .on_behalf_of("clientXYZ")
        .unwrap()
        .get::<Value>("data")
        .await
        .unwrap_err();
    let reason = err
        .as_aggregator()
        .expect("an aggregator error")
        .forbid_reason()
        .unwrap()
        .to_string();
    assert!(reason.contains("X-Client-Token"), "{reason}");
}

#[tokio::test]
async fn errors_never_contain_a_token() {
    let aw = api_world().await;
    let (a, b) = genuine_tokens(&aw).await;
    let agg = aw.aggregator();
    let mut texts = Vec::new();
    let forbidden = agg
        .on_behalf_of("clientXYZ")
        .unwrap()
        .put::<_, Value>("data", &json!({}))
        .await
        .unwrap_err();
    texts.push(format!("{forbidden} {forbidden:?}"));
    aw.w.sandbox.faults().inject(
        Service::Api,
        Fault::Status {
            status: 401,
            retry_after: None,
        },
        2,
    );
    let unauthorized = agg
        .on_behalf_of("clientXYZ")
        .unwrap()
        .get::<Value>("data")
        .await
        .unwrap_err();
    texts.push(format!("{unauthorized} {unauthorized:?}"));
    // No such client in the directory: the secondary token cannot be had.
    let unknown = agg
        .on_behalf_of("clientNOPE")
        .unwrap()
        .get::<Value>("data")
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown.as_aggregator().expect("an aggregator error"),
            AggregatorError::Token { .. }
        ),
        "{unknown}"
    );
    assert!(
        unknown.to_string().contains("api://clientNOPE/.default"),
        "{unknown}"
    );
    texts.push(format!("{unknown} {unknown:?} {agg:?}"));
    for text in &texts {
        for token in [&a, &b] {
            assert!(!text.contains(token.as_str()), "{text}");
        }
        // Every JWT starts with a base64url `{"`: none of any credential's.
        assert!(!text.contains("eyJ"), "{text}");
    }
}
