//! The sandbox's token signer and verifier: RS256 JWTs and their JWKS.
//!
//! Entra signs access tokens with RSA keys it publishes as a JWKS, and every
//! resource verifies a token against that JWKS. The sandbox does the same:
//! [`TokenIssuer`] holds the signing keys (several at once, so a key rotation
//! can be shown), publishes them as a JWKS, and [`TokenIssuer::verify`]
//! checks a token the way a resource does: signature against the published
//! keys, issuer, audience, lifetime. Event Hubs and the aggregator API both
//! call it; neither looks at the keys directly.
//!
//! As in Entra's published key sets ("Access tokens in the Microsoft identity
//! platform", section "Validate the signature"), each key comes with a
//! self-signed certificate: the JWKS entry carries `x5c` (the certificate,
//! standard base64 DER) and `x5t` (its base64url SHA-1 thumbprint), and `kid`
//! equals `x5t`. Tokens name their key by `kid`; v1.0 tokens also carry `x5t`
//! in their header, v2.0 tokens only `kid` ([`TokenVersion`]).
//!
//! Both token versions verify: v1.0 tokens (`iss`
//! `https://sts.windows.net/{tid}/`, `appid`/`appidacr`) and v2.0 tokens
//! (`iss` `https://login.microsoftonline.com/{tid}/v2.0`, `azp`/`azpacr`),
//! each only with its own issuer form; [`AccessClaims`] reads either.

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest token the sandbox's services read (64 KiB): larger ones are
/// refused as malformed before any decoding. The sandbox keeps its own limit
/// rather than borrowing the client's, so a client that sends oversized
/// tokens is caught by a test instead of mirrored.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The claims of a compact JWT, read **without** verifying anything: for
/// routing a client assertion to the check that verifies it (which key,
/// which audience). Never trust what this returns on its own.
pub fn unverified_claims(
    token: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    use base64::Engine as _;
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!("the token is larger than {MAX_TOKEN_LEN} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three dot-separated segments".into());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the payload is not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the payload is not a JSON object: {e}"))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The claims of an app-only access token as the sandbox's services read
/// them, from a v1.0 or a v2.0 token: the client id is in both `appid` and
/// `azp`, and how it authenticated in `appidacr`, whichever of
/// `appid`/`appidacr` (v1.0) or `azp`/`azpacr` (v2.0) the token carried.
/// Serialized as is, it is a v1.0-shaped token (with `azp` besides), for
/// tests that forge tokens; what the identity provider issues follows
/// Microsoft's access token claims reference exactly (see
/// `identity::access_token_claims`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The resource: `https://eventhubs.azure.net`, `api://secure-api`; in
    /// v2.0 tokens always the resource's client id (a GUID).
    pub aud: String,
    /// `https://sts.windows.net/{tid}/` (v1.0) or
    /// `https://login.microsoftonline.com/{tid}/v2.0` (v2.0).
    pub iss: String,
    /// The client (application) id the token was issued to (`appid` of
    /// v1.0 tokens; taken from `azp` for v2.0 tokens).
    #[serde(default)]
    pub appid: String,
    /// The same client id, as v2.0 tokens carry it (taken from `appid` for
    /// v1.0 tokens).
    #[serde(default)]
    pub azp: String,
    /// The service principal's object id in the issuing tenant.
    pub oid: String,
    /// Equals `oid` for app tokens.
    pub sub: String,
    /// The issuing tenant.
    pub tid: String,
    /// App roles granted to the client on the resource.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Always `app` for client-credentials tokens.
    pub idtyp: String,
    /// `1.0` or `2.0`.
    pub ver: String,
    /// How the client authenticated: `1` secret, `2` certificate or
    /// assertion (`appidacr` of v1.0 tokens, `azpacr` of v2.0 ones).
    #[serde(default)]
    pub appidacr: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires.
    pub exp: i64,
    /// Unique token id.
    pub uti: String,
}

impl AccessClaims {
    /// The issuer Entra puts in v1.0 tokens of tenant `tid`.
    pub fn issuer_for(tid: &str) -> String {
        format!("https://sts.windows.net/{tid}/")
    }

    /// The issuer Entra puts in v2.0 tokens of tenant `tid`.
    pub fn v2_issuer_for(tid: &str) -> String {
        format!("https://login.microsoftonline.com/{tid}/v2.0")
    }

    /// The issuer a token of version `ver` from tenant `tid` must carry.
    fn expected_issuer(ver: &str, tid: &str) -> String {
        if ver == "2.0" {
            Self::v2_issuer_for(tid)
        } else {
            Self::issuer_for(tid)
        }
    }
}

/// A token as it travels: [`AccessClaims`] plus the v2.0-only `azpacr`.
#[derive(Deserialize)]
struct WireClaims {
    #[serde(flatten)]
    claims: AccessClaims,
    #[serde(default)]
    azpacr: String,
}

impl WireClaims {
    /// Fills the client id and authentication class from whichever form the
    /// token carried.
    fn normalized(self) -> AccessClaims {
        let mut c = self.claims;
        if c.appid.is_empty() {
            c.appid = c.azp.clone();
        }
        if c.azp.is_empty() {
            c.azp = c.appid.clone();
        }
        if c.appidacr.is_empty() {
            c.appidacr = self.azpacr;
        }
        c
    }
}

/// The access token format a resource asked for in its app registration
/// (`accessTokenAcceptedVersion` in the manifest,
/// `api.requestedAccessTokenVersion` in Microsoft Graph): null or 1 means
/// v1.0 tokens, 2 means v2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenVersion {
    /// v1.0: header with `x5t` and `kid`.
    #[default]
    V1,
    /// v2.0: header with `kid` only.
    V2,
}

/// Why a resource refused a token. Each maps to the service's own answer
/// (Event Hubs' `401 SubCode=…`, the API's 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// No token, or an empty one (Event Hubs 40102).
    #[error("no token was presented")]
    Missing,
    /// Not a JWT, or not one of ours (40105).
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// Signed by a key that is not in the JWKS, or tampered with (40103).
    #[error("the token's signature is invalid: {0}")]
    InvalidSignature(String),
    /// Issued for another audience (40104).
    #[error("the token's audience {actual} is not {expected}")]
    InvalidAudience {
        /// The audiences the resource accepts.
        expected: String,
        /// The token's `aud`.
        actual: String,
    },
    /// Past `exp` or before `nbf` (40106).
    #[error("the token has expired or is not yet valid")]
    Expired,
    /// The issuer is not the one of the token's own tenant and version
    /// (`https://sts.windows.net/{tid}/` for v1.0,
    /// `https://login.microsoftonline.com/{tid}/v2.0` for v2.0).
    #[error("the token's issuer {0} does not match its tenant")]
    InvalidIssuer(String),
}

struct SigningKey {
    /// Equals the certificate's `x5t`, as Entra's `kid`s do.
    kid: String,
    encoding: EncodingKey,
    /// Decoded once, as a resource server keeps the keys of the JWKS it
    /// fetched rather than decoding them for every request.
    decoding: DecodingKey,
    jwk: Jwk,
}

/// Signs and verifies sandbox access tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    keys: Arc<RwLock<Vec<Arc<SigningKey>>>>,
    verified: Arc<VerifiedTokens>,
}

/// Tokens whose signature and issuer have been verified, with their claims.
struct VerifiedTokens {
    enabled: AtomicBool,
    claims: Mutex<HashMap<String, AccessClaims>>,
}

/// Verified tokens remembered at most (then forgotten all at once).
const VERIFIED_CACHE_LIMIT: usize = 10_000;

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").finish_non_exhaustive()
    }
}

fn new_signing_key() -> Result<SigningKey, String> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .map_err(|e| format!("RSA key generation failed: {e}"))?;
    let encoding = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes())
        .map_err(|e| format!("RSA key load failed: {e}"))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
        .map_err(|e| format!("JWK derivation failed: {e}"))?;
    // A self-signed certificate for the key, as Entra publishes one per
    // signing key (valid from a day ago for five years, like Entra's).
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| format!("signing certificate: {e}"))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "crosstenant sandbox token signing",
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(5 * 365);
    let cert = params
        .self_signed(&kp)
        .map_err(|e| format!("signing certificate: {e}"))?;
    let der = cert.der();
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
    jwk.common.x509_chain = Some(vec![base64::engine::general_purpose::STANDARD.encode(der)]);
    jwk.common.x509_sha1_fingerprint = Some(kid.clone());
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("JWK decoding failed: {e}"))?;
    Ok(SigningKey {
        kid,
        encoding,
        decoding,
        jwk,
    })
}

impl TokenIssuer {
    /// A new issuer with one fresh RSA-2048 signing key.
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            keys: Arc::new(RwLock::new(vec![Arc::new(new_signing_key()?)])),
            verified: Arc::new(VerifiedTokens {
                enabled: AtomicBool::new(true),
                claims: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Rotates the signing key as Entra does: a new key signs from now on,
    /// and the old one stays in the JWKS so tokens it signed still verify.
    /// With `retire_old`, the old keys leave the JWKS at once, so tokens
    /// they signed stop verifying.
    pub fn rotate(&self, retire_old: bool) -> Result<(), String> {
        let key = Arc::new(new_signing_key()?);
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if retire_old {
            keys.clear();
        }
        keys.insert(0, key);
        drop(keys);
        self.forget_verified();
        Ok(())
    }

    /// The published key set, as served at `/discovery/v2.0/keys`.
    pub fn jwks(&self) -> JwkSet {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Signs `claims` with the current key, with the header of an Entra
    /// v1.0 token: `typ`, `alg` RS256, `x5t` and `kid` (equal).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        self.sign_as(claims, TokenVersion::V1)
    }

    /// Signs `claims` with the current key, with the header Entra gives
    /// tokens of `version`: v1.0 `x5t` and `kid`, v2.0 `kid` only.
    pub fn sign_as<T: Serialize>(
        &self,
        claims: &T,
        version: TokenVersion,
    ) -> Result<String, String> {
        let key = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.first().cloned().ok_or("no signing key")?
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        if version == TokenVersion::V1 {
            header.x5t = Some(key.kid.clone());
        }
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| e.to_string())
    }

    /// Verifies an access token as a resource does: signature against the
    /// JWKS, `iss` matching its `tid`, `aud` among `audiences` (compared
    /// without a trailing `/`), and `nbf`/`exp` with `leeway_secs` of skew.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[&str],
        leeway_secs: u64,
    ) -> Result<AccessClaims, TokenRejection> {
        let token = token.trim();
        let caching = self.verified.enabled.load(Ordering::Relaxed);
        if caching {
            let hit = self
                .verified
                .claims
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(token)
                .cloned();
            if let Some(claims) = hit {
                return check_context(claims, audiences, leeway_secs);
            }
        }
        let claims = verify_signed(token, |kid| {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.iter()
                .find(|k| k.kid == kid)
                .cloned()
                .map(KeyRef::Held)
                .ok_or_else(|| TokenRejection::InvalidSignature(format!("unknown kid {kid}")))
        })?;
        if caching {
            let mut cache = self
                .verified
                .claims
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if cache.len() >= VERIFIED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(token.to_string(), claims.clone());
        }
        check_context(claims, audiences, leeway_secs)
    }

    /// Whether verified tokens are remembered (on by default). A resource
    /// server verifies a token's signature once and then only the checks
    /// that change per request (audience, lifetime), as Envoy's `jwt_authn`
    /// cache does; the RS256 check (~20 µs) would otherwise dominate a
    /// loopback call and hide the client's own cost in benchmarks. Tokens
    /// are remembered byte for byte, so a tampered token is verified in
    /// full, and a key rotation forgets them all.
    pub fn set_verified_token_cache(&self, on: bool) {
        self.verified.enabled.store(on, Ordering::Relaxed);
        self.forget_verified();
    }

    fn forget_verified(&self) {
        self.verified
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// A verification key: one of the issuer's own (decoded once), or one
/// decoded from a JWKS for this call.
enum KeyRef {
    Held(Arc<SigningKey>),
    Decoded(DecodingKey),
}

impl KeyRef {
    fn decoding(&self) -> &DecodingKey {
        match self {
            KeyRef::Held(k) => &k.decoding,
            KeyRef::Decoded(k) => k,
        }
    }
}

/// Verifies a token against a JWKS; see [`TokenIssuer::verify`].
pub fn verify_with_jwks(
    jwks: &JwkSet,
    token: &str,
    audiences: &[&str],
    leeway_secs: u64,
) -> Result<AccessClaims, TokenRejection> {
    verify_with(token, audiences, leeway_secs, |kid| {
        let jwk = jwks
            .find(kid)
            .ok_or_else(|| TokenRejection::InvalidSignature(format!("unknown kid {kid}")))?;
        DecodingKey::from_jwk(jwk)
            .map(KeyRef::Decoded)
            .map_err(|e| TokenRejection::InvalidSignature(e.to_string()))
    })
}

/// Verifies a token with the key `key_for` finds for its `kid`; see
/// [`TokenIssuer::verify`].
fn verify_with(
    token: &str,
    audiences: &[&str],
    leeway_secs: u64,
    key_for: impl FnOnce(&str) -> Result<KeyRef, TokenRejection>,
) -> Result<AccessClaims, TokenRejection> {
    check_context(verify_signed(token, key_for)?, audiences, leeway_secs)
}

/// What a token says about itself, once its signature (with the key
/// `key_for` finds for its `kid`) and its issuer check out.
fn verify_signed(
    token: &str,
    key_for: impl FnOnce(&str) -> Result<KeyRef, TokenRejection>,
) -> Result<AccessClaims, TokenRejection> {
    if token.is_empty() {
        return Err(TokenRejection::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenRejection::Malformed("too large".into()));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenRejection::Malformed(e.to_string()))?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenRejection::InvalidSignature(format!(
            "algorithm {:?} is not RS256",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| TokenRejection::InvalidSignature("no kid".into()))?;
    let key = key_for(&kid)?;
    // Lifetime and audience are checked below, by hand, so each failure maps
    // to its own rejection; the library checks the signature only.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<WireClaims>(token, key.decoding(), &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature | K::InvalidRsaKey(_) | K::InvalidAlgorithm => {
                    TokenRejection::InvalidSignature(e.to_string())
                }
                _ => TokenRejection::Malformed(e.to_string()),
            }
        })?;
    let claims = data.claims.normalized();
    // Each version has its own issuer form ("Access token claims
    // reference": `iss`); a v2.0 token with a v1.0 issuer, or the reverse,
    // is not one Entra issued.
    if claims.iss != AccessClaims::expected_issuer(&claims.ver, &claims.tid) {
        return Err(TokenRejection::InvalidIssuer(claims.iss));
    }
    if claims.appid.is_empty() {
        return Err(TokenRejection::Malformed(
            "the token names no client (neither appid nor azp)".into(),
        ));
    }
    Ok(claims)
}

/// The checks that depend on who is asking and when: `aud` among
/// `audiences`, and `nbf`/`exp` with `leeway_secs` of skew.
fn check_context(
    claims: AccessClaims,
    audiences: &[&str],
    leeway_secs: u64,
) -> Result<AccessClaims, TokenRejection> {
    let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    if !audiences.iter().any(|a| norm(a) == norm(&claims.aud)) {
        return Err(TokenRejection::InvalidAudience {
            expected: audiences.join(" or "),
            actual: claims.aud,
        });
    }
    let now = now_secs();
    let leeway = leeway_secs as i64;
    if claims.exp + leeway <= now || claims.nbf - leeway > now {
        return Err(TokenRejection::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp_in: i64) -> AccessClaims {
        let now = now_secs();
        AccessClaims {
            aud: aud.into(),
            iss: AccessClaims::issuer_for("t1"),
            appid: "a".into(),
            azp: "a".into(),
            oid: "o".into(),
            sub: "o".into(),
            tid: "t1".into(),
            roles: vec![],
            idtyp: "app".into(),
            ver: "1.0".into(),
            appidacr: "1".into(),
            iat: now,
            nbf: now,
            exp: now + exp_in,
            uti: "u".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_a_foreign_one_does_not() {
        let issuer = TokenIssuer::new().unwrap();
        let other = TokenIssuer::new().unwrap();
        let t = issuer
            .sign(&claims("https://eventhubs.azure.net", 60))
            .unwrap();
        let got = issuer
            .verify(&t, &["https://eventhubs.azure.net/"], 0)
            .unwrap();
        assert_eq!(got.tid, "t1");
        assert!(matches!(
            other.verify(&t, &["https://eventhubs.azure.net"], 0),
            Err(TokenRejection::InvalidSignature(_))
        ));
        assert!(matches!(
            issuer.verify(&t, &["api://other"], 0),
            Err(TokenRejection::InvalidAudience { .. })
        ));
        let expired = issuer.sign(&claims("x", -10)).unwrap();
        assert_eq!(
            issuer.verify(&expired, &["x"], 0),
            Err(TokenRejection::Expired)
        );
        assert_eq!(issuer.verify("", &["x"], 0), Err(TokenRejection::Missing));
        assert!(matches!(
            issuer.verify("a.b.c", &["x"], 0),
            Err(TokenRejection::Malformed(_))
        ));
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_audience_and_lifetime_and_a_tampered_copy_is_not_trusted(
    ) {
        for cache in [true, false] {
            let issuer = TokenIssuer::new().unwrap();
            issuer.set_verified_token_cache(cache);
            let t = issuer.sign(&claims("x", 2)).unwrap();
            assert!(issuer.verify(&t, &["x"], 0).is_ok(), "cache {cache}");
            // Second time: from the cache when it is on.
            assert!(issuer.verify(&t, &["x"], 0).is_ok(), "cache {cache}");
            assert!(
                matches!(
                    issuer.verify(&t, &["api://other"], 0),
                    Err(TokenRejection::InvalidAudience { .. })
                ),
                "cache {cache}"
            );
            // The same claims under a signature with one character changed.
            let (signed, sig) = t.rsplit_once('.').unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            let tampered = format!("{signed}.{flipped}{}", &sig[1..]);
            assert!(
                matches!(
                    issuer.verify(&tampered, &["x"], 0),
                    // 40103, not 40105: the token is well formed, its
                    // signature is what fails.
                    Err(TokenRejection::InvalidSignature(_))
                ),
                "cache {cache}"
            );
            std::thread::sleep(std::time::Duration::from_millis(2100));
            assert_eq!(
                issuer.verify(&t, &["x"], 0),
                Err(TokenRejection::Expired),
                "cache {cache}"
            );
        }
    }

    #[test]
    fn a_client_assertion_is_read_up_to_the_size_limit_and_refused_one_byte_over() {
        use base64::Engine as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        // A token of exactly `len` bytes: header, a small payload, and a
        // signature segment (not decoded here) filling the rest.
        let token_of = |len: usize| {
            let head = format!("{}.{}.", b64(br#"{"alg":"RS256"}"#), b64(br#"{"p":1}"#));
            format!("{head}{}", "A".repeat(len - head.len()))
        };
        let at_limit = token_of(MAX_TOKEN_LEN);
        assert_eq!(at_limit.len(), MAX_TOKEN_LEN);
        assert!(unverified_claims(&at_limit).is_ok());
        let over = token_of(MAX_TOKEN_LEN + 1);
        assert_eq!(over.len(), MAX_TOKEN_LEN + 1);
        assert!(
            unverified_claims(&over).is_err_and(|e| e.contains("larger than")),
            "{:?}",
            unverified_claims(&over).map(|_| ())
        );
        // The same limit for an access token, before any key is looked up.
        let issuer = TokenIssuer::new().unwrap();
        assert_eq!(
            issuer.verify(&over, &["x"], 0),
            Err(TokenRejection::Malformed("too large".into()))
        );
        assert!(!matches!(
            issuer.verify(&at_limit, &["x"], 0),
            Err(TokenRejection::Malformed(m)) if m == "too large"
        ));
    }

    #[test]
    fn each_published_key_has_a_certificate_valid_now_for_years_named_by_its_thumbprint() {
        use base64::Engine as _;
        let issuer = TokenIssuer::new().unwrap();
        let jwks = issuer.jwks();
        let jwk = &jwks.keys[0];
        let chain = jwk.common.x509_chain.as_ref().expect("x5c");
        let der = base64::engine::general_purpose::STANDARD
            .decode(&chain[0])
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let now = now_secs();
        let (from, until) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        // "Signing key rollover": Entra's signing certificates are valid for
        // years; one not valid yet or about to lapse is not one it publishes.
        assert!(from <= now - 3600, "not before {from}, now {now}");
        assert!(
            until - now > 4 * 365 * 86_400,
            "not after {until}, now {now}"
        );
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1);
        assert_eq!(jwk.common.key_id.as_deref(), Some(thumb.as_str()));
        assert_eq!(
            jwk.common.x509_sha1_fingerprint.as_deref(),
            Some(thumb.as_str())
        );
    }

    #[test]
    fn clock_skew_extends_both_ends_of_a_tokens_life_by_the_leeway_only() {
        let issuer = TokenIssuer::new().unwrap();
        let expired = issuer.sign(&claims("x", -30)).unwrap();
        let mut early = claims("x", 600);
        early.nbf = now_secs() + 30;
        let early = issuer.sign(&early).unwrap();
        for t in [&expired, &early] {
            assert_eq!(issuer.verify(t, &["x"], 0), Err(TokenRejection::Expired));
            assert_eq!(issuer.verify(t, &["x"], 10), Err(TokenRejection::Expired));
            assert!(issuer.verify(t, &["x"], 60).is_ok());
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_old_key_is_retired() {
        let issuer = TokenIssuer::new().unwrap();
        let old = issuer.sign(&claims("x", 60)).unwrap();
        issuer.rotate(false).unwrap();
        assert_eq!(issuer.jwks().keys.len(), 2);
        assert!(issuer.verify(&old, &["x"], 0).is_ok());
        let new = issuer.sign(&claims("x", 60)).unwrap();
        issuer.rotate(true).unwrap();
        assert!(issuer.verify(&old, &["x"], 0).is_err());
        assert!(issuer.verify(&new, &["x"], 0).is_err());
    }
}
