//! What every bench binary shares: the runtime, the criterion settings, the
//! demo world, the anchor credential, and a recorder that keeps criterion's
//! own samples so a bench can print the ratio of two measured functions.
//!
//! Ratios measured in one run are the claims; absolute times on a shared
//! 2-core machine are noise.

#![allow(dead_code)] // each bench binary uses a different part

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use criterion::Criterion;
use crosstenant_sandbox::demo::DemoWorld;

#[path = "../../tests/common/demo.rs"]
mod demo;
pub use demo::DemoCredential;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Event Hubs scope, as a partner asks for it.
pub const EVENTHUBS_SCOPE: &str = crosstenant_sandbox::demo::EVENTHUBS_SCOPE;

/// Two workers: this machine has two cores, and the sandbox shares them.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Small samples and short measurement times keep the whole `cargo bench`
/// run within minutes; the ratios come from the same samples either way.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Starts the demo world on `rt`.
pub fn world(rt: &tokio::runtime::Runtime) -> DemoWorld {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!(
            "WARNING: RUST_BACKTRACE is set. azure_core's pipeline builds an error for a missing \
             x-ms-client-request-id on every request, and with RUST_BACKTRACE that error captures \
             a backtrace: every call through an azure_core pipeline (ours) slows down, a plain \
             reqwest call does not. Run the benches with RUST_BACKTRACE unset."
        );
    }
    rt.block_on(DemoWorld::start()).expect("sandbox starts")
}

/// The anchor: azure_identity's `ClientSecretCredential` for the same app at
/// the same (resource owner's) authority, trusting the sandbox CA the way
/// our credential does: a reqwest client with the CA merged into its roots,
/// and a custom cloud whose authority host is the sandbox.
pub fn anchor_credential(world: &DemoWorld) -> Arc<ClientSecretCredential> {
    let roots = reqwest::Certificate::from_pem_bundle(world.sandbox.ca_pem().as_bytes())
        .expect("sandbox CA is PEM");
    let http = reqwest::Client::builder()
        .tls_certs_merge(roots)
        .build()
        .expect("reqwest client");
    let mut cloud = azure_core::cloud::CustomConfiguration::default();
    cloud.authority_host = world
        .sandbox
        .authority_host()
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let client_options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(cloud.into())),
        ..Default::default()
    };
    ClientSecretCredential::new(
        &world.owner.id,
        world.app.app_id.clone(),
        world.client_secret().to_string().into(),
        Some(ClientSecretCredentialOptions { client_options }),
    )
    .expect("anchor credential")
}

/// Our credential as the `dyn TokenCredential` every Azure SDK client sees.
pub fn ours(world: &DemoWorld) -> Arc<dyn TokenCredential> {
    world.credential().expect("our credential")
}

/// The anchor producer: raw azure_messaging_eventhubs `ProducerClient` on
/// the sandbox's plain loopback AMQP endpoint, with `cred`.
pub async fn raw_producer(
    world: &DemoWorld,
    cred: Arc<dyn TokenCredential>,
) -> azure_messaging_eventhubs::ProducerClient {
    azure_messaging_eventhubs::ProducerClient::builder()
        .with_custom_endpoint(
            world
                .sandbox
                .eventhubs()
                .amqp_endpoint()
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        )
        .open(&world.namespace, crosstenant_sandbox::demo::HUB, cred)
        .await
        .expect("raw producer opens")
}

/// Token requests the sandbox's identity service has answered so far.
pub fn token_requests(world: &DemoWorld) -> u64 {
    world.sandbox.identity().stats().token_requests()
}

/// Keeps the time per iteration of every sample criterion takes through
/// `iter_custom`, so a bench can compare two functions of one run.
#[derive(Clone, Default)]
pub struct Samples(Arc<Mutex<Vec<f64>>>);

impl Samples {
    /// Records one sample of `iters` iterations taking `elapsed`.
    pub fn record(&self, iters: u64, elapsed: Duration) {
        if iters > 0 {
            self.0
                .lock()
                .unwrap()
                .push(elapsed.as_nanos() as f64 / iters as f64);
        }
    }

    /// The median time per iteration, in nanoseconds: robust against the
    /// other engineers' builds stealing a core during one sample.
    pub fn median_ns(&self) -> f64 {
        let mut v = self.0.lock().unwrap().clone();
        assert!(!v.is_empty(), "no samples recorded");
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// The `q` quantile (0..=1) of `latencies`.
pub fn quantile(latencies: &mut [Duration], q: f64) -> Duration {
    assert!(!latencies.is_empty());
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
    latencies[i]
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints a result line in the one format BENCHMARKS.md quotes.
pub fn result(name: &str, text: impl std::fmt::Display) {
    println!("RESULT {name} {text}");
}
