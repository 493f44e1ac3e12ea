//! Shared set-up for the sandbox integration tests: the two tenants of the
//! cross-tenant story and the partner's multi-tenant app.
#![allow(dead_code)]

use crosstenant::credential::CrossTenantCredentialBuilder;
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::directory::{AppRegistration, Tenant};
use crosstenant_sandbox::Sandbox;

/// The partner tenant (home of the app) and the resource owner's tenant.
pub struct World {
    pub sandbox: Sandbox,
    pub partner: Tenant,
    pub owner: Tenant,
    pub app: AppRegistration,
    pub secret: String,
}

pub const EVENTHUBS_SCOPE: &str = "https://eventhubs.azure.net/.default";

/// The seed story: the partner registers a multi-tenant app in its tenant and
/// hands over the client id; the resource owner creates a service principal
/// for it in theirs.
pub async fn world() -> World {
    let sandbox = Sandbox::start().await.expect("sandbox starts");
    let d = sandbox.directory();
    let partner = d.add_tenant("Fabrikam (partner)", &["fabrikam.onmicrosoft.com"]);
    let owner = d.add_tenant("Contoso (resource owner)", &["contoso.onmicrosoft.com"]);
    let app = d
        .register_app(&partner.id, "fabrikam-telemetry", true)
        .expect("app registers");
    let secret = d.add_secret(&app.app_id, 3600).expect("secret");
    d.create_service_principal(&owner.id, &app.app_id)
        .expect("service principal");
    World {
        sandbox,
        partner,
        owner,
        app,
        secret,
    }
}

impl World {
    /// A builder pointed at the sandbox authority, trusting its CA, for the
    /// partner app in `tenant`, without a client credential yet.
    pub fn builder(&self, tenant: &str) -> CrossTenantCredentialBuilder {
        CrossTenantCredential::builder()
            .resource_tenant(tenant)
            .client_id(&self.app.app_id)
            .authority_host(self.sandbox.authority_host().as_str())
            .root_certificates_pem(self.sandbox.ca_pem())
    }

    /// The partner app's credential at the resource owner's tenant, by secret.
    pub fn credential(&self) -> std::sync::Arc<CrossTenantCredential> {
        self.builder(&self.owner.id)
            .client_secret(&self.secret)
            .build()
            .expect("credential builds")
    }
}

/// An RSA certificate with its key, PEM (PKCS#8) and DER.
pub struct TestCert {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub key_pkcs8_der: Vec<u8>,
}

pub fn rsa_certificate(cn: &str) -> TestCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-signed");
    TestCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_pkcs8_der: key.serialize_der(),
    }
}

/// The same certificate and key as a PFX protected by `password`.
pub fn pfx(cert: &TestCert, password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let chain = PrivateKeyChain::new(
        b"1".to_vec(),
        PrivateKey::from_der(&cert.key_pkcs8_der).expect("key"),
        [Certificate::from_der(&cert.cert_der).expect("cert")],
    );
    let mut store = KeyStore::new();
    store.add_entry("partner", KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().expect("pfx")
}

/// The resource owner's Event Hubs namespace with hub `telemetry` (4
/// partitions), and the partner app's service principal holding "Azure
/// Event Hubs Data Sender" on it. Returns the namespace host.
pub fn eventhubs_namespace(w: &World) -> String {
    use crosstenant_sandbox::eventhubs::Role;
    let eh = w.sandbox.eventhubs();
    let ns = eh.create_namespace(&w.owner.id, "contoso-telemetry");
    assert!(eh.create_hub(&ns, "telemetry", 4));
    let sp = w
        .sandbox
        .directory()
        .service_principal(&w.owner.id, &w.app.app_id)
        .expect("service principal in the resource tenant");
    assert!(eh.assign_role(&ns, &sp.object_id, Role::DataSender));
    ns
}

/// A sender to the resource owner's hub `telemetry` over `transport`,
/// pointed at the sandbox (plain AMQP on loopback, or HTTPS with its CA).
pub async fn sender<T: serde::Serialize>(
    w: &World,
    ns: &str,
    credential: std::sync::Arc<CrossTenantCredential>,
    transport: crosstenant::eventhubs::Transport,
) -> Result<crosstenant::eventhubs::EventHubSender<T>, crosstenant::Error> {
    use crosstenant::eventhubs::{EventHubSender, Transport};
    let endpoint = match transport {
        Transport::Https => w.sandbox.eventhubs().https_endpoint().to_string(),
        _ => w.sandbox.eventhubs().amqp_endpoint().to_string(),
    };
    let http = credential.http_settings().clone();
    EventHubSender::<T>::builder(ns, "telemetry", credential)
        .http_settings(http)
        .transport(transport)
        .endpoint(endpoint)
        .open()
        .await
}
