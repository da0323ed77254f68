//! Virtual keys: secrets handed out once and stored only as SHA-256 hashes, each with model and
//! route restrictions, rate limits (requests and tokens per minute) and USD budgets (per UTC
//! day, per UTC month, in total). Budgets reserve a request's estimated cost before the call
//! and settle to its real cost when its record is made, so concurrent requests cannot together
//! overspend by more than one request's estimate error.
//!
//! Limits are counted through one [`limiter::Limiter`]: in this process ([`local`]), or with
//! `[redis]` in Redis ([`redis`]) so that every replica counts against the same limits, with a
//! local stand-in for when Redis is out of reach.
//!
//! A key may belong to a team ([`teams`]): the team's limits, budgets and allow-lists apply
//! to all its keys together, on top of each key's own. A request is admitted only when every
//! level has room: the key's reservation is made first, then the team's; a refusal at the
//! team gives the key's back at once. Each level's check-and-reserve is atomic (one Lua script
//! in Redis, one lock here), so no level commits more than its budget; the bound on
//! overspending is per level what it is for a key (the estimate error of requests in flight).

pub mod calendar;
pub mod limiter;
mod local;
mod redis;
pub mod teams;
pub mod tokens;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbar_core::pricing::usd_to_pico;
use crossbar_core::{Error, Result};
use crossbar_store::{KeyLimits, KeyRecord, Store, TeamRecord, now_ms};

use crate::shared::Shared;
use limiter::{Level, Limiter, Ticket};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub use calendar::day_and_month_start;

/// How long a key lookup (and the "are there any keys" answer) is trusted before the store is
/// asked again: a key revoked from another process stops working within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Cached lookups beyond this many are dropped wholesale (they are only a cache).
const MAX_CACHED_KEYS: usize = 100_000;

/// What `keys create` (CLI or admin API) asks for.
#[derive(Clone, Debug, Default, serde::Deserialize, schemars::JsonSchema)]
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
    /// The team (id or name) the key belongs to; its allow-lists must fit the team's.
    pub team: Option<String>,
}

/// The SHA-256 of a secret, in hex: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A poisoned lock still guards plain counters: take it rather than fail a request.
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
    let team = match new.team.as_deref() {
        Some(team) => Some(teams::find(store, team).await?),
        None => None,
    };
    if let Some(team) = &team {
        teams::check_narrows(team, &new.models, &new.routes)?;
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
        team_id: team.map(|t| t.id),
    };
    store
        .create_key(&record)
        .await
        .map_err(|e| Error::internal(format!("Could not save the key: {e}")))?;
    Ok((secret, record))
}

/// A key as the gateway knows it: its record, where its limits are counted, and its team.
#[derive(Debug)]
pub struct KeyState {
    record: Mutex<KeyRecord>,
    limiter: Arc<dyn Limiter>,
    team: Mutex<Option<Arc<TeamState>>>,
}

/// A team as the gateway knows it: one per team, shared by all its keys' states.
#[derive(Debug)]
pub struct TeamState {
    record: Mutex<TeamRecord>,
    limiter: Arc<dyn Limiter>,
}

impl TeamState {
    pub fn record(&self) -> TeamRecord {
        lock(&self.record).clone()
    }

    /// The team's refusal, said as the team's rather than the key's.
    fn refusal(&self, mut error: Error) -> Error {
        let name = lock(&self.record).name.clone();
        error.message = error
            .message
            .replacen("this key", &format!("this key's team `{name}`"), 1);
        error
    }
}

/// What an admitted request holds against its key's (and team's) budgets until it settles.
#[derive(Debug, Default)]
pub struct Reservation {
    held: Vec<(Arc<dyn Limiter>, Ticket)>,
}

impl Reservation {
    /// Replaces the estimates with the real cost and counts the request's tokens, at every
    /// level.
    pub fn settle(mut self, cost_pusd: u64, tokens: u64) {
        for (limiter, ticket) in self.held.drain(..) {
            limiter.settle(ticket, cost_pusd, tokens);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A request that never settled (or that a later level refused) gives its
        // reservations back.
        for (limiter, ticket) in self.held.drain(..) {
            limiter.settle(ticket, 0, 0);
        }
    }
}

/// `list` where `team` is empty, `team` where `list` is; else the entries of `list` that
/// `team` allows (a name matching nothing when none does, so that an empty result never
/// reads as "any").
fn narrowed(list: &[String], team: &[String]) -> Vec<String> {
    if team.is_empty() {
        return list.to_vec();
    }
    if list.is_empty() {
        return team.to_vec();
    }
    let kept: Vec<String> = list
        .iter()
        .filter(|entry| {
            team.iter()
                .any(|allowed| crossbar_core::router::glob(allowed, entry))
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        vec!["\u{0}none".to_owned()]
    } else {
        kept
    }
}

impl KeyState {
    pub fn id(&self) -> String {
        lock(&self.record).id.clone()
    }

    /// The key's record as admission sees it: its model and route allow-lists narrowed by
    /// its team's.
    pub fn record(&self) -> KeyRecord {
        let mut record = lock(&self.record).clone();
        if let Some(team) = self.team() {
            let team = lock(&team.record);
            record.models = narrowed(&record.models, &team.models);
            record.routes = narrowed(&record.routes, &team.routes);
        }
        record
    }

    /// The key's team, when it has one.
    pub fn team(&self) -> Option<Arc<TeamState>> {
        lock(&self.team).clone()
    }

    /// The key's name and its team's, for `[keys.NAME]` and `[teams.NAME]`.
    pub fn names(&self) -> (Option<String>, Option<String>) {
        let team = self.team().map(|team| lock(&team.record).name.clone());
        (lock(&self.record).name.clone(), team)
    }

    /// The key's team id, for usage records.
    pub fn team_id(&self) -> Option<String> {
        lock(&self.record).team_id.clone()
    }

    /// The model (a logical model or route name) is one the key, and its team, may call.
    pub fn check_model(&self, model: &str) -> Result<()> {
        let allows = |list: &[String]| {
            list.is_empty() || list.iter().any(|m| crossbar_core::router::glob(m, model))
        };
        if !allows(&lock(&self.record).models) {
            return Err(Error::permission_denied(
                format!("Your key may not use model `{model}`."),
                "model_not_allowed",
            )
            .with_param("model"));
        }
        if let Some(team) = self.team() {
            let team = lock(&team.record);
            if !allows(&team.models) {
                return Err(Error::permission_denied(
                    format!(
                        "Your key's team `{}` may not use model `{model}`.",
                        team.name
                    ),
                    "model_not_allowed",
                )
                .with_param("model"));
            }
        }
        Ok(())
    }

    /// Counts a request against requests-per-minute, the key's then its team's, refusing it
    /// when either minute is full.
    pub async fn admit_request(&self, now: Instant) -> Result<()> {
        let rpm = lock(&self.record).limits.rpm;
        if let Some(rpm) = rpm {
            self.limiter.admit_request(rpm, now).await?;
        }
        if let Some(team) = self.team() {
            let rpm = lock(&team.record).limits.rpm;
            if let Some(rpm) = rpm {
                team.limiter
                    .admit_request(rpm, now)
                    .await
                    .map_err(|e| team.refusal(e))?;
            }
        }
        Ok(())
    }

    /// Refuses when the last minute's tokens reached tokens-per-minute, then reserves
    /// `estimate` picodollars against every budget. Also says what the budgets had left
    /// before this request (the most it may cost), when the key has any.
    pub async fn admit_cost(
        &self,
        estimate: u64,
        now: Instant,
        now_ms: i64,
    ) -> Result<(Reservation, Option<u64>)> {
        let limits: KeyLimits = lock(&self.record).limits;
        let (ticket, mut remaining) = self.limiter.reserve(limits, estimate, now, now_ms).await?;
        let mut reservation = Reservation {
            held: vec![(Arc::clone(&self.limiter), ticket)],
        };
        if let Some(team) = self.team() {
            let limits = lock(&team.record).limits;
            // A team without a budget or a token limit has nothing to count.
            if limits.tpm.is_some() || limiter::has_budget(&limits) {
                // On a refusal here, `reservation` drops: the key's is given back.
                let (ticket, left) = team
                    .limiter
                    .reserve(limits, estimate, now, now_ms)
                    .await
                    .map_err(|e| team.refusal(e))?;
                reservation.held.push((Arc::clone(&team.limiter), ticket));
                remaining = min_known(remaining, left);
            }
        }
        Ok((reservation, remaining))
    }

    /// What the key may still spend on one request before a budget (its own or its team's)
    /// is hit, in picodollars.
    pub fn remaining(&self, now_ms: i64) -> Option<u64> {
        let limits = lock(&self.record).limits;
        let own = self.limiter.remaining(limits, now_ms);
        match self.team() {
            Some(team) => {
                let limits = lock(&team.record).limits;
                min_known(own, team.limiter.remaining(limits, now_ms))
            }
            None => own,
        }
    }
}

/// The smaller of two optional limits (`None` is no limit).
fn min_known(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long a request waits for the store to confirm an answer it already has (a cached key,
/// "there are keys") before going on with it: a store that went away makes its client retry
/// connections for seconds, which no request should wait for.
const CONFIRM_TIMEOUT: Duration = Duration::from_millis(500);

/// `future`, bounded by [`CONFIRM_TIMEOUT`]; errors as text.
async fn bounded<T, E: std::fmt::Display>(
    future: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(CONFIRM_TIMEOUT, future).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            CONFIRM_TIMEOUT.as_millis()
        )),
    }
}

/// Logs and counts a key-store failure that a cached answer covers.
fn store_unavailable(op: &'static str, error: &dyn std::fmt::Display) {
    metrics::counter!("crossbar_key_store_errors_total", "op" => op).increment(1);
    tracing::warn!(op, error = %error, "key store unavailable: using the last known answer");
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
    /// By team id: one state per team, shared by its keys.
    teams: Mutex<HashMap<String, Arc<TeamState>>>,
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
            teams: Mutex::new(HashMap::new()),
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

    /// A live key was just found: the gateway is closed, without asking the store again
    /// (the key's lookup stays cached for the request that found it).
    pub(crate) fn saw_key(&self) {
        self.any_keys.store(true, Ordering::Relaxed);
        *lock(&self.any_checked) = Some(Instant::now());
    }

    /// Whether any unrevoked key exists, so that anonymous calls must be refused.
    pub async fn any_keys(&self) -> Result<bool> {
        let fresh = lock(&self.any_checked).is_some_and(|at| at.elapsed() < CACHE_TTL);
        if fresh {
            return Ok(self.any_keys.load(Ordering::Relaxed));
        }
        let known = lock(&self.any_checked).is_some();
        let asked = if known {
            bounded(self.store.has_keys()).await
        } else {
            self.store.has_keys().await.map_err(|e| e.to_string())
        };
        let live = match asked {
            Ok(live) => live,
            // A store that went away does not open the gateway nor close it: the last answer
            // holds until the store answers again.
            Err(error) if known => {
                store_unavailable("has_keys", &error);
                // Asked again after another TTL, not on every request meanwhile.
                *lock(&self.any_checked) = Some(Instant::now());
                return Ok(self.any_keys.load(Ordering::Relaxed));
            }
            Err(e) => {
                return Err(Error::internal(format!(
                    "The key store is unavailable: {e}"
                )));
            }
        };
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
            // A key this process knows keeps working while the store is unreachable: a
            // PostgreSQL outage must not turn every caller away. (A revocation made meanwhile
            // takes effect when the store answers again.)
            Some(Cached { id, .. }) => match bounded(self.refresh(&hash)).await {
                Ok(found) => found,
                Err(error) => {
                    store_unavailable("key_by_hash", &error);
                    // Asked again after another TTL, not on every request meanwhile.
                    let at = Instant::now();
                    lock(&self.by_hash).insert(hash.clone(), Cached { id: id.clone(), at });
                    Some(id)
                }
            },
            None => self.refresh(&hash).await?,
        };
        let Some(id) = id else { return Ok(None) };
        let Some(state) = lock(&self.states).get(&id).cloned() else {
            return Ok(None);
        };
        if lock(&state.record).revoked_ms.is_some() {
            return Ok(None);
        }
        Ok(Some(state))
    }

    /// Where a key's or a team's limits are counted: Redis with `[redis]`, else here.
    fn limiter(&self, id: &str, level: Level) -> Arc<dyn Limiter> {
        match &self.shared {
            Some(shared) => Arc::new(redis::SharedLimiter::new(
                id.to_owned(),
                level,
                Arc::clone(shared),
                Arc::clone(&self.store),
            )),
            None => Arc::new(local::Local::new(
                id.to_owned(),
                level,
                Some(Arc::clone(&self.store)),
            )),
        }
    }

    /// The team's state, its record read again from the store (a key's lookup refreshes
    /// its team's limits with it). `None` for a team that no longer exists.
    async fn team_state(&self, team_id: &str) -> Result<Option<Arc<TeamState>>> {
        let Some(org) = self.store.org() else {
            return Ok(None);
        };
        let found = org
            .team(team_id)
            .await
            .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
        let Some(record) = found.filter(|t| t.id == team_id) else {
            tracing::warn!(team = team_id, "a key's team no longer exists");
            return Ok(None);
        };
        let mut teams = lock(&self.teams);
        if let Some(state) = teams.get(team_id) {
            *lock(&state.record) = record;
            return Ok(Some(Arc::clone(state)));
        }
        let state = Arc::new(TeamState {
            limiter: self.limiter(team_id, Level::Team),
            record: Mutex::new(record),
        });
        teams.insert(team_id.to_owned(), Arc::clone(&state));
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
        let team = match record.team_id.as_deref() {
            Some(team_id) => self.team_state(team_id).await?,
            None => None,
        };
        {
            let mut states = lock(&self.states);
            match states.get(&id) {
                // Keep the counters; take the record's latest limits and revocation.
                Some(state) => {
                    *lock(&state.record) = record;
                    *lock(&state.team) = team;
                }
                None => {
                    states.insert(
                        id.clone(),
                        Arc::new(KeyState {
                            record: Mutex::new(record),
                            limiter: self.limiter(&id, Level::Key),
                            team: Mutex::new(team),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(models: &[&str]) -> KeyState {
        KeyState {
            record: Mutex::new(KeyRecord {
                id: "key_1".to_owned(),
                models: models.iter().map(|m| (*m).to_owned()).collect(),
                ..KeyRecord::default()
            }),
            limiter: Arc::new(local::Local::new("key_1".to_owned(), Level::Key, None)),
            team: Mutex::new(None),
        }
    }

    #[test]
    fn secrets_hash_to_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(future)
    }

    /// A key (total budget 1,000 pUSD) in a team (total budget 100 pUSD, models `gpt-4o*`).
    fn teamed(key_models: &[&str]) -> KeyState {
        let team = TeamState {
            record: Mutex::new(TeamRecord {
                id: "team_1".to_owned(),
                name: "research".to_owned(),
                models: vec!["gpt-4o*".to_owned()],
                limits: KeyLimits {
                    budget_total_pusd: Some(100),
                    ..KeyLimits::default()
                },
                ..TeamRecord::default()
            }),
            limiter: Arc::new(local::Local::new("team_1".to_owned(), Level::Team, None)),
        };
        let key = state(key_models);
        lock(&key.record).limits.budget_total_pusd = Some(1_000);
        lock(&key.record).team_id = Some("team_1".to_owned());
        *lock(&key.team) = Some(Arc::new(team));
        key
    }

    #[test]
    fn a_team_refusal_gives_the_keys_reservation_back() {
        let key = teamed(&[]);
        let now = Instant::now();
        let (first, remaining) = run(key.admit_cost(80, now, 0)).unwrap();
        assert_eq!(remaining, Some(100), "the team's 100 is the tighter");
        let err = run(key.admit_cost(30, now, 0)).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("budget_exceeded"));
        assert!(
            err.message.starts_with(
                "Budget exceeded: this key's team `research`'s total budget is $0.0000000001;"
            ),
            "{}",
            err.message
        );
        let limits = lock(&key.record).limits;
        // The key holds the first request's 80 only: the refused 30 went back.
        assert_eq!(key.limiter.remaining(limits, 0), Some(920));
        assert_eq!(key.remaining(0), Some(20));
        first.settle(50, 0);
        assert_eq!(key.limiter.remaining(limits, 0), Some(950));
        assert_eq!(key.remaining(0), Some(50));
        let (second, _) = run(key.admit_cost(50, now, 0)).unwrap();
        drop(second);
        assert_eq!(
            key.remaining(0),
            Some(50),
            "a dropped reservation gives both back"
        );
    }

    #[test]
    fn a_keys_lists_are_narrowed_by_its_teams() {
        let key = teamed(&[]);
        assert_eq!(
            key.record().models,
            ["gpt-4o*"],
            "none of its own: the team's"
        );
        key.check_model("gpt-4o-mini").unwrap();
        let err = key.check_model("claude-sonnet").unwrap_err();
        assert_eq!(
            err.message,
            "Your key's team `research` may not use model `claude-sonnet`."
        );
        let key = teamed(&["gpt-4o-mini", "claude-*"]);
        assert_eq!(key.record().models, ["gpt-4o-mini"]);
        let key = teamed(&["claude-*"]);
        assert_eq!(
            key.record().models,
            ["\u{0}none"],
            "nothing in common is nothing, never everything"
        );
    }

    #[test]
    fn models_are_restricted_by_glob() {
        let key = state(&["gpt-4o*"]);
        key.check_model("gpt-4o-mini").unwrap();
        assert_eq!(key.check_model("claude-sonnet").unwrap_err().status(), 403);
        state(&[]).check_model("anything").unwrap();
    }
}
