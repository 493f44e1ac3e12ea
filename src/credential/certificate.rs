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
//! Keys are RSA (Entra's requirement for certificate credentials), kept in
//! memory; signing uses aws-lc-rs, so no system OpenSSL is needed. Nothing in
//! this module prints key material.
//!
//! A certificate given by path follows its file ([`CertificateSlot`]): Key
//! Vault sync, cert-manager and the CSI secrets driver replace the file
//! (usually by an atomic rename) when they renew the certificate, and the
//! credential signs with the new one without a restart. The file's metadata
//! is looked at on token requests, at most once every
//! [`RELOAD_CHECK_EVERY`]; it is read again only when its metadata changed.
//! A replacement that does not load (half-written, corrupt, wrong password,
//! key not matching) keeps the certificate in use, with a warning naming the
//! path and what is wrong; the next change of the file is tried again.

use aws_lc_rs::{digest, rand, signature};
use azure_core::Uuid;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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

/// How often, at most, a certificate file is looked at (its metadata only)
/// for a replacement. Checks happen on token requests, never on a cached
/// token.
pub const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(2);

/// How a certificate file is read again.
enum FileFormat {
    Pem,
    /// A PFX and its password (never printed).
    Pfx(azure_core::credentials::Secret),
}

/// What identifies one version of a file without reading it: an atomic
/// rename changes the inode, a rewrite in place the length or times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileVersion {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A certificate file being followed.
struct Watch {
    path: PathBuf,
    format: FileFormat,
    /// When the file was last looked at, and the version last read (good or
    /// bad: a bad file is not read again until it changes).
    state: tokio::sync::Mutex<(Instant, Option<FileVersion>)>,
    /// Times the file was read after the first load.
    reads: std::sync::atomic::AtomicU64,
}

/// The certificate a credential signs with: fixed (given as bytes or
/// already loaded), or following its file (given by path), reloaded when the
/// file is replaced. See the module documentation.
pub(crate) struct CertificateSlot {
    current: RwLock<Arc<ClientCertificate>>,
    watch: Option<Watch>,
}

impl fmt::Debug for CertificateSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSlot")
            .field("current", &*self.loaded())
            .field("file", &self.watch.as_ref().map(|w| &w.path))
            .finish()
    }
}

impl CertificateSlot {
    /// A certificate that never changes.
    pub(crate) fn fixed(certificate: ClientCertificate) -> Self {
        Self {
            current: RwLock::new(Arc::new(certificate)),
            watch: None,
        }
    }

    /// A PEM file (certificate and key), followed.
    pub(crate) fn pem_file(path: &Path) -> Result<Self, CertificateError> {
        Self::file(path, FileFormat::Pem)
    }

    /// A PFX file and its password, followed.
    pub(crate) fn pfx_file(path: &Path, password: &str) -> Result<Self, CertificateError> {
        Self::file(
            path,
            FileFormat::Pfx(azure_core::credentials::Secret::new(password.to_string())),
        )
    }

    fn file(path: &Path, format: FileFormat) -> Result<Self, CertificateError> {
        // The version before the read: a change during the read shows as a
        // newer version at the next check, and is read then.
        let version = std::fs::metadata(path).ok().map(|m| FileVersion::of(&m));
        let certificate = load(path, &format, &read(path)?)?;
        Ok(Self {
            current: RwLock::new(Arc::new(certificate)),
            watch: Some(Watch {
                path: path.to_path_buf(),
                format,
                state: tokio::sync::Mutex::new((Instant::now(), version)),
                reads: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// The certificate in use now, without looking at the file.
    pub(crate) fn loaded(&self) -> Arc<ClientCertificate> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The certificate to sign with: for a file, first looks whether it was
    /// replaced (at most once every [`RELOAD_CHECK_EVERY`]; a caller that
    /// finds another one looking takes the current certificate at once).
    pub(crate) async fn current(&self) -> Arc<ClientCertificate> {
        if let Some(watch) = &self.watch {
            if let Ok(mut state) = watch.state.try_lock() {
                if state.0.elapsed() >= RELOAD_CHECK_EVERY {
                    state.0 = Instant::now();
                    self.check(watch, &mut state.1).await;
                }
            }
        }
        self.loaded()
    }

    async fn check(&self, watch: &Watch, seen: &mut Option<FileVersion>) {
        let path = watch.path.display();
        let version = match tokio::fs::metadata(&watch.path).await {
            Ok(m) => FileVersion::of(&m),
            Err(e) => {
                // Between an unlink and a rename, or a volume remount: keep
                // the certificate; the file is looked at again next time.
                tracing::warn!(path = %path, error = %e, "client certificate file unreadable; still signing with the certificate loaded before");
                return;
            }
        };
        if seen.as_ref() == Some(&version) {
            return;
        }
        watch
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let loaded = match tokio::fs::read(&watch.path).await {
            Ok(data) => load(&watch.path, &watch.format, &data),
            Err(e) => Err(CertificateError::Unreadable {
                path: path.to_string(),
                reason: e.to_string(),
            }),
        };
        *seen = Some(version);
        match loaded {
            Ok(new) => {
                let old = self.loaded();
                if new.thumbprint() != old.thumbprint() {
                    tracing::info!(
                        path = %path,
                        old_thumbprint = %old.thumbprint(),
                        thumbprint = %new.thumbprint(),
                        subject = %new.subject(),
                        "client certificate file replaced; signing with the new certificate"
                    );
                }
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
            }
            Err(e) => {
                tracing::warn!(
                    path = %path,
                    error = %e,
                    thumbprint_in_use = %self.loaded().thumbprint(),
                    "client certificate file changed but does not load; still signing with the certificate loaded before (fix or replace the file)"
                );
            }
        }
    }
}

fn load(
    path: &Path,
    format: &FileFormat,
    data: &[u8],
) -> Result<ClientCertificate, CertificateError> {
    let name = path.display().to_string();
    match format {
        FileFormat::Pem => ClientCertificate::from_pem_parts(data, data, &name),
        FileFormat::Pfx(password) => {
            ClientCertificate::from_pfx_named(data, password.secret(), &name)
        }
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

    /// The file is looked at no more than once per [`RELOAD_CHECK_EVERY`],
    /// and read only when it changed: a good replacement is taken, a bad
    /// one is read once (not on every check) and the certificate stays.
    #[tokio::test]
    async fn a_followed_file_is_read_again_only_after_the_interval_and_a_change() {
        let dir = std::env::temp_dir().join(format!("crosstenant-slot-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.pem");
        let pem = |(c, k, _): (String, String, Vec<u8>)| format!("{c}{k}");
        std::fs::write(&path, pem(generated())).unwrap();
        let slot = CertificateSlot::pem_file(&path).unwrap();
        let reads = || {
            slot.watch
                .as_ref()
                .unwrap()
                .reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let first = slot.current().await.thumbprint().to_string();
        let replace = |text: &str| {
            std::fs::write(dir.join("tmp"), text).unwrap();
            std::fs::rename(dir.join("tmp"), &path).unwrap();
        };
        replace(&pem(generated()));
        // Within the interval: not looked at, however many calls.
        for _ in 0..100 {
            assert_eq!(slot.current().await.thumbprint(), first);
        }
        assert_eq!(reads(), 0);
        tokio::time::sleep(RELOAD_CHECK_EVERY).await;
        let second = slot.current().await.thumbprint().to_string();
        assert_ne!(second, first);
        assert_eq!(reads(), 1);
        // Unchanged: looked at, not read.
        tokio::time::sleep(RELOAD_CHECK_EVERY).await;
        assert_eq!(slot.current().await.thumbprint(), second);
        assert_eq!(reads(), 1);
        // A bad replacement: read once, the certificate stays.
        replace("not a certificate");
        for _ in 0..2 {
            tokio::time::sleep(RELOAD_CHECK_EVERY).await;
            assert_eq!(slot.current().await.thumbprint(), second);
        }
        assert_eq!(reads(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An EC key (SEC1, `EC PRIVATE KEY`) is named as one, with the fix
    /// (an RSA key), rather than as an unknown key type.
    #[test]
    fn an_ec_key_is_refused_as_an_ec_key() {
        use aws_lc_rs::encoding::AsDer as _;
        let (cert_pem, _, _) = generated();
        let ec =
            signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        let b64 = STANDARD.encode(sec1.as_ref());
        let pem = format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n");
        let err = ClientCertificate::from_pem_parts(cert_pem.as_bytes(), pem.as_bytes(), "ec.pem")
            .unwrap_err();
        match &err {
            CertificateError::UnsupportedKey { reason, .. } => {
                assert_eq!(reason, "it is an EC key")
            }
            other => panic!("expected UnsupportedKey, got {other}"),
        }
        assert!(err.to_string().contains("ec.pem"), "{err}");
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
