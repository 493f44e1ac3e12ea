//! The cross-tenant story, set up in one call: what the quickstart, the CLI's
//! `sandbox` subcommand, the benches and partner teams' own tests start from.
//!
//! - **Fabrikam** (the partner) registers a multi-tenant app,
//!   `fabrikam-integration`, with a client secret.
//! - **Contoso** (the resource owner) creates a service principal for that
//!   client id, owns the Event Hubs namespace `contoso-telemetry` with hub
//!   `telemetry` (4 partitions), and grants the app "Azure Event Hubs Data
//!   Sender" on it.
//! - Contoso also runs the protected API `api://secure-api` (roles `API.Read`,
//!   `API.Write`), granted to the app in full, and its customer `clientXYZ`
//!   (`api://clientXYZ`) grants the app only `clientXYZ.Read`.
//! - Beside it, Contoso registers a second API, `api://secure-api-v2`, whose
//!   app registration asks for **v2.0 access tokens**
//!   (`accessTokenAcceptedVersion: 2`): tokens for it (scope
//!   `api://secure-api-v2/.default` or `api://{its client id}/.default`)
//!   carry `ver` 2.0, `aud` = its client id, the v2.0 issuer and
//!   `azp`/`azpacr`. The app holds `API.Read` and `API.Write` on it. It is a
//!   token audience, not a served API: the aggregator API serves
//!   `api://secure-api`.
//!
//! The app is both the Event Hubs sender and the aggregator, so one
//! credential tells the whole story.
//!
//! Beside it, the **secretless** way (issue #15): Fabrikam registers a
//! second multi-tenant app, `fabrikam-secretless`, with no secret or
//! certificate, only federated identity credentials: one for Fabrikam's
//! user-assigned managed identity `fabrikam-sender` (issuer
//! `https://login.microsoftonline.com/{Fabrikam}/v2.0`, subject its
//! principal id), assigned to the App Service host `fabrikam-web` whose
//! managed identity endpoint the sandbox serves; one for the GitHub Actions
//! job of `fabrikam/telemetry` on `refs/heads/main` (the sandbox's GitHub
//! OIDC issuer). Contoso creates its service principal and grants it what
//! the secret app holds: Event Hubs Data Sender on the namespace, `API.Read`
//! and `API.Write` on `api://secure-api` (and on the v2.0 API),
//! `clientXYZ.Read` on `api://clientXYZ`. [`DemoWorld::add_resource_tenant`]
//! adds more resource tenants for the same apps.

use super::api::Access;
use super::directory::{AppRegistration, ManagedIdentity, ManagedIdentityKind, Tenant};
use super::eventhubs::Role;
use super::jwt::TokenVersion;
use super::managed_identity::ManagedIdentityHost;
use super::{Sandbox, SandboxError};

/// The Event Hub of the demo namespace.
pub const HUB: &str = "telemetry";
/// The App ID URI of the demo API.
pub const API_URI: &str = "api://secure-api";
/// The App ID URI of the demo API that asks for v2.0 tokens.
pub const API_V2_URI: &str = "api://secure-api-v2";
/// The demo API's customer.
pub const CLIENT: &str = "clientXYZ";
/// The Event Hubs scope.
pub const EVENTHUBS_SCOPE: &str = "https://eventhubs.azure.net/.default";
/// The name of the secretless partner app.
pub const SECRETLESS_APP: &str = "fabrikam-secretless";
/// The name of Fabrikam's user-assigned managed identity.
pub const MANAGED_IDENTITY: &str = "fabrikam-sender";
/// The App Service host the managed identity is assigned to.
pub const MANAGED_IDENTITY_HOST: &str = "fabrikam-web";

/// A resource tenant added with [`DemoWorld::add_resource_tenant`]: its
/// own Event Hubs namespace (hub [`HUB`]) and API, granted to both partner
/// apps.
#[derive(Debug, Clone)]
pub struct ResourceTenant {
    /// The tenant (`{name}.onmicrosoft.com`).
    pub tenant: Tenant,
    /// Its namespace host, `{name}-telemetry.servicebus.windows.net`.
    pub namespace: String,
    /// Its API registration (`api://{name}-api`, roles `API.Read` and
    /// `API.Write`, v1.0 tokens); a token audience, not a served API.
    pub api: AppRegistration,
    /// `api://{name}-api`.
    pub api_uri: String,
}

/// A running sandbox holding the demo world.
#[derive(Clone)]
pub struct DemoWorld {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The partner's tenant (Fabrikam), home of the app.
    pub partner: Tenant,
    /// The resource owner's tenant (Contoso).
    pub owner: Tenant,
    /// The partner's multi-tenant app.
    pub app: AppRegistration,
    /// The namespace host, `contoso-telemetry.servicebus.windows.net`.
    pub namespace: String,
    /// The API registration that asks for v2.0 tokens ([`API_V2_URI`]);
    /// its `app_id` is the `aud` of tokens for it.
    pub api_v2: AppRegistration,
    /// The secretless partner app ([`SECRETLESS_APP`]): federated
    /// credentials only.
    pub secretless: AppRegistration,
    /// Fabrikam's user-assigned managed identity, trusted by the
    /// secretless app.
    pub managed_identity: ManagedIdentity,
    secret: String,
    mi_host: ManagedIdentityHost,
}

impl std::fmt::Debug for DemoWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoWorld")
            .field("partner", &self.partner.id)
            .field("owner", &self.owner.id)
            .field("app", &self.app.app_id)
            .field("namespace", &self.namespace)
            .field("secretless", &self.secretless.app_id)
            .field("managed_identity", &self.managed_identity.client_id)
            .finish_non_exhaustive()
    }
}

fn setup(e: impl std::fmt::Display) -> SandboxError {
    SandboxError(format!("demo set-up: {e}"))
}

impl DemoWorld {
    /// Starts a sandbox and sets up the demo world in it.
    pub async fn start() -> Result<Self, SandboxError> {
        let sandbox = Sandbox::start().await?;
        Self::set_up(sandbox)
    }

    /// Starts a sandbox with a CA made beforehand (see
    /// [`Sandbox::start_with_ca`]) and sets up the demo world in it.
    pub async fn start_with_ca(ca: super::tls::SandboxCa) -> Result<Self, SandboxError> {
        Self::set_up(Sandbox::start_with_ca(ca).await?)
    }

    /// Sets up the demo world in a running sandbox.
    pub fn set_up(sandbox: Sandbox) -> Result<Self, SandboxError> {
        let d = sandbox.directory();
        let partner = d.add_tenant("Fabrikam (partner)", &["fabrikam.onmicrosoft.com"]);
        let owner = d.add_tenant("Contoso (resource owner)", &["contoso.onmicrosoft.com"]);
        let app = d
            .register_app(&partner.id, "fabrikam-integration", true)
            .map_err(setup)?;
        let secret = d.add_secret(&app.app_id, 365 * 24 * 3600).map_err(setup)?;
        let sp = d
            .create_service_principal(&owner.id, &app.app_id)
            .map_err(setup)?;

        let eh = sandbox.eventhubs();
        let namespace = eh.create_namespace(&owner.id, "contoso-telemetry");
        eh.create_hub(&namespace, HUB, 4);
        eh.assign_role(&namespace, &sp.object_id, Role::DataSender);

        let api = sandbox.api();
        api.register_api(&owner.id, API_URI).map_err(setup)?;
        api.register_client(CLIENT).map_err(setup)?;
        api.grant_api(&app.app_id, &[Access::Read, Access::Write])
            .map_err(setup)?;
        api.grant_client(&app.app_id, CLIENT, &[Access::Read])
            .map_err(setup)?;

        let api_v2 = d
            .register_app(&owner.id, "secureAPI-v2", false)
            .map_err(setup)?;
        d.add_identifier_uri(&api_v2.app_id, API_V2_URI)
            .map_err(setup)?;
        d.set_access_token_version(&api_v2.app_id, TokenVersion::V2)
            .map_err(setup)?;
        for access in [Access::Read, Access::Write] {
            d.add_app_role(&api_v2.app_id, access.api_role())
                .map_err(setup)?;
            d.grant_app_role(&owner.id, &app.app_id, &api_v2.app_id, access.api_role())
                .map_err(setup)?;
        }
        let api_v2 = d.app(&api_v2.app_id).unwrap_or(api_v2);
        let app = d.app(&app.app_id).unwrap_or(app);

        // The secretless app: federated credentials only.
        let secretless = d
            .register_app(&partner.id, SECRETLESS_APP, true)
            .map_err(setup)?;
        let managed_identity = d
            .add_managed_identity(
                &partner.id,
                MANAGED_IDENTITY,
                ManagedIdentityKind::UserAssigned,
            )
            .map_err(setup)?;
        let mi_host = sandbox.managed_identity().add_host(
            MANAGED_IDENTITY_HOST,
            std::slice::from_ref(&managed_identity),
        );
        d.add_federated_credential(
            &secretless.app_id,
            &super::jwt::AccessClaims::v2_issuer_for(&partner.id),
            &managed_identity.object_id,
        )
        .map_err(setup)?;
        let gh = sandbox.github_actions();
        d.add_federated_credential(&secretless.app_id, &gh.issuer(), &gh.subject())
            .map_err(setup)?;
        let secretless_sp = d
            .create_service_principal(&owner.id, &secretless.app_id)
            .map_err(setup)?;
        eh.assign_role(&namespace, &secretless_sp.object_id, Role::DataSender);
        api.grant_api(&secretless.app_id, &[Access::Read, Access::Write])
            .map_err(setup)?;
        api.grant_client(&secretless.app_id, CLIENT, &[Access::Read])
            .map_err(setup)?;
        for access in [Access::Read, Access::Write] {
            d.grant_app_role(
                &owner.id,
                &secretless.app_id,
                &api_v2.app_id,
                access.api_role(),
            )
            .map_err(setup)?;
        }
        let secretless = d.app(&secretless.app_id).unwrap_or(secretless);
        Ok(Self {
            sandbox,
            partner,
            owner,
            app,
            namespace,
            api_v2,
            secretless,
            managed_identity,
            secret,
            mi_host,
        })
    }

    /// The secretless partner app.
    pub fn secretless_app(&self) -> &AppRegistration {
        &self.secretless
    }

    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` of the App Service host
    /// [`MANAGED_IDENTITY_HOST`], to which [`Self::managed_identity`] is
    /// assigned.
    pub fn managed_identity_host(&self) -> &ManagedIdentityHost {
        &self.mi_host
    }

    /// Adds a resource tenant `name` (`{name}.onmicrosoft.com`) that lets
    /// both partner apps in: service principals, a namespace
    /// `{name}-telemetry` (hub [`HUB`], 4 partitions) where both are Event
    /// Hubs Data Senders, and an API `api://{name}-api` granting both
    /// `API.Read` and `API.Write`.
    pub fn add_resource_tenant(&self, name: &str) -> Result<ResourceTenant, SandboxError> {
        let d = self.sandbox.directory();
        let tenant = d.add_tenant(name, &[&format!("{name}.onmicrosoft.com")]);
        let eh = self.sandbox.eventhubs();
        let namespace = eh.create_namespace(&tenant.id, &format!("{name}-telemetry"));
        eh.create_hub(&namespace, HUB, 4);
        let api_uri = format!("api://{name}-api");
        let api = d
            .register_app(&tenant.id, &format!("{name}-api"), false)
            .map_err(setup)?;
        d.add_identifier_uri(&api.app_id, &api_uri).map_err(setup)?;
        for access in [Access::Read, Access::Write] {
            d.add_app_role(&api.app_id, access.api_role())
                .map_err(setup)?;
        }
        for app in [&self.app, &self.secretless] {
            let sp = d
                .create_service_principal(&tenant.id, &app.app_id)
                .map_err(setup)?;
            eh.assign_role(&namespace, &sp.object_id, Role::DataSender);
            for access in [Access::Read, Access::Write] {
                d.grant_app_role(&tenant.id, &app.app_id, &api.app_id, access.api_role())
                    .map_err(setup)?;
            }
        }
        let api = d.app(&api.app_id).unwrap_or(api);
        Ok(ResourceTenant {
            tenant,
            namespace,
            api,
            api_uri,
        })
    }

    /// The app's client secret (a sandbox secret: worthless outside it).
    pub fn client_secret(&self) -> &str {
        &self.secret
    }

    /// The environment that points any Azure SDK tool at the demo world, as
    /// `(name, value)` pairs; `ca_file` is where the caller wrote
    /// [`Sandbox::ca_pem`] (both `SSL_CERT_FILE` and `SANDBOX_CA_FILE`; a
    /// caller that must keep the user's own `SSL_CERT_FILE` replaces the
    /// former, as [`crate::standalone::run`] does). Contains the demo secret.
    pub fn environment(&self, ca_file: &str) -> Vec<(&'static str, String)> {
        let eh = self.sandbox.eventhubs();
        vec![
            (
                "AZURE_AUTHORITY_HOST",
                self.sandbox.authority_host().to_string(),
            ),
            ("AZURE_TENANT_ID", self.owner.id.clone()),
            ("AZURE_CLIENT_ID", self.app.app_id.clone()),
            ("AZURE_CLIENT_SECRET", self.secret.clone()),
            ("SSL_CERT_FILE", ca_file.to_string()),
            ("SANDBOX_CA_FILE", ca_file.to_string()),
            ("PARTNER_TENANT_ID", self.partner.id.clone()),
            ("RESOURCE_TENANT_DOMAIN", self.owner.domains.join(" ")),
            ("EVENTHUBS_NAMESPACE", self.namespace.clone()),
            ("EVENTHUBS_HUB", HUB.to_string()),
            ("EVENTHUBS_AMQP_ENDPOINT", eh.amqps_endpoint().to_string()),
            (
                "EVENTHUBS_AMQP_PLAIN_ENDPOINT",
                eh.amqp_endpoint().to_string(),
            ),
            (
                "EVENTHUBS_WEBSOCKET_ENDPOINT",
                eh.websocket_endpoint().to_string(),
            ),
            ("EVENTHUBS_HTTPS_ENDPOINT", eh.https_endpoint().to_string()),
            ("AGGREGATOR_API_URL", self.sandbox.api().url().to_string()),
            ("AGGREGATOR_API_SCOPE", format!("{API_URI}/.default")),
            ("AGGREGATOR_CLIENT", CLIENT.to_string()),
            ("API_V2_SCOPE", format!("{API_V2_URI}/.default")),
            ("API_V2_CLIENT_ID", self.api_v2.app_id.clone()),
        ]
    }

    /// The settings every secretless way shares: the authority, the
    /// resource tenant (Contoso) and the secretless app's client id.
    fn secretless_common(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AZURE_AUTHORITY_HOST",
                self.sandbox.authority_host().to_string(),
            ),
            ("AZURE_TENANT_ID", self.owner.id.clone()),
            ("AZURE_CLIENT_ID", self.secretless.app_id.clone()),
        ]
    }

    /// The environment of the managed identity way, as a process on the
    /// App Service host [`MANAGED_IDENTITY_HOST`] has it: `IDENTITY_ENDPOINT`,
    /// `IDENTITY_HEADER`, the secretless app's `AZURE_CLIENT_ID`,
    /// `AZURE_TENANT_ID` = Contoso, `AZURE_AUTHORITY_HOST`, and
    /// `CROSSTENANT_MANAGED_IDENTITY` = the client id of the user-assigned
    /// managed identity. Add the CA settings of [`Self::environment`].
    /// Contains the host's identity header.
    pub fn managed_identity_environment(&self) -> Vec<(&'static str, String)> {
        let mut env = self.secretless_common();
        env.extend([
            ("IDENTITY_ENDPOINT", self.mi_host.endpoint.to_string()),
            (
                "IDENTITY_HEADER",
                self.mi_host.identity_header().to_string(),
            ),
            (
                "CROSSTENANT_MANAGED_IDENTITY",
                self.managed_identity.client_id.clone(),
            ),
        ]);
        env
    }

    /// The environment of the GitHub Actions way, as a workflow job with
    /// `permissions: id-token: write` has it: `ACTIONS_ID_TOKEN_REQUEST_URL`,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, the secretless app's
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` = Contoso, `AZURE_AUTHORITY_HOST`,
    /// and `CROSSTENANT_GITHUB_OIDC` = `1`. Add the CA settings of
    /// [`Self::environment`]. Contains the job's request token.
    pub fn github_oidc_environment(&self) -> Vec<(&'static str, String)> {
        let gh = self.sandbox.github_actions();
        let mut env = self.secretless_common();
        env.extend([
            ("ACTIONS_ID_TOKEN_REQUEST_URL", gh.request_url()),
            (
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                gh.request_token().to_string(),
            ),
            ("CROSSTENANT_GITHUB_OIDC", "1".to_string()),
        ]);
        env
    }
}
