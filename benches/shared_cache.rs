//! The fleet's shared token cache (feature `redis`) on a real
//! `redis-server`: a cached `get_token` with the shared level on against the
//! in-process cache alone (the shared level must cost a cache hit nothing),
//! and an in-process miss served from Redis against one that goes to Entra
//! (the sandbox), in one run.
//!
//! Run: `cargo bench --bench shared_cache --features redis`. Without
//! `redis-server` on PATH it says so and exits.

mod common;
#[path = "../tests/common/redis.rs"]
mod redis_server;

use azure_core::credentials::TokenCredential;
use common::{quantile, result, us, DemoCredential, Samples, EVENTHUBS_SCOPE};
use criterion::Criterion;
use crosstenant::credential::SharedTokenCache;
use crosstenant::CrossTenantCredential;
use crosstenant_sandbox::demo::DemoWorld;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Interleaved rounds of the cached-call comparison, and calls per round.
const ROUNDS: usize = 21;
const CALLS_PER_ROUND: usize = 100_000;
/// Misses measured on each side.
const MISSES: usize = 200;

fn with_shared(world: &DemoWorld, url: &str) -> Arc<CrossTenantCredential> {
    CrossTenantCredential::builder()
        .resource_tenant(&world.owner.id)
        .client_id(&world.app.app_id)
        .client_secret(world.client_secret())
        .authority_host(world.sandbox.authority_host().as_str())
        .root_certificates_pem(world.sandbox.ca_pem())
        .shared_cache(SharedTokenCache::redis(url).key_base64(KEY))
        .build()
        .expect("credential with the shared cache")
}

fn cached(c: &mut Criterion, rt: &tokio::runtime::Runtime, world: &DemoWorld, url: &str) {
    let alone: Arc<dyn TokenCredential> = world.credential().unwrap();
    let shared: Arc<dyn TokenCredential> = with_shared(world, url);
    rt.block_on(async {
        alone.get_token(&[EVENTHUBS_SCOPE], None).await.unwrap();
        shared.get_token(&[EVENTHUBS_SCOPE], None).await.unwrap();
    });
    let (s_alone, s_shared) = (Samples::default(), Samples::default());
    let mut group = c.benchmark_group("shared_cache_cached_token");
    for (name, cred, samples) in [
        ("in_process_only", &alone, &s_alone),
        ("with_shared_level", &shared, &s_shared),
    ] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (cred, samples) = (cred.clone(), samples.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(cred.get_token(&[EVENTHUBS_SCOPE], None).await.unwrap());
                    }
                    let elapsed = start.elapsed();
                    samples.record(iters, elapsed);
                    elapsed
                }
            })
        });
    }
    group.finish();
    // The claim: both interleaved round by round, so a noisy neighbour
    // slows both alike; medians of the per-round times.
    let mut rounds: [Vec<f64>; 2] = Default::default();
    rt.block_on(async {
        for _ in 0..ROUNDS {
            for (cred, times) in [&alone, &shared].into_iter().zip(rounds.iter_mut()) {
                let start = Instant::now();
                for _ in 0..CALLS_PER_ROUND {
                    black_box(cred.get_token(&[EVENTHUBS_SCOPE], None).await.unwrap());
                }
                times.push(start.elapsed().as_nanos() as f64 / CALLS_PER_ROUND as f64);
            }
        }
    });
    let [a, s] = rounds.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    result(
        "shared_cache_cached_token",
        format!(
            "(medians of {ROUNDS} interleaved rounds of {CALLS_PER_ROUND} calls) in-process only \
             = {a:.0} ns, with the shared level = {s:.0} ns, ratio = {:.2} (goal <= 1.10); \
             criterion medians {:.0} ns / {:.0} ns",
            s / a,
            s_alone.median_ns(),
            s_shared.median_ns()
        ),
    );
}

/// A cold credential's first call, `MISSES` times: built outside the timed
/// part, so only the call is measured.
fn misses(rt: &tokio::runtime::Runtime, world: &DemoWorld, url: &str) {
    // Warm Redis with the token, and the sandbox's connection path.
    rt.block_on(with_shared(world, url).token(EVENTHUBS_SCOPE))
        .unwrap();
    let before = common::token_requests(world);
    let mut from_redis = Vec::with_capacity(MISSES);
    let mut from_entra = Vec::with_capacity(MISSES);
    for _ in 0..MISSES {
        let shared = with_shared(world, url);
        let alone = world.credential().unwrap();
        rt.block_on(async {
            let start = Instant::now();
            black_box(shared.token(EVENTHUBS_SCOPE).await.unwrap());
            from_redis.push(start.elapsed());
            let start = Instant::now();
            black_box(alone.token(EVENTHUBS_SCOPE).await.unwrap());
            from_entra.push(start.elapsed());
        });
    }
    let requests = common::token_requests(world) - before;
    let p50 = |v: &mut Vec<Duration>| us(quantile(v, 0.5));
    let p99 = |v: &mut Vec<Duration>| us(quantile(v, 0.99));
    let (r50, r99, e50, e99) = (
        p50(&mut from_redis),
        p99(&mut from_redis),
        p50(&mut from_entra),
        p99(&mut from_entra),
    );
    result(
        "shared_cache_miss",
        format!(
            "({MISSES} cold credentials each side; every call opens its own connections, as a \
             new instance does) served from Redis p50 = {r50:.0} us, p99 = {r99:.0} us; from \
             Entra (the sandbox) p50 = {e50:.0} us, p99 = {e99:.0} us; Entra/Redis = {:.1}x at \
             p50; token requests made = {requests} (all by the Entra side: {MISSES})",
            e50 / r50
        ),
    );
}

/// Misses on warm connections: `MISSES` scopes another instance already
/// stored, asked by one long-lived instance, against the same number of
/// scopes asked from Entra by a long-lived instance without the shared level.
fn warm_misses(rt: &tokio::runtime::Runtime, world: &DemoWorld, url: &str) {
    let api = world.sandbox.api();
    let scopes: Vec<String> = (0..MISSES)
        .map(|i| {
            let name = format!("benchclient{i}");
            api.register_client(&name).expect("register client");
            api.grant_client(
                &world.app.app_id,
                &name,
                &[crosstenant_sandbox::api::Access::Read],
            )
            .expect("grant client");
            format!("api://{name}/.default")
        })
        .collect();
    let writer = with_shared(world, url);
    let reader = with_shared(world, url);
    let alone = world.credential().unwrap();
    rt.block_on(async {
        // Warm every connection on a scope outside the measured set.
        reader.token(EVENTHUBS_SCOPE).await.unwrap();
        alone.token(EVENTHUBS_SCOPE).await.unwrap();
        for s in &scopes {
            writer.token(s).await.unwrap();
        }
    });
    let before = common::token_requests(world);
    let (mut from_redis, mut from_entra) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for s in &scopes {
            let start = Instant::now();
            black_box(reader.token(s).await.unwrap());
            from_redis.push(start.elapsed());
            let start = Instant::now();
            black_box(alone.token(s).await.unwrap());
            from_entra.push(start.elapsed());
        }
    });
    let requests = common::token_requests(world) - before;
    let stats = reader.shared_cache_stats().unwrap();
    let (r50, r99) = (
        us(quantile(&mut from_redis, 0.5)),
        us(quantile(&mut from_redis, 0.99)),
    );
    let (e50, e99) = (
        us(quantile(&mut from_entra, 0.5)),
        us(quantile(&mut from_entra, 0.99)),
    );
    result(
        "shared_cache_warm_miss",
        format!(
            "({MISSES} scopes, long-lived instances) served from Redis p50 = {r50:.0} us, p99 = \
             {r99:.0} us ({} hits); from Entra (the sandbox) p50 = {e50:.0} us, p99 = {e99:.0} us; \
             Entra/Redis = {:.1}x at p50; token requests = {requests}",
            stats.hits,
            e50 / r50
        ),
    );
}

fn main() {
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let rt = common::runtime();
    let world = common::world(&rt);
    let mut c = common::criterion();
    cached(&mut c, &rt, &world, &redis.url());
    misses(&rt, &world, &redis.url());
    warm_misses(&rt, &world, &redis.url());
    c.final_summary();
}
