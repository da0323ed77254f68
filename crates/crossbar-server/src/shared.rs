//! State that several `crossbar serve` replicas behind one load balancer share through Redis
//! (`[redis] url`), so they behave as one gateway: each key's requests-per-minute window,
//! tokens per minute, budget spend and in-flight reservations (changed only by Lua scripts,
//! which Redis runs atomically), and each deployment's health (latency, error rates, breaker
//! and `Retry-After` deadlines), which every replica publishes and reads back on a short tick.
//!
//! Limits use Redis's clock (`TIME`), so replicas with skewed clocks still share one window.
//! When Redis cannot be reached, a replica falls back to its own counters (logged and counted
//! in `crossbar_shared_state_errors_total`) rather than refusing traffic.
//!
//! Keys are `{prefix}:{<key id>}:...`: the braces are a Redis Cluster hash tag, so one key's
//! counters sit in one slot and a script may touch them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crossbar_core::router::{HeadroomReport, HealthReport, Router};
use crossbar_store::{KeyLimits, now_ms};
use rand::Rng;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::keys::calendar::Windows;
use crate::keys::limiter::Window;
use crate::metering::Background;

/// A reservation not settled within this long (its replica died) stops counting.
const RESERVATION_TTL_MS: u64 = 15 * 60 * 1000;
/// A peer whose last report is older than this many sync intervals is taken for gone.
const STALE_INTERVALS: u32 = 6;

/// `ZSET` of the last minute's admitted requests, scored by admission time. Returns -1 when
/// admitted, else the milliseconds until the oldest leaves the window.
const ADMIT_REQUEST: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, 60000 - (now - tonumber(oldest[2])))
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return -1
";

/// Checks Redis's clock against the windows the caller computed, that every budgeted window's
/// spend is known, tokens per minute (a `HASH` of tokens by second) and every budget (spent
/// plus reserved plus this estimate), then reserves the estimate (a `ZSET` member
/// `id:estimate` scored by its expiry). Returns
/// `{0, remaining or -1, committed day, month, total}` (spent plus reserved, this one
/// included), `{1, wait ms}` for tokens per minute, `{2, window (0 day, 1 month, 2 total),
/// committed}` for a budget, `{3, window}` when a budgeted window's spend is not in Redis (a
/// new window, or a Redis that lost its data) and must be seeded from the ledger, or
/// `{4, now ms}` when the windows do not contain Redis's now.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(ARGV[8]) or now >= tonumber(ARGV[9]) or now < tonumber(ARGV[10]) or now >= tonumber(ARGV[11]) then
  return {4, now}
end
for i = 0, 2 do
  if tonumber(ARGV[2 + i]) >= 0 and redis.call('EXISTS', KEYS[3 + i]) == 0 then
    return {3, i}
  end
end
local tpm = tonumber(ARGV[1])
if tpm >= 0 then
  local buckets = redis.call('HGETALL', KEYS[1])
  local used, oldest = 0, nil
  for i = 1, #buckets, 2 do
    local second = tonumber(buckets[i])
    if second <= now_s - 60 then
      redis.call('HDEL', KEYS[1], buckets[i])
    else
      used = used + tonumber(buckets[i + 1])
      if oldest == nil or second < oldest then oldest = second end
    end
  end
  if used >= tpm then
    return {1, math.max(1, (oldest + 60) * 1000 - now)}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local reserved = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  reserved = reserved + tonumber(string.match(member, ':(%d+)$'))
end
local estimate = tonumber(ARGV[5])
local remaining = -1
local committed = {}
for i = 0, 2 do
  committed[i + 1] = tonumber(redis.call('GET', KEYS[3 + i]) or '0') + reserved
  local budget = tonumber(ARGV[2 + i])
  if budget >= 0 then
    if committed[i + 1] + estimate > budget then
      return {2, i, committed[i + 1]}
    end
    local left = math.max(0, budget - committed[i + 1])
    if remaining < 0 or left < remaining then remaining = left end
  end
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[6] .. ':' .. ARGV[5])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
return {0, remaining, committed[1] + estimate, committed[2] + estimate, committed[3] + estimate}
";

/// Drops a reservation and adds the real cost to the day, month and total spend, and the
/// tokens to this second's bucket. A spend Redis does not hold (it lost its data) is left
/// missing: the next reservation seeds it from the ledger, which has this cost too.
const SETTLE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '0' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCRBY', KEYS[2], ARGV[2])
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('INCRBY', KEYS[3], ARGV[2])
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
  end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('INCRBY', KEYS[4], ARGV[2])
  end
end
if ARGV[3] ~= '0' then
  local t = redis.call('TIME')
  redis.call('HINCRBY', KEYS[5], t[1], ARGV[3])
  redis.call('EXPIRE', KEYS[5], 120)
end
return 1
";

/// A budget check's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved under `member`; what was left before this request, with any budget, and what
    /// every replica has committed (day, month, total) with this request.
    Ok {
        member: String,
        remaining: Option<u64>,
        committed: [u64; 3],
    },
    TokensPerMinute {
        wait: Duration,
    },
    Budget {
        window: Window,
        committed: u64,
    },
    /// The window's spend is not in Redis: seed it from the ledger ([`Shared::seed_spend`]).
    Unseeded,
    /// The windows do not contain Redis's clock, which reads `now_ms`.
    Clock {
        now_ms: i64,
    },
}

/// Budgets in the script's terms: -1 for none.
fn budget_arg(budget: Option<u64>) -> i64 {
    budget.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX))
}

/// One replica's handle on the shared state.
pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    /// Random per process: whose health report is whose.
    replica: String,
    admit_request: redis::Script,
    reserve: redis::Script,
    settle: redis::Script,
    /// Redis's clock minus this host's, in ms: budget windows follow Redis's clock.
    clock_offset_ms: AtomicI64,
    /// Replicas seen alive at the last health sync (at least this one).
    replicas: AtomicU64,
    /// Until when (ms since `started`) calls fail at once: Redis just failed.
    down_until_ms: AtomicU64,
    started: std::time::Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's address may carry a password: never print it.
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// One replica's report of one deployment, stamped so stale ones can be told apart.
#[derive(Debug, Serialize, Deserialize)]
struct Stamped {
    at_ms: i64,
    #[serde(flatten)]
    report: HealthReport,
}

/// A Redis call that takes longer counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long calls fail at once after one failed.
const BACKOFF: Duration = Duration::from_secs(1);
/// What a call answers while backing off.
const BACKING_OFF: &str = "shared state unavailable (backing off after a failure)";

/// Logs and counts a Redis failure; the caller falls back to local state. Calls refused while
/// backing off are counted but not logged again: the failure that started it was.
pub fn degraded(what: &str, error: &redis::RedisError) {
    metrics::counter!("crossbar_shared_state_errors_total", "op" => what.to_owned()).increment(1);
    if !error.to_string().contains(BACKING_OFF) {
        tracing::warn!(op = what, error = %error, "shared state unavailable: using this replica's own");
    }
}

impl Shared {
    /// Connects (the connection reconnects by itself later). Redis out of reach at start does
    /// not stop the replica: it starts degraded, as if Redis had gone away a moment later (its
    /// own share of each limit, `/readyz` saying so), and the connection is made on a later call.
    /// A URL that cannot be parsed does stop it. The error never shows the URL, which may hold a
    /// password.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {:?}", e.kind()))?;
        let first = tokio::time::timeout(Duration::from_secs(10), client.get_connection_manager())
            .await
            .map_err(|_| "no answer within 10 s".to_owned())
            .and_then(|conn| conn.map_err(|e| e.to_string()));
        let (conn, reachable) = match first {
            Ok(conn) => (conn, true),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "redis unreachable at start: serving on this replica's own share until it answers"
                );
                let lazy = ConnectionManager::new_lazy_with_config(
                    client,
                    redis::aio::ConnectionManagerConfig::new(),
                )
                .map_err(|e| format!("redis: {e}"))?;
                (lazy, false)
            }
        };
        let replica = hex::encode(rand::rng().random::<[u8; 6]>());
        let shared = Self {
            conn,
            prefix: prefix.to_owned(),
            replica,
            admit_request: redis::Script::new(ADMIT_REQUEST),
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
            clock_offset_ms: AtomicI64::new(0),
            replicas: AtomicU64::new(1),
            down_until_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        };
        if !reachable {
            // Back off at once, so the first requests do not each wait on a dead Redis.
            let backoff = u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
            shared.down_until_ms.store(backoff, Ordering::Relaxed);
            return Ok(shared);
        }
        let time: (i64, i64) = redis::cmd("TIME")
            .query_async(&mut shared.conn.clone())
            .await
            .map_err(|e| format!("redis: {e}"))?;
        shared.learn_clock(time.0 * 1000 + time.1 / 1000);
        Ok(shared)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn since_start_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One Redis call, bounded by [`CALL_TIMEOUT`]. After a failure, calls fail at once for
    /// [`BACKOFF`] (then one tries again): in an outage a request pays nothing for the shared
    /// state it cannot have, rather than a timeout per call.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        if self.since_start_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(redis::RedisError::from((redis::ErrorKind::Io, BACKING_OFF)));
        }
        let answer = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(answer) => answer,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis did not answer in time",
            ))),
        };
        if answer.is_err() {
            let backoff = u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
            self.down_until_ms.store(
                self.since_start_ms().saturating_add(backoff),
                Ordering::Relaxed,
            );
        }
        answer
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.call(async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }

    /// Now by Redis's clock, as last learnt, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    fn learn_clock(&self, redis_now_ms: i64) {
        self.clock_offset_ms
            .store(redis_now_ms.saturating_sub(now_ms()), Ordering::Relaxed);
    }

    /// Replicas seen alive at the last health sync, this one included.
    pub fn replicas(&self) -> u64 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    fn key(&self, id: &str, what: &str) -> String {
        format!("{}:{{{id}}}:{what}", self.prefix)
    }

    fn spend_keys(&self, id: &str, windows: Windows) -> [String; 3] {
        [
            self.key(id, &format!("spent:day:{}", windows.day_start)),
            self.key(id, &format!("spent:month:{}", windows.month_start)),
            self.key(id, "spent:total"),
        ]
    }

    /// Counts a request in the key's minute; `Some(wait)` when the minute is full.
    pub async fn admit_request(&self, id: &str, rpm: u64) -> redis::RedisResult<Option<Duration>> {
        let member = hex::encode(rand::rng().random::<[u8; 8]>());
        let wait: i64 = self
            .call(async {
                self.admit_request
                    .key(self.key(id, "requests"))
                    .arg(rpm)
                    .arg(member)
                    .invoke_async(&mut self.conn.clone())
                    .await
            })
            .await?;
        Ok((wait >= 0).then(|| Duration::from_millis(wait.unsigned_abs())))
    }

    /// Checks tokens per minute and budgets, and reserves `estimate` picodollars.
    pub async fn reserve(
        &self,
        id: &str,
        limits: &KeyLimits,
        estimate: u64,
        windows: Windows,
    ) -> redis::RedisResult<Reserved> {
        let member = hex::encode(rand::rng().random::<[u8; 8]>());
        let [day, month, total] = self.spend_keys(id, windows);
        let answer: Vec<i64> = self
            .call(async {
                self.reserve
                    .key(self.key(id, "tokens"))
                    .key(self.key(id, "reserved"))
                    .key(day)
                    .key(month)
                    .key(total)
                    .arg(
                        limits
                            .tpm
                            .map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX)),
                    )
                    .arg(budget_arg(limits.budget_day_pusd))
                    .arg(budget_arg(limits.budget_month_pusd))
                    .arg(budget_arg(limits.budget_total_pusd))
                    .arg(estimate)
                    .arg(&member)
                    .arg(RESERVATION_TTL_MS)
                    .arg(windows.day_start)
                    .arg(windows.day_end())
                    .arg(windows.month_start)
                    .arg(windows.month_end())
                    .invoke_async(&mut self.conn.clone())
                    .await
            })
            .await?;
        let number = |i: usize| answer.get(i).copied().unwrap_or(0);
        Ok(match number(0) {
            0 => Reserved::Ok {
                member: format!("{member}:{estimate}"),
                remaining: u64::try_from(number(1)).ok(),
                committed: [2, 3, 4].map(|i| number(i).unsigned_abs()),
            },
            3 => Reserved::Unseeded,
            4 => {
                let now_ms = number(1);
                self.learn_clock(now_ms);
                Reserved::Clock { now_ms }
            }
            1 => Reserved::TokensPerMinute {
                wait: Duration::from_millis(number(1).unsigned_abs()),
            },
            _ => Reserved::Budget {
                window: match number(1) {
                    0 => Window::Day,
                    1 => Window::Month,
                    _ => Window::Total,
                },
                committed: number(2).unsigned_abs(),
            },
        })
    }

    /// Replaces a reservation with the real cost, in the windows it was admitted in.
    pub async fn settle(
        &self,
        id: &str,
        member: &str,
        windows: Windows,
        cost: u64,
        tokens: u64,
    ) -> redis::RedisResult<()> {
        let [day, month, total] = self.spend_keys(id, windows);
        // Spend keys outlive their window by a day, so late settlements still land.
        let day_ttl = 2 * 86_400_000_u64;
        let month_ttl = 33 * 86_400_000_u64;
        let _: i64 = self
            .call(async {
                self.settle
                    .key(self.key(id, "reserved"))
                    .key(day)
                    .key(month)
                    .key(total)
                    .key(self.key(id, "tokens"))
                    .arg(member)
                    .arg(cost)
                    .arg(tokens)
                    .arg(day_ttl)
                    .arg(month_ttl)
                    .invoke_async(&mut self.conn.clone())
                    .await
            })
            .await?;
        Ok(())
    }

    /// Seeds the key's spend from the ledger where Redis has none yet (a new Redis, or the
    /// first request of a window), never overwriting what replicas already counted.
    pub async fn seed_spend(
        &self,
        id: &str,
        windows: Windows,
        spent: [u64; 3],
    ) -> redis::RedisResult<()> {
        let keys = self.spend_keys(id, windows);
        let mut pipe = redis::pipe();
        for (key, (value, ttl_days)) in keys.iter().zip(spent.into_iter().zip([2_u64, 33, 0])) {
            let cmd = pipe.cmd("SET").arg(key).arg(value).arg("NX");
            if ttl_days > 0 {
                cmd.arg("PX").arg(ttl_days * 86_400_000);
            }
            cmd.ignore();
        }
        self.call(pipe.query_async::<()>(&mut self.conn.clone()))
            .await
    }

    /// Publishes this replica's view of every deployment and takes in the other replicas'.
    pub async fn sync_health(&self, router: &Router, interval: Duration) -> redis::RedisResult<()> {
        let now = tokio::time::Instant::now();
        let now_ms = now_ms();
        let deployments: Vec<_> = router.deployments().cloned().collect();
        let mut pipe = redis::pipe();
        let ttl = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(STALE_INTERVALS))
            .max(1000);
        for deployment in &deployments {
            let key = format!("{}:health:{}", self.prefix, deployment.id());
            let stamped = Stamped {
                at_ms: now_ms,
                report: deployment.health_report(now, now_ms),
            };
            let json = serde_json::to_string(&stamped).unwrap_or_default();
            pipe.hset(&key, &self.replica, json)
                .ignore()
                .pexpire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                .ignore()
                .hgetall(&key);
        }
        let answers: Vec<Vec<(String, String)>> =
            self.call(pipe.query_async(&mut self.conn.clone())).await?;
        let stale_before = now_ms.saturating_sub(i64::try_from(ttl).unwrap_or(i64::MAX));
        for (deployment, entries) in deployments.iter().zip(answers) {
            let peers: Vec<HealthReport> = entries
                .into_iter()
                .filter(|(replica, _)| *replica != self.replica)
                .filter_map(|(_, json)| serde_json::from_str::<Stamped>(&json).ok())
                .filter(|s| s.at_ms >= stale_before)
                .map(|s| s.report)
                .collect();
            deployment.apply_peers(&peers, now, now_ms);
        }
        if let Err(error) = self.sync_headroom(&deployments).await {
            degraded("headroom_sync", &error);
        }
        self.count_replicas(ttl).await
    }

    /// Shares rate-limit headroom: each deployment's latest reading (by when it was observed,
    /// whichever replica made it) lives under `{prefix}:headroom:{deployment}` until the quota
    /// resets. Newer readings there are taken in; where this replica's is newer, it replaces
    /// the stored one. Without Redis each replica ranks on its own readings.
    async fn sync_headroom(
        &self,
        deployments: &[Arc<crossbar_core::router::Deployment>],
    ) -> redis::RedisResult<()> {
        let keys: Vec<String> = deployments
            .iter()
            .map(|d| format!("{}:headroom:{}", self.prefix, d.id()))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut get = redis::cmd("MGET");
        get.arg(&keys);
        let stored: Vec<Option<String>> =
            self.call(get.query_async(&mut self.conn.clone())).await?;
        let now = tokio::time::Instant::now();
        let now_ms = now_ms();
        let mut pipe = redis::pipe();
        let mut writes = 0;
        for ((deployment, key), stored) in deployments.iter().zip(&keys).zip(stored) {
            let theirs = stored.and_then(|json| serde_json::from_str::<HeadroomReport>(&json).ok());
            if let Some(theirs) = theirs {
                deployment.apply_headroom(theirs, now, now_ms);
            }
            let Some(ours) = deployment.headroom_report(now, now_ms) else {
                continue;
            };
            if theirs.is_some_and(|t| t.observed_at_ms >= ours.observed_at_ms) {
                continue;
            }
            let ttl = ours.reset_at_ms.saturating_sub(now_ms);
            if ttl <= 0 {
                continue;
            }
            let json = serde_json::to_string(&ours).unwrap_or_default();
            pipe.cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(ttl)
                .ignore();
            writes += 1;
        }
        if writes > 0 {
            self.call(pipe.query_async::<()>(&mut self.conn.clone()))
                .await?;
        }
        Ok(())
    }

    /// Marks this replica alive and counts the live ones, by Redis's clock: while Redis is out
    /// of reach, each replica's budget share is one over this count.
    async fn count_replicas(&self, ttl: u64) -> redis::RedisResult<()> {
        let key = format!("{}:replicas", self.prefix);
        let now = self.now_ms();
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.zadd(&key, &self.replica, now)
            .ignore()
            .zrembyscore(&key, "-inf", now.saturating_sub(ttl))
            .ignore()
            .pexpire(&key, ttl)
            .ignore()
            .zcard(&key);
        let (count,): (u64,) = self.call(pipe.query_async(&mut self.conn.clone())).await?;
        self.replicas.store(count.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Runs [`Shared::sync_health`] every `interval` while the returned task lives.
    pub fn spawn_health_sync(
        self: &Arc<Self>,
        router: Arc<Router>,
        interval: Duration,
    ) -> Background {
        let shared = Arc::clone(self);
        Background(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = shared.sync_health(&router, interval).await {
                    degraded("health_sync", &error);
                }
            }
        }))
    }
}

/// Values the router shares in Redis (`{prefix}:{key}`): signed reasoning, so a conversation's
/// next turn finds its thinking blocks on any replica, and prompt-cache affinity. A failure is
/// logged and counted like every shared-state error; the replica then has its own memory only.
impl crossbar_core::shared_kv::SharedKv for Shared {
    fn load_many<'a>(
        &'a self,
        keys: &'a [String],
    ) -> futures::future::BoxFuture<'a, Vec<Option<String>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut command = redis::cmd("MGET");
            for key in keys {
                command.arg(format!("{}:{key}", self.prefix));
            }
            let get = command.query_async::<Vec<Option<String>>>(&mut conn);
            match self.call(get).await {
                Ok(values) if values.len() == keys.len() => values,
                Ok(_) => vec![None; keys.len()],
                Err(e) => {
                    degraded("kv_load", &e);
                    vec![None; keys.len()]
                }
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        value: String,
        ttl: Duration,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = format!("{}:{key}", self.prefix);
            let mut command = redis::cmd("SET");
            command
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            let set = command.query_async::<()>(&mut conn);
            if let Err(e) = self.call(set).await {
                degraded("kv_save", &e);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `degraded` recognises a refusal made while backing off by its text: it must survive
    /// the error's formatting.
    #[test]
    fn a_backing_off_refusal_is_told_apart_by_its_text() {
        let refused = redis::RedisError::from((redis::ErrorKind::Io, BACKING_OFF));
        assert!(refused.to_string().contains(BACKING_OFF), "{refused}");
        let real = redis::RedisError::from((redis::ErrorKind::Io, "Connection refused"));
        assert!(!real.to_string().contains(BACKING_OFF));
    }
}
