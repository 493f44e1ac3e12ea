//! The Event Hubs namespace's role check, proven role by role (found by
//! mutation testing; see docs/MUTANTS.md in the repository root). Azure
//! RBAC's "Azure Event Hubs Data Receiver" may receive, not send; "Data
//! Sender" and "Data Owner" may send (Microsoft: "Authorize access to Event
//! Hubs resources using Microsoft Entra ID", built-in roles). A principal
//! holding only Data Receiver is refused with 401, so a sandbox that let any
//! role send would fail here.

use crosstenant_sandbox::demo::{DemoWorld, EVENTHUBS_SCOPE, HUB};
use crosstenant_sandbox::eventhubs::Role;
use crosstenant_sandbox::jwt::{now_secs, AccessClaims};
use serde_json::json;

/// A v1 app token for the demo app in the resource owner's tenant, for Event
/// Hubs, signed by the sandbox's issuer: what Entra would issue.
fn token(world: &DemoWorld) -> String {
    let now = now_secs();
    let tenant = &world.owner.id;
    let oid = world
        .sandbox
        .directory()
        .service_principal(tenant, &world.app.app_id)
        .expect("service principal")
        .object_id;
    let claims = json!({
        "aud": EVENTHUBS_SCOPE.trim_end_matches("/.default"),
        "iss": AccessClaims::issuer_for(tenant),
        "appid": world.app.app_id,
        "appidacr": "1",
        "idtyp": "app",
        "ver": "1.0",
        "oid": oid,
        "sub": oid,
        "tid": tenant,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "uti": format!("roles-{now}"),
    });
    world.sandbox.issuer().sign(&claims).expect("token signs")
}

/// Sends one event to the demo hub over HTTPS (the sandbox CA trusted); the
/// status.
async fn send(world: &DemoWorld, token: &str, body: &str) -> u16 {
    let ca = reqwest::Certificate::from_pem(world.sandbox.ca_pem().as_bytes()).expect("CA");
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .expect("client");
    let url = world
        .sandbox
        .eventhubs()
        .https_endpoint()
        .join(&format!("{HUB}/messages?timeout=60&api-version=2014-01"))
        .expect("URL");
    http.post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("host", world.namespace.as_str())
        .header(
            "content-type",
            "application/atom+xml;type=entry;charset=utf-8",
        )
        .body(body.to_string())
        .send()
        .await
        .expect("the namespace answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn only_the_sender_and_owner_roles_may_send() {
    let world = DemoWorld::start().await.expect("sandbox starts");
    let eh = world.sandbox.eventhubs();
    let oid = world
        .sandbox
        .directory()
        .service_principal(&world.owner.id, &world.app.app_id)
        .expect("service principal")
        .object_id;
    let token = token(&world);
    for (role, expected) in [
        (Role::DataSender, 201),
        (Role::DataReceiver, 401),
        (Role::DataOwner, 201),
    ] {
        eh.revoke_roles(&world.namespace, &oid);
        assert!(eh.assign_role(&world.namespace, &oid, role));
        let body = format!("as {}", role.name());
        assert_eq!(
            send(&world, &token, &body).await,
            expected,
            "{}",
            role.name()
        );
        let stored = eh
            .events(&world.namespace, HUB)
            .iter()
            .any(|e| e.body_text() == Some(body.as_str()));
        assert_eq!(stored, expected == 201, "{}", role.name());
    }
}
