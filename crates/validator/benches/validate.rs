//! Verified two-token requests per second: the validator with a warm key
//! cache (keys fetched once from the sandbox identity provider over HTTPS)
//! against a bare `jsonwebtoken` verify of the same two tokens with the keys
//! already decoded, in the same run (goal: validator >= 0.9x bare); plus a
//! cold-cache figure (a new validator per request: metadata and JWKS over a
//! fresh HTTPS connection, then both checks).
//!
//! ```sh
//! cargo bench -p crosstenant-validator --bench validate
//! ```
//!
//! Ratios measured in one run are the claims; absolute times on a shared
//! machine are noise. The ratio is printed from interleaved rounds so that a
//! noisy neighbour slows both sides alike.

use criterion::{criterion_group, Criterion};
use crosstenant_sandbox::demo::{DemoWorld, API_URI};
use crosstenant_sandbox::jwt::{now_secs, AccessClaims};
use crosstenant_validator::{Access, Client, Cloud, Validator};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Setup {
    world: DemoWorld,
    api_app_id: String,
    xyz_app_id: String,
    caller: String,
    secondary: String,
}

fn claims(world: &DemoWorld, aud: &str, roles: &[&str]) -> Value {
    let now = now_secs();
    let tid = &world.owner.id;
    json!({
        "aud": aud, "iss": AccessClaims::issuer_for(tid), "tid": tid,
        "appid": world.app.app_id, "azp": world.app.app_id,
        "oid": "sp", "sub": "sp", "roles": roles, "idtyp": "app", "ver": "1.0",
        "appidacr": "1", "iat": now, "nbf": now, "exp": now + 3600, "uti": "u",
    })
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let world = rt.block_on(DemoWorld::start()).expect("sandbox");
    let d = world.sandbox.directory();
    let api_app_id = d.resource_app(API_URI).expect("API").app_id;
    let xyz_app_id = d.resource_app("api://clientXYZ").expect("client").app_id;
    let issuer = world.sandbox.issuer();
    let caller = issuer
        .sign(&claims(&world, API_URI, &["API.Read", "API.Write"]))
        .expect("sign");
    let secondary = issuer
        .sign(&claims(&world, "api://clientXYZ", &["clientXYZ.Read"]))
        .expect("sign");
    Setup {
        world,
        api_app_id,
        xyz_app_id,
        caller,
        secondary,
    }
}

fn validator(s: &Setup) -> Validator {
    Validator::builder(
        Cloud::custom(s.world.sandbox.authority_host().as_str()).expect("cloud"),
        &s.world.owner.id,
    )
    .api_audiences([API_URI, s.api_app_id.as_str()])
    .client(
        Client::new("clientXYZ", &s.xyz_app_id)
            .expect("client")
            .app_id_uri("api://clientXYZ"),
    )
    .extra_root_pem(s.world.sandbox.ca_pem())
    .build()
    .expect("validator")
}

/// The bare check: both signatures with pre-decoded keys, plus the
/// audience and lifetime `jsonwebtoken` checks itself.
struct Bare {
    keys: Vec<(String, DecodingKey)>,
    caller: Validation,
    secondary: Validation,
}

impl Bare {
    fn new(s: &Setup) -> Self {
        let jwks = s.world.sandbox.issuer().jwks();
        let keys = jwks
            .keys
            .iter()
            .map(|k| {
                (
                    k.common.key_id.clone().expect("kid"),
                    DecodingKey::from_jwk(k).expect("key"),
                )
            })
            .collect();
        let mut caller = Validation::new(Algorithm::RS256);
        caller.set_audience(&[API_URI]);
        let mut secondary = Validation::new(Algorithm::RS256);
        secondary.set_audience(&["api://clientXYZ"]);
        Self {
            keys,
            caller,
            secondary,
        }
    }

    fn verify(&self, token: &str, validation: &Validation) -> Value {
        let kid = jsonwebtoken::decode_header(token)
            .expect("header")
            .kid
            .expect("kid");
        let key = &self.keys.iter().find(|(k, _)| *k == kid).expect("key").1;
        jsonwebtoken::decode::<Value>(token, key, validation)
            .expect("valid")
            .claims
    }

    fn both(&self, s: &Setup) {
        black_box(self.verify(&s.caller, &self.caller));
        black_box(self.verify(&s.secondary, &self.secondary));
    }
}

fn two_tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = setup(&rt);
    let warm = validator(&s);
    rt.block_on(warm.refresh_keys()).expect("keys");
    let bare = Bare::new(&s);
    let auth = format!("Bearer {}", s.caller);
    let check = |v: &Validator| {
        rt.block_on(v.authorize_tokens(Some(&auth), Some(&s.secondary), "clientXYZ", Access::Read))
            .expect("authorized")
    };
    check(&warm);
    bare.both(&s);

    let mut g = c.benchmark_group("two_tokens");
    g.bench_function("validator_warm_keys", |b| {
        b.iter(|| black_box(check(&warm)))
    });
    g.bench_function("bare_jsonwebtoken", |b| b.iter(|| bare.both(&s)));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("validator_cold_keys", |b| {
        b.iter(|| black_box(check(&validator(&s))))
    });
    g.finish();

    // The claim: interleaved rounds, same tokens, same process.
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 50;
    let (mut t_warm, mut t_bare) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(check(&warm));
        }
        t_warm += start.elapsed();
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            bare.both(&s);
        }
        t_bare += start.elapsed();
    }
    let cold_n = 20;
    let start = Instant::now();
    for _ in 0..cold_n {
        black_box(check(&validator(&s)));
    }
    let t_cold = start.elapsed();
    let n = (ROUNDS * PER_ROUND) as f64;
    let (warm_rps, bare_rps) = (n / t_warm.as_secs_f64(), n / t_bare.as_secs_f64());
    let cold_rps = cold_n as f64 / t_cold.as_secs_f64();
    println!(
        "RESULT validate: verified two-token requests/s: validator (warm keys) = {warm_rps:.0}, \
         bare jsonwebtoken = {bare_rps:.0}, ratio = {:.2} (goal >= 0.9); validator (cold keys, \
         metadata + JWKS over a new HTTPS connection per request) = {cold_rps:.0}",
        warm_rps / bare_rps
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = two_tokens
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
