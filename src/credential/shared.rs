//! The fleet's shared token cache on Redis: a second level behind the
//! in-process cache (feature `redis`; partner guide: `docs/FLEET_CACHE.md`).
//!
//! What it is for: N instances of one partner app (an aggregator fleet) ask
//! Entra for each token **once for the fleet** instead of once per instance,
//! at cold start (every deploy) and at every refresh.
//!
//! - **second level only**: the in-process cache stays in front and its hot
//!   path never touches Redis; only its misses and refreshes come here.
//! - **single flight across processes**: the instance that finds no usable
//!   token takes a short lock (`SET lock fence NX PX ttl`, a random fencing
//!   value), asks Entra, stores the token and releases the lock in one Lua
//!   script that writes only while the fence is still its own; the others
//!   poll the value (bounded wait, backing off), then ask Entra themselves.
//! - **refresh ahead fleet-wide**: a stored token carries the leader's
//!   refresh point (the in-process cache's half-life rule, computed when the
//!   token was issued). Every other instance read the token later, so its own
//!   refresh point is later: the first instance to reach it refreshes for the
//!   fleet, and the rest find the newer token already stored.
//! - **bearer secrets**: values are AES-256-GCM sealed (aws-lc-rs) with a
//!   random 96-bit nonce, the key's id in the value (old keys still open,
//!   the current one seals), and the Redis key in the AAD, so a value moved
//!   under another key does not open. Redis keys are SHA-256 of authority,
//!   tenant, client id and scope: no secret in a key. TTL = the token's
//!   expiry. A value that does not open or parse is counted, ignored and
//!   replaced. A key check value tells a wrong key apart from a miss.
//! - **never on the critical path**: every Redis call is bounded by a short
//!   timeout; any failure sends the call to Entra (as without this level),
//!   counts it, logs a rate-limited warning, and skips Redis for a moment;
//!   the connection manager reconnects by itself.
//!
//! Not for: sharing tokens between different apps or tenants (the key
//! binds both), or persisting tokens across a Redis restart (a cache only).

use super::cache::{SecondLevel, TokenFuture};
use crate::error::{Error, InvalidInput};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use azure_core::credentials::AccessToken;
use azure_core::time::OffsetDateTime;
use base64::Engine as _;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable: the Redis URL (`redis://`, `rediss://` for TLS,
/// `redis+unix://`; `redis+sentinel://` and `redis+cluster://` as
/// [`SharedTokenCache::redis`] describes). Setting it turns the shared cache
/// on in `from_env`.
pub const ENV_URL: &str = "CROSSTENANT_REDIS_URL";
/// Environment variable: the current key, 32 random bytes in base64.
pub const ENV_KEY: &str = "CROSSTENANT_REDIS_KEY";
/// Environment variable: keys still accepted for reading during a rotation,
/// comma-separated base64.
pub const ENV_OLD_KEYS: &str = "CROSSTENANT_REDIS_OLD_KEYS";
/// Environment variable: the per-call Redis timeout in milliseconds.
pub const ENV_TIMEOUT_MS: &str = "CROSSTENANT_REDIS_TIMEOUT_MS";

const MAGIC: &[u8; 3] = b"ct1";
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
const CHECK_PLAINTEXT: &[u8] = b"crosstenant shared token cache key check v1";
/// A stored token with less left than this is not worth handing out.
const MIN_REMAINING: Duration = Duration::from_secs(2);
/// Longest pause between two looks at a value another instance is fetching.
const MAX_POLL: Duration = Duration::from_millis(100);
/// Failed Redis calls in a row after which Redis is skipped for a moment.
const SKIP_AFTER_FAILURES: u64 = 3;
/// At most one warning per this long; the rest are counted.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A 256-bit key. Never printed.
#[derive(Clone)]
struct KeyBytes([u8; 32]);

impl KeyBytes {
    fn parse(name: &str, b64: &str) -> Result<Self, Error> {
        let trimmed = b64.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| {
                InvalidInput::secret(
                    name,
                    "not base64; give 32 random bytes in base64 (44 characters), e.g. the \
                     output of `openssl rand -base64 32`",
                )
            })?;
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            InvalidInput::secret(
                name,
                format!(
                    "decodes to {} bytes; an AES-256 key is exactly 32 random bytes in base64 \
                     (44 characters), e.g. the output of `openssl rand -base64 32`",
                    decoded.len()
                ),
            )
        })?;
        Ok(Self(bytes))
    }
}

/// The shared (fleet-wide) token cache on Redis, for
/// [`CrossTenantCredentialBuilder::shared_cache`](super::CrossTenantCredentialBuilder::shared_cache).
///
/// Every value is checked at the credential's `build()`, which also reads
/// the key check value from Redis: a key that does not match the fleet's is
/// an error there. See `docs/FLEET_CACHE.md`.
///
/// ```no_run
/// # fn demo() -> Result<(), crosstenant::Error> {
/// use crosstenant::credential::SharedTokenCache;
/// let shared = SharedTokenCache::redis("rediss://:password@cache.example.net:6380")
///     .key_base64(&std::env::var("MY_REDIS_TOKEN_KEY").unwrap_or_default());
/// let credential = crosstenant::CrossTenantCredential::builder()
///     .resource_tenant("contoso.onmicrosoft.com")
///     .client_id("00001111-aaaa-2222-bbbb-3333cccc4444")
///     .client_secret("…")
///     .shared_cache(shared)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedTokenCache {
    url: String,
    key: Option<KeyBytes>,
    old_keys: Vec<KeyBytes>,
    pending_error: Option<Error>,
    timeout: Duration,
    lock_ttl: Duration,
    wait: Duration,
    namespace: String,
}

impl std::fmt::Debug for SharedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTokenCache")
            .field("url", &redact_url(&self.url))
            .field("keys", &(self.key.iter().count() + self.old_keys.len()))
            .field("timeout", &self.timeout)
            .field("lock_ttl", &self.lock_ttl)
            .field("wait", &self.wait)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl SharedTokenCache {
    /// A shared cache on the Redis at `url`. Needs a key:
    /// [`key_base64`](Self::key_base64) or [`key`](Self::key).
    ///
    /// - One server (or a managed endpoint that follows failovers):
    ///   `redis://host:6379`, `rediss://` for TLS, optionally `:password@`
    ///   or `user:password@`, and `/db`.
    /// - Sentinel: `redis+sentinel://[:password@]sentinel1:26379,sentinel2:26379/<primary name>[/db]`
    ///   (`rediss+sentinel://` for TLS to both). The Sentinels name the
    ///   primary (its role is checked); the credentials are the primary's.
    ///   After a failed call the next one asks the Sentinels again, so a
    ///   failover costs the calls in between a fallback to Entra, nothing
    ///   more.
    /// - Cluster: `redis+cluster://[:password@]node1:6379,node2:6379` (any
    ///   nodes; `rediss+cluster://` for TLS). A scope's value and lock share
    ///   a hash tag, so its lock and fenced store live on one slot.
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: None,
            old_keys: Vec::new(),
            pending_error: None,
            timeout: Duration::from_millis(150),
            lock_ttl: Duration::from_secs(10),
            wait: Duration::from_secs(10),
            namespace: "crosstenant".into(),
        }
    }

    /// The key that seals values (and opens them), 32 random bytes in
    /// base64. Every instance of the fleet needs the same one.
    pub fn key_base64(mut self, key: &str) -> Self {
        match KeyBytes::parse(ENV_KEY, key) {
            Ok(k) => self.key = Some(k),
            Err(e) => {
                self.pending_error.get_or_insert(e);
            }
        }
        self
    }

    /// The key that seals values, as bytes.
    pub fn key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(KeyBytes(key));
        self
    }

    /// A previous key, still accepted to open values during a rotation
    /// (never used to seal). May be given several times.
    pub fn old_key_base64(mut self, key: &str) -> Self {
        match KeyBytes::parse(ENV_OLD_KEYS, key) {
            Ok(k) => self.old_keys.push(k),
            Err(e) => {
                self.pending_error.get_or_insert(e);
            }
        }
        self
    }

    /// A previous key as bytes; see [`old_key_base64`](Self::old_key_base64).
    pub fn old_key(mut self, key: [u8; 32]) -> Self {
        self.old_keys.push(KeyBytes(key));
        self
    }

    /// The longest any one Redis call may take before the call goes on
    /// without Redis (default 150 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the fleet-wide fetch lock lives if its holder dies (default
    /// 10 s); a fetch that takes longer lets another instance fetch too.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How long a caller waits for another instance's fetch before asking
    /// Entra itself (default 10 s).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The prefix of every Redis key (default `crosstenant`), to keep
    /// fleets sharing one Redis apart.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Reads `CROSSTENANT_REDIS_URL`, `CROSSTENANT_REDIS_KEY`,
    /// `CROSSTENANT_REDIS_OLD_KEYS` and `CROSSTENANT_REDIS_TIMEOUT_MS`;
    /// `None` when the URL is not set.
    pub(crate) fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Option<Self> {
        let url = var(ENV_URL)?;
        let mut shared = Self::redis(url);
        match var(ENV_KEY) {
            Some(k) => shared = shared.key_base64(&k),
            None => {
                shared.pending_error.get_or_insert(
                    InvalidInput::new(
                        ENV_KEY,
                        "",
                        format!(
                            "{ENV_URL} is set but {ENV_KEY} is not; give the fleet's key, 32 \
                             random bytes in base64 (e.g. `openssl rand -base64 32`, kept in \
                             your secret store)"
                        ),
                    )
                    .into(),
                );
            }
        }
        if let Some(old) = var(ENV_OLD_KEYS) {
            for k in old.split(',').filter(|k| !k.trim().is_empty()) {
                shared = shared.old_key_base64(k);
            }
        }
        if let Some(ms) = var(ENV_TIMEOUT_MS) {
            match ms.trim().parse::<u64>() {
                Ok(ms) => shared = shared.timeout(Duration::from_millis(ms)),
                Err(_) => {
                    shared.pending_error.get_or_insert(
                        InvalidInput::new(
                            ENV_TIMEOUT_MS,
                            &ms,
                            "give a whole number of milliseconds, e.g. 150",
                        )
                        .into(),
                    );
                }
            }
        }
        Some(shared)
    }

    /// Checks every value, reads the key check value (when Redis answers)
    /// and returns the level for the credential's cache.
    pub(crate) fn open(self, identity: &str) -> Result<Arc<RedisLevel>, Error> {
        if let Some(e) = self.pending_error {
            return Err(e);
        }
        let Some(key) = self.key else {
            return Err(InvalidInput::new(
                "shared_cache key",
                "",
                format!(
                    "a shared cache needs the fleet's key: SharedTokenCache::key_base64(..) or \
                     {ENV_KEY}, 32 random bytes in base64"
                ),
            )
            .into());
        };
        let redacted = redact_url(&self.url);
        let client = Topology::parse(&self.url, &redacted)?;
        for (name, d, max) in [
            ("timeout", self.timeout, Duration::from_secs(10)),
            ("lock_ttl", self.lock_ttl, Duration::from_secs(600)),
            ("wait", self.wait, Duration::from_secs(600)),
        ] {
            if d.is_zero() || d > max {
                return Err(InvalidInput::new(
                    format!("shared_cache {name}"),
                    &format!("{d:?}"),
                    format!("give a duration above zero and at most {max:?}"),
                )
                .into());
            }
        }
        if self.namespace.is_empty() || self.namespace.contains(['{', '}', ' ']) {
            return Err(InvalidInput::new(
                "shared_cache namespace",
                &self.namespace,
                "give a non-empty prefix without spaces or braces, e.g. crosstenant",
            )
            .into());
        }
        let ciphers = std::iter::once(&key)
            .chain(self.old_keys.iter())
            .map(Cipher::new)
            .collect::<Result<Vec<_>, _>>()?;
        let level = Arc::new(RedisLevel {
            client,
            manager: OnceLock::new(),
            dynamic: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            ciphers,
            identity: identity.to_string(),
            check_key: format!("{}:keycheck", self.namespace),
            namespace: self.namespace,
            timeout: self.timeout,
            lock_ttl: self.lock_ttl,
            wait: self.wait,
            url: redacted,
            rng: SystemRandom::new(),
            verified: AtomicU8::new(UNVERIFIED),
            verifying: tokio::sync::Mutex::new(()),
            skip_until: Mutex::new(None),
            failures_in_row: AtomicU64::new(0),
            warned: Mutex::new(None),
            rejected: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        level.verify_now()?;
        Ok(level)
    }
}

/// `redis://user:password@host` → `redis://user:<redacted>@host`.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("<redacted>"));
            }
            u.to_string()
        }
        // Not a URL the url crate reads (e.g. several hosts, as Sentinel
        // and Cluster URLs have): keep the scheme, hosts and path, and
        // nothing of a possible credential.
        Err(_) => {
            let (scheme, rest) = match url.split_once("://") {
                Some((scheme, rest)) => (format!("{scheme}://"), rest),
                None => (String::new(), url),
            };
            let (authority, path) = match rest.split_once('/') {
                Some((a, p)) => (a, format!("/{p}")),
                None => (rest, String::new()),
            };
            match authority.rsplit_once('@') {
                Some((_, hosts)) => format!("{scheme}<redacted>@{hosts}{path}"),
                // No credential before the hosts; one after them would not
                // be a URL's, so show nothing past an `@` anywhere.
                None => match url.rsplit_once('@') {
                    Some((_, tail)) => format!("<redacted>@{tail}"),
                    None => url.to_string(),
                },
            }
        }
    }
}

/// Where the shared level's Redis is: one server (or a managed endpoint
/// that follows failovers), a primary found through Sentinel, or a
/// Cluster. Chosen by the URL's scheme (see [`SharedTokenCache::redis`]).
enum Topology {
    Single(redis::Client),
    Sentinel {
        /// The Sentinels, tried in turn.
        sentinels: Vec<redis::ConnectionInfo>,
        /// The primary's name in the Sentinels' configuration.
        service: String,
        /// TLS, credentials and database for the primary.
        node: redis::sentinel::SentinelNodeConnectionInfo,
    },
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl Topology {
    /// `redis://`, `rediss://`, `redis+unix://`: one server.
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`
    /// (`rediss+sentinel://` for TLS): a primary found through Sentinel.
    /// `redis+cluster://[user:password@]host:port[,host:port…]`
    /// (`rediss+cluster://`): a Cluster, from any of its nodes.
    fn parse(url: &str, redacted: &str) -> Result<Self, Error> {
        let bad = |what: String| -> Error {
            InvalidInput::new(
                ENV_URL,
                redacted,
                format!(
                    "{what}; give redis://host:6379 (rediss:// for TLS), optionally with \
                     :password@ and /db; or redis+sentinel://[:password@]sentinel1:26379,\
                     sentinel2:26379/<primary name>[/db]; or redis+cluster://[:password@]\
                     node1:6379,node2:6379 (docs/FLEET_CACHE.md)"
                ),
            )
            .into()
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            _ => {
                return redis::Client::open(url)
                    .map(Topology::Single)
                    .map_err(|e| bad(format!("not a Redis URL ({:?})", e.kind())));
            }
        };
        let base = if tls { "rediss" } else { "redis" };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let hosts: Vec<&str> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return Err(bad(format!("no {kind} host:port in the URL")));
        }
        let with_user = |host: &str, path: &str| match userinfo {
            Some(u) => format!("{base}://{u}@{host}{path}"),
            None => format!("{base}://{host}{path}"),
        };
        let info = |text: String| {
            use redis::IntoConnectionInfo as _;
            text.into_connection_info()
                .map_err(|e| bad(format!("not a Redis address ({:?})", e.kind())))
        };
        if kind == "cluster" {
            if !path.is_empty() {
                return Err(bad("a Cluster has one database: no /db".into()));
            }
            let nodes = hosts
                .iter()
                .map(|h| info(with_user(h, "")))
                .collect::<Result<Vec<_>, _>>()?;
            return redis::cluster::ClusterClientBuilder::new(nodes)
                .retries(2)
                .build()
                .map(|c| Topology::Cluster(Box::new(c)))
                .map_err(|e| bad(format!("not a Cluster address list ({:?})", e.kind())));
        }
        let mut segments = path.split('/').filter(|p| !p.is_empty());
        let Some(service) = segments.next() else {
            return Err(bad(
                "no primary name after the Sentinel addresses (…:26379/mymaster)".into(),
            ));
        };
        let db = match segments.next() {
            Some(db) => format!("/{db}"),
            None => String::new(),
        };
        // The credentials are the primary's; Sentinels are asked without.
        let primary = info(with_user("sentinel-primary:6379", &db))?;
        let mut node = redis::sentinel::SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(primary.redis_settings().clone());
        if tls {
            node = node.set_tls_mode(redis::TlsMode::Secure);
        }
        let sentinels = hosts
            .iter()
            .map(|h| info(format!("{base}://{h}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topology::Sentinel {
            sentinels,
            service: service.to_string(),
            node,
        })
    }

    /// The primary the Sentinels name now, its role checked (a client for
    /// it, and its address). `sentinel` keeps the Sentinel client (and its
    /// connections to the Sentinels) between lookups.
    async fn primary(
        &self,
        sentinel: &mut Option<redis::sentinel::SentinelClient>,
    ) -> redis::RedisResult<(redis::Client, String)> {
        let Topology::Sentinel {
            sentinels,
            service,
            node,
        } = self
        else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "not a Sentinel topology",
            )));
        };
        let client = match sentinel {
            Some(c) => c,
            None => sentinel.insert(redis::sentinel::SentinelClient::build(
                sentinels.clone(),
                service.as_str(),
                Some(node.clone()),
                redis::sentinel::SentinelServerType::Master,
            )?),
        };
        let primary = client.async_get_client().await?;
        let addr = primary.get_connection_info().addr().to_string();
        Ok((primary, addr))
    }

    /// A new async connection and the address it goes to: to the primary
    /// the Sentinels name now, or to the Cluster (its slots read). Not for
    /// one server, whose connection manager is kept.
    async fn open_async(
        &self,
        patience: Duration,
        sentinel: &mut Option<redis::sentinel::SentinelClient>,
    ) -> redis::RedisResult<(Conn, String)> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(patience))
            .set_response_timeout(Some(patience));
        match self {
            Topology::Single(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(|c| {
                    (
                        Conn::Plain(c),
                        client.get_connection_info().addr().to_string(),
                    )
                }),
            Topology::Sentinel { .. } => {
                let (primary, addr) = self.primary(sentinel).await?;
                primary
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(|c| (Conn::Plain(c), addr))
            }
            Topology::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(patience)
                    .set_response_timeout(patience);
                client
                    .get_async_connection_with_config(config)
                    .await
                    .map(|c| (Conn::Cluster(Box::new(c)), String::new()))
            }
        }
    }
}

/// The Sentinel or Cluster connection in use.
#[derive(Clone)]
struct Current {
    generation: u64,
    conn: Conn,
    /// The primary's address (Sentinel).
    addr: String,
    /// When the Sentinels were last asked which primary is current.
    checked: Instant,
}

/// How often, at most, the Sentinels are asked again whether the primary
/// moved while its connection still works: a forced failover leaves the old
/// primary accepting writes until the Sentinels demote it (seconds later).
const SENTINEL_RECHECK: Duration = Duration::from_secs(1);

/// A connection of any topology, for the commands and scripts of this
/// module.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Plain(redis::aio::MultiplexedConnection),
    Cluster(Box<redis::cluster_async::ClusterConnection>),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

struct Cipher {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

impl Cipher {
    fn new(key: &KeyBytes) -> Result<Self, Error> {
        // The id names the key in each value so rotation can pick the right
        // one; four bytes of a hash of a random 256-bit key reveal nothing.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"crosstenant shared token cache key id\0");
        ctx.update(&key.0);
        let hash = ctx.finish();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&hash.as_ref()[..KEY_ID_LEN]);
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0)
            .map_err(|_| InvalidInput::secret(ENV_KEY, "aws-lc-rs refused the AES-256 key"))?;
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Redis keys of one scope. The hash is in braces (a Redis Cluster hash
/// tag) so the value and its lock live in one slot for the store script.
struct Keys {
    value: String,
    lock: String,
}

/// What a stored value holds once opened.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    /// The access token.
    t: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// The fleet's refresh point, Unix seconds.
    r: i64,
}

/// Counters of the shared level; see [`SharedCacheStats`].
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    waited: AtomicU64,
    leads: AtomicU64,
    fallbacks: AtomicU64,
    redis_errors: AtomicU64,
    rejected_values: AtomicU64,
    stores: AtomicU64,
}

/// What the shared level did since the credential was built, from
/// [`CrossTenantCredential::shared_cache_stats`](super::CrossTenantCredential::shared_cache_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedCacheStats {
    /// In-process misses and refreshes served from Redis without asking
    /// Entra (including `waited`).
    pub hits: u64,
    /// Of `hits`, those that waited for another instance's request.
    pub waited: u64,
    /// Token requests this instance made for the fleet (holding the lock).
    pub leads: u64,
    /// Token requests made without the fleet: Redis failed, was skipped
    /// after a failure, the wait ran out, or the key did not match.
    pub fallbacks: u64,
    /// Redis calls that failed or timed out.
    pub redis_errors: u64,
    /// Stored values that did not open (wrong key, moved, corrupted) or
    /// parse, ignored and replaced.
    pub rejected_values: u64,
    /// Tokens written to Redis.
    pub stores: u64,
}

const UNVERIFIED: u8 = 0;
const VERIFIED: u8 = 1;
const MISMATCH: u8 = 2;

enum CheckOutcome {
    Missing,
    Current,
    Old,
    Mismatch(String),
}

/// The second level itself; built by [`SharedTokenCache::open`].
pub(crate) struct RedisLevel {
    client: Topology,
    /// One server: the connection manager (reconnects by itself).
    manager: OnceLock<ConnectionManager>,
    /// Sentinel or Cluster: the connection in use and its generation; a
    /// Sentinel connection that fails is dropped, and the next call asks
    /// the Sentinels for the primary again.
    dynamic: Mutex<Option<Current>>,
    /// One resolution (Sentinel lookup, Cluster topology) at a time; the
    /// Sentinel client, kept between lookups.
    resolving: tokio::sync::Mutex<Option<redis::sentinel::SentinelClient>>,
    generation: AtomicU64,
    /// The current key first, then the old ones.
    ciphers: Vec<Cipher>,
    /// Authority, tenant and client id, hashed with each scope.
    identity: String,
    namespace: String,
    check_key: String,
    timeout: Duration,
    lock_ttl: Duration,
    wait: Duration,
    /// The URL without its password, for messages.
    url: String,
    rng: SystemRandom,
    verified: AtomicU8,
    verifying: tokio::sync::Mutex<()>,
    /// After a failure, Redis is skipped until then.
    skip_until: Mutex<Option<Instant>>,
    /// Failed calls since the last call that succeeded.
    failures_in_row: AtomicU64,
    /// When the last warning was logged, and failures since.
    warned: Mutex<Option<(Instant, u64)>>,
    /// Per value key, the SHA-256 of a token a service refused.
    rejected: Mutex<HashMap<String, [u8; 32]>>,
    counters: Counters,
}

/// Stores the token in the value key and releases the lock, only while the
/// fence in the lock is the caller's: a leader whose lock expired and was
/// taken over writes nothing.
const STORE_AND_UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Releases the lock only if it still holds the caller's fence.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl RedisLevel {
    fn keys(&self, scope: &str) -> Keys {
        let h = hex(&sha256(&[
            self.identity.as_bytes(),
            b"\n",
            scope.as_bytes(),
        ]));
        Keys {
            value: format!("{}:{{{h}}}:token", self.namespace),
            lock: format!("{}:{{{h}}}:lock", self.namespace),
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> SharedCacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SharedCacheStats {
            hits: get(&c.hits),
            waited: get(&c.waited),
            leads: get(&c.leads),
            fallbacks: get(&c.fallbacks),
            redis_errors: get(&c.redis_errors),
            rejected_values: get(&c.rejected_values),
            stores: get(&c.stores),
        }
    }

    fn seal(&self, redis_key: &str, plaintext: &[u8]) -> Option<Vec<u8>> {
        let cipher = &self.ciphers[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&cipher.id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        let aad = [&out[..MAGIC.len() + KEY_ID_LEN], redis_key.as_bytes()].concat();
        cipher
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_slice()),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a value: `Err(key id)` when no key of ours made it, `Ok(None)`
    /// when it is not a sealed value or fails authentication.
    fn open_value(
        &self,
        redis_key: &str,
        value: &[u8],
    ) -> Result<Option<(Vec<u8>, usize)>, String> {
        if value.len() < HEADER_LEN + 16 || &value[..MAGIC.len()] != MAGIC {
            return Ok(None);
        }
        let id = &value[MAGIC.len()..MAGIC.len() + KEY_ID_LEN];
        let Some((index, cipher)) = self.ciphers.iter().enumerate().find(|(_, c)| c.id == id)
        else {
            return Err(hex(id));
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&value[MAGIC.len() + KEY_ID_LEN..HEADER_LEN]);
        let aad = [&value[..MAGIC.len() + KEY_ID_LEN], redis_key.as_bytes()].concat();
        let mut body = value[HEADER_LEN..].to_vec();
        match cipher.key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_slice()),
            &mut body,
        ) {
            Ok(plain) => Ok(Some((plain.to_vec(), index))),
            Err(_) => Ok(None),
        }
    }

    fn judge_check(&self, value: Option<&[u8]>) -> CheckOutcome {
        let Some(value) = value else {
            return CheckOutcome::Missing;
        };
        match self.open_value(&self.check_key, value) {
            Ok(Some((plain, index))) if plain == CHECK_PLAINTEXT => {
                if index == 0 {
                    CheckOutcome::Current
                } else {
                    CheckOutcome::Old
                }
            }
            Ok(_) => CheckOutcome::Mismatch("unreadable".into()),
            Err(id) => CheckOutcome::Mismatch(id),
        }
    }

    fn mismatch_error(&self, id: &str) -> Error {
        let ours: Vec<String> = self.ciphers.iter().map(|c| hex(&c.id)).collect();
        InvalidInput::secret(
            ENV_KEY,
            format!(
                "the Redis at {} holds this fleet's key check sealed with key id {id}, which \
                 none of the keys given (ids {}) opens: give this instance the fleet's key \
                 ({ENV_KEY}), or during a rotation keep the previous key in {ENV_OLD_KEYS} \
                 (docs/FLEET_CACHE.md, \"Key rotation\"); or use another namespace for \
                 another fleet",
                self.url,
                ours.join(", ")
            ),
        )
        .into()
    }

    /// At `build()`: reads the key check value over a short-lived blocking
    /// connection. A wrong key is an error; an unreachable Redis is not (the
    /// check then runs when the shared level first reaches Redis).
    fn verify_now(&self) -> Result<(), Error> {
        let client = match &self.client {
            Topology::Single(client) => client,
            _ => return self.verify_now_async(),
        };
        let conn = client.get_connection_with_timeout(self.timeout.max(Duration::from_millis(500)));
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(redis = %self.url, error_kind = ?e.kind(), "shared token cache: Redis unreachable at start; carrying on without it until it answers (the key is checked then)");
                return Ok(());
            }
        };
        let _ = conn.set_read_timeout(Some(self.timeout.max(Duration::from_millis(500))));
        let _ = conn.set_write_timeout(Some(self.timeout.max(Duration::from_millis(500))));
        let value: Option<Vec<u8>> = match redis::cmd("GET").arg(&self.check_key).query(&mut conn) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(redis = %self.url, error_kind = ?e.kind(), "shared token cache: Redis did not answer at start; the key is checked when it does");
                return Ok(());
            }
        };
        let outcome = self.judge_check(value.as_deref());
        if let CheckOutcome::Mismatch(id) = &outcome {
            self.verified.store(MISMATCH, Ordering::Release);
            return Err(self.mismatch_error(id));
        }
        if let Some(write) = self.check_write(&outcome) {
            let _ = write.query::<redis::Value>(&mut conn);
        }
        self.verified.store(VERIFIED, Ordering::Release);
        Ok(())
    }

    /// [`verify_now`](Self::verify_now) on Sentinel or Cluster, whose
    /// clients are async: on a runtime of its own, on a thread of its own
    /// (`build()` may run inside the application's runtime), with a
    /// connection used for this check only.
    fn verify_now_async(&self) -> Result<(), Error> {
        let patience = self.timeout.max(Duration::from_millis(500));
        let check = async {
            let (mut conn, _) = self.client.open_async(patience, &mut None).await?;
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&self.check_key)
                .query_async(&mut conn)
                .await?;
            let outcome = self.judge_check(value.as_deref());
            if let Some(write) = self.check_write(&outcome) {
                let _ = write.query_async::<redis::Value>(&mut conn).await;
            }
            Ok::<_, redis::RedisError>(outcome)
        };
        let outcome = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                // Finding the primary or the topology takes a few round trips.
                runtime
                    .block_on(async { tokio::time::timeout(patience * 4, check).await })
                    .map_err(|_| format!("no answer within {:?}", patience * 4))?
                    .map_err(|e| format!("{:?}", e.kind()))
            })
            .join()
            .unwrap_or_else(|_| Err("the check panicked".into()))
        });
        match outcome {
            Err(failure) => {
                tracing::warn!(redis = %self.url, failure, "shared token cache: Redis unreachable at start; carrying on without it until it answers (the key is checked then)");
                Ok(())
            }
            Ok(CheckOutcome::Mismatch(id)) => {
                self.verified.store(MISMATCH, Ordering::Release);
                Err(self.mismatch_error(&id))
            }
            Ok(_) => {
                self.verified.store(VERIFIED, Ordering::Release);
                Ok(())
            }
        }
    }

    /// The write that follows a key check: create the check value when
    /// missing, re-seal it with the current key when an old one opened it.
    fn check_write(&self, outcome: &CheckOutcome) -> Option<redis::Cmd> {
        let sealed = self.seal(&self.check_key, CHECK_PLAINTEXT)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.check_key).arg(sealed);
        match outcome {
            CheckOutcome::Missing => {
                cmd.arg("NX");
            }
            CheckOutcome::Old => {}
            _ => return None,
        }
        Some(cmd)
    }

    /// The key check on the async connection, once, when `build()` could not
    /// reach Redis. `false` when the shared level must stay off.
    async fn ensure_verified(&self) -> bool {
        match self.verified.load(Ordering::Acquire) {
            VERIFIED => return true,
            MISMATCH => return false,
            _ => {}
        }
        let _one = self.verifying.lock().await;
        match self.verified.load(Ordering::Acquire) {
            VERIFIED => return true,
            MISMATCH => return false,
            _ => {}
        }
        let value = self
            .call("GET", |mut c| {
                let key = self.check_key.clone();
                async move {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async::<Option<Vec<u8>>>(&mut c)
                        .await
                }
            })
            .await;
        let Ok(value) = value else {
            return false;
        };
        let outcome = self.judge_check(value.as_deref());
        if let CheckOutcome::Mismatch(id) = &outcome {
            self.verified.store(MISMATCH, Ordering::Release);
            tracing::error!(error = %self.mismatch_error(id), "shared token cache off: wrong key");
            return false;
        }
        if let Some(cmd) = self.check_write(&outcome) {
            let _ = self
                .call("SET", |mut c| async move {
                    cmd.query_async::<redis::Value>(&mut c).await
                })
                .await;
        }
        self.verified.store(VERIFIED, Ordering::Release);
        true
    }

    fn manager(&self, client: &redis::Client) -> Result<ConnectionManager, redis::RedisError> {
        if let Some(c) = self.manager.get() {
            return Ok(c.clone());
        }
        // Lazy: created on the first call, inside the runtime that will
        // drive it; it connects on first use and reconnects by itself after
        // a connection error.
        // Each call is bounded by `timeout` here, on our side; the
        // connection's own limits are longer, so that one slow answer does
        // not tear down the shared connection (a response timeout counts as
        // an I/O error and reconnects), while a dead peer still gets replaced.
        let patience = self.patience();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(patience))
            .set_response_timeout(Some(patience))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(self.manager.get_or_init(|| manager).clone())
    }

    /// The connection's own limits: longer than one call's timeout (see
    /// [`manager`](Self::manager)).
    fn patience(&self) -> Duration {
        (self.timeout * 10).max(Duration::from_secs(2))
    }

    /// The connection for the next call, and its generation (0 for one
    /// server). On Sentinel, at most once per [`SENTINEL_RECHECK`] one
    /// caller asks the Sentinels whether the primary moved, and switches.
    async fn connection(&self) -> Result<(u64, Conn), redis::RedisError> {
        if let Topology::Single(client) = &self.client {
            return Ok((0, Conn::Manager(self.manager(client)?)));
        }
        let current = || {
            self.dynamic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        if let Some(c) = current() {
            let due = matches!(self.client, Topology::Sentinel { .. })
                && c.checked.elapsed() >= SENTINEL_RECHECK;
            if !due {
                return Ok((c.generation, c.conn));
            }
            // One caller checks; the others go on with the connection.
            let Ok(mut sentinel) = self.resolving.try_lock() else {
                return Ok((c.generation, c.conn));
            };
            self.touch(c.generation);
            // Half the call's budget at most: a slow Sentinel must not cost
            // this call its answer.
            let asked = tokio::time::timeout(self.timeout / 2, self.client.primary(&mut sentinel));
            match asked.await {
                Ok(Ok((_, addr))) if addr != c.addr => {
                    tracing::info!(redis = %self.url, "shared token cache: the Sentinels name another primary; switching to it");
                    self.forget_connection(c.generation);
                }
                // Same primary, or the Sentinels do not answer: keep it.
                _ => return Ok((c.generation, c.conn)),
            }
            return self.open_locked(&mut sentinel).await;
        }
        let mut sentinel = self.resolving.lock().await;
        if let Some(c) = current() {
            return Ok((c.generation, c.conn));
        }
        self.open_locked(&mut sentinel).await
    }

    /// Opens a connection and makes it the current one (the resolution lock
    /// held).
    async fn open_locked(
        &self,
        sentinel: &mut Option<redis::sentinel::SentinelClient>,
    ) -> Result<(u64, Conn), redis::RedisError> {
        let (conn, addr) = self.client.open_async(self.patience(), sentinel).await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.dynamic.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
            generation,
            conn: conn.clone(),
            addr,
            checked: Instant::now(),
        });
        Ok((generation, conn))
    }

    fn touch(&self, generation: u64) {
        let mut current = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = current.as_mut().filter(|c| c.generation == generation) {
            c.checked = Instant::now();
        }
    }

    fn forget_connection(&self, generation: u64) {
        let mut current = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    /// After a failed call on a Sentinel connection: drop it (if still the
    /// one in use), so the next call asks the Sentinels for the primary.
    /// A demoted primary answers `READONLY`, a dead one not at all; either
    /// way the primary may have moved. A Cluster connection follows its
    /// topology by itself (`MOVED`, slot refresh) and is kept.
    fn drop_connection(&self, generation: Option<u64>) {
        if let (Some(generation), Topology::Sentinel { .. }) = (generation, &self.client) {
            self.forget_connection(generation);
        }
    }

    fn skipping(&self) -> bool {
        self.skip_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    /// One Redis call, bounded by the timeout (connecting, and on Sentinel
    /// finding the primary, included). A failure is counted and logged (at
    /// most one warning per ten seconds); a few in a row make the next calls
    /// skip Redis for a moment.
    async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, ()>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut used = None;
        let attempt = tokio::time::timeout(self.timeout, async {
            let (generation, c) = self.connection().await?;
            used = Some(generation);
            f(c).await
        })
        .await;
        let outcome = match attempt {
            Ok(Ok(v)) => {
                if self.failures_in_row.load(Ordering::Relaxed) != 0 {
                    self.failures_in_row.store(0, Ordering::Relaxed);
                }
                return Ok(v);
            }
            Ok(Err(e)) => format!("{:?}: {}", e.kind(), e.code().unwrap_or("error")),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.drop_connection(used);
        self.failed(what, &outcome);
        Err(())
    }

    fn failed(&self, what: &str, outcome: &str) {
        self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
        // After a few failures in a row, skip Redis briefly so a dead or
        // paused server costs each caller nothing rather than a timeout; the
        // next call after that probes it. One slow answer on a busy machine
        // only sends its own call to Entra.
        if self.failures_in_row.fetch_add(1, Ordering::Relaxed) + 1 >= SKIP_AFTER_FAILURES {
            let pause =
                (self.timeout * 5).clamp(Duration::from_millis(250), Duration::from_secs(2));
            *self.skip_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + pause);
        }
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match warned.as_mut() {
            Some((at, suppressed)) if now.duration_since(*at) < WARN_EVERY => *suppressed += 1,
            _ => {
                let suppressed = warned.map(|(_, s)| s).unwrap_or(0);
                tracing::warn!(
                    redis = %self.url,
                    command = what,
                    failure = outcome,
                    failures_not_logged = suppressed,
                    "shared token cache: Redis failed; carrying on with the in-process cache and Entra"
                );
                *warned = Some((now, 0));
            }
        }
    }

    /// The stored token of `keys`, if any and if it opens. A value that
    /// does not open or parse is treated as absent (the next store replaces
    /// it), and counted and logged if `report`.
    async fn read(&self, keys: &Keys, report: bool) -> Result<Option<Stored>, ()> {
        let key = keys.value.clone();
        let raw = self
            .call("GET", |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let parsed = match self.open_value(&keys.value, &raw) {
            Ok(Some((plain, _))) => serde_json::from_slice::<Stored>(&plain).ok(),
            _ => None,
        };
        if parsed.is_none() && report {
            self.counters
                .rejected_values
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                redis_key = %keys.value,
                bytes = raw.len(),
                "shared token cache: a stored value does not open with the given keys or is not a token; ignoring it (it will be replaced)"
            );
        }
        Ok(parsed)
    }

    fn usable(&self, keys: &Keys, stored: &Stored, held: Option<OffsetDateTime>) -> bool {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let left = stored.e - now;
        if left <= MIN_REMAINING.as_secs() as i64 || now >= stored.r {
            return false;
        }
        if held.is_some_and(|h| stored.e <= h.unix_timestamp()) {
            return false;
        }
        let refused = self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&keys.value)
            .is_some_and(|h| *h == sha256(&[stored.t.as_bytes()]));
        !refused
    }

    fn hit(&self, stored: Stored, waited: bool) -> AccessToken {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        if waited {
            self.counters.waited.fetch_add(1, Ordering::Relaxed);
        }
        let expires = OffsetDateTime::from_unix_timestamp(stored.e)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        AccessToken::new(stored.t, expires)
    }

    async fn unlock(&self, keys: &Keys, fence: String) {
        let lock = keys.lock.clone();
        let _ = self
            .call("EVAL unlock", |mut c| async move {
                redis::Script::new(UNLOCK)
                    .key(lock)
                    .arg(fence)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    fn fallback(&self, fetch: TokenFuture) -> TokenFuture {
        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        fetch
    }

    async fn lead(
        &self,
        keys: &Keys,
        fence: String,
        fetch: TokenFuture,
    ) -> Result<AccessToken, Error> {
        self.counters.leads.fetch_add(1, Ordering::Relaxed);
        let result = fetch.await;
        match &result {
            Ok(token) => self.store(keys, fence, token).await,
            Err(_) => self.unlock(keys, fence).await,
        }
        result
    }

    async fn store(&self, keys: &Keys, fence: String, token: &AccessToken) {
        let now = OffsetDateTime::now_utc();
        let left = token.expires_on - now;
        let left_ms = left.whole_milliseconds();
        if left_ms <= 0 {
            return;
        }
        let lifetime = Duration::from_millis(left_ms as u64);
        // The in-process cache's own rule (half-life, at most ten minutes
        // ahead): the leader reaches this point first, every other instance
        // later (it read the token later), so the fleet refreshes once.
        let ahead = (lifetime / 2).min(Duration::from_secs(600));
        let refresh_on = token.expires_on.unix_timestamp() - ahead.as_secs() as i64;
        let stored = Stored {
            t: token.token.secret().to_string(),
            e: token.expires_on.unix_timestamp(),
            r: refresh_on,
        };
        let Ok(plain) = serde_json::to_vec(&stored) else {
            return;
        };
        let Some(sealed) = self.seal(&keys.value, &plain) else {
            return;
        };
        let (lock, value) = (keys.lock.clone(), keys.value.clone());
        let stored = self
            .call("EVAL store", |mut c| async move {
                redis::Script::new(STORE_AND_UNLOCK)
                    .key(lock)
                    .key(value)
                    .arg(fence)
                    .arg(sealed)
                    .arg(left_ms as u64)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if stored == Ok(1) {
            self.counters.stores.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fence(&self) -> String {
        let mut bytes = [0u8; 16];
        let _ = self.rng.fill(&mut bytes);
        hex(&bytes)
    }

    async fn try_lock(&self, keys: &Keys, fence: &str) -> Result<bool, ()> {
        let (lock, fence, ttl) = (
            keys.lock.clone(),
            fence.to_string(),
            self.lock_ttl.as_millis() as u64,
        );
        self.call("SET NX", |mut c| async move {
            redis::cmd("SET")
                .arg(lock)
                .arg(fence)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await
        .map(|r| r.is_some())
    }

    fn poll_delay(&self, delay: Duration) -> Duration {
        // Jitter so waiters of many processes do not poll in step.
        let mut b = [0u8; 1];
        let _ = self.rng.fill(&mut b);
        delay + delay * u32::from(b[0]) / 512
    }

    async fn obtain_inner(
        &self,
        scope: &str,
        held: Option<OffsetDateTime>,
        fetch: TokenFuture,
    ) -> Result<AccessToken, Error> {
        if self.skipping() || !self.ensure_verified().await {
            return self.fallback(fetch).await;
        }
        let keys = self.keys(scope);
        let deadline = Instant::now() + self.wait;
        let mut delay = Duration::from_millis(5);
        let mut waited = false;
        loop {
            // Report a bad value once per call, not once per poll.
            match self.read(&keys, !waited).await {
                Err(()) => return self.fallback(fetch).await,
                Ok(Some(stored)) if self.usable(&keys, &stored, held) => {
                    return Ok(self.hit(stored, waited));
                }
                Ok(_) => {}
            }
            let fence = self.fence();
            match self.try_lock(&keys, &fence).await {
                Err(()) => return self.fallback(fetch).await,
                Ok(true) => {
                    // The previous holder may have stored the token and let
                    // go between our look and our lock: look again first.
                    // (A value that does not open was reported already.)
                    if let Ok(Some(stored)) = self.read(&keys, false).await {
                        if self.usable(&keys, &stored, held) {
                            self.unlock(&keys, fence).await;
                            return Ok(self.hit(stored, waited));
                        }
                    }
                    return self.lead(&keys, fence, fetch).await;
                }
                Ok(false) => {}
            }
            if Instant::now() >= deadline {
                tracing::warn!(scope, wait = ?self.wait, "shared token cache: another instance's token request did not land in time; asking Entra");
                return self.fallback(fetch).await;
            }
            waited = true;
            tokio::time::sleep(self.poll_delay(delay)).await;
            delay = (delay * 2).min(MAX_POLL);
        }
    }
}

#[async_trait::async_trait]
impl SecondLevel for RedisLevel {
    async fn obtain(
        &self,
        scope: &str,
        held: Option<OffsetDateTime>,
        fetch: TokenFuture,
    ) -> Result<AccessToken, Error> {
        self.obtain_inner(scope, held, fetch).await
    }

    fn forget(&self, scope: &str, rejected: &str) {
        let keys = self.keys(scope);
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(keys.value, sha256(&[rejected.as_bytes()]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(keys: &[[u8; 32]]) -> RedisLevel {
        RedisLevel {
            client: Topology::Single(redis::Client::open("redis://127.0.0.1:1").unwrap()),
            manager: OnceLock::new(),
            dynamic: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            ciphers: keys
                .iter()
                .map(|k| Cipher::new(&KeyBytes(*k)).unwrap())
                .collect(),
            identity: "https://login.example/\ntenant\nclient".into(),
            namespace: "ns".into(),
            check_key: "ns:keycheck".into(),
            timeout: Duration::from_millis(100),
            lock_ttl: Duration::from_secs(1),
            wait: Duration::from_secs(1),
            url: "redis://127.0.0.1:1".into(),
            rng: SystemRandom::new(),
            verified: AtomicU8::new(UNVERIFIED),
            verifying: tokio::sync::Mutex::new(()),
            skip_until: Mutex::new(None),
            failures_in_row: AtomicU64::new(0),
            warned: Mutex::new(None),
            rejected: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    #[test]
    fn a_value_opens_only_under_its_own_redis_key_and_with_a_known_key() {
        let a = level(&[[1; 32]]);
        let sealed = a.seal("k1", b"hello").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(a.open_value("k1", &sealed).unwrap().unwrap().0, b"hello");
        // Moved under another key: the AAD does not match.
        assert!(a.open_value("k2", &sealed).unwrap().is_none());
        // One bit flipped: authentication fails.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(a.open_value("k1", &bad).unwrap().is_none());
        // Sealed with another key: named by its id, not opened.
        let b = level(&[[2; 32]]);
        assert!(b.open_value("k1", &sealed).is_err());
        // During a rotation the old key still opens, the new one seals.
        let rotated = level(&[[2; 32], [1; 32]]);
        assert_eq!(rotated.open_value("k1", &sealed).unwrap().unwrap().1, 1);
        let resealed = rotated.seal("k1", b"x").unwrap();
        assert!(a.open_value("k1", &resealed).is_err());
        // Two seals of one text differ (random nonce).
        assert_ne!(a.seal("k1", b"hello").unwrap(), sealed);
    }

    #[test]
    fn what_is_not_a_sealed_value_is_passed_over_whatever_its_length() {
        let a = level(&[[1; 32]]);
        let sealed = a.seal("k1", b"hello").unwrap();
        // Short, empty, a bare token another writer left, a sealed value cut
        // short: none is ours to open, none names a key, none panics.
        let plain = "eyJ0eXAiOiJKV1QifQ.".repeat(10);
        for value in [
            &b"x"[..],
            &b""[..],
            plain.as_bytes(),
            &sealed[..HEADER_LEN],
            &sealed[..MAGIC.len()],
        ] {
            assert_eq!(a.open_value("k1", value), Ok(None), "{value:?}");
        }
    }

    #[test]
    fn a_stored_token_is_taken_only_before_the_fleet_refresh_point_and_if_newer() {
        let a = level(&[[1; 32]]);
        let keys = a.keys("s");
        let now = OffsetDateTime::now_utc();
        let stored = |expires_in: i64, refresh_in: i64| Stored {
            t: "token-a".into(),
            e: now.unix_timestamp() + expires_in,
            r: now.unix_timestamp() + refresh_in,
        };
        let held = |s: &Stored| Some(OffsetDateTime::from_unix_timestamp(s.e).unwrap());
        let fresh = stored(3600, 3000);
        assert!(a.usable(&keys, &fresh, None));
        // A refresh wants a newer token than the one it holds.
        assert!(!a.usable(&keys, &fresh, held(&fresh)));
        assert!(a.usable(&keys, &fresh, held(&stored(1800, 900))));
        // Past the fleet's refresh point: time to refresh for the fleet.
        assert!(!a.usable(&keys, &stored(500, -1), None));
        // Nearly expired.
        assert!(!a.usable(&keys, &stored(1, 1), None));
        // A token a service refused is not taken again.
        a.forget("s", "token-a");
        assert!(!a.usable(&keys, &fresh, None));
    }

    #[test]
    fn keys_hash_the_identity_and_scope_and_show_neither() {
        let a = level(&[[1; 32]]);
        let k = a.keys("api://client7/.default");
        assert!(!k.value.contains("client7") && !k.value.contains("tenant"));
        assert_ne!(k.value, a.keys("api://client8/.default").value);
        // One hash tag for the value and its lock (Redis Cluster slot).
        let tag = |s: &str| s.split(['{', '}']).nth(1).unwrap().to_string();
        assert_eq!(tag(&k.value), tag(&k.lock));
    }

    #[test]
    fn from_env_turns_the_shared_cache_on_and_checks_its_key() {
        let vars = |name: &str| {
            match name {
                "AZURE_TENANT_ID" => Some("72f988bf-86f1-41af-91ab-2d7cd011db47"),
                "AZURE_CLIENT_ID" => Some("00001111-aaaa-2222-bbbb-3333cccc4444"),
                "AZURE_CLIENT_SECRET" => Some("s"),
                ENV_URL => Some("redis://127.0.0.1:1"),
                ENV_KEY => Some("bm90IDMyIGJ5dGVz"),
                _ => None,
            }
            .map(str::to_string)
        };
        let err = crate::CrossTenantCredential::builder()
            .with_vars(vars)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_KEY) && err.contains("12 bytes"), "{err}");
        assert!(!err.contains("bm90IDMyIGJ5dGVz"), "{err}");
    }

    #[test]
    fn sentinel_and_cluster_urls_are_read_and_bad_ones_refused() {
        let t = Topology::parse(
            "redis+sentinel://:hunter2@127.0.0.1:26379, 127.0.0.1:26380/mymaster/2",
            "x",
        )
        .unwrap();
        match t {
            Topology::Sentinel {
                sentinels,
                service,
                node: _,
            } => {
                assert_eq!(sentinels.len(), 2);
                assert_eq!(service, "mymaster");
                // The password is the primary's, not sent to the Sentinels.
                assert!(sentinels
                    .iter()
                    .all(|s| s.redis_settings().password().is_none()));
            }
            _ => panic!("not Sentinel"),
        }
        assert!(matches!(
            Topology::parse("rediss+cluster://u:p@10.0.0.1:7000,10.0.0.2:7000", "x").unwrap(),
            Topology::Cluster(_)
        ));
        assert!(matches!(
            Topology::parse("redis://127.0.0.1:6379/1", "x").unwrap(),
            Topology::Single(_)
        ));
        for (bad, why) in [
            ("redis+sentinel://127.0.0.1:26379", "primary name"),
            ("redis+sentinel:///mymaster", "no sentinel host"),
            ("redis+cluster://127.0.0.1:7000/1", "one database"),
            ("redis+cluster://", "no cluster host"),
            ("nope://x", "not a Redis URL"),
        ] {
            let err = Topology::parse(bad, "<shown>").err().unwrap().to_string();
            assert!(err.contains(why) && err.contains("<shown>"), "{bad}: {err}");
        }
        // Several hosts are no URL the url crate reads: still redacted.
        assert_eq!(
            redact_url("redis+sentinel://:hunter2@h1:1,h2:2/m"),
            "redis+sentinel://<redacted>@h1:1,h2:2/m"
        );
        assert_eq!(
            redact_url("redis+cluster://h1:1,h2:2"),
            "redis+cluster://h1:1,h2:2"
        );
        let debug = format!(
            "{:?}",
            SharedTokenCache::redis("rediss+cluster://user:hunter2@h1:1,h2:2")
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        let err = SharedTokenCache::redis("redis://127.0.0.1:1")
            .key_base64("c2hvcnQ=")
            .open("id")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("5 bytes") && err.contains("CROSSTENANT_REDIS_KEY"),
            "{err}"
        );
        assert!(!err.contains("c2hvcnQ"), "{err}");
        let err = SharedTokenCache::redis("redis://127.0.0.1:1")
            .open("id")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("key"), "{err}");
        let err = SharedTokenCache::redis("nope://x")
            .key([7; 32])
            .open("id")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CROSSTENANT_REDIS_URL"), "{err}");
        let cfg = SharedTokenCache::redis("redis://:hunter2@127.0.0.1:1").key([7; 32]);
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("7, 7"),
            "{debug}"
        );
        let vars = |n: &str| (n == ENV_URL).then(|| "redis://127.0.0.1:1".to_string());
        let err = SharedTokenCache::from_vars(&vars)
            .unwrap()
            .open("id")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(ENV_KEY), "{err}");
    }
}
