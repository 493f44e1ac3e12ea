//! Certificate credentials: loading PEM and PFX, thumbprints, and signing
//! client assertions.
//!
//! Entra authenticates an app by certificate through a *client assertion*: a
//! short-lived JWT the app signs with the certificate's private key (see
//! Microsoft's "Certificate credentials for application authentication").
//! The header names the certificate by thumbprint — `x5t` (base64url SHA-1 of
//! the DER) with RS256, or `x5t#S256` with PS256 — and may carry the chain in
//! `x5c` (for subject-name/issuer authentication). The claims are `aud` = the
//! token endpoint, `iss` = `sub` = the client id, a unique `jti`, and
//! `nbf`/`exp` at most ten minutes apart.
//!
//! Keys are RSA (Entra's requirement for certificate credentials), loaded
//! once and kept in memory; signing uses aws-lc-rs, so no system OpenSSL is
//! needed. Nothing in this module prints key material.

use aws_lc_rs::{digest, rand, signature};
use azure_core::Uuid;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::fmt;

pub use crate::error::CertificateError;
use std::time::{SystemTime, UNIX_EPOCH};

/// The JWS algorithm of client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the header names the certificate by
    /// `x5t` (SHA-1 thumbprint). What most Entra samples use.
    #[default]
    Rs256,
    /// RSASSA-PSS with SHA-256; the header names the certificate by
    /// `x5t#S256` (SHA-256 thumbprint).
    Ps256,
}

/// A certificate with its RSA private key, ready to sign client assertions.
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: signature::RsaKeyPair,
    x5t: String,
    x5t_s256: String,
    thumbprint_hex: String,
    not_after: i64,
    subject: String,
    source_name: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Loads a certificate and its key from PEM text holding both (the form
    /// `AZURE_CLIENT_CERTIFICATE_PATH` names). Further certificates after the
    /// first are kept as the chain for `x5c`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        Self::from_pem_parts(pem, pem, "PEM text")
    }

    /// Loads a certificate (chain) and a key from separate PEM texts.
    pub fn from_pem_parts(
        cert_pem: &[u8],
        key_pem: &[u8],
        source_name: &str,
    ) -> Result<Self, CertificateError> {
        let source = source_name.to_string();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| CertificateError::Malformed {
                source_name: source.clone(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate {
                source_name: source,
            });
        }
        if contains_label(key_pem, "ENCRYPTED PRIVATE KEY") {
            return Err(CertificateError::EncryptedKey {
                source_name: source,
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => CertificateError::NoKey {
                source_name: source.clone(),
            },
            other => CertificateError::Malformed {
                source_name: source.clone(),
                reason: other.to_string(),
            },
        })?;
        Self::from_parts(chain, key, source)
    }

    /// Loads from a PEM file (certificate and key in one file).
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, CertificateError> {
        let data = read(path)?;
        Self::from_pem_parts(&data, &data, &path.display().to_string())
    }

    /// Loads a PKCS#12 / PFX archive protected by `password` (empty for
    /// none), as exported by Azure Key Vault or Windows.
    pub fn from_pfx(der: &[u8], password: &str) -> Result<Self, CertificateError> {
        Self::from_pfx_named(der, password, "PFX data")
    }

    /// Loads a PFX file.
    pub fn from_pfx_file(path: &std::path::Path, password: &str) -> Result<Self, CertificateError> {
        let data = read(path)?;
        Self::from_pfx_named(&data, password, &path.display().to_string())
    }

    fn from_pfx_named(
        der: &[u8],
        password: &str,
        source_name: &str,
    ) -> Result<Self, CertificateError> {
        let source = source_name.to_string();
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| CertificateError::PfxPassword {
            source_name: source.clone(),
            reason: e.to_string(),
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| CertificateError::NoKey {
                source_name: source.clone(),
            })?;
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        if certs.is_empty() {
            return Err(CertificateError::NoCertificate {
                source_name: source,
            });
        }
        let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
        Self::from_parts(certs, key, source)
    }

    fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'_>,
        source_name: String,
    ) -> Result<Self, CertificateError> {
        let unsupported = |reason: String| CertificateError::UnsupportedKey {
            source_name: source_name.clone(),
            reason,
        };
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(_) => return Err(unsupported("it is an EC key".into())),
            _ => return Err(unsupported("unknown key type".into())),
        }
        .map_err(|e| unsupported(e.to_string()))?;

        let leaf = &chain[0];
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
            CertificateError::Malformed {
                source_name: source_name.clone(),
                reason: format!("certificate: {e}"),
            }
        })?;
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.as_ref());
        let thumbprint_hex: String = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        // For RSA, the SubjectPublicKeyInfo's bit string is the PKCS#1
        // RSAPublicKey, the same encoding aws-lc-rs gives for the key pair.
        use signature::KeyPair as _;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key().as_ref() {
            return Err(CertificateError::KeyMismatch {
                source_name,
                thumbprint: thumbprint_hex,
            });
        }
        let not_after = cert.validity().not_after.timestamp();
        let subject = cert.subject().to_string();
        let now = now_secs();
        if not_after < now {
            tracing::warn!(
                subject = %subject,
                thumbprint = %thumbprint_hex,
                not_after = %cert.validity().not_after,
                "the client certificate has expired; Entra will refuse assertions signed with it \
                 once its registration expires (AADSTS700027): register a new certificate"
            );
        }
        Ok(Self {
            x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            x5t_s256: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, leaf.as_ref())),
            thumbprint_hex,
            not_after,
            subject,
            chain,
            key,
            source_name,
        })
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Azure portal and
    /// `az ad app credential list` show it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint_hex
    }

    /// `x5t`: base64url SHA-1 of the certificate.
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// `x5t#S256`: base64url SHA-256 of the certificate.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// The certificate's subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `notAfter`, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The leaf certificate, DER (to register on the app).
    pub fn certificate_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// Where it was loaded from (a path, "PEM text", "PFX data").
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Signs a client assertion for `client_id` at `token_endpoint`, valid
    /// for five minutes (Entra accepts up to ten), with a fresh `jti`.
    pub fn sign_assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        algorithm: AssertionAlgorithm,
        send_chain: bool,
    ) -> Result<String, CertificateError> {
        let mut header = match algorithm {
            AssertionAlgorithm::Rs256 => json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t}),
            AssertionAlgorithm::Ps256 => {
                json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256})
            }
        };
        if send_chain {
            header["x5c"] = self
                .chain
                .iter()
                .map(|c| STANDARD.encode(c.as_ref()))
                .collect();
        }
        let now = now_secs();
        let claims = json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 300,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn signature::RsaEncoding = match algorithm {
            AssertionAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
            AssertionAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
        };
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                padding,
                &rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|e| CertificateError::UnsupportedKey {
                source_name: self.source_name.clone(),
                reason: format!("signing failed: {e}"),
            })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|e| CertificateError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn contains_label(pem: &[u8], label: &str) -> bool {
    let needle = format!("-----BEGIN {label}-----");
    pem.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["partner.example".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), key.serialize_der())
    }

    #[test]
    fn pkcs8_and_pkcs1_keys_load_and_sign() {
        let (cert_pem, key_pem, pkcs8) = generated();
        let c = ClientCertificate::from_pem_parts(cert_pem.as_bytes(), key_pem.as_bytes(), "t")
            .unwrap();
        assert_eq!(c.thumbprint().len(), 40);
        // PKCS#8 wraps the PKCS#1 RSAPrivateKey in an OCTET STRING after a
        // fixed 22-byte prefix (version and rsaEncryption identifier).
        assert_eq!(&pkcs8[22..24], &[0x04, 0x82]);
        let pkcs1 = &pkcs8[26..];
        let b64 = STANDARD.encode(pkcs1);
        let pem =
            format!("-----BEGIN RSA PRIVATE KEY-----\n{b64}\n-----END RSA PRIVATE KEY-----\n");
        let c1 =
            ClientCertificate::from_pem_parts(cert_pem.as_bytes(), pem.as_bytes(), "t").unwrap();
        let jwt = c1
            .sign_assertion(
                "cid",
                "https://login/t/oauth2/v2.0/token",
                AssertionAlgorithm::Ps256,
                true,
            )
            .unwrap();
        let claims = crate::claims::TokenClaims::decode(&jwt).unwrap();
        assert_eq!(claims.header("alg").and_then(|v| v.as_str()), Some("PS256"));
        assert_eq!(
            claims.header("x5t#S256").and_then(|v| v.as_str()),
            Some(c1.x5t_s256())
        );
        assert!(claims.header("x5c").is_some());
        assert_eq!(claims.get("iss"), claims.get("sub"));
        assert!(claims.expires_at().unwrap() - claims.not_before().unwrap() <= 600);
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let (cert_pem, _, _) = generated();
        let err = ClientCertificate::from_pem(cert_pem.as_bytes()).unwrap_err();
        assert!(matches!(err, CertificateError::NoKey { .. }), "{err}");
        let err = ClientCertificate::from_pem(b"hello").unwrap_err();
        assert!(
            matches!(err, CertificateError::NoCertificate { .. }),
            "{err}"
        );
        let enc = format!(
            "{cert_pem}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        let err = ClientCertificate::from_pem(enc.as_bytes()).unwrap_err();
        assert!(
            matches!(err, CertificateError::EncryptedKey { .. }),
            "{err}"
        );
    }
}
