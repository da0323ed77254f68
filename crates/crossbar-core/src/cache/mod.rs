//! The response cache: an exact-match store of deterministic answers, so the same request
//! (temperature 0, or forced by the caller) is paid for once per TTL rather than every time.
//!
//! Keys ([`CacheKey`]) digest the canonical request fields that decide the answer, behind the
//! caller's partition (its key, its team, or one shared partition when configured), so no
//! tenant can read another's answers. Entries live in a process memory bounded in entries
//! (least recently used goes first) and age, in front of the replicas' [`SharedKv`] store when
//! the gateway has one, with the same TTL: a miss here asks the store, and an answer found
//! there is kept here too. A store that fails is a miss (the store logs it).
//!
//! A hit streams as [`replay`] of the cached answer, whatever the dialect; a streamed miss is
//! rebuilt for keeping by [`Assembler`].

mod key;
mod replay;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use key::CacheKey;
pub use replay::{Assembler, REPLAY_CHUNK_CHARS, replay};

use crate::chat::{ChatRequest, ChatResponse, FinishReason, Usage};
use crate::error::{Error, Result};
use crate::shared_kv::{SharedKv, SharedSlot};

/// The request header a caller steers the cache with.
pub const HEADER: &str = "x-crossbar-cache";

/// `cache = { ... }`: whether and how answers are kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Off unless turned on.
    pub enabled: bool,
    /// How long an answer is served, in seconds (default 300).
    pub ttl_s: u64,
    /// Answers kept in each replica's memory (default 10,000); 0 keeps them only in the
    /// shared store.
    pub max_entries: usize,
    /// The largest answer kept, in bytes of its JSON (default 1 MiB); larger ones are not.
    pub max_entry_bytes: usize,
    /// Whose requests share answers (default `key`).
    pub scope: CacheScope,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl_s: 300,
            max_entries: 10_000,
            max_entry_bytes: 1024 * 1024,
            scope: CacheScope::Key,
        }
    }
}

impl CacheConfig {
    /// Refuses settings that would keep nothing or forever.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.ttl_s == 0 {
            return Err("cache.ttl_s must be at least 1".to_owned());
        }
        if self.ttl_s > MAX_TTL_S {
            return Err(format!("cache.ttl_s must be at most {MAX_TTL_S} (30 days)"));
        }
        if self.max_entry_bytes == 0 {
            return Err("cache.max_entry_bytes must be at least 1".to_owned());
        }
        Ok(())
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_s)
    }
}

const MAX_TTL_S: u64 = 30 * 24 * 3600;

/// `scope`: who may be served an answer another caller paid for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// The same virtual key only.
    #[default]
    Key,
    /// Keys of the same team (a key without a team: that key only).
    Team,
    /// Every caller: only for routes whose answers hold nothing tenant-specific.
    Shared,
}

impl CacheScope {
    /// The partition a caller's entries live in. The kinds are spelled out (`key:`, `team:`)
    /// so a key id can never stand for a team id of the same spelling. Without a key (a
    /// gateway without authentication), everyone is one tenant.
    pub fn partition(self, key_id: Option<&str>, team_id: Option<&str>) -> String {
        match (self, key_id, team_id) {
            (Self::Shared, _, _) => "shared".to_owned(),
            (Self::Team, _, Some(team)) => format!("team:{team}"),
            (Self::Team | Self::Key, Some(key), _) => format!("key:{key}"),
            (Self::Team | Self::Key, None, _) => "anonymous".to_owned(),
        }
    }
}

/// What the caller asked of the cache with `x-crossbar-cache`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Directive {
    /// No header: the cache is used for deterministic requests (temperature 0).
    #[default]
    Auto,
    /// `force`: used whatever the sampling, since the caller accepts one answer for all.
    Force,
    /// `bypass`: neither read nor written.
    Bypass,
    /// `no-store`: a fresh answer is not kept (an entry may still answer, as HTTP's
    /// `no-store` allows).
    NoStore,
}

impl Directive {
    /// The header's value (case and surrounding blanks aside); an unknown one is refused by
    /// name rather than silently caching or not.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        let Some(value) = value else {
            return Ok(Self::Auto);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "force" => Ok(Self::Force),
            "bypass" => Ok(Self::Bypass),
            "no-store" => Ok(Self::NoStore),
            other => Err(Error::invalid_request(format!(
                "Header {HEADER} must be force, bypass or no-store, not `{other}`."
            ))
            .with_param(HEADER)),
        }
    }
}

/// Whether a request uses the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Look the answer up; on a miss, keep the fresh one if `store`.
    Use {
        store: bool,
    },
    Skip(Skip),
}

/// Why a request does not use the cache (a metric label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The route does not enable it.
    Disabled,
    /// `x-crossbar-cache: bypass`.
    Bypass,
    /// Sampling at a temperature other than an explicit 0, not forced.
    NotDeterministic,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Bypass => "bypass",
            Self::NotDeterministic => "not_deterministic",
        }
    }
}

impl Decision {
    pub fn lookup(self) -> bool {
        matches!(self, Self::Use { .. })
    }

    pub fn store(self) -> bool {
        matches!(self, Self::Use { store: true })
    }
}

/// Whether `request` on a route with `config` uses the cache. Only a request the caller made
/// deterministic does (temperature explicitly 0, or `force`): caching a sampled answer would
/// serve one draw forever. Tool definitions do not matter: the answer is a call, not its run.
pub fn decide(config: &CacheConfig, request: &ChatRequest, directive: Directive) -> Decision {
    if !config.enabled {
        return Decision::Skip(Skip::Disabled);
    }
    if directive == Directive::Bypass {
        return Decision::Skip(Skip::Bypass);
    }
    let deterministic = request.sampling.temperature == Some(0.0);
    if !deterministic && directive != Directive::Force {
        return Decision::Skip(Skip::NotDeterministic);
    }
    Decision::Use {
        store: directive != Directive::NoStore,
    }
}

/// A cached answer, when it was kept and until when it answers (Unix milliseconds, the
/// writing replica's clock).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    pub stored_at: u64,
    pub expires_at: u64,
    pub response: ChatResponse,
}

impl Cached {
    /// The token counts a hit's usage record carries (its upstream cost is zero: no upstream
    /// was called).
    pub fn usage(&self) -> Usage {
        self.response.usage.unwrap_or_default()
    }

    /// Whole seconds since it was kept, for an `age` header.
    pub fn age_s(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at) / 1000
    }
}

/// What became of a [`ResponseCache::put`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// Over `max_entry_bytes`.
    TooLarge,
    /// A filtered or otherwise unusual end (`content_filter`, `other`): filters and glitches
    /// change, so the next try may answer differently.
    NotCacheable,
}

/// Counters since start, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Lookups answered, from memory or the shared store.
    pub hits: u64,
    /// Of `hits`, those the shared store answered (another replica's entry).
    pub shared_hits: u64,
    pub misses: u64,
    pub stores: u64,
    /// Entries dropped from memory to stay within `max_entries`.
    pub evictions: u64,
    /// Entries found past their TTL (and dropped).
    pub expired: u64,
    /// Answers not kept for being over `max_entry_bytes`.
    pub too_large: u64,
    /// Entries in this replica's memory now, and their bytes of JSON.
    pub entries: u64,
    pub bytes: u64,
}

/// Unix milliseconds now: the clock entries are stamped with and aged by.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// One gateway's response cache: the process memory, in front of the shared store `slot`
/// holds once attached. Cloning shares it.
#[derive(Clone)]
pub struct ResponseCache(Arc<Inner>);

struct Inner {
    ttl: Duration,
    max_entries: usize,
    max_entry_bytes: usize,
    memory: Mutex<Lru>,
    shared: SharedSlot,
    clock: Clock,
    hits: AtomicU64,
    shared_hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    too_large: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("ttl", &self.0.ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    pub fn new(config: &CacheConfig, shared: SharedSlot) -> Self {
        Self::with_clock(config, shared, system_clock())
    }

    /// A cache reading the time from `clock` (tests age entries without waiting).
    pub fn with_clock(config: &CacheConfig, shared: SharedSlot, clock: Clock) -> Self {
        Self(Arc::new(Inner {
            ttl: config.ttl(),
            max_entries: config.max_entries,
            max_entry_bytes: config.max_entry_bytes,
            memory: Mutex::new(Lru::default()),
            shared,
            clock,
            hits: AtomicU64::new(0),
            shared_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stores: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
        }))
    }

    /// Unix milliseconds by this cache's clock.
    pub fn now_ms(&self) -> u64 {
        (self.0.clock)()
    }

    /// The TTL of [`Self::put`], from the configuration.
    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }

    fn with_memory<T>(&self, f: impl FnOnce(&mut Lru) -> T) -> T {
        f(&mut self.0.memory.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The answer kept under `key` and still fresh: from this process, else from the shared
    /// store (and then kept here too, with its original time).
    pub async fn get(&self, key: &CacheKey) -> Option<Cached> {
        let now = self.now_ms();
        let found = self.with_memory(|memory| match memory.get(key.as_str()) {
            Some(cached) if now < cached.expires_at => Some(Ok(cached)),
            Some(_) => {
                memory.remove(key.as_str());
                memory.expired += 1;
                Some(Err(()))
            }
            None => None,
        });
        if let Some(Ok(cached)) = found {
            self.0.hits.fetch_add(1, Ordering::Relaxed);
            return Some(Cached::clone(&cached));
        }
        if let Some(shared) = self.0.shared.get()
            && let Some(cached) = self.load_shared(shared.as_ref(), key, now).await
        {
            self.0.hits.fetch_add(1, Ordering::Relaxed);
            self.0.shared_hits.fetch_add(1, Ordering::Relaxed);
            return Some(cached);
        }
        self.0.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    async fn load_shared(&self, shared: &dyn SharedKv, key: &CacheKey, now: u64) -> Option<Cached> {
        let value = shared.load(&shared_key(key)).await?;
        let cached = match serde_json::from_str::<Cached>(&value) {
            Ok(cached) => cached,
            Err(e) => {
                tracing::warn!("unreadable shared cache entry {key}: {e}");
                return None;
            }
        };
        // The store expires entries itself; this guards against clocks that disagree.
        if now >= cached.expires_at {
            return None;
        }
        let cached = Arc::new(cached);
        self.remember(key, Arc::clone(&cached), value.len());
        Some(Cached::clone(&cached))
    }

    /// Keeps `response` under `key` for the configured TTL, here and in the shared store,
    /// unless it is too large or ended in a way worth retrying.
    pub async fn put(&self, key: &CacheKey, response: &ChatResponse) -> Put {
        self.put_for(key, response, self.0.ttl).await
    }

    /// [`Self::put`] for `ttl` (a route's own), in the same bounded memory.
    pub async fn put_for(&self, key: &CacheKey, response: &ChatResponse, ttl: Duration) -> Put {
        if matches!(
            response.finish_reason,
            FinishReason::ContentFilter | FinishReason::Other
        ) {
            return Put::NotCacheable;
        }
        let stored_at = self.now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let cached = Cached {
            stored_at,
            expires_at: stored_at.saturating_add(ttl_ms),
            response: response.clone(),
        };
        let value = match serde_json::to_string(&cached) {
            Ok(value) if value.len() <= self.0.max_entry_bytes => value,
            // A canonical answer always serializes; were it not to, it is not kept.
            Ok(_) | Err(_) => {
                self.0.too_large.fetch_add(1, Ordering::Relaxed);
                return Put::TooLarge;
            }
        };
        self.remember(key, Arc::new(cached), value.len());
        if let Some(shared) = self.0.shared.get() {
            shared.save(&shared_key(key), value, ttl).await;
        }
        self.0.stores.fetch_add(1, Ordering::Relaxed);
        Put::Stored
    }

    fn remember(&self, key: &CacheKey, cached: Arc<Cached>, bytes: usize) {
        if self.0.max_entries == 0 {
            return;
        }
        self.with_memory(|memory| memory.insert(key.as_str(), cached, bytes, self.0.max_entries));
    }

    pub fn stats(&self) -> CacheStats {
        let (evictions, expired, entries, bytes) = self.with_memory(|memory| {
            (
                memory.evictions,
                memory.expired,
                memory.entries.len(),
                memory.bytes,
            )
        });
        CacheStats {
            hits: self.0.hits.load(Ordering::Relaxed),
            shared_hits: self.0.shared_hits.load(Ordering::Relaxed),
            misses: self.0.misses.load(Ordering::Relaxed),
            stores: self.0.stores.load(Ordering::Relaxed),
            evictions,
            expired,
            too_large: self.0.too_large.load(Ordering::Relaxed),
            entries: u64::try_from(entries).unwrap_or(u64::MAX),
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
        }
    }
}

/// The shared store's key of `key`.
fn shared_key(key: &CacheKey) -> String {
    format!("response_cache:{key}")
}

struct Entry {
    cached: Arc<Cached>,
    bytes: usize,
    /// Its place in `Lru::order`: higher is more recently used.
    used: u64,
}

/// Entries by key, with their order of use, so the least recently used goes first.
#[derive(Default)]
struct Lru {
    entries: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
    evictions: u64,
    expired: u64,
}

impl Lru {
    /// The entry under `key`, now the most recently used.
    fn get(&mut self, key: &str) -> Option<Arc<Cached>> {
        let next = self.next;
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.used);
        entry.used = next;
        self.order.insert(next, key.to_owned());
        self.next += 1;
        Some(Arc::clone(&entry.cached))
    }

    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.used);
            self.bytes -= entry.bytes;
        }
    }

    /// Keeps `cached` under `key` as the most recently used, then drops the least recently
    /// used while over `capacity`.
    fn insert(&mut self, key: &str, cached: Arc<Cached>, bytes: usize, capacity: usize) {
        self.remove(key);
        let used = self.next;
        self.next += 1;
        self.entries.insert(
            key.to_owned(),
            Entry {
                cached,
                bytes,
                used,
            },
        );
        self.order.insert(used, key.to_owned());
        self.bytes += bytes;
        while self.entries.len() > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
                self.evictions += 1;
            }
        }
    }
}
