//! The sandbox's directory: tenants, app registrations, service principals
//! and app-role assignments, shaped like Entra ID's.
//!
//! The cross-tenant story lives in these relations: an app is *registered*
//! once, in the partner's home tenant; it gets a *service principal* in every
//! tenant that lets it in (the resource owner creates one from the client id);
//! app roles are *assigned* to that service principal by the tenant that owns
//! the resource. The identity provider reads this directory to decide what to
//! issue and to which tenant's `tid`. Azure RBAC on Event Hubs namespaces is
//! kept by the Event Hubs sandbox, keyed by service-principal object id.

use super::jwt::{now_secs, TokenVersion};
use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

/// The application id Entra uses for the Event Hubs resource, present as a
/// service principal in every tenant.
pub const EVENTHUBS_APP_ID: &str = "80369ed6-5f11-4dd9-bef3-692475845e77";
/// The Event Hubs resource identifier (token audience).
pub const EVENTHUBS_RESOURCE: &str = "https://eventhubs.azure.net";

/// A tenant (directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Directory id (GUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Verified domains, lowercase.
    pub domains: Vec<String>,
}

/// A client secret registered on an app. Only a hash is kept.
#[derive(Clone)]
pub struct RegisteredSecret {
    /// First three characters, as the portal shows them.
    pub hint: String,
    sha256: Vec<u8>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for RegisteredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredSecret")
            .field("hint", &self.hint)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A certificate's public part registered on an app ("certificates &
/// secrets" in the portal): Entra matches an assertion's `x5t`/`x5t#S256`
/// against these thumbprints and verifies its signature with this key.
#[derive(Debug, Clone)]
pub struct RegisteredCertificate {
    /// base64url SHA-1 of the certificate DER (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the certificate DER (`x5t#S256`).
    pub x5t_s256: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl RegisteredCertificate {
    /// Registers a certificate from its DER encoding.
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            x5t: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der)),
            der: der.to_vec(),
        }
    }

    /// Whether an assertion header's `x5t` or `x5t#S256` names this
    /// certificate. Thumbprints are compared as the bytes they encode:
    /// Microsoft's own msal for Python sends `x5t` base64url *with* `=`
    /// padding (its `oauth2cli` uses `urlsafe_b64encode`) and Entra accepts
    /// it, so the text form may differ while the thumbprint is the same. The
    /// signature is still verified with this certificate's key.
    pub fn named_by(&self, x5t: Option<&str>, x5t_s256: Option<&str>) -> bool {
        let same = |presented: Option<&str>, ours: &str| {
            presented
                .and_then(thumbprint_bytes)
                .is_some_and(|p| Some(p) == thumbprint_bytes(ours))
        };
        same(x5t, &self.x5t) || same(x5t_s256, &self.x5t_s256)
    }
}

/// The bytes of a base64url thumbprint, padded or not (standard-alphabet
/// characters are read as their base64url twins).
fn thumbprint_bytes(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(normalized).ok()
}

/// The audience Entra's global cloud expects of a federated assertion,
/// the default of a federated identity credential ("Configure an
/// application to trust a managed identity": `audiences`).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The audience of Microsoft Entra ID for US Government.
pub const TOKEN_EXCHANGE_AUDIENCE_USGOV: &str = "api://AzureADTokenExchangeUSGov";
/// The audience of Microsoft Entra China operated by 21Vianet.
pub const TOKEN_EXCHANGE_AUDIENCE_CHINA: &str = "api://AzureADTokenExchangeChina";

/// A federated identity credential, as Microsoft Graph's
/// `federatedIdentityCredential` resource holds it: Entra accepts, in place
/// of a secret, an assertion whose `iss` is `issuer` (exactly), whose `sub`
/// is `subject` (exactly, case-sensitive) and whose `aud` is one of
/// `audiences`, signed by a key the issuer publishes ("Configure an app to
/// trust an external identity provider"; "Important considerations and
/// restrictions for federated identity credentials").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The issuer URL (`iss`), e.g. `https://token.actions.githubusercontent.com`
    /// or, for a managed identity, `https://login.microsoftonline.com/{tid}/v2.0`.
    pub issuer: String,
    /// The subject the issuer puts in `sub` (for a managed identity, its
    /// object (principal) id).
    pub subject: String,
    /// The audiences the assertion's `aud` may carry (default
    /// [`TOKEN_EXCHANGE_AUDIENCE`]).
    pub audiences: Vec<String>,
}

/// Whether a managed identity belongs to one Azure resource or stands alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedIdentityKind {
    /// Created with, and only usable by, one resource (App Service, VM).
    SystemAssigned,
    /// A standalone `Microsoft.ManagedIdentity/userAssignedIdentities`
    /// resource, assignable to several resources. Only these can serve as a
    /// federated identity credential of an app ("Configure an application to
    /// trust a managed identity").
    UserAssigned,
}

/// A managed identity: a service principal in one tenant, with the ids the
/// App Service endpoint accepts (`client_id`, `principal_id`/`object_id`,
/// `mi_res_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// The tenant it lives in.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// System- or user-assigned.
    pub kind: ManagedIdentityKind,
    /// Its client (application) id.
    pub client_id: String,
    /// Its object (principal) id: `oid` and `sub` of its tokens.
    pub object_id: String,
    /// Its Azure resource id (`xms_mirid` of its tokens).
    pub resource_id: String,
}

/// An app registration.
#[derive(Debug, Clone)]
pub struct AppRegistration {
    /// The client (application) id.
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// The tenant it is registered in.
    pub home_tenant: String,
    /// Whether other tenants may create service principals for it.
    pub multi_tenant: bool,
    /// Client secrets.
    pub secrets: Vec<RegisteredSecret>,
    /// Certificates.
    pub certificates: Vec<RegisteredCertificate>,
    /// Federated identity credentials.
    pub federated: Vec<FederatedCredential>,
    /// Application ID URIs (`api://clientXYZ`): how scopes name it.
    pub identifier_uris: Vec<String>,
    /// App roles it defines (`API.Read`).
    pub app_roles: Vec<String>,
    /// Whether a client needs a role assignment to get a token for it
    /// ("Assignment required?" in the portal); AADSTS501051 otherwise.
    pub assignment_required: bool,
    /// The access token version this app, as a resource, asks for
    /// (`accessTokenAcceptedVersion` in its manifest): what tokens *for* it
    /// look like, whoever asks.
    pub access_token_version: TokenVersion,
}

/// A service principal: an app's identity inside one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// The tenant it lives in.
    pub tenant_id: String,
    /// The app it stands for.
    pub app_id: String,
    /// Its own object id (the `oid` of tokens issued to it in this tenant).
    pub object_id: String,
}

#[derive(Default)]
struct State {
    tenants: Vec<Tenant>,
    apps: HashMap<String, AppRegistration>,
    service_principals: Vec<ServicePrincipal>,
    managed_identities: Vec<ManagedIdentity>,
    /// (tenant, client app id, resource app id) → roles
    role_assignments: HashMap<(String, String, String), Vec<String>>,
}

/// Errors from directory administration (not from token requests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// No such tenant.
    #[error("tenant {0} does not exist in the sandbox")]
    NoTenant(String),
    /// No such app.
    #[error("app {0} is not registered in the sandbox")]
    NoApp(String),
    /// A single-tenant app cannot get a service principal elsewhere.
    #[error(
        "app {app_id} is single-tenant; it cannot have a service principal in tenant {tenant}"
    )]
    SingleTenant {
        /// The app.
        app_id: String,
        /// The foreign tenant.
        tenant: String,
    },
    /// The resource does not define that role.
    #[error("app {resource} defines no app role {role}")]
    NoRole {
        /// The resource app.
        resource: String,
        /// The role asked for.
        role: String,
    },
}

/// The directory of every tenant in the sandbox. Safe to share.
#[derive(Default)]
pub struct Directory {
    state: RwLock<State>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

/// A GUID derived from `seed`, the same every time.
fn stable_guid(seed: &str) -> String {
    let d = digest::digest(&digest::SHA256, seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d.as_ref()[..16]);
    Uuid::from_bytes(bytes).to_string()
}

fn new_guid() -> String {
    Uuid::new_v4().to_string()
}

impl Directory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a tenant with a fresh GUID and the given verified domains.
    pub fn add_tenant(&self, name: &str, domains: &[&str]) -> Tenant {
        let tenant = Tenant {
            id: new_guid(),
            name: name.to_string(),
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        };
        self.write().tenants.push(tenant.clone());
        tenant
    }

    /// Finds a tenant by GUID or verified domain (case-insensitive).
    pub fn tenant(&self, id_or_domain: &str) -> Option<Tenant> {
        let key = id_or_domain.to_ascii_lowercase();
        self.read()
            .tenants
            .iter()
            .find(|t| t.id == key || t.domains.contains(&key))
            .cloned()
    }

    /// Registers an app in `home_tenant` and creates its service principal
    /// there, as the portal does.
    pub fn register_app(
        &self,
        home_tenant: &str,
        name: &str,
        multi_tenant: bool,
    ) -> Result<AppRegistration, DirectoryError> {
        let tenant = self
            .tenant(home_tenant)
            .ok_or_else(|| DirectoryError::NoTenant(home_tenant.into()))?;
        let app = AppRegistration {
            app_id: new_guid(),
            name: name.to_string(),
            home_tenant: tenant.id.clone(),
            multi_tenant,
            secrets: vec![],
            certificates: vec![],
            federated: vec![],
            identifier_uris: vec![],
            app_roles: vec![],
            assignment_required: false,
            access_token_version: TokenVersion::V1,
        };
        let mut s = self.write();
        s.apps.insert(app.app_id.clone(), app.clone());
        s.service_principals.push(ServicePrincipal {
            tenant_id: tenant.id,
            app_id: app.app_id.clone(),
            object_id: new_guid(),
        });
        Ok(app)
    }

    /// Registers a first-party resource (such as Event Hubs) with a fixed app
    /// id and identifier, with a service principal in every tenant that
    /// exists now or later.
    pub fn register_first_party(&self, app_id: &str, name: &str, identifier_uri: &str) {
        let app = AppRegistration {
            app_id: app_id.to_string(),
            name: name.to_string(),
            home_tenant: String::new(),
            multi_tenant: true,
            secrets: vec![],
            certificates: vec![],
            federated: vec![],
            identifier_uris: vec![identifier_uri.to_string()],
            app_roles: vec![],
            assignment_required: false,
            access_token_version: TokenVersion::V1,
        };
        self.write().apps.insert(app.app_id.clone(), app);
    }

    /// The app with this client id.
    pub fn app(&self, app_id: &str) -> Option<AppRegistration> {
        self.read().apps.get(&app_id.to_ascii_lowercase()).cloned()
    }

    fn update_app(
        &self,
        app_id: &str,
        f: impl FnOnce(&mut AppRegistration),
    ) -> Result<(), DirectoryError> {
        let mut s = self.write();
        let app = s
            .apps
            .get_mut(app_id)
            .ok_or_else(|| DirectoryError::NoApp(app_id.into()))?;
        f(app);
        Ok(())
    }

    /// Adds a client secret valid for `ttl_secs` (negative: already expired)
    /// and returns its value, which is shown this once, as in the portal.
    pub fn add_secret(&self, app_id: &str, ttl_secs: i64) -> Result<String, DirectoryError> {
        let value = format!(
            "{}~{}",
            &new_guid()[..3],
            URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
                + &URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
        );
        let secret = RegisteredSecret {
            hint: value[..3].to_string(),
            sha256: digest::digest(&digest::SHA256, value.as_bytes())
                .as_ref()
                .to_vec(),
            expires_at: now_secs() + ttl_secs,
        };
        self.update_app(app_id, |a| a.secrets.push(secret))?;
        Ok(value)
    }

    /// Adds a certificate's public part (DER) to the app.
    pub fn add_certificate(&self, app_id: &str, cert_der: &[u8]) -> Result<(), DirectoryError> {
        let cert = RegisteredCertificate::from_der(cert_der);
        self.update_app(app_id, |a| a.certificates.push(cert))
    }

    /// Adds a federated identity credential with the default audience
    /// [`TOKEN_EXCHANGE_AUDIENCE`].
    pub fn add_federated_credential(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<(), DirectoryError> {
        self.add_federated_credential_with_audiences(
            app_id,
            issuer,
            subject,
            &[TOKEN_EXCHANGE_AUDIENCE],
        )
    }

    /// Adds a federated identity credential accepting `audiences`.
    pub fn add_federated_credential_with_audiences(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
        audiences: &[&str],
    ) -> Result<(), DirectoryError> {
        let fic = FederatedCredential {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        };
        self.update_app(&app_id.to_ascii_lowercase(), |a| a.federated.push(fic))
    }

    /// Removes every federated identity credential of the app.
    pub fn clear_federated_credentials(&self, app_id: &str) -> Result<(), DirectoryError> {
        self.update_app(&app_id.to_ascii_lowercase(), |a| a.federated.clear())
    }

    /// Creates a managed identity in `tenant` with fresh ids; its resource
    /// id names a sandbox subscription and resource group, as Azure's do.
    pub fn add_managed_identity(
        &self,
        tenant: &str,
        name: &str,
        kind: ManagedIdentityKind,
    ) -> Result<ManagedIdentity, DirectoryError> {
        let tenant = self
            .tenant(tenant)
            .ok_or_else(|| DirectoryError::NoTenant(tenant.into()))?;
        let subscription = stable_guid(&format!("subscription/{}", tenant.id));
        let resource_id = match kind {
            ManagedIdentityKind::UserAssigned => format!(
                "/subscriptions/{subscription}/resourcegroups/sandbox/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ),
            ManagedIdentityKind::SystemAssigned => format!(
                "/subscriptions/{subscription}/resourcegroups/sandbox/providers/Microsoft.Web/sites/{name}"
            ),
        };
        let mi = ManagedIdentity {
            tenant_id: tenant.id,
            name: name.to_string(),
            kind,
            client_id: new_guid(),
            object_id: new_guid(),
            resource_id,
        };
        self.write().managed_identities.push(mi.clone());
        Ok(mi)
    }

    /// The managed identity with this object (principal) id.
    pub fn managed_identity(&self, object_id: &str) -> Option<ManagedIdentity> {
        let key = object_id.to_ascii_lowercase();
        self.read()
            .managed_identities
            .iter()
            .find(|m| m.object_id == key)
            .cloned()
    }

    /// Exposes the app under an Application ID URI (`api://clientXYZ`).
    pub fn add_identifier_uri(&self, app_id: &str, uri: &str) -> Result<(), DirectoryError> {
        let uri = uri.to_string();
        self.update_app(app_id, |a| a.identifier_uris.push(uri))
    }

    /// Defines an app role on the app (`API.Read`).
    pub fn add_app_role(&self, app_id: &str, role: &str) -> Result<(), DirectoryError> {
        let role = role.to_string();
        self.update_app(app_id, |a| a.app_roles.push(role))
    }

    /// Sets the access token version the resource app asks for
    /// (`accessTokenAcceptedVersion`: null or 1 gives v1.0 tokens, 2 gives
    /// v2.0 tokens, whose `aud` is this app's client id).
    pub fn set_access_token_version(
        &self,
        app_id: &str,
        version: TokenVersion,
    ) -> Result<(), DirectoryError> {
        self.update_app(app_id, |a| a.access_token_version = version)
    }

    /// Sets "Assignment required?" on the resource app.
    pub fn set_assignment_required(
        &self,
        app_id: &str,
        required: bool,
    ) -> Result<(), DirectoryError> {
        self.update_app(app_id, |a| a.assignment_required = required)
    }

    /// Checks a presented client secret against the app's secrets:
    /// `Ok(())`, or `Err(true)` when it matches an expired one, `Err(false)`
    /// when it matches none.
    pub fn check_secret(&self, app: &AppRegistration, presented: &str) -> Result<(), bool> {
        let hash = digest::digest(&digest::SHA256, presented.as_bytes());
        match app.secrets.iter().find(|s| s.sha256 == hash.as_ref()) {
            Some(s) if s.expires_at > now_secs() => Ok(()),
            Some(_) => Err(true),
            None => Err(false),
        }
    }

    /// The resource owner's step: creates a service principal for `app_id`
    /// in `tenant` ("az ad sp create --id"). Idempotent.
    pub fn create_service_principal(
        &self,
        tenant: &str,
        app_id: &str,
    ) -> Result<ServicePrincipal, DirectoryError> {
        let tenant = self
            .tenant(tenant)
            .ok_or_else(|| DirectoryError::NoTenant(tenant.into()))?;
        let app = self
            .app(app_id)
            .ok_or_else(|| DirectoryError::NoApp(app_id.into()))?;
        if !app.multi_tenant && app.home_tenant != tenant.id {
            return Err(DirectoryError::SingleTenant {
                app_id: app.app_id,
                tenant: tenant.id,
            });
        }
        if let Some(sp) = self.service_principal(&tenant.id, &app.app_id) {
            return Ok(sp);
        }
        let sp = ServicePrincipal {
            tenant_id: tenant.id,
            app_id: app.app_id,
            object_id: new_guid(),
        };
        self.write().service_principals.push(sp.clone());
        Ok(sp)
    }

    /// Deletes the service principal of `app_id` in `tenant`, if any.
    pub fn delete_service_principal(&self, tenant: &str, app_id: &str) {
        self.write()
            .service_principals
            .retain(|sp| !(sp.tenant_id == tenant && sp.app_id == app_id));
    }

    /// The service principal of `app_id` in `tenant_id`. First-party
    /// resources have one in every tenant.
    pub fn service_principal(&self, tenant_id: &str, app_id: &str) -> Option<ServicePrincipal> {
        let s = self.read();
        if let Some(sp) = s
            .service_principals
            .iter()
            .find(|sp| sp.tenant_id == tenant_id && sp.app_id == app_id)
        {
            return Some(sp.clone());
        }
        match s.apps.get(app_id) {
            Some(app) if app.home_tenant.is_empty() => Some(ServicePrincipal {
                tenant_id: tenant_id.to_string(),
                app_id: app_id.to_string(),
                // Stable per tenant for first-party apps.
                object_id: stable_guid(&format!("{tenant_id}/{app_id}")),
            }),
            _ => None,
        }
    }

    /// The app a scope's resource names: by Application ID URI, by client id,
    /// or by `api://{client id}`; compared without a trailing `/`.
    pub fn resource_app(&self, resource: &str) -> Option<AppRegistration> {
        let norm = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
        let wanted = norm(resource);
        self.read()
            .apps
            .values()
            .find(|a| {
                a.identifier_uris.iter().any(|u| norm(u) == wanted)
                    || a.app_id == wanted
                    || format!("api://{}", a.app_id) == wanted
            })
            .cloned()
    }

    /// The tenant admin's step: grants `client_app` the app role `role` of
    /// `resource_app`, inside `tenant` (admin consent for an application
    /// permission).
    pub fn grant_app_role(
        &self,
        tenant: &str,
        client_app: &str,
        resource_app: &str,
        role: &str,
    ) -> Result<(), DirectoryError> {
        let resource = self
            .app(resource_app)
            .ok_or_else(|| DirectoryError::NoApp(resource_app.into()))?;
        if !resource.app_roles.iter().any(|r| r == role) {
            return Err(DirectoryError::NoRole {
                resource: resource_app.into(),
                role: role.into(),
            });
        }
        let tenant = self
            .tenant(tenant)
            .ok_or_else(|| DirectoryError::NoTenant(tenant.into()))?;
        let mut s = self.write();
        let roles = s
            .role_assignments
            .entry((tenant.id, client_app.to_string(), resource_app.to_string()))
            .or_default();
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
        Ok(())
    }

    /// Removes every role `client_app` holds on `resource_app` in `tenant`.
    pub fn revoke_app_roles(&self, tenant: &str, client_app: &str, resource_app: &str) {
        self.write().role_assignments.remove(&(
            tenant.to_string(),
            client_app.to_string(),
            resource_app.to_string(),
        ));
    }

    /// The roles `client_app` holds on `resource_app` in `tenant_id`.
    pub fn roles(&self, tenant_id: &str, client_app: &str, resource_app: &str) -> Vec<String> {
        self.read()
            .role_assignments
            .get(&(
                tenant_id.to_string(),
                client_app.to_string(),
                resource_app.to_string(),
            ))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cross_tenant_relations_hold() {
        let d = Directory::default();
        let partner = d.add_tenant("Partner", &["partner.onmicrosoft.com"]);
        let owner = d.add_tenant("Owner", &["owner.onmicrosoft.com"]);
        let app = d.register_app(&partner.id, "sender", true).unwrap();
        assert!(d.service_principal(&partner.id, &app.app_id).is_some());
        assert!(d.service_principal(&owner.id, &app.app_id).is_none());
        let sp = d
            .create_service_principal("owner.onmicrosoft.com", &app.app_id)
            .unwrap();
        assert_eq!(sp.tenant_id, owner.id);
        assert_eq!(
            d.create_service_principal(&owner.id, &app.app_id).unwrap(),
            sp
        );

        let single = d.register_app(&partner.id, "internal", false).unwrap();
        assert!(matches!(
            d.create_service_principal(&owner.id, &single.app_id),
            Err(DirectoryError::SingleTenant { .. })
        ));

        let secret = d.add_secret(&app.app_id, 60).unwrap();
        let app = d.app(&app.app_id).unwrap();
        assert_eq!(d.check_secret(&app, &secret), Ok(()));
        assert_eq!(d.check_secret(&app, "wrong"), Err(false));
        assert!(!format!("{app:?}").contains(&secret));
    }

    #[test]
    fn a_thumbprint_names_a_certificate_padded_or_not() {
        let cert = RegisteredCertificate::from_der(b"not really DER, only hashed");
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert.der);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(sha1);
        assert!(padded.ends_with('='), "SHA-1 in base64 is padded");
        assert!(cert.named_by(Some(&cert.x5t), None));
        // msal for Python's form.
        assert!(cert.named_by(Some(&padded), None));
        assert!(cert.named_by(None, Some(&cert.x5t_s256)));
        let other = RegisteredCertificate::from_der(b"another certificate");
        assert!(!cert.named_by(Some(&other.x5t), Some(&other.x5t_s256)));
        assert!(!cert.named_by(Some("not base64 at all!"), None));
        assert!(!cert.named_by(None, None));
    }
}
