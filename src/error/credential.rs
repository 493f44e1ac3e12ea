//! Why a certificate, a key or a JWT could not be used: the partner's own
//! material, refused before anything was sent.
//!
//! Not here: Entra's refusals of a token request ([`super::entra`]).

use super::{Party, Remedy};

/// Why a certificate or key could not be used. The text names the source
/// (file path or "PEM text") and what to do; it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The file could not be read.
    #[error("cannot read certificate file {path}: {reason}")]
    Unreadable {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The PEM holds no certificate.
    #[error("{source_name} holds no `-----BEGIN CERTIFICATE-----` block; give the certificate and its private key in PEM")]
    NoCertificate {
        /// Where the PEM came from.
        source_name: String,
    },
    /// The PEM holds no usable private key.
    #[error("{source_name} holds no private key; add the key as `-----BEGIN PRIVATE KEY-----` (PKCS#8) or `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1)")]
    NoKey {
        /// Where the PEM came from.
        source_name: String,
    },
    /// The key is encrypted and no way to decrypt it was given.
    #[error("the private key in {source_name} is encrypted; decrypt it (`openssl pkcs8 -in key.pem -out plain.pem`) or use the PFX with its password")]
    EncryptedKey {
        /// Where the PEM came from.
        source_name: String,
    },
    /// The data is not valid PEM / DER / PKCS#12.
    #[error("{source_name} is malformed: {reason}")]
    Malformed {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The key is not an RSA key, or not a valid one.
    #[error("the private key in {source_name} is not a usable RSA key ({reason}); Entra certificate credentials need an RSA key of 2048 bits or more")]
    UnsupportedKey {
        /// Where it came from.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {source_name} does not match its certificate (thumbprint {thumbprint}); give the key that was generated with this certificate")]
    KeyMismatch {
        /// Where it came from.
        source_name: String,
        /// The certificate's SHA-1 thumbprint, hex, as the portal shows it.
        thumbprint: String,
    },
    /// The PFX password is wrong, or the file is damaged.
    #[error(
        "cannot open PFX {source_name}: the password is wrong or the file is damaged ({reason})"
    )]
    PfxPassword {
        /// Where it came from.
        source_name: String,
        /// The PKCS#12 error.
        reason: String,
    },
}

/// Why a JWT could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The token is larger than [`MAX_TOKEN_LEN`](crate::claims::MAX_TOKEN_LEN).
    #[error("the token is {len} bytes, larger than the {max}-byte limit; it is not a JWT this crate will read")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token does not have three dot-separated segments.
    #[error(
        "the token has {segments} segment(s), not the 3 of a signed JWT (header.payload.signature)"
    )]
    Segments {
        /// How many segments it has.
        segments: usize,
    },
    /// A segment is not base64url, or not a JSON object.
    #[error("the JWT {segment} is not valid: {reason}")]
    Segment {
        /// `header` or `payload`.
        segment: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl CertificateError {
    /// The partner fixes its certificate or key.
    pub fn remedy(&self) -> Remedy {
        let action = match self {
            CertificateError::KeyMismatch { .. } => {
                "give the private key that was generated with this certificate"
            }
            CertificateError::PfxPassword { .. } => {
                "give the PFX's password (AZURE_CLIENT_CERTIFICATE_PASSWORD) or a sound copy"
            }
            CertificateError::EncryptedKey { .. } => {
                "decrypt the key, or use the PFX with its password"
            }
            CertificateError::UnsupportedKey { .. } => {
                "use an RSA key of 2048 bits or more, as Entra certificate credentials require"
            }
            _ => {
                "give the certificate and its private key in PEM (or a PFX with its password), \
                 as registered on the app"
            }
        };
        Remedy::new(Party::Partner, action)
    }
}

impl ClaimsError {
    /// The partner passes an Entra ID access token (a JWT) where one is
    /// read, not an id token, a SAS or an opaque string.
    pub fn remedy(&self) -> Remedy {
        Remedy::new(
            Party::Partner,
            "pass an Entra ID access token (a signed JWT of three base64url segments)",
        )
    }
}
