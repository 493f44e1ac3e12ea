//! Microsoft's Python Event Hubs client, azure-eventhub (its own AMQP stack,
//! pyamqp), against the sandbox's Event Hubs: over AMQP with TLS and over
//! AMQP over WebSockets, changing only the endpoint, the trusted CA and the
//! credential's authority. Each test runs one check of
//! `python/eventhub_checks.py` through the shared harness (`python/mod.rs`:
//! a pinned virtual environment, skipped loudly where Python is missing) and
//! then reads what the sandbox stored. Run with `-- --nocapture` to see the
//! client's version and each check's output.

mod python;

use crosstenant_sandbox::eventhubs::{partition_for_key, Protocol};
use python::Setup;

/// The demo world; its environment names the AMQP (TLS) and WebSocket
/// endpoints the checks connect to.
async fn setup() -> Setup {
    let setup = Setup::start().await;
    assert!(
        setup
            .env
            .iter()
            .any(|(n, v)| n == "EVENTHUBS_WEBSOCKET_ENDPOINT" && v.starts_with("wss://")),
        "the demo world advertises its WebSocket endpoint"
    );
    setup
}

/// What a `send-*` check must have left in the sandbox: three events with
/// partition key `device-7` and properties in that key's partition, two in
/// partition 2, all by the demo app over AMQP; and the partition properties
/// the client printed agree with the store.
fn assert_stored(setup: &Setup, out: &str, via: &str) {
    let w = &setup.world;
    let events = w.sandbox.eventhubs().events(&w.namespace, "telemetry");
    assert_eq!(events.len(), 5, "stored: {events:#?}");
    let keyed: Vec<_> = events
        .iter()
        .filter(|e| e.partition_key.as_deref() == Some("device-7"))
        .collect();
    assert_eq!(keyed.len(), 3, "three events carry the partition key");
    let home = partition_for_key("device-7", 4);
    for (n, e) in keyed.iter().enumerate() {
        assert_eq!(e.partition, home, "one key, one partition");
        assert_eq!(
            e.body_text(),
            Some(format!(r#"{{"n": {n}, "via": "{via}"}}"#).as_str())
        );
        assert_eq!(
            e.properties.get("seq").map(String::as_str),
            Some(n.to_string().as_str())
        );
        assert_eq!(e.properties.get("via").map(String::as_str), Some(via));
    }
    let pinned: Vec<_> = events
        .iter()
        .filter(|e| e.partition_key.is_none())
        .collect();
    assert_eq!(pinned.len(), 2);
    assert!(pinned.iter().all(|e| e.partition == 2));
    assert!(events
        .iter()
        .all(|e| e.protocol == Protocol::Amqp && e.sender_app_id == w.app.app_id));

    let reported: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| l.strip_prefix("partition-properties "))
        .map(|j| serde_json::from_str(j).expect("the script prints JSON"))
        .collect();
    assert_eq!(reported.len(), 4, "the client read every partition");
    for p in &reported {
        let id: u32 = p["id"].as_str().unwrap().parse().unwrap();
        let stored = events.iter().filter(|e| e.partition == id).count() as i64;
        assert_eq!(
            p["last_enqueued_sequence_number"].as_i64(),
            Some(stored - 1),
            "partition {id}: {p}"
        );
        assert_eq!(p["is_empty"].as_bool(), Some(stored == 0), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_eventhub_sends_and_reads_properties_over_amqp_with_tls() {
    let setup = setup().await;
    let Some(out) = setup.run("eventhub_checks.py", &["send-amqp"]).await else {
        return;
    };
    assert_stored(&setup, &out, "amqp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_eventhub_sends_and_reads_properties_over_websockets() {
    let setup = setup().await;
    let Some(out) = setup.run("eventhub_checks.py", &["send-websocket"]).await else {
        return;
    };
    assert_stored(&setup, &out, "websocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_eventhub_with_a_custom_endpoint_defaults_to_websockets() {
    let setup = setup().await;
    let Some(out) = setup
        .run("eventhub_checks.py", &["default-transport"])
        .await
    else {
        return;
    };
    assert!(out.contains("chose AmqpOverWebsocket"), "{out}");
    assert_stored(&setup, &out, "default");
}

async fn home_tenant_refused(check: &str) {
    let setup = setup().await;
    if setup.run("eventhub_checks.py", &[check]).await.is_none() {
        return;
    }
    let eh = setup.world.sandbox.eventhubs();
    assert_eq!(eh.event_count(), 0, "nothing is stored for a refused token");
    assert!(
        eh.stats()
            .refused_wrong_tenant
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2,
        "both put-tokens were refused for their tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_eventhub_home_tenant_token_is_refused_40100_over_amqp() {
    home_tenant_refused("home-tenant-amqp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_eventhub_home_tenant_token_is_refused_40100_over_websockets() {
    home_tenant_refused("home-tenant-websocket").await;
}
