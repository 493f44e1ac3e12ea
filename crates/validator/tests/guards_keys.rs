//! Guards of the validator's key source and clouds found by mutation testing
//! (docs/MUTANTS.md in the repository root): each test here kills mutants
//! of `src/keys.rs` or `src/cloud.rs` that survived the rest of the suite.

mod common;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{bearer, MetadataServer};
use crosstenant_sandbox::jwt::TokenIssuer;
use crosstenant_sandbox::tls::{serve_https, HttpsServer, SandboxCa};
use crosstenant_validator::keys::{HttpsMetadata, KeySource};
use crosstenant_validator::{Access, Cloud, Refusal, TokenProblem};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest metadata or JWKS document the key source reads
/// (`MAX_DOCUMENT` in `src/keys.rs`; Entra's are a few KiB).
const MAX_DOCUMENT: usize = 1024 * 1024;

/// An identity provider whose JWKS is padded to an exact size, sent with a
/// `Content-Length` or chunked (without one).
struct PaddedJwks {
    issuer: TokenIssuer,
    size: AtomicUsize,
    chunked: AtomicBool,
}

/// The JWKS of `issuer` as one JSON document of exactly `size` bytes (an
/// extra `padding` member, which a JWKS reader ignores).
fn padded_jwks(issuer: &TokenIssuer, size: usize) -> Vec<u8> {
    let mut doc =
        json!({ "keys": serde_json::to_value(issuer.jwks()).unwrap()["keys"], "padding": "" });
    let bare = serde_json::to_vec(&doc).unwrap().len();
    assert!(size >= bare, "{size} bytes cannot hold the JWKS");
    doc["padding"] = json!("x".repeat(size - bare));
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert_eq!(bytes.len(), size);
    bytes
}

async fn padded_metadata(
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(json!({
        "issuer": format!("https://{host}/{tenant}/v2.0"),
        "jwks_uri": format!("https://{host}/{tenant}/discovery/v2.0/keys"),
    }))
}

async fn padded_keys(State(st): State<Arc<PaddedJwks>>) -> Response {
    let body = padded_jwks(&st.issuer, st.size.load(Ordering::SeqCst));
    if st.chunked.load(Ordering::SeqCst) {
        // A stream of unknown length: HTTP/1.1 sends it chunked, with no
        // Content-Length for the client to check up front.
        let stream = Body::from(body).into_data_stream();
        (
            [(CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response()
    } else {
        ([(CONTENT_TYPE, "application/json")], body).into_response()
    }
}

async fn padded_server(ca: &SandboxCa, st: Arc<PaddedJwks>) -> HttpsServer {
    let router = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(padded_metadata),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(padded_keys))
        .with_state(st);
    serve_https(ca, router).await.expect("server")
}

/// A metadata or JWKS document is read up to 1 MiB, inclusive, whether the
/// size is announced in `Content-Length` or only known once read: a
/// document of exactly 1 MiB gives its keys, one byte more is refused as
/// too large (and the keys stay unknown). Kills `replace * with +` in
/// `MAX_DOCUMENT` and `replace > with ==`/`>=` in `MetaInner::get_json`'s
/// two size checks (the announced and the read length).
#[tokio::test]
async fn a_jwks_of_exactly_one_mebibyte_is_read_and_one_byte_more_is_refused() {
    let ca = SandboxCa::generate().expect("CA");
    let st = Arc::new(PaddedJwks {
        issuer: TokenIssuer::new().expect("issuer"),
        size: AtomicUsize::new(MAX_DOCUMENT),
        chunked: AtomicBool::new(false),
    });
    let server = padded_server(&ca, st.clone()).await;
    let tid = "tenant-padded";
    let kid = st.issuer.jwks().keys[0]
        .common
        .key_id
        .clone()
        .expect("a kid");
    for chunked in [false, true] {
        st.chunked.store(chunked, Ordering::SeqCst);
        let how = if chunked {
            "chunked"
        } else {
            "with Content-Length"
        };

        st.size.store(MAX_DOCUMENT + 1, Ordering::SeqCst);
        let keys = HttpsMetadata::builder(Cloud::custom(server.url().as_str()).unwrap(), [tid])
            .extra_root_pem(ca.pem())
            .unwrap()
            .build()
            .unwrap();
        let err = keys.refresh().await.expect_err(how);
        assert!(
            err.contains(&format!("more than {MAX_DOCUMENT} bytes")),
            "{how}: {err}"
        );
        assert!(!keys.holds(tid, &kid), "{how}: a key of a refused JWKS");

        st.size.store(MAX_DOCUMENT, Ordering::SeqCst);
        let keys = HttpsMetadata::builder(Cloud::custom(server.url().as_str()).unwrap(), [tid])
            .extra_root_pem(ca.pem())
            .unwrap()
            .build()
            .unwrap();
        keys.refresh()
            .await
            .unwrap_or_else(|e| panic!("{how}: a JWKS of exactly the limit was refused: {e}"));
        assert!(keys.holds(tid, &kid), "{how}");
        keys.key(tid, &kid)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}"));
    }
}

/// `refresh` (the resource owner's fail-fast at start-up) fetches at once
/// and reports an outage; once it succeeded, the first token needs no
/// fetch of its own. `fetches` counts every attempt, failed ones too.
/// Kills `HttpsMetadata::refresh -> Ok(())` and `HttpsMetadata::fetches ->
/// 0`/`1`.
#[tokio::test]
async fn refresh_fetches_now_and_reports_an_outage_and_fetches_counts_each_attempt() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-refresh";
    let keys = HttpsMetadata::builder(Cloud::custom(&idp.url()).unwrap(), [tid])
        .extra_root_pem(idp.ca.pem())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys.fetches(), 0, "nothing is fetched before it is asked");

    idp.set_down(true);
    let err = keys.refresh().await.expect_err("the outage is reported");
    assert!(err.contains("503"), "{err}");
    assert_eq!(idp.metadata_requests(), 1);
    assert_eq!(keys.fetches(), 1);

    idp.set_down(false);
    keys.refresh().await.expect("metadata is back");
    assert_eq!(idp.metadata_requests(), 2);
    assert_eq!(idp.jwks_requests(), 1);
    assert_eq!(keys.fetches(), 2);

    let kid = idp.issuer.jwks().keys[0]
        .common
        .key_id
        .clone()
        .expect("a kid");
    keys.key(tid, &kid).await.expect("the refreshed key");
    assert_eq!(idp.metadata_requests(), 2, "the key was already held");
}

/// The default routine refresh is every 12 hours (Microsoft.IdentityModel's
/// `AutomaticRefreshInterval`): once started, the background refresh does
/// not poll the tenant's metadata. Kills `replace * with /` in
/// `HttpsMetadata::builder` (12 / 3600 = 0 s: a refresh loop without pause
/// hammering Entra).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_background_refresh_does_not_poll_the_tenant() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-default";
    let keys = HttpsMetadata::builder(Cloud::custom(&idp.url()).unwrap(), [tid])
        .extra_root_pem(idp.ca.pem())
        .unwrap()
        .build()
        .unwrap();
    keys.refresh().await.expect("keys");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        idp.metadata_requests(),
        1,
        "the background refresh polled the metadata"
    );
}

/// The verified-token cache trusts a remembered token only while its key is
/// still published: once the tenant retires the key (and the key source
/// has fetched the new set), the remembered token is verified again and
/// refused. Kills `<HttpsMetadata as KeySource>::holds -> true` (the
/// `StaticJwks` side is proven in tests/validator.rs).
#[tokio::test]
async fn a_remembered_token_is_refused_once_the_tenant_retires_its_key() {
    let idp = MetadataServer::start().await;
    let tid = "tenant-retire";
    let v = idp
        .builder(tid)
        .verified_token_cache(true)
        .min_key_refresh_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let check = |token: String| {
        let v = v.clone();
        async move {
            v.authorize_tokens(Some(&bearer(&token)), None, "clientXYZ", Access::Read)
                .await
        }
    };
    let old = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    check(old.clone()).await.expect("verified");
    check(old.clone()).await.expect("remembered");

    // The tenant rotates and retires the old key; a token of the new key
    // makes the key source fetch the new set.
    idp.issuer.rotate(true).unwrap();
    let new = idp.sign(&idp.claims(false, tid, "api://api", "xyz-app", &["API.Read"]));
    check(new).await.expect("the new key is fetched");

    let r = check(old).await.unwrap_err();
    assert!(
        matches!(r, Refusal::CallerToken(TokenProblem::UnknownKey { .. })),
        "a token of a retired key was accepted from the cache: {r}"
    );
}

/// The issuers a cloud's tokens may carry, as the resource owner would list
/// them in its configuration ("Microsoft identity platform access tokens",
/// "National clouds"). Kills the `vec![]`-style mutants of
/// `Cloud::issuers_for`.
#[test]
fn each_cloud_lists_its_v1_and_v2_issuers_for_a_tenant() {
    assert_eq!(
        Cloud::public().issuers_for("t1"),
        [
            "https://sts.windows.net/t1/",
            "https://login.microsoftonline.com/t1/v2.0"
        ]
    );
    assert_eq!(
        Cloud::china().issuers_for("t1"),
        [
            "https://sts.chinacloudapi.cn/t1/",
            "https://login.partner.microsoftonline.cn/t1/v2.0",
            "https://login.chinacloudapi.cn/t1/v2.0"
        ]
    );
    let custom = Cloud::custom("https://127.0.0.1:8443/idp").unwrap();
    assert_eq!(
        custom.issuers_for("t1"),
        [
            "https://sts.windows.net/t1/",
            "https://127.0.0.1:8443/idp/t1/v2.0"
        ]
    );
}
