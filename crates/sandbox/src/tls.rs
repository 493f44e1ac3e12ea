//! The sandbox's certificate authority and its HTTPS listeners.
//!
//! Every sandbox endpoint speaks TLS with a server certificate issued by a CA
//! the sandbox generates at start-up. Clients trust the sandbox by adding that
//! CA as an extra root ([`SandboxCa::pem`]); nothing here, or anywhere in the
//! crate, turns certificate verification off.

use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// DNS names the sandbox's server certificate covers besides 127.0.0.1, so a
/// client may keep the real host names and only redirect the address.
pub const SERVER_DNS_NAMES: &[&str] = &[
    "localhost",
    "*.servicebus.windows.net",
    "login.sandbox.crosstenant.invalid",
];

/// The sandbox CA and the server certificate it issued.
pub struct SandboxCa {
    ca_pem: String,
    server_cert_der: rustls_pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for SandboxCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxCa").finish_non_exhaustive()
    }
}

impl SandboxCa {
    /// Generates a CA (ECDSA P-256) and a server certificate for 127.0.0.1,
    /// `::1` and [`SERVER_DNS_NAMES`].
    pub fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "crosstenant sandbox CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(
            SERVER_DNS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(
            std::net::Ipv6Addr::LOCALHOST,
        )));
        params
            .distinguished_name
            .push(DnType::CommonName, "crosstenant sandbox");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params.signed_by(&server_key, &issuer)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate, PEM. Add it as a trusted root to reach the sandbox.
    pub fn pem(&self) -> &str {
        &self.ca_pem
    }

    /// A rustls server configuration presenting the sandbox server
    /// certificate, with the given ALPN protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(self.server_key_der.clone().into());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert_der.clone()], key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Counts TLS connections accepted by one listener, so tests and benches can
/// show that clients reuse connections instead of handshaking per request.
#[derive(Debug, Default)]
pub struct ConnectionCounter(AtomicU64);

impl ConnectionCounter {
    /// Connections accepted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct CountingAcceptor {
    inner: RustlsAcceptor,
    counter: Arc<ConnectionCounter>,
}

impl<I, S> Accept<I, S> for CountingAcceptor
where
    RustlsAcceptor: Accept<I, S>,
{
    type Stream = <RustlsAcceptor as Accept<I, S>>::Stream;
    type Service = <RustlsAcceptor as Accept<I, S>>::Service;
    type Future = <RustlsAcceptor as Accept<I, S>>::Future;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        self.counter.0.fetch_add(1, Ordering::Relaxed);
        self.inner.accept(stream, service)
    }
}

/// A running HTTPS listener on loopback.
pub struct HttpsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// TLS connections it accepted.
    pub connections: Arc<ConnectionCounter>,
    handle: axum_server::Handle<SocketAddr>,
}

impl HttpsServer {
    /// `https://127.0.0.1:{port}/`.
    pub fn url(&self) -> url::Url {
        // A socket address always forms a valid URL authority.
        url::Url::parse(&format!("https://{}/", self.addr))
            .unwrap_or_else(|_| unreachable!("loopback URL"))
    }

    /// Stops accepting and closes connections.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Serves `router` over HTTPS (HTTP/1.1) on 127.0.0.1 with an OS-chosen port.
pub async fn serve_https(ca: &SandboxCa, router: axum::Router) -> std::io::Result<HttpsServer> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let config = ca
        .server_config(&[b"http/1.1"])
        .map_err(std::io::Error::other)?;
    let connections = Arc::new(ConnectionCounter::default());
    let acceptor = CountingAcceptor {
        inner: RustlsAcceptor::new(RustlsConfig::from_config(config)),
        counter: connections.clone(),
    };
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = server
            .serve(router.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::warn!(error = %e, "sandbox HTTPS listener stopped");
        }
    });
    Ok(HttpsServer {
        addr,
        connections,
        handle,
    })
}
