//! The sandbox answers as Entra ID and Event Hubs do, byte for byte where it
//! matters: `client_secret_basic`, the v1 discovery document, JWKS keys with
//! certificates, v1.0 and v2.0 token shapes, and Event Hubs' 401 in the
//! seed's status-line form or the XML form, each refusal naming its check.
//!
//! Requests go over a raw TLS connection (trusting the sandbox CA) so the
//! status line and headers are seen exactly as sent.

use base64::Engine as _;
use crosstenant_sandbox::demo::{DemoWorld, API_V2_URI, HUB};
use crosstenant_sandbox::directory::EVENTHUBS_APP_ID;
use crosstenant_sandbox::eventhubs::{Role, UnauthorizedForm};
use crosstenant_sandbox::jwt::TokenVersion;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response as it came off the wire.
struct Raw {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {}",
                self.status_line,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn ca_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("CA PEM")
}

/// One HTTP/1.1 request over TLS to `base` (`https://127.0.0.1:port/`),
/// with `Host: host`.
async fn request(
    world: &DemoWorld,
    base: &url::Url,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Raw {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(ca_der(
            world.sandbox.ca_pem(),
        )))
        .expect("CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = format!(
        "{}:{}",
        base.host_str().expect("host"),
        base.port().expect("port")
    );
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    // The server closes after answering (`Connection: close`); a TLS close
    // without close_notify is not a failure here.
    let _ = tls.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Raw {
        status_line,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

async fn idp(w: &DemoWorld, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let base = w.sandbox.authority_host();
    let host = format!("127.0.0.1:{}", base.port().expect("port"));
    request(w, &base, &host, method, path, headers, body.as_bytes()).await
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT segment");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url"),
    )
    .expect("JSON")
}

/// A token by client_secret_post.
async fn token(w: &DemoWorld, tenant: &str, scope: &str) -> String {
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        w.app.app_id,
        urlencode(w.client_secret()),
        urlencode(scope)
    );
    let r = idp(
        w,
        "POST",
        &format!("/{tenant}/oauth2/v2.0/token"),
        &[FORM],
        &body,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

#[tokio::test]
async fn client_secret_basic_is_accepted_with_its_parts_form_urlencoded() {
    let w = DemoWorld::start().await.unwrap();
    let path = format!("/{}/oauth2/v2.0/token", w.owner.id);
    let body = "grant_type=client_credentials&scope=https%3A%2F%2Feventhubs.azure.net%2F.default";
    // Every character of the id percent-encoded: only a server that
    // form-decodes each part after splitting on ':' finds the app.
    let encoded_id: String = w.app.app_id.bytes().map(|b| format!("%{b:02X}")).collect();
    let auth = basic(&encoded_id, &urlencode(w.client_secret()));
    let r = idp(&w, "POST", &path, &[FORM, ("Authorization", &auth)], body).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json()["access_token"].as_str().unwrap().to_string();
    let claims = segment(&t, 1);
    assert_eq!(claims["appid"], w.app.app_id.as_str());
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["tid"], w.owner.id.as_str());

    // A wrong secret in the header is refused as in the body.
    let auth = basic(&w.app.app_id, "wrong");
    let r = idp(&w, "POST", &path, &[FORM, ("Authorization", &auth)], body).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json()["error_codes"][0], 7000215);

    // Two methods at once, or two different client ids: refused.
    let auth = basic(&w.app.app_id, w.client_secret());
    let twice = format!("{body}&client_secret={}", urlencode(w.client_secret()));
    let r = idp(&w, "POST", &path, &[FORM, ("Authorization", &auth)], &twice).await;
    assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "invalid_request");
    let other = format!("{body}&client_id=00000000-0000-0000-0000-000000000001");
    let r = idp(&w, "POST", &path, &[FORM, ("Authorization", &auth)], &other).await;
    assert_eq!(r.status(), 400);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("differs"));

    // Not base64, or no ':' inside.
    for bad in [
        "Basic !!!",
        &format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("no-colon")
        ),
    ] {
        let r = idp(&w, "POST", &path, &[FORM, ("Authorization", bad)], body).await;
        assert_eq!(r.status(), 401, "{bad}");
        assert_eq!(r.json()["error_codes"][0], 7000216);
    }
}

#[tokio::test]
async fn v1_discovery_and_v1_token_endpoint_answer_as_entra() {
    let w = DemoWorld::start().await.unwrap();
    let owner = &w.owner.id;
    for tenant in [owner.as_str(), "contoso.onmicrosoft.com"] {
        let r = idp(
            &w,
            "GET",
            &format!("/{tenant}/.well-known/openid-configuration"),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status(), 200);
        let doc = r.json();
        assert_eq!(doc["issuer"], format!("https://sts.windows.net/{owner}/"));
        let token_endpoint = doc["token_endpoint"].as_str().unwrap();
        assert!(token_endpoint.ends_with(&format!("/{owner}/oauth2/token")));
        assert!(doc["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/common/discovery/keys"));
    }
    let r = idp(
        &w,
        "GET",
        &format!("/{owner}/v2.0/.well-known/openid-configuration"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        r.json()["issuer"],
        format!("https://login.microsoftonline.com/{owner}/v2.0")
    );

    // The v1 endpoint names the resource with `resource=`.
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&resource={}",
        w.app.app_id,
        urlencode(w.client_secret()),
        urlencode("https://eventhubs.azure.net")
    );
    let r = idp(
        &w,
        "POST",
        &format!("/{owner}/oauth2/token"),
        &[FORM],
        &body,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(segment(&t, 1)["aud"], "https://eventhubs.azure.net");

    // The JWKS the document names serves keys with certificates.
    let r = idp(&w, "GET", "/common/discovery/keys", &[], "").await;
    assert_eq!(r.status(), 200);
    assert!(!r.json()["keys"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn jwks_keys_carry_their_certificate_and_tokens_name_it_as_entra_does() {
    let w = DemoWorld::start().await.unwrap();
    w.sandbox.issuer().rotate(false).unwrap();
    let r = idp(
        &w,
        "GET",
        &format!("/{}/discovery/v2.0/keys", w.owner.id),
        &[],
        "",
    )
    .await;
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "both keys after a rotation");
    for key in &keys {
        let x5c = key["x5c"][0].as_str().expect("x5c");
        let der = base64::engine::general_purpose::STANDARD
            .decode(x5c)
            .expect("x5c is standard base64 DER");
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
        assert_eq!(
            key["x5t"],
            x5t.as_str(),
            "x5t is the certificate's thumbprint"
        );
        assert_eq!(
            key["kid"],
            x5t.as_str(),
            "kid equals x5t, as in Entra's keys"
        );
        // The certificate holds the very key the JWK publishes.
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("certificate");
        let spki = cert.public_key().parsed().expect("RSA key");
        let x509_parser::public_key::PublicKey::RSA(rsa) = spki else {
            panic!("not RSA")
        };
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key["n"].as_str().unwrap())
            .unwrap();
        let modulus: Vec<u8> = rsa
            .modulus
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        assert_eq!(modulus, n);
    }

    let v1 = token(&w, &w.owner.id, "https://eventhubs.azure.net/.default").await;
    let header = segment(&v1, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], keys[0]["kid"], "signed by the newest key");
    assert_eq!(header["x5t"], header["kid"], "v1.0 headers carry x5t = kid");

    let v2 = token(&w, &w.owner.id, &format!("{API_V2_URI}/.default")).await;
    let header = segment(&v2, 0);
    assert_eq!(header["kid"], keys[0]["kid"]);
    assert!(header.get("x5t").is_none(), "v2.0 headers carry kid only");
}

/// The claims Microsoft's "access token claims reference" lists for
/// app-only tokens of each version, and no other version's.
#[tokio::test]
async fn v1_and_v2_tokens_have_exactly_their_versions_claims() {
    let w = DemoWorld::start().await.unwrap();
    let owner = &w.owner.id;

    let v1 = segment(
        &token(&w, owner, "https://eventhubs.azure.net/.default").await,
        1,
    );
    assert_eq!(v1["ver"], "1.0");
    assert_eq!(v1["aud"], "https://eventhubs.azure.net");
    assert_eq!(v1["iss"], format!("https://sts.windows.net/{owner}/"));
    assert_eq!(v1["idp"], v1["iss"]);
    assert_eq!(v1["appid"], w.app.app_id.as_str());
    assert_eq!(v1["appidacr"], "1");
    assert!(
        v1.get("azp").is_none() && v1.get("azpacr").is_none(),
        "{v1}"
    );

    // By App ID URI and by api://{client id}: the same v2.0 token shape.
    for scope in [
        format!("{API_V2_URI}/.default"),
        format!("api://{}/.default", w.api_v2.app_id),
    ] {
        let v2 = segment(&token(&w, owner, &scope).await, 1);
        assert_eq!(v2["ver"], "2.0");
        assert_eq!(
            v2["aud"],
            w.api_v2.app_id.as_str(),
            "aud is the resource's client id"
        );
        assert_eq!(
            v2["iss"],
            format!("https://login.microsoftonline.com/{owner}/v2.0")
        );
        assert_eq!(v2["azp"], w.app.app_id.as_str());
        assert_eq!(v2["azpacr"], "1");
        assert_eq!(v2["tid"], owner.as_str());
        assert_eq!(v2["idtyp"], "app");
        assert_eq!(v2["roles"], serde_json::json!(["API.Read", "API.Write"]));
        for v1_only in ["appid", "appidacr", "idp"] {
            assert!(v2.get(v1_only).is_none(), "{v1_only} in {v2}");
        }
    }

    // The sandbox's own verifier reads both, each with its own issuer only.
    let issuer = w.sandbox.issuer();
    let t2 = token(&w, owner, &format!("{API_V2_URI}/.default")).await;
    let c = issuer
        .verify(&t2, &[&w.api_v2.app_id], 0)
        .expect("v2 verifies");
    assert_eq!(c.appid, w.app.app_id);
    assert_eq!(c.appidacr, "1");
    let mut forged = segment(&t2, 1);
    forged["iss"] = format!("https://sts.windows.net/{owner}/").into();
    let forged = issuer.sign_as(&forged, TokenVersion::V2).unwrap();
    assert!(
        issuer.verify(&forged, &[&w.api_v2.app_id], 0).is_err(),
        "a v2.0 token with the v1.0 issuer is not one Entra issued"
    );
}

async fn send(w: &DemoWorld, token: &str) -> Raw {
    let base = w.sandbox.eventhubs().https_endpoint();
    request(
        w,
        &base,
        &w.namespace,
        "POST",
        &format!("/{HUB}/messages"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            (
                "Content-Type",
                "application/atom+xml;type=entry;charset=utf-8",
            ),
        ],
        b"{\"celsius\":21.5}",
    )
    .await
}

#[tokio::test]
async fn event_hubs_accepts_v2_tokens_when_its_registration_asks_for_them() {
    let w = DemoWorld::start().await.unwrap();
    w.sandbox
        .directory()
        .set_access_token_version(EVENTHUBS_APP_ID, TokenVersion::V2)
        .unwrap();
    let t = token(&w, &w.owner.id, "https://eventhubs.azure.net/.default").await;
    let claims = segment(&t, 1);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["aud"], EVENTHUBS_APP_ID);
    let r = send(&w, &t).await;
    assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(&r.body));
    let events = w.sandbox.eventhubs().events(&w.namespace, HUB);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].sender_app_id, w.app.app_id,
        "azp read as the sender"
    );

    // A v2.0 token from the partner's home tenant: still 40100.
    let home = token(&w, &w.partner.id, "https://eventhubs.azure.net/.default").await;
    assert_eq!(send(&w, &home).await.status(), 401);
}

#[tokio::test]
async fn a_home_tenant_token_gets_the_seeds_status_line_and_an_empty_body() {
    let w = DemoWorld::start().await.unwrap();
    let home = token(&w, &w.partner.id, "https://eventhubs.azure.net/.default").await;
    let r = send(&w, &home).await;
    assert_eq!(r.status_line, "HTTP/1.1 401 SubCode=40100: Unauthorized");
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());

    // Switched: the XML form, naming the check.
    w.sandbox
        .eventhubs()
        .set_unauthorized_form(UnauthorizedForm::XmlBody);
    let r = send(&w, &home).await;
    assert_eq!(r.status_line, "HTTP/1.1 401 Unauthorized");
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.starts_with("<Error><Code>401</Code><Detail>SubCode=40100: "),
        "{body}"
    );
    assert!(body.contains("Check failed: namespace tenant"), "{body}");
    assert!(body.contains(&w.partner.id), "{body}");
}

#[tokio::test]
async fn other_sub_codes_keep_the_xml_form_by_default_and_move_to_the_reason_phrase_when_asked() {
    let w = DemoWorld::start().await.unwrap();
    let r = send(&w, "not-a-jwt").await;
    assert_eq!(r.status_line, "HTTP/1.1 401 Unauthorized");
    assert!(String::from_utf8_lossy(&r.body).contains("SubCode=40105"));

    w.sandbox
        .eventhubs()
        .set_unauthorized_form(UnauthorizedForm::ReasonPhrase);
    let r = send(&w, "not-a-jwt").await;
    assert_eq!(r.status_line, "HTTP/1.1 401 SubCode=40105: Unauthorized");
    assert!(r.body.is_empty());
}

/// Issue #14 point 2: both checks answer 40100; the detail and the counters
/// say which fired. Each case is set up so only one check can fail.
#[tokio::test]
async fn each_40100_names_the_check_that_refused() {
    let w = DemoWorld::start().await.unwrap();
    let eh = w.sandbox.eventhubs();
    eh.set_unauthorized_form(UnauthorizedForm::XmlBody);
    let stats = eh.stats();

    // Only the tenant check: the home tenant's principal holds the role on
    // the namespace too, so the role check alone would pass.
    let home_sp = w
        .sandbox
        .directory()
        .service_principal(&w.partner.id, &w.app.app_id)
        .unwrap();
    assert!(eh.assign_role(&w.namespace, &home_sp.object_id, Role::DataSender));
    let home = token(&w, &w.partner.id, "https://eventhubs.azure.net/.default").await;
    let r = send(&w, &home).await;
    assert_eq!(r.status(), 401);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.contains("SubCode=40100") && body.contains("Check failed: namespace tenant"),
        "{body}"
    );
    assert!(!body.contains("role assignment"), "{body}");
    assert_eq!(stats.refused_wrong_tenant.load(Ordering::Relaxed), 1);
    assert_eq!(stats.refused_missing_role.load(Ordering::Relaxed), 0);

    // Only the role check: the right tenant's token, the role revoked.
    let sp = w
        .sandbox
        .directory()
        .service_principal(&w.owner.id, &w.app.app_id)
        .unwrap();
    eh.revoke_roles(&w.namespace, &sp.object_id);
    let owner = token(&w, &w.owner.id, "https://eventhubs.azure.net/.default").await;
    let r = send(&w, &owner).await;
    assert_eq!(r.status(), 401);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.contains("SubCode=40100") && body.contains("Check failed: role assignment"),
        "{body}"
    );
    assert!(body.contains(&sp.object_id), "{body}");
    assert!(!body.contains("namespace tenant"), "{body}");
    assert_eq!(stats.refused_wrong_tenant.load(Ordering::Relaxed), 1);
    assert_eq!(stats.refused_missing_role.load(Ordering::Relaxed), 1);
}

/// msal for Python writes `exp` and `nbf` as `time.time()` floats (RFC 7519
/// allows fractional NumericDates): read as whole seconds, not as missing;
/// an expired float `exp` is still refused.
#[tokio::test]
async fn client_assertions_with_fractional_times_are_read_not_ignored() {
    let w = DemoWorld::start().await.unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    w.sandbox
        .directory()
        .add_certificate(&w.app.app_id, cert.der())
        .unwrap();
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.der());
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap();
    let path = format!("/{}/oauth2/v2.0/token", w.owner.id);
    let audience = format!("{}{}", w.sandbox.authority_host(), &path[1..]);
    let now = crosstenant_sandbox::jwt::now_secs() as f64 + 0.25;
    let assertion = |exp: f64| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(base64::engine::general_purpose::URL_SAFE.encode(sha1));
        let claims = serde_json::json!({
            "aud": audience, "iss": w.app.app_id, "sub": w.app.app_id,
            "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "exp": exp,
        });
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    };
    let ask = |assertion: String| {
        format!(
            "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={assertion}",
            w.app.app_id,
            urlencode("https://eventhubs.azure.net/.default"),
            urlencode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        )
    };
    let r = idp(&w, "POST", &path, &[FORM], &ask(assertion(now + 600.5))).await;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        segment(r.json()["access_token"].as_str().unwrap(), 1)["appidacr"],
        "2"
    );
    let r = idp(&w, "POST", &path, &[FORM], &ask(assertion(now - 3600.5))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json()["error_codes"][0], 700024);
}

#[test]
fn a_token_naming_no_client_is_malformed() {
    let issuer = crosstenant_sandbox::jwt::TokenIssuer::new().unwrap();
    let now = crosstenant_sandbox::jwt::now_secs();
    let t = issuer
        .sign(&serde_json::json!({
            "aud": "https://eventhubs.azure.net", "iss": "https://sts.windows.net/t/",
            "tid": "t", "oid": "o", "sub": "o", "idtyp": "app", "ver": "1.0",
            "iat": now, "nbf": now, "exp": now + 600, "uti": "u", "roles": [],
        }))
        .unwrap();
    let err = issuer
        .verify(&t, &["https://eventhubs.azure.net"], 0)
        .unwrap_err();
    assert!(
        matches!(err, crosstenant_sandbox::jwt::TokenRejection::Malformed(ref m) if m.contains("no client")),
        "{err:?}"
    );
}
