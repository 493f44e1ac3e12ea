//! The secretless story on the sandbox: the partner's multi-tenant app with
//! **no secret and no certificate**, trusting its user-assigned managed
//! identity and a GitHub Actions job through federated identity
//! credentials; resource owners (the demo's Contoso, and more) that created
//! its service principal and granted it roles, exactly as for a secret app.
#![allow(dead_code)]

use crosstenant::credential::{CrossTenantCredentialBuilder, PartnerAppBuilder};
use crosstenant::{CrossTenantCredential, PartnerApp};
use crosstenant_sandbox::api::Access;
use crosstenant_sandbox::demo::{DemoWorld, CLIENT, HUB};
use crosstenant_sandbox::directory::{
    AppRegistration, ManagedIdentity, ManagedIdentityKind, Tenant,
};
use crosstenant_sandbox::eventhubs::Role;
use crosstenant_sandbox::managed_identity::ManagedIdentityHost;

/// A resource owner: its tenant and its Event Hubs namespace (hub
/// [`HUB`]), where the secretless app holds "Azure Event Hubs Data Sender".
pub struct Owner {
    pub tenant: Tenant,
    pub namespace: String,
}

pub struct Secretless {
    pub world: DemoWorld,
    /// The partner's app: multi-tenant, no secret, no certificate.
    pub app: AppRegistration,
    /// The partner's user-assigned managed identity (only user-assigned
    /// ones can be an app's federated credential).
    pub identity: ManagedIdentity,
    /// A second user-assigned identity on the same host that no federated
    /// credential of the app names (its tokens are refused: AADSTS700213).
    pub unfederated: ManagedIdentity,
    /// The App Service host the identities are assigned to:
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    pub host: ManagedIdentityHost,
    /// The resource owners, the demo's Contoso first.
    pub owners: Vec<Owner>,
}

/// The issuer of a managed identity's tokens: the partner tenant's v2.0
/// authority (Microsoft's "Configure an application to trust a managed
/// identity").
pub fn managed_identity_issuer(partner_tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{partner_tenant}/v2.0")
}

impl Secretless {
    /// The demo world plus a secretless app, its managed identity (and
    /// federated credentials for it and for the GitHub job), and
    /// `extra_owners` more resource tenants beside Contoso.
    pub async fn start(extra_owners: usize) -> Self {
        let world = DemoWorld::start().await.expect("the demo world starts");
        let d = world.sandbox.directory();
        let app = d
            .register_app(&world.partner.id, "fabrikam-secretless", true)
            .expect("app registers");
        let identity = d
            .add_managed_identity(
                &world.partner.id,
                "fabrikam-sender",
                ManagedIdentityKind::UserAssigned,
            )
            .expect("managed identity");
        d.add_federated_credential(
            &app.app_id,
            &managed_identity_issuer(&world.partner.id),
            &identity.object_id,
        )
        .expect("federated credential for the managed identity");
        let gh = world.sandbox.github_actions();
        d.add_federated_credential(&app.app_id, &gh.issuer(), &gh.subject())
            .expect("federated credential for the GitHub job");
        let unfederated = d
            .add_managed_identity(
                &world.partner.id,
                "fabrikam-other",
                ManagedIdentityKind::UserAssigned,
            )
            .expect("managed identity");
        let host = world
            .sandbox
            .managed_identity()
            .add_host("fabrikam-tests", &[identity.clone(), unfederated.clone()]);

        // Contoso: the demo's namespace and API, granted to this app too.
        let sp = d
            .create_service_principal(&world.owner.id, &app.app_id)
            .expect("service principal at Contoso");
        let eh = world.sandbox.eventhubs();
        assert!(eh.assign_role(&world.namespace, &sp.object_id, Role::DataSender));
        let api = world.sandbox.api();
        api.grant_api(&app.app_id, &[Access::Read, Access::Write])
            .expect("API roles");
        api.grant_client(&app.app_id, CLIENT, &[Access::Read])
            .expect("client role");
        let mut owners = vec![Owner {
            tenant: world.owner.clone(),
            namespace: world.namespace.clone(),
        }];
        for i in 0..extra_owners {
            let domain = format!("owner{i}.onmicrosoft.com");
            let tenant = d.add_tenant(&format!("Resource owner {i}"), &[domain.as_str()]);
            let sp = d
                .create_service_principal(&tenant.id, &app.app_id)
                .expect("service principal");
            let namespace = eh.create_namespace(&tenant.id, &format!("owner{i}-telemetry"));
            assert!(eh.create_hub(&namespace, HUB, 2));
            assert!(eh.assign_role(&namespace, &sp.object_id, Role::DataSender));
            owners.push(Owner { tenant, namespace });
        }
        Self {
            world,
            app,
            identity,
            unfederated,
            host,
            owners,
        }
    }

    /// A credential builder for the secretless app at `tenant`, pointed at
    /// the sandbox and trusting its CA, without a proof yet.
    pub fn builder(&self, tenant: &str) -> CrossTenantCredentialBuilder {
        CrossTenantCredential::builder()
            .resource_tenant(tenant)
            .client_id(&self.app.app_id)
            .authority_host(self.world.sandbox.authority_host().as_str())
            .root_certificates_pem(self.world.sandbox.ca_pem())
    }

    /// A partner app builder for the secretless app, without a proof yet.
    pub fn partner_app(&self) -> PartnerAppBuilder {
        PartnerApp::builder()
            .client_id(&self.app.app_id)
            .authority_host(self.world.sandbox.authority_host().as_str())
            .root_certificates_pem(self.world.sandbox.ca_pem())
    }

    /// The GitHub job's request URL and token (what the runner sets as
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub fn github(&self) -> (String, String) {
        let gh = self.world.sandbox.github_actions();
        (gh.request_url(), gh.request_token().to_string())
    }
}
