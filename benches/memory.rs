//! Bytes held per cached token and per open sender, ours against the
//! anchors (azure_identity's cache, raw `ProducerClient`), counted by a
//! global allocator.
//!
//! The sandbox runs in this process, so the two sides run on two runtimes:
//! the sandbox's threads are not counted, the client runtime's threads are.
//! Nothing allocated on one side is freed on the other (they talk over
//! loopback sockets only), so the client side's net bytes are what the
//! client holds. Sizes are the sizes asked of the allocator, without
//! malloc's own overhead.
//!
//! Run: `cargo bench --bench memory`.

mod common;
use common::DemoCredential;

use azure_core::credentials::TokenCredential;
use common::result;
use crosstenant::eventhubs::{Event, EventHubSender, SendOptions, Transport};
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::api::Access;
use crosstenant_sandbox::demo::{DemoWorld, HUB};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Scopes cached in the per-token measurement.
const SCOPES: usize = 1_000;
/// AMQP senders opened at once (each is a connection).
const AMQP_SENDERS: usize = 20;
/// HTTPS senders opened at once.
const HTTPS_SENDERS: usize = 100;

/// Net bytes held by threads of the client runtime.
static CLIENT_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// Whether this thread belongs to the client runtime. A `const` Cell
    /// has no destructor and never allocates, so reading it inside the
    /// allocator is safe.
    static CLIENT_SIDE: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: i64) {
    if CLIENT_SIDE.try_with(Cell::get).unwrap_or(false) {
        CLIENT_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

/// `System`, counting. The crate forbids `unsafe`; this bench is its own
/// crate, and a `GlobalAlloc` cannot be written without it. Every method
/// only forwards to `System` with the caller's own arguments, so the
/// contract `System` needs is the one our caller already upholds.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; GlobalAlloc's caller guarantees a
        // non-zero-sized layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence from `System`)
        // with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`, and the caller guarantees `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| CLIENT_SIDE.with(|c| c.set(true)))
        .build()
        .expect("client runtime")
}

/// Client-side bytes once background work (pool, connection and refresh
/// tasks) has settled.
async fn held() -> i64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    CLIENT_BYTES.load(Ordering::Relaxed)
}

/// Bytes held per cached token: a warm credential with one scope, then
/// `SCOPES` more scopes cached.
async fn per_token(cred: Arc<dyn TokenCredential>, scopes: Arc<Vec<String>>) -> f64 {
    cred.get_token(&[common::EVENTHUBS_SCOPE], None)
        .await
        .expect("first token");
    let before = held().await;
    for s in scopes.iter() {
        cred.get_token(&[s], None).await.expect("token");
    }
    let after = held().await;
    drop(cred);
    (after - before) as f64 / scopes.len() as f64
}

async fn our_sender(
    world: &DemoWorld,
    transport: Transport,
    cred: &Arc<CrossTenantCredential>,
) -> EventHubSender {
    let eh = world.sandbox.eventhubs();
    let endpoint = match transport {
        Transport::Https => eh.https_endpoint(),
        _ => eh.amqp_endpoint(),
    };
    EventHubSender::builder(&world.namespace, HUB, cred.clone())
        .http_settings(cred.http_settings().clone())
        .transport(transport)
        .endpoint(endpoint.as_str().trim_end_matches('/'))
        .open()
        .await
        .expect("our sender opens")
}

/// Bytes held per open sender, for ours (AMQP and HTTPS) and raw
/// `ProducerClient`; each open AMQP sender holds one connection.
async fn per_sender(world: DemoWorld) -> [f64; 4] {
    // One credential for every sender: its token cache is not per sender.
    let ours_cred = world.credential().unwrap();
    let cred: Arc<dyn TokenCredential> = ours_cred.clone();
    // One of each first: lazily built statics and the token are not per
    // sender.
    let warm = (
        our_sender(&world, Transport::Amqp, &ours_cred).await,
        common::raw_producer(&world, cred.clone()).await,
        our_sender(&world, Transport::Https, &ours_cred).await,
    );

    let before = held().await;
    let mut ours = Vec::new();
    for _ in 0..AMQP_SENDERS {
        ours.push(our_sender(&world, Transport::Amqp, &ours_cred).await);
    }
    let amqp_ours = (held().await - before) as f64 / AMQP_SENDERS as f64;

    let before = held().await;
    let mut raw = Vec::new();
    for _ in 0..AMQP_SENDERS {
        raw.push(common::raw_producer(&world, cred.clone()).await);
    }
    let amqp_raw = (held().await - before) as f64 / AMQP_SENDERS as f64;

    let before = held().await;
    let mut https = Vec::new();
    for _ in 0..HTTPS_SENDERS {
        https.push(our_sender(&world, Transport::Https, &ours_cred).await);
    }
    let https_idle = (held().await - before) as f64 / HTTPS_SENDERS as f64;
    // After one send each: every sender now keeps a TLS connection alive.
    let before = held().await;
    for s in &https {
        s.send_raw(vec![Event::new(&b"{}"[..])], SendOptions::default())
            .await
            .expect("send");
    }
    let https_connected = (held().await - before) as f64 / HTTPS_SENDERS as f64;

    for s in ours {
        let _ = s.close().await;
    }
    for p in raw {
        let _ = p.close().await;
    }
    let _ = warm.0.close().await;
    let _ = warm.1.close().await;
    drop(https);
    [amqp_ours, amqp_raw, https_idle, https_connected]
}

fn main() {
    let sandbox_rt = common::runtime();
    let world = common::world(&sandbox_rt);
    let api = world.sandbox.api();
    let mut scopes = Vec::with_capacity(SCOPES);
    for i in 0..SCOPES {
        let name = format!("client{i}");
        api.register_client(&name).expect("register client");
        api.grant_client(&world.app.app_id, &name, &[Access::Read])
            .expect("grant client");
        scopes.push(format!("api://{name}/.default"));
    }
    let scopes = Arc::new(scopes);
    let client_rt = client_runtime();

    // Everything client-side is made, used and dropped inside tasks on the
    // client runtime, so its bytes are counted from birth to death.
    let w = world.clone();
    let s = scopes.clone();
    let (ours, anchor) = client_rt
        .block_on(client_rt.spawn(async move {
            let ours = per_token(common::ours(&w), s.clone()).await;
            let anchor = per_token(common::anchor_credential(&w), s).await;
            (ours, anchor)
        }))
        .expect("token measurement");
    result(
        "memory per_cached_token",
        format!(
            "ours = {ours:.0} B, azure_identity = {anchor:.0} B, ours/anchor = {:.2} \
             ({SCOPES} scopes; a sandbox JWT is about 1 KB of it)",
            ours / anchor
        ),
    );

    let w = world.clone();
    let [amqp_ours, amqp_raw, https_idle, https_connected] = client_rt
        .block_on(client_rt.spawn(per_sender(w)))
        .expect("sender measurement");
    result(
        "memory per_open_sender",
        format!(
            "AMQP: ours = {amqp_ours:.0} B, raw ProducerClient = {amqp_raw:.0} B, ours/anchor = \
             {:.2} ({AMQP_SENDERS} senders, one connection each); HTTPS: {https_idle:.0} B idle, \
             +{https_connected:.0} B once its kept-alive TLS connection is open",
            amqp_ours / amqp_raw
        ),
    );
    drop(client_rt);
}
