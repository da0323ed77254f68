//! Virtual keys: secrets handed out once and stored only as SHA-256 hashes, each with model and
//! route restrictions, rate limits (requests and tokens per minute) and USD budgets (per UTC
//! day, per UTC month, in total). Budgets reserve a request's estimated cost before the call
//! and settle to its real cost when its record is made, so concurrent requests cannot together
//! overspend by more than one request's estimate error.
//!
//! Limit state lives in this process, or with `[redis]` in Redis (see [`crate::shared`]) so
//! that every replica counts against the same limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbar_core::error::{ErrorKind, Origin};
use crossbar_core::pricing::{format_usd, usd_to_pico};
use crossbar_core::{Error, Result};
use crossbar_store::{KeyLimits, KeyRecord, Store, now_ms};

use crate::shared::{self, Reserved, Shared, Window, Windows};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// How long a key lookup (and the "are there any keys" answer) is trusted before the store is
/// asked again: a key revoked from another process stops working within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);
const MINUTE: Duration = Duration::from_secs(60);
/// Cached lookups beyond this many are dropped wholesale (they are only a cache).
const MAX_CACHED_KEYS: usize = 100_000;
const DAY_MS: i64 = 86_400_000;

/// What `keys create` (CLI or admin API) asks for.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd_day: Option<f64>,
    pub budget_usd_month: Option<f64>,
    pub budget_usd_total: Option<f64>,
}

/// The SHA-256 of a secret, in hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates a key in `store`; returns the secret (shown once, never stored) and the record.
pub async fn create(store: &dyn Store, new: NewKey) -> Result<(String, KeyRecord), Error> {
    for (budget, name) in [
        (new.budget_usd_day, "budget_usd_day"),
        (new.budget_usd_month, "budget_usd_month"),
        (new.budget_usd_total, "budget_usd_total"),
    ] {
        if budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
            return Err(Error::invalid_field(
                name,
                format!("`{name}` must be a non-negative number of USD."),
            ));
        }
    }
    if new
        .name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty() || n.len() > 128)
    {
        return Err(Error::invalid_field(
            "name",
            "`name` must be 1 to 128 characters.",
        ));
    }
    // The thread-local generator is not `Send`: draw everything before the first await.
    let (secret, id) = {
        let mut rng = rand::rng();
        (
            format!("cb-{}", hex::encode(rng.random::<[u8; 24]>())),
            format!("key_{}", hex::encode(rng.random::<[u8; 8]>())),
        )
    };
    let record = KeyRecord {
        id,
        name: new.name,
        hash: hash_secret(&secret),
        prefix: secret.chars().take(9).collect(),
        created_ms: now_ms(),
        revoked_ms: None,
        models: new.models,
        routes: new.routes,
        limits: KeyLimits {
            rpm: new.rpm,
            tpm: new.tpm,
            budget_day_pusd: new.budget_usd_day.map(usd_to_pico),
            budget_month_pusd: new.budget_usd_month.map(usd_to_pico),
            budget_total_pusd: new.budget_usd_total.map(usd_to_pico),
        },
    };
    store
        .create_key(&record)
        .await
        .map_err(|e| Error::internal(format!("Could not save the key: {e}")))?;
    Ok((secret, record))
}

/// The start of the UTC day and month containing `ms`, in ms since the epoch.
pub fn day_and_month_start(ms: i64) -> (i64, i64) {
    let days = ms.div_euclid(DAY_MS);
    let (_, _, day) = civil_from_days(days);
    (days * DAY_MS, (days - (day - 1)) * DAY_MS)
}

/// Howard Hinnant's days-to-civil conversion: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The first ms of the UTC month after the one that starts at `month_start`.
fn next_month_start(month_start: i64) -> i64 {
    // Any day 32 days on is in the next month; take that month's start.
    day_and_month_start(month_start + 32 * DAY_MS).1
}

/// One key's live counters.
#[derive(Debug, Default)]
struct Counters {
    /// When each request of the last minute was admitted.
    requests: VecDeque<Instant>,
    /// Tokens settled in the last minute, by when.
    tokens: VecDeque<(Instant, u64)>,
    day_start: i64,
    month_start: i64,
    spent_day: u64,
    spent_month: u64,
    spent_total: u64,
    /// Estimated cost of requests admitted and not yet settled.
    reserved: u64,
    loaded: bool,
    /// The UTC day for which Redis was last seeded from the ledger.
    seeded_day: Option<i64>,
}

impl Counters {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|t| now - *t >= MINUTE) {
            self.requests.pop_front();
        }
        while self.tokens.front().is_some_and(|(t, _)| now - *t >= MINUTE) {
            self.tokens.pop_front();
        }
    }

    fn roll(&mut self, now_ms: i64) {
        let (day, month) = day_and_month_start(now_ms);
        if day != self.day_start {
            self.day_start = day;
            self.spent_day = 0;
        }
        if month != self.month_start {
            self.month_start = month;
            self.spent_month = 0;
        }
    }
}

/// A key as the gateway knows it: its record and its counters.
#[derive(Debug)]
pub struct KeyState {
    record: Mutex<KeyRecord>,
    counters: Mutex<Counters>,
    /// Where the counters live when replicas share them; `counters` is then the fallback.
    shared: Option<Arc<Shared>>,
}

/// Where a reservation is held.
#[derive(Debug)]
enum Held {
    Local,
    Shared { member: String, windows: Windows },
}

/// What an admitted request holds against its key's budget until it settles.
#[derive(Debug)]
pub struct Reservation {
    key: Arc<KeyState>,
    estimate: u64,
    held: Held,
    settled: bool,
}

impl Reservation {
    /// Replaces the estimate with the real cost and counts the request's tokens.
    pub fn settle(mut self, cost_pusd: u64, tokens: u64) {
        self.settled = true;
        self.finish(cost_pusd, tokens);
    }

    fn finish(&mut self, cost: u64, tokens: u64) {
        match &self.held {
            Held::Local => self.key.settle(self.estimate, cost, tokens),
            Held::Shared { member, windows } => {
                let (Some(shared), Ok(runtime)) = (
                    self.key.shared.clone(),
                    tokio::runtime::Handle::try_current(),
                ) else {
                    return;
                };
                let (id, member, windows) = (self.key.id(), member.clone(), *windows);
                runtime.spawn(async move {
                    if let Err(error) = shared.settle(&id, &member, windows, cost, tokens).await {
                        shared::degraded("settle", &error);
                    }
                });
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.finish(0, 0);
        }
    }
}

fn limited(message: String, code: &str, retry_after: Duration, quota: bool) -> Error {
    Error {
        kind: if quota {
            ErrorKind::QuotaExceeded
        } else {
            ErrorKind::RateLimited
        },
        origin: Origin::Client,
        retryable: false,
        message,
        param: None,
        code: Some(code.to_owned()),
        upstream_status: None,
        retry_after: Some(retry_after.max(Duration::from_secs(1))),
    }
}

fn rpm_error(rpm: u64, wait: Duration) -> Error {
    limited(
        format!("Rate limit reached: this key allows {rpm} requests per minute."),
        "rate_limit_requests",
        wait,
        false,
    )
}

fn tpm_error(tpm: u64, wait: Duration) -> Error {
    limited(
        format!("Rate limit reached: this key allows {tpm} tokens per minute."),
        "rate_limit_tokens",
        wait,
        false,
    )
}

/// Over a budget: says which, how much is committed, and when it resets (never, for total).
fn budget_error(
    budget: u64,
    committed: u64,
    estimate: u64,
    label: &str,
    resets_at: Option<i64>,
    now_ms: i64,
) -> Error {
    let message = format!(
        "Budget exceeded: this key's {label} budget is ${}; ${} is spent or reserved and this request is estimated at ${}.",
        format_usd(budget),
        format_usd(committed),
        format_usd(estimate),
    );
    let retry = resets_at.map_or(Duration::from_secs(86_400), |at| {
        Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0))
    });
    let mut error = limited(message, "budget_exceeded", retry, true);
    if resets_at.is_none() {
        // A total budget never resets: waiting will not help.
        error.retry_after = None;
    }
    error
}

impl KeyState {
    pub fn id(&self) -> String {
        lock(&self.record).id.clone()
    }

    pub fn record(&self) -> KeyRecord {
        lock(&self.record).clone()
    }

    /// The model (a logical model or route name) is one the key may call.
    pub fn check_model(&self, model: &str) -> Result<()> {
        let record = lock(&self.record);
        if record.models.is_empty()
            || record
                .models
                .iter()
                .any(|m| crossbar_core::router::glob(m, model))
        {
            return Ok(());
        }
        Err(Error::permission_denied(
            format!("Your key may not use model `{model}`."),
            "model_not_allowed",
        )
        .with_param("model"))
    }

    /// Counts a request against requests-per-minute, refusing it when the minute is full.
    pub async fn admit_request(&self, now: Instant) -> Result<()> {
        let Some(rpm) = lock(&self.record).limits.rpm else {
            return Ok(());
        };
        if let Some(shared) = &self.shared {
            match shared.admit_request(&self.id(), rpm).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(rpm_error(rpm, wait)),
                Err(error) => shared::degraded("admit_request", &error),
            }
        }
        self.admit_local(now)
    }

    /// [`KeyState::admit_request`] on this replica's own counters.
    fn admit_local(&self, now: Instant) -> Result<()> {
        let Some(rpm) = lock(&self.record).limits.rpm else {
            return Ok(());
        };
        let mut counters = lock(&self.counters);
        counters.expire(now);
        if counters.requests.len() as u64 >= rpm {
            let oldest = counters.requests.front().copied().unwrap_or(now);
            return Err(rpm_error(rpm, MINUTE.saturating_sub(now - oldest)));
        }
        counters.requests.push_back(now);
        Ok(())
    }

    /// Refuses when the last minute's tokens reached tokens-per-minute, then reserves
    /// `estimate` picodollars against every budget. Also says what the budgets had left
    /// before this request (the most it may cost), when the key has any.
    pub async fn admit_cost(
        self: &Arc<Self>,
        estimate: u64,
        now: Instant,
        now_ms: i64,
    ) -> Result<(Reservation, Option<u64>)> {
        if let Some(shared) = &self.shared {
            let limits = lock(&self.record).limits;
            let (day_start, month_start) = day_and_month_start(now_ms);
            let windows = Windows {
                day_start,
                month_start,
            };
            match shared.reserve(&self.id(), &limits, estimate, windows).await {
                Ok(Reserved::Ok { member, remaining }) => {
                    let reservation = Reservation {
                        key: Arc::clone(self),
                        estimate,
                        held: Held::Shared { member, windows },
                        settled: false,
                    };
                    return Ok((reservation, remaining));
                }
                Ok(Reserved::TokensPerMinute { wait }) => {
                    return Err(tpm_error(limits.tpm.unwrap_or(0), wait));
                }
                Ok(Reserved::Budget { window, committed }) => {
                    let (budget, label, resets_at) = match window {
                        Window::Day => (limits.budget_day_pusd, "daily", Some(day_start + DAY_MS)),
                        Window::Month => (
                            limits.budget_month_pusd,
                            "monthly",
                            Some(next_month_start(month_start)),
                        ),
                        Window::Total => (limits.budget_total_pusd, "total", None),
                    };
                    return Err(budget_error(
                        budget.unwrap_or(0),
                        committed,
                        estimate,
                        label,
                        resets_at,
                        now_ms,
                    ));
                }
                Err(error) => shared::degraded("reserve", &error),
            }
        }
        let remaining = self.remaining(now_ms);
        Ok((self.reserve(estimate, now, now_ms)?, remaining))
    }

    /// [`KeyState::admit_cost`]'s check and reservation on this replica's own counters.
    fn reserve(self: &Arc<Self>, estimate: u64, now: Instant, now_ms: i64) -> Result<Reservation> {
        let limits = lock(&self.record).limits;
        let mut counters = lock(&self.counters);
        counters.expire(now);
        if let Some(tpm) = limits.tpm {
            let used: u64 = counters.tokens.iter().map(|(_, n)| n).sum();
            if used >= tpm {
                let oldest = counters.tokens.front().map_or(now, |(t, _)| *t);
                return Err(tpm_error(tpm, MINUTE.saturating_sub(now - oldest)));
            }
        }
        counters.roll(now_ms);
        let windows = [
            (
                limits.budget_day_pusd,
                counters.spent_day,
                "daily",
                Some(counters.day_start + DAY_MS),
            ),
            (
                limits.budget_month_pusd,
                counters.spent_month,
                "monthly",
                Some(next_month_start(counters.month_start)),
            ),
            (
                limits.budget_total_pusd,
                counters.spent_total,
                "total",
                None,
            ),
        ];
        for (budget, spent, label, resets_at) in windows {
            let Some(budget) = budget else { continue };
            let committed = spent.saturating_add(counters.reserved);
            if committed.saturating_add(estimate) > budget {
                return Err(budget_error(
                    budget, committed, estimate, label, resets_at, now_ms,
                ));
            }
        }
        counters.reserved = counters.reserved.saturating_add(estimate);
        Ok(Reservation {
            key: Arc::clone(self),
            estimate,
            held: Held::Local,
            settled: false,
        })
    }

    /// What the key may still spend on one request before a budget is hit, in picodollars.
    pub fn remaining(&self, now_ms: i64) -> Option<u64> {
        let limits = lock(&self.record).limits;
        let mut counters = lock(&self.counters);
        counters.roll(now_ms);
        let committed = |spent: u64| spent.saturating_add(counters.reserved);
        [
            limits
                .budget_day_pusd
                .map(|b| b.saturating_sub(committed(counters.spent_day))),
            limits
                .budget_month_pusd
                .map(|b| b.saturating_sub(committed(counters.spent_month))),
            limits
                .budget_total_pusd
                .map(|b| b.saturating_sub(committed(counters.spent_total))),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn settle(&self, estimate: u64, cost: u64, tokens: u64) {
        let mut counters = lock(&self.counters);
        counters.reserved = counters.reserved.saturating_sub(estimate);
        // No roll here: the cost counts in the windows the request was admitted in.
        counters.spent_day = counters.spent_day.saturating_add(cost);
        counters.spent_month = counters.spent_month.saturating_add(cost);
        counters.spent_total = counters.spent_total.saturating_add(cost);
        if tokens > 0 {
            counters.tokens.push_back((Instant::now(), tokens));
        }
    }

    fn has_budget(&self) -> bool {
        let limits = lock(&self.record).limits;
        limits.budget_day_pusd.is_some()
            || limits.budget_month_pusd.is_some()
            || limits.budget_total_pusd.is_some()
    }
}

/// A key id found for a hash, and when.
#[derive(Clone, Debug)]
struct Cached {
    id: String,
    at: Instant,
}

/// The gateway's view of the virtual keys in the store.
pub struct VirtualKeys {
    store: Arc<dyn Store>,
    /// By secret hash: which key id, and since when.
    by_hash: Mutex<HashMap<String, Cached>>,
    states: Mutex<HashMap<String, Arc<KeyState>>>,
    any_keys: AtomicBool,
    any_checked: Mutex<Option<Instant>>,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for VirtualKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualKeys")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl VirtualKeys {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            by_hash: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            any_keys: AtomicBool::new(false),
            any_checked: Mutex::new(None),
            shared: None,
        }
    }

    /// Counts limits and budgets in Redis, shared with the other replicas.
    pub fn with_shared(mut self, shared: Arc<Shared>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Forgets cached lookups (after a key is created or revoked here).
    pub fn invalidate(&self) {
        lock(&self.by_hash).clear();
        *lock(&self.any_checked) = None;
    }

    /// Whether any unrevoked key exists, so that anonymous calls must be refused.
    pub async fn any_keys(&self) -> Result<bool> {
        let fresh = lock(&self.any_checked).is_some_and(|at| at.elapsed() < CACHE_TTL);
        if fresh {
            return Ok(self.any_keys.load(Ordering::Relaxed));
        }
        let live = self
            .store
            .has_keys()
            .await
            .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
        self.any_keys.store(live, Ordering::Relaxed);
        *lock(&self.any_checked) = Some(Instant::now());
        Ok(live)
    }

    /// The live key whose secret this is, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Arc<KeyState>>> {
        let hash = hash_secret(secret);
        let cached = lock(&self.by_hash).get(&hash).cloned();
        let id = match cached {
            Some(Cached { id, at }) if at.elapsed() < CACHE_TTL => Some(id),
            _ => self.refresh(&hash).await?,
        };
        let Some(id) = id else { return Ok(None) };
        let Some(state) = lock(&self.states).get(&id).cloned() else {
            return Ok(None);
        };
        if lock(&state.record).revoked_ms.is_some() {
            return Ok(None);
        }
        self.load_spend(&state).await?;
        Ok(Some(state))
    }

    async fn refresh(&self, hash: &str) -> Result<Option<String>> {
        let found = self
            .store
            .key_by_hash(hash)
            .await
            .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
        let now = Instant::now();
        let Some(record) = found else {
            // Misses are not cached: random keys must not grow the cache.
            return Ok(None);
        };
        let id = record.id.clone();
        {
            let mut states = lock(&self.states);
            match states.get(&id) {
                // Keep the counters; take the record's latest limits and revocation.
                Some(state) => *lock(&state.record) = record,
                None => {
                    states.insert(
                        id.clone(),
                        Arc::new(KeyState {
                            record: Mutex::new(record),
                            counters: Mutex::new(Counters::default()),
                            shared: self.shared.clone(),
                        }),
                    );
                }
            }
        }
        let mut by_hash = lock(&self.by_hash);
        if by_hash.len() >= MAX_CACHED_KEYS {
            by_hash.clear();
        }
        by_hash.insert(
            hash.to_owned(),
            Cached {
                id: id.clone(),
                at: now,
            },
        );
        Ok(Some(id))
    }

    /// On a key's first use in this process, its spend so far this day, this month and in
    /// total comes from the ledger, so budgets hold across restarts.
    async fn load_spend(&self, state: &Arc<KeyState>) -> Result<()> {
        let (day, month) = day_and_month_start(now_ms());
        let (loaded, seeded) = {
            let counters = lock(&state.counters);
            (counters.loaded, counters.seeded_day == Some(day))
        };
        let seed = state.shared.as_ref().filter(|_| !seeded);
        if (loaded && seed.is_none()) || !state.has_budget() {
            return Ok(());
        }
        let id = state.id();
        let read = |since: i64| {
            let store = Arc::clone(&self.store);
            let id = id.clone();
            async move {
                store
                    .key_spend_since(&id, since)
                    .await
                    .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))
            }
        };
        let (spent_day, spent_month, spent_total) =
            (read(day).await?, read(month).await?, read(0).await?);
        if let Some(shared) = seed {
            let windows = Windows {
                day_start: day,
                month_start: month,
            };
            if let Err(error) = shared
                .seed_spend(&id, windows, [spent_day, spent_month, spent_total])
                .await
            {
                shared::degraded("seed_spend", &error);
            }
        }
        let mut counters = lock(&state.counters);
        counters.seeded_day = Some(day);
        if !counters.loaded {
            counters.loaded = true;
            counters.day_start = day;
            counters.month_start = month;
            counters.spent_day = counters.spent_day.saturating_add(spent_day);
            counters.spent_month = counters.spent_month.saturating_add(spent_month);
            counters.spent_total = counters.spent_total.saturating_add(spent_total);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limits: KeyLimits, models: &[&str]) -> Arc<KeyState> {
        Arc::new(KeyState {
            record: Mutex::new(KeyRecord {
                id: "key_1".to_owned(),
                models: models.iter().map(|m| (*m).to_owned()).collect(),
                limits,
                ..KeyRecord::default()
            }),
            counters: Mutex::new(Counters {
                loaded: true,
                ..Counters::default()
            }),
            shared: None,
        })
    }

    #[test]
    fn utc_day_and_month_starts() {
        // 2024-02-29T13:00:00Z: a leap day.
        let ms = 1_709_211_600_000;
        let (day, month) = day_and_month_start(ms);
        assert_eq!(day, 1_709_164_800_000); // 2024-02-29T00:00Z
        assert_eq!(month, 1_706_745_600_000); // 2024-02-01T00:00Z
        assert_eq!(next_month_start(month), 1_709_251_200_000); // 2024-03-01T00:00Z
        // December rolls over into the next year.
        let (_, december) = day_and_month_start(1_734_000_000_000); // 2024-12-12
        assert_eq!(next_month_start(december), 1_735_689_600_000); // 2025-01-01T00:00Z
    }

    #[test]
    fn secrets_hash_to_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn requests_per_minute_refuse_with_the_wait_until_a_slot_frees() {
        let key = state(
            KeyLimits {
                rpm: Some(2),
                ..KeyLimits::default()
            },
            &[],
        );
        let t0 = Instant::now();
        key.admit_local(t0).unwrap();
        key.admit_local(t0 + Duration::from_secs(20)).unwrap();
        let err = key.admit_local(t0 + Duration::from_secs(30)).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
        // A minute after the first, its slot is free again.
        key.admit_local(t0 + Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn budgets_reserve_then_settle_to_the_real_cost() {
        let key = state(
            KeyLimits {
                budget_total_pusd: Some(1_000),
                ..KeyLimits::default()
            },
            &[],
        );
        let now = Instant::now();
        let first = key.reserve(600, now, 0).unwrap();
        // 600 reserved: a second 600 would exceed 1000 while the first is in flight.
        let err = key.reserve(600, now, 0).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.code.as_deref(), Some("budget_exceeded"));
        assert!(err.message.contains("total budget"), "{}", err.message);
        assert_eq!(err.retry_after, None, "a total budget does not reset");
        // The first settles at 100: 900 left.
        first.settle(100, 10);
        assert_eq!(key.remaining(0), Some(900));
        let second = key.reserve(600, now, 0).unwrap();
        drop(second); // a request that never settled gives its reservation back
        assert_eq!(key.remaining(0), Some(900));
    }

    #[test]
    fn daily_budget_resets_at_utc_midnight() {
        let key = state(
            KeyLimits {
                budget_day_pusd: Some(500),
                ..KeyLimits::default()
            },
            &[],
        );
        let now = Instant::now();
        let noon = 12 * 3_600_000;
        key.reserve(500, now, noon).unwrap().settle(500, 0);
        let err = key.reserve(1, now, noon).unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(12 * 3600)));
        key.reserve(1, now, DAY_MS + 1).unwrap();
    }

    #[test]
    fn tokens_per_minute_count_settled_tokens() {
        let key = state(
            KeyLimits {
                tpm: Some(100),
                ..KeyLimits::default()
            },
            &[],
        );
        let now = Instant::now();
        key.reserve(0, now, 0).unwrap().settle(0, 100);
        let err = key.reserve(0, now, 0).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("rate_limit_tokens"));
        assert_eq!(err.status(), 429);
    }

    #[test]
    fn models_are_restricted_by_glob() {
        let key = state(KeyLimits::default(), &["gpt-4o*"]);
        key.check_model("gpt-4o-mini").unwrap();
        assert_eq!(key.check_model("claude-sonnet").unwrap_err().status(), 403);
        state(KeyLimits::default(), &[])
            .check_model("anything")
            .unwrap();
    }
}
