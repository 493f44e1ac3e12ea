//! The credential's token cache: per scope, refreshed ahead of expiry.
//!
//! azure_identity's cache (an async `RwLock<HashMap<Vec<String>, _>>`)
//! allocates a key on every call and makes every caller wait for the token
//! round trip once a token is within five minutes of expiry. A partner fleet
//! calls `get_token` on every send, so this cache goes further:
//!
//! - **hot path**: a short std `RwLock` read, an FxHash lookup of the
//!   scope (an aggregator caches one scope per client: thousands), a read
//!   of the coarse monotonic clock, no allocation but the token clone
//!   `AccessToken` forces, no reference counting, no I/O;
//! - **single flight**: concurrent callers on a cold scope wait for one
//!   request; a failure is handed to exactly the callers that waited for it,
//!   and the next caller tries again (failures are never cached);
//! - **refresh ahead**: once a token passes its refresh point (half its
//!   lifetime, at most ten minutes before expiry) one background task
//!   fetches the next token while callers keep getting the current one;
//! - **never hand out a token about to be renewed elsewhere**: within its
//!   last quarter of life (at most seven minutes before expiry) a token is
//!   no longer served without trying for a newer one. azure_messaging_eventhubs'
//!   CBS authorizer asks for a new token six minutes (± 5 s) before the old
//!   one expires and gives up renewing a path for good if the token it gets
//!   back has the same expiry; azure_identity's five-minute rule would hand it
//!   exactly that;
//! - **failures never strand a valid token**: if a refresh fails, the current
//!   token is served until it expires, and the next attempt waits for a short
//!   backoff instead of every caller hammering the token endpoint;
//! - **an optional second level** ([`SecondLevel`], the fleet's shared cache
//!   with feature `redis`) is asked on misses and refreshes only, never on
//!   the hot path.

use crate::error::Error;
use azure_core::credentials::AccessToken;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

struct Cached {
    token: AccessToken,
    /// `refresh_at` on the coarse clock the hot path reads.
    fresh_until: coarsetime::Instant,
    refresh_at: Instant,
    usable_until: Instant,
}

struct Entry {
    scope: Box<str>,
    slot: RwLock<Option<Cached>>,
    flight: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    /// Completed fetch attempts, to tell waiters whether the attempt they
    /// waited for failed.
    attempts: AtomicU64,
    last_failure: Mutex<Option<(u64, Error)>>,
    retry_refresh_after: Mutex<Option<Instant>>,
}

/// Scopes come from the application's own code, not from an attacker, so
/// the DoS resistance of std's SipHash buys nothing on a path taken on every
/// send; FxHash hashes a scope eight bytes at a time (a byte-at-a-time hash
/// cost a quarter of a cached `get_token`).
type Entries = HashMap<Box<str>, Arc<Entry>, rustc_hash::FxBuildHasher>;

/// A token request not yet started, handed to the second level.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send>>;

/// A cache shared beyond this process (the fleet's, on Redis), behind this
/// one: asked on misses and refreshes instead of going straight to Entra.
#[async_trait::async_trait]
pub(crate) trait SecondLevel: Send + Sync {
    /// A token for `scope` newer than `held` (the expiry of the token this
    /// process holds, if any): from the shared level, or from `fetch` (once
    /// for the fleet), then shared. Must never fail for its own sake: when
    /// the shared level fails, `fetch` decides.
    async fn obtain(
        &self,
        scope: &str,
        held: Option<azure_core::time::OffsetDateTime>,
        fetch: TokenFuture,
    ) -> Result<AccessToken, Error>;

    /// A service refused `rejected` for `scope`: never take it from the
    /// shared level again.
    fn forget(&self, scope: &str, rejected: &str);
}

/// Per-scope token cache; see the module docs.
#[derive(Default)]
pub(crate) struct TokenCache {
    /// Keyed by the scopes joined with a space (the form token requests
    /// send), so the one-scope call every Azure client makes looks up
    /// without allocating.
    entries: RwLock<Entries>,
    /// The first scope this cache was asked for. Most credentials serve one
    /// scope (an Event Hubs sender's, an API's), and the hot path finds it
    /// here with one comparison: no map lock, no hashing.
    primary: OnceLock<Arc<Entry>>,
    second: Option<Arc<dyn SecondLevel>>,
}

fn lookup<'a>(entries: &'a Entries, scopes: &[&str]) -> Option<&'a Arc<Entry>> {
    match scopes {
        [one] => entries.get(*one),
        many => entries.get(many.join(" ").as_str()),
    }
}

/// When to start a background refresh, and until when to serve a token
/// with `remaining` left without first trying for a newer one.
fn schedule(now: Instant, remaining: Duration) -> (Instant, Instant) {
    let ahead = (remaining / 2).min(Duration::from_secs(600));
    let margin = (remaining / 4).min(Duration::from_secs(420));
    (now + remaining - ahead, now + remaining - margin)
}

/// How close to its expiry a token is no longer handed out at all.
const EXPIRY_SAFETY: Duration = Duration::from_secs(1);

fn remaining_of(token: &AccessToken) -> Duration {
    let left = token.expires_on - azure_core::time::OffsetDateTime::now_utc();
    Duration::try_from(left).unwrap_or(Duration::ZERO)
}

impl TokenCache {
    /// A cache with a second level behind it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_second_level(second: Arc<dyn SecondLevel>) -> Self {
        Self {
            second: Some(second),
            ..Self::default()
        }
    }

    /// `fetch`, through the second level if there is one.
    async fn load<F, Fut>(
        second: Option<&Arc<dyn SecondLevel>>,
        entry: &Entry,
        fetch: F,
    ) -> Result<AccessToken, Error>
    where
        F: FnOnce(String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let Some(second) = second else {
            return fetch(entry.scope.to_string()).await;
        };
        let held = entry
            .slot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.token.expires_on);
        second
            .obtain(&entry.scope, held, Box::pin(fetch(entry.scope.to_string())))
            .await
    }

    fn entry(&self, scopes: &[&str]) -> Arc<Entry> {
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = lookup(&entries, scopes) {
                return e.clone();
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = lookup(&entries, scopes) {
            return e.clone();
        }
        let e = Arc::new(Entry {
            scope: scopes.join(" ").into_boxed_str(),
            slot: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            retry_refresh_after: Mutex::new(None),
        });
        entries.insert(e.scope.clone(), e.clone());
        let _ = self.primary.set(e.clone());
        e
    }

    /// The cached token of `scopes` if it is before its refresh point: the
    /// hot path, with no reference counting and no fetch closure to build.
    #[inline]
    pub(crate) fn fresh(&self, scopes: &[&str]) -> Option<AccessToken> {
        if let ([one], Some(primary)) = (scopes, self.primary.get()) {
            if *primary.scope == **one {
                return Self::fresh_in(primary);
            }
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        Self::fresh_in(lookup(&entries, scopes)?)
    }

    #[inline(always)]
    fn fresh_in(entry: &Entry) -> Option<AccessToken> {
        let slot = entry.slot.read().unwrap_or_else(|e| e.into_inner());
        // The coarse monotonic clock (a few milliseconds' resolution, a
        // fifth of the cost of `Instant::now`) is plenty for a refresh point
        // minutes before expiry; without updating coarsetime's shared
        // "recent" value, so callers on many threads never write one cache
        // line.
        slot.as_ref()
            .filter(|c| coarsetime::Instant::now_without_cache_update() < c.fresh_until)
            .map(|c| c.token.clone())
    }

    /// Drops the cached token of `scopes` if it is `rejected`, so the next
    /// call fetches a new one (after a service refused it with 401). Returns
    /// whether it was cached (and is now dropped).
    pub(crate) fn invalidate(&self, scopes: &[&str], rejected: &str) -> bool {
        let entry = self.entry(scopes);
        let mut slot = entry.slot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(second) = &self.second {
            second.forget(&entry.scope, rejected);
        }
        if slot
            .as_ref()
            .is_some_and(|c| c.token.token.secret() == rejected)
        {
            *slot = None;
            return true;
        }
        false
    }

    /// A token for `scopes`, from the cache or from `fetch`.
    pub(crate) async fn get<F, Fut>(&self, scopes: &[&str], fetch: F) -> Result<AccessToken, Error>
    where
        F: FnOnce(String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let entry = self.entry(scopes);
        let now = Instant::now();
        {
            let slot = entry.slot.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = slot.as_ref() {
                if now < c.refresh_at {
                    return Ok(c.token.clone());
                }
                if now < c.usable_until {
                    let token = c.token.clone();
                    drop(slot);
                    Self::refresh_in_background(&entry, now, self.second.clone(), fetch);
                    return Ok(token);
                }
                // Past its serving window, but a refresh just failed and is
                // backing off: keep serving what is still valid.
                if Self::backing_off(&entry, now) && remaining_of(&c.token) > EXPIRY_SAFETY {
                    return Ok(c.token.clone());
                }
            }
        }
        Self::fetch_in_flight(&entry, self.second.as_ref(), fetch).await
    }

    fn backing_off(entry: &Entry, now: Instant) -> bool {
        entry
            .retry_refresh_after
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now < t)
    }

    /// How long the refresh of `scopes` is still backing off, if it is.
    #[cfg(test)]
    fn backing_off_now(&self, scopes: &[&str]) -> Option<Duration> {
        let entry = self.entry(scopes);
        let until = *entry
            .retry_refresh_after
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.and_then(|t| t.checked_duration_since(Instant::now()))
    }

    fn back_off(entry: &Entry) {
        let left = entry
            .slot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| remaining_of(&c.token))
            .unwrap_or_default();
        let backoff = (left / 8).clamp(Duration::from_millis(500), Duration::from_secs(30));
        *entry
            .retry_refresh_after
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + backoff);
    }

    fn refresh_in_background<F, Fut>(
        entry: &Arc<Entry>,
        now: Instant,
        second: Option<Arc<dyn SecondLevel>>,
        fetch: F,
    ) where
        F: FnOnce(String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        // Every caller in the refresh window passes here while the refresh
        // is in flight: a plain load keeps them off the backoff mutex and
        // keeps the flag's cache line shared instead of bouncing between
        // cores with a write per call.
        if entry.refreshing.load(Ordering::Acquire) || Self::backing_off(entry, now) {
            return;
        }
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            entry.refreshing.store(false, Ordering::Release);
            return;
        };
        let entry = entry.clone();
        runtime.spawn(async move {
            let _flight = entry.flight.lock().await;
            let still_due = {
                let slot = entry.slot.read().unwrap_or_else(|e| e.into_inner());
                slot.as_ref().is_none_or(|c| Instant::now() >= c.refresh_at)
            };
            if still_due {
                match Self::load(second.as_ref(), &entry, fetch).await {
                    Ok(token) => Self::store(&entry, token),
                    Err(err) => {
                        // Keep serving the current token; try again after a
                        // short backoff rather than on every call.
                        Self::back_off(&entry);
                        tracing::warn!(scope = %entry.scope, error = %err, "background token refresh failed; serving the current token until it expires");
                    }
                }
            }
            entry.refreshing.store(false, Ordering::Release);
        });
    }

    async fn fetch_in_flight<F, Fut>(
        entry: &Arc<Entry>,
        second: Option<&Arc<dyn SecondLevel>>,
        fetch: F,
    ) -> Result<AccessToken, Error>
    where
        F: FnOnce(String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AccessToken, Error>> + Send + 'static,
    {
        let seen = entry.attempts.load(Ordering::Acquire);
        let _flight = entry.flight.lock().await;
        // Someone else may have fetched while we waited.
        {
            let slot = entry.slot.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = slot.as_ref() {
                if Instant::now() < c.usable_until {
                    return Ok(c.token.clone());
                }
            }
        }
        if entry.attempts.load(Ordering::Acquire) > seen {
            let failure = entry.last_failure.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((attempt, err)) = failure.as_ref() {
                if *attempt > seen {
                    return Err(err.clone());
                }
            }
        }
        let result = Self::load(second, entry, fetch).await;
        let attempt = entry.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(token) => {
                Self::store(entry, token.clone());
                Ok(token)
            }
            Err(err) => {
                // A token that is still valid beats an error: serve it and
                // back off before the next attempt.
                let still_valid = entry
                    .slot
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .filter(|c| remaining_of(&c.token) > EXPIRY_SAFETY)
                    .map(|c| c.token.clone());
                if let Some(token) = still_valid {
                    Self::back_off(entry);
                    tracing::warn!(scope = %entry.scope, error = %err, "token refresh failed; serving the current token until it expires");
                    return Ok(token);
                }
                *entry.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((attempt, err.clone()));
                Err(err)
            }
        }
    }

    fn store(entry: &Entry, token: AccessToken) {
        let now = Instant::now();
        let (refresh_at, usable_until) = schedule(now, remaining_of(&token));
        let fresh_until = coarsetime::Instant::now_without_cache_update()
            + coarsetime::Duration::from(refresh_at - now);
        *entry.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            token,
            fresh_until,
            refresh_at,
            usable_until,
        });
        *entry
            .retry_refresh_after
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::time::OffsetDateTime;
    use std::sync::atomic::AtomicUsize;

    fn token(n: usize, secs: i64) -> AccessToken {
        AccessToken::new(
            format!("token-{n}"),
            OffsetDateTime::now_utc() + azure_core::time::Duration::seconds(secs),
        )
    }

    #[tokio::test]
    async fn each_of_a_thousand_scopes_keeps_its_own_token() {
        let cache = TokenCache::default();
        for n in 0..1000 {
            let scope = format!("api://client{n}/.default");
            cache
                .get(&[&scope], move |_| async move { Ok(token(n, 3600)) })
                .await
                .unwrap();
        }
        for n in [0, 499, 999] {
            let scope = format!("api://client{n}/.default");
            let got = cache.fresh(&[&scope]).expect("cached");
            assert_eq!(got.token.secret(), format!("token-{n}"));
        }
        // Scopes are joined with a space: ["a", "b"] is not ["a b"]'s
        // neighbour ["ab"], and a multi-scope key is found again.
        cache
            .get(&["a", "b"], |_| async { Ok(token(7, 3600)) })
            .await
            .unwrap();
        assert!(cache.fresh(&["a", "b"]).is_some());
        assert!(cache.fresh(&["a b"]).is_some());
        assert!(cache.fresh(&["ab"]).is_none());
        assert!(cache.fresh(&["a"]).is_none());
    }

    /// A failed background refresh backs off for an eighth of the token's
    /// remaining life (at least 0.5 s, at most 30 s), so a short-lived
    /// token is tried again well before it stops being served, and callers
    /// never wait for a token request. A 12 s token is refreshed from 6 s
    /// and served until 9 s: failing at about 6.2 s, it is tried again
    /// after about 0.7 s, inside the window.
    #[tokio::test]
    async fn a_failed_background_refresh_is_tried_again_after_an_eighth_of_the_life_left() {
        let cache = TokenCache::default();
        cache
            .get(&["s"], |_| async { Ok(token(1, 12)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(6200)).await;
        let fetches = Arc::new(AtomicUsize::new(0));
        let f = fetches.clone();
        let served = cache
            .get(&["s"], move |_| async move {
                f.fetch_add(1, Ordering::SeqCst);
                Err(Error::WrongTenant {
                    expected: "a".into(),
                    actual: "b".into(),
                    client_id: "c".into(),
                })
            })
            .await
            .unwrap();
        assert_eq!(served.token.secret(), "token-1", "served while refreshing");
        let deadline = Instant::now() + Duration::from_secs(3);
        while fetches.load(Ordering::SeqCst) == 0 || cache.backing_off_now(&["s"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "the background refresh never ran"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let backoff = cache.backing_off_now(&["s"]).unwrap_or_default();
        assert!(
            backoff <= Duration::from_millis(800),
            "an eighth of the ~5.8 s left, not more: {backoff:?}"
        );
        tokio::time::sleep(backoff + Duration::from_millis(100)).await;
        let f = fetches.clone();
        cache
            .get(&["s"], move |_| async move {
                f.fetch_add(1, Ordering::SeqCst);
                Ok(token(2, 3600))
            })
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while cache.fresh(&["s"]).map(|t| t.token.secret().to_string()) != Some("token-2".into()) {
            assert!(
                Instant::now() < deadline,
                "not tried again after the backoff"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    /// Callers that arrive while a token request is in flight wait for it
    /// and share its answer, a refusal too: during an Entra outage a burst
    /// of callers with nothing cached makes one request, not one each.
    #[tokio::test]
    async fn callers_waiting_on_a_refused_token_request_share_its_error() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                let f = fetches.clone();
                tokio::spawn(async move {
                    cache
                        .get(&["s"], move |_| async move {
                            f.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Err::<AccessToken, _>(Error::WrongTenant {
                                expected: "a".into(),
                                actual: "b".into(),
                                client_id: "c".into(),
                            })
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert!(matches!(err, Error::WrongTenant { .. }), "{err}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one request for all");
        // A caller after the failure asks again.
        cache
            .get(&["s"], |_| async { Ok(token(1, 3600)) })
            .await
            .unwrap();
    }

    /// After a service's 401 only the refused token is dropped: a refusal
    /// of an older token (one a concurrent caller already replaced) keeps
    /// the current one, and the refused one is never served again.
    #[tokio::test]
    async fn only_the_refused_token_is_dropped_and_the_next_call_fetches_anew() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let get = |cache: Arc<TokenCache>| {
            let fetches = fetches.clone();
            async move {
                cache
                    .get(&["s"], move |_| async move {
                        Ok(token(fetches.fetch_add(1, Ordering::SeqCst) + 1, 3600))
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(get(cache.clone()).await.token.secret(), "token-1");
        assert!(!cache.invalidate(&["s"], "token-0"), "not the cached token");
        assert_eq!(get(cache.clone()).await.token.secret(), "token-1", "kept");
        assert!(cache.invalidate(&["s"], "token-1"));
        assert!(cache.fresh(&["s"]).is_none());
        assert_eq!(get(cache.clone()).await.token.secret(), "token-2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert!(!cache.invalidate(&["s"], "token-1"), "already dropped");
    }

    #[test]
    fn refresh_starts_at_half_life_and_precedes_the_amqp_authorizer() {
        let now = Instant::now();
        let (r, u) = schedule(now, Duration::from_secs(3600));
        assert_eq!(r - now, Duration::from_secs(3000));
        assert_eq!(u - now, Duration::from_secs(3180));
        // azure_messaging_eventhubs renews CBS tokens 6 min ± 5 s before
        // expiry; by then this cache must no longer hand out the old token.
        assert!(Duration::from_secs(3600) - (u - now) > Duration::from_secs(365));
        let (r, u) = schedule(now, Duration::from_secs(10));
        assert_eq!(r - now, Duration::from_secs(5));
        assert_eq!(u - now, Duration::from_millis(7500));
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_replaced_before_it_is_handed_out() {
        let cache = TokenCache::default();
        // 4 s lifetime: usable without a fetch for 3 s only.
        cache
            .get(&["s"], |_| async { Ok(token(1, 4)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3100)).await;
        let got = cache
            .get(&["s"], |_| async { Ok(token(2, 3600)) })
            .await
            .unwrap();
        assert_eq!(got.token.secret(), "token-2");
    }

    #[tokio::test]
    async fn a_failed_blocking_refresh_serves_the_still_valid_token_and_backs_off() {
        let cache = TokenCache::default();
        cache
            .get(&["s"], |_| async { Ok(token(1, 8)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(6100)).await;
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let c = calls.clone();
            let got = cache
                .get(&["s"], move |_| async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err::<AccessToken, _>(Error::transport("fetch", "down", true))
                })
                .await
                .unwrap();
            assert_eq!(got.token.secret(), "token-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one attempt, then backoff");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_cold_callers_share_one_fetch_and_one_failure() {
        let cache = Arc::new(TokenCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&["s"], move |_| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<AccessToken, _>(Error::transport("fetch", "down", true))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        // One attempt for the first wave; later arrivals may start one more.
        let failed_attempts = calls.load(Ordering::SeqCst);
        assert!(failed_attempts <= 2, "{failed_attempts}");
        // The failure is not cached: the next caller tries again.
        let got = cache
            .get(&["s"], |_| async { Ok(token(1, 3600)) })
            .await
            .unwrap();
        assert_eq!(got.token.secret(), "token-1");
    }

    #[tokio::test]
    async fn failed_background_refresh_keeps_serving_the_valid_token() {
        let cache = TokenCache::default();
        // 4 s lifetime: refresh point after 2 s, usable until 3 s.
        cache
            .get(&["s"], |_| async { Ok(token(1, 4)) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let got = cache
            .get(&["s"], move |_| async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<AccessToken, _>(Error::transport("fetch", "down", true))
            })
            .await
            .unwrap();
        assert_eq!(got.token.secret(), "token-1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Still served, and no new attempt during the backoff.
        let c = calls.clone();
        let got = cache
            .get(&["s"], move |_| async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(token(2, 3600))
            })
            .await
            .unwrap();
        assert_eq!(got.token.secret(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
