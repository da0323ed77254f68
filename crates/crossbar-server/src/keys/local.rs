//! A key's limits counted in this process: the only counters without `[redis]`, and the
//! fallback a shared limiter keeps in step while Redis answers, so that an outage starts from
//! what this replica knows was committed rather than from what it loaded at start.
//!
//! While it stands in for Redis, several replicas count on their own at once; each then takes
//! only its share (`1 / replicas`) of what the budgets had left at the last shared answer, and
//! of the requests and tokens per minute, so that together they stay within the limits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbar_core::{Error, Result};
use crossbar_store::{KeyLimits, Store};
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::calendar::Windows;
use super::limiter::{
    Level, Limiter, Ticket, Window, budget_error, has_budget, rpm_error, tpm_error,
};
use super::lock;

const MINUTE: Duration = Duration::from_secs(60);

/// One key's live counters.
#[derive(Debug)]
struct Counters {
    /// When each request of the last minute was admitted.
    requests: VecDeque<Instant>,
    /// Tokens settled in the last minute, by when.
    tokens: VecDeque<(Instant, u64)>,
    /// The windows `base` and `own` count in.
    windows: Windows,
    /// What was committed (day, month, total) before `own` started counting: the ledger at
    /// the key's first use here, or Redis's count at its last answer.
    base: [u64; 3],
    /// Settled here since `base`.
    own: [u64; 3],
    /// Estimated cost of requests admitted here and not yet settled.
    reserved: u64,
    /// How many replicas split what is left: 1 alone, the live replicas at the last shared
    /// answer when standing in for Redis.
    share: u64,
    loaded: bool,
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

    /// Moves to the windows containing `now_ms`, forgetting the spend of windows that ended.
    fn roll(&mut self, now_ms: i64) {
        let now = Windows::at(now_ms);
        if now.day_start != self.windows.day_start {
            self.base[Window::Day.index()] = 0;
            self.own[Window::Day.index()] = 0;
        }
        if now.month_start != self.windows.month_start {
            self.base[Window::Month.index()] = 0;
            self.own[Window::Month.index()] = 0;
        }
        self.windows = now;
    }

    /// Adds a settled cost to the windows it was admitted in, where they are still current.
    fn spend(&mut self, windows: Windows, cost: u64) {
        if windows.day_start == self.windows.day_start {
            self.own[0] = self.own[0].saturating_add(cost);
        }
        if windows.month_start == self.windows.month_start {
            self.own[1] = self.own[1].saturating_add(cost);
        }
        self.own[2] = self.own[2].saturating_add(cost);
    }

    /// This replica's allowance in `window` (its share of what `base` left), and what it
    /// has used of it.
    fn allowance(&self, window: Window, budget: u64) -> (u64, u64) {
        let i = window.index();
        let allowed = budget.saturating_sub(self.base[i]) / self.share.max(1);
        (allowed, self.own[i].saturating_add(self.reserved))
    }

    fn committed(&self, window: Window) -> u64 {
        let i = window.index();
        self.base[i]
            .saturating_add(self.own[i])
            .saturating_add(self.reserved)
    }

    fn remaining(&self, limits: &KeyLimits) -> Option<u64> {
        Window::ALL
            .iter()
            .filter_map(|w| {
                let (allowed, used) = self.allowance(*w, w.budget(limits)?);
                Some(allowed.saturating_sub(used))
            })
            .min()
    }

    /// A per-minute limit divided among the replicas counting on their own (at least 1).
    fn per_minute(&self, limit: u64) -> u64 {
        (limit / self.share.max(1)).max(1)
    }
}

/// A key's counters in this process.
pub(crate) struct Local {
    id: String,
    level: Level,
    /// Where the key's spend so far is read on first use; `None` in unit tests.
    ledger: Option<Arc<dyn Store>>,
    counters: Mutex<Counters>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("id", &self.id)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Local {
    pub(crate) fn new(id: String, level: Level, ledger: Option<Arc<dyn Store>>) -> Self {
        let loaded = ledger.is_none();
        Self {
            id,
            level,
            ledger,
            counters: Mutex::new(Counters {
                requests: VecDeque::new(),
                tokens: VecDeque::new(),
                windows: Windows {
                    day_start: 0,
                    month_start: 0,
                },
                base: [0; 3],
                own: [0; 3],
                reserved: 0,
                share: 1,
                loaded,
            }),
        }
    }

    /// On a key's first use with a budget, its spend so far this day, this month and in
    /// total comes from the ledger, so budgets hold across restarts.
    async fn load(&self, limits: &KeyLimits, now_ms: i64) -> Result<()> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        if lock(&self.counters).loaded || !has_budget(limits) {
            return Ok(());
        }
        let windows = Windows::at(now_ms);
        let spent = read_spend(ledger.as_ref(), self.level, &self.id, windows).await?;
        let mut counters = lock(&self.counters);
        if !counters.loaded {
            counters.loaded = true;
            counters.roll(now_ms);
            for (base, spent) in counters.base.iter_mut().zip(spent) {
                *base = base.saturating_add(spent);
            }
        }
        Ok(())
    }

    /// Counts a request without checking it: one that Redis admitted.
    pub(crate) fn note_request(&self, now: Instant) {
        let mut counters = lock(&self.counters);
        counters.expire(now);
        counters.requests.push_back(now);
    }

    /// Takes Redis's count: `committed` (day, month, total) is what every replica had spent
    /// or reserved in `windows` apart from this replica's own reservations still in flight.
    pub(crate) fn sync(&self, windows: Windows, committed: [u64; 3], replicas: u64) {
        let mut counters = lock(&self.counters);
        counters.windows = windows;
        counters.base = committed;
        counters.own = [0; 3];
        counters.share = replicas.max(1);
        counters.loaded = true;
    }

    /// Counts a cost (and tokens) settled in Redis, so a fallback sees it before the next sync.
    pub(crate) fn mirror(&self, windows: Windows, cost: u64, tokens: u64) {
        let mut counters = lock(&self.counters);
        counters.spend(windows, cost);
        if tokens > 0 {
            counters.tokens.push_back((Instant::now(), tokens));
        }
    }

    fn check_and_reserve(
        &self,
        limits: &KeyLimits,
        estimate: u64,
        now: Instant,
        now_ms: i64,
    ) -> Result<(Ticket, Option<u64>)> {
        let mut counters = lock(&self.counters);
        counters.expire(now);
        if let Some(tpm) = limits.tpm {
            let used: u64 = counters.tokens.iter().map(|(_, n)| n).sum();
            if used >= counters.per_minute(tpm) {
                let oldest = counters.tokens.front().map_or(now, |(t, _)| *t);
                return Err(tpm_error(tpm, MINUTE.saturating_sub(now - oldest)));
            }
        }
        counters.roll(now_ms);
        let remaining = counters.remaining(limits);
        for window in Window::ALL {
            let Some(budget) = window.budget(limits) else {
                continue;
            };
            let (allowed, used) = counters.allowance(window, budget);
            if used.saturating_add(estimate) > allowed {
                return Err(budget_error(
                    window,
                    budget,
                    counters.committed(window),
                    estimate,
                    counters.windows,
                    now_ms,
                ));
            }
        }
        counters.reserved = counters.reserved.saturating_add(estimate);
        let ticket = Ticket::Local {
            estimate,
            windows: counters.windows,
        };
        Ok((ticket, remaining))
    }
}

/// A key's (or a team's) spend in the ledger since the start of each window: day, month, total.
pub(crate) async fn read_spend(
    store: &dyn Store,
    level: Level,
    id: &str,
    windows: Windows,
) -> Result<[u64; 3]> {
    let unavailable = |e: crossbar_store::StoreError| {
        Error::internal(format!("The key store is unavailable: {e}"))
    };
    let mut spent = [0; 3];
    for window in Window::ALL {
        let since = window.since(windows);
        spent[window.index()] = match level {
            Level::Key => store.key_spend_since(id, since).await,
            Level::Team => match store.org() {
                Some(org) => org.team_spend_since(id, since).await,
                None => Ok(0),
            },
        }
        .map_err(unavailable)?;
    }
    Ok(spent)
}

impl Limiter for Local {
    fn admit_request(&self, rpm: u64, now: Instant) -> BoxFuture<'_, Result<()>> {
        let mut counters = lock(&self.counters);
        counters.expire(now);
        let allowed = counters.per_minute(rpm);
        let answer = if counters.requests.len() as u64 >= allowed {
            let oldest = counters.requests.front().copied().unwrap_or(now);
            Err(rpm_error(rpm, MINUTE.saturating_sub(now - oldest)))
        } else {
            counters.requests.push_back(now);
            Ok(())
        };
        Box::pin(std::future::ready(answer))
    }

    fn reserve(
        &self,
        limits: KeyLimits,
        estimate: u64,
        now: Instant,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<(Ticket, Option<u64>)>> {
        Box::pin(async move {
            self.load(&limits, now_ms).await?;
            self.check_and_reserve(&limits, estimate, now, now_ms)
        })
    }

    fn settle(&self, ticket: Ticket, cost: u64, tokens: u64) {
        let mut counters = lock(&self.counters);
        let (estimate, windows) = match ticket {
            Ticket::Local { estimate, windows } => (estimate, windows),
            // Not ours to hold: count the cost only.
            Ticket::Shared { windows, .. } => (0, windows),
        };
        counters.reserved = counters.reserved.saturating_sub(estimate);
        counters.spend(windows, cost);
        if tokens > 0 {
            counters.tokens.push_back((Instant::now(), tokens));
        }
    }

    fn remaining(&self, limits: KeyLimits, now_ms: i64) -> Option<u64> {
        let mut counters = lock(&self.counters);
        counters.roll(now_ms);
        counters.remaining(&limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(future: BoxFuture<'_, T>) -> T {
        futures::executor::block_on(future)
    }

    fn limits(f: impl FnOnce(&mut KeyLimits)) -> KeyLimits {
        let mut limits = KeyLimits::default();
        f(&mut limits);
        limits
    }

    #[test]
    fn requests_per_minute_refuse_with_the_wait_until_a_slot_frees() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let t0 = Instant::now();
        run(key.admit_request(2, t0)).unwrap();
        run(key.admit_request(2, t0 + Duration::from_secs(20))).unwrap();
        let err = run(key.admit_request(2, t0 + Duration::from_secs(30))).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
        // A minute after the first, its slot is free again.
        run(key.admit_request(2, t0 + Duration::from_secs(60))).unwrap();
    }

    #[test]
    fn budgets_reserve_then_settle_to_the_real_cost() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| l.budget_total_pusd = Some(1_000));
        let now = Instant::now();
        let (first, remaining) = run(key.reserve(limits, 600, now, 0)).unwrap();
        assert_eq!(remaining, Some(1_000));
        // 600 reserved: a second 600 would exceed 1000 while the first is in flight.
        let err = run(key.reserve(limits, 600, now, 0)).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(err.code.as_deref(), Some("budget_exceeded"));
        assert!(err.message.contains("total budget"), "{}", err.message);
        assert_eq!(err.retry_after, None, "a total budget does not reset");
        // The first settles at 100: 900 left.
        key.settle(first, 100, 10);
        assert_eq!(key.remaining(limits, 0), Some(900));
    }

    #[test]
    fn daily_budget_resets_at_utc_midnight() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| l.budget_day_pusd = Some(500));
        let now = Instant::now();
        let noon = 12 * 3_600_000;
        let (ticket, _) = run(key.reserve(limits, 500, now, noon)).unwrap();
        key.settle(ticket, 500, 0);
        let err = run(key.reserve(limits, 1, now, noon)).unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(12 * 3600)));
        run(key.reserve(limits, 1, now, 86_400_000 + 1)).unwrap();
    }

    #[test]
    fn a_cost_settled_after_midnight_counts_in_the_day_it_was_admitted() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| {
            l.budget_day_pusd = Some(500);
            l.budget_total_pusd = Some(10_000);
        });
        let now = Instant::now();
        let late = 86_400_000 - 1;
        let (ticket, _) = run(key.reserve(limits, 400, now, late)).unwrap();
        // The next day starts before the request settles.
        let (next, remaining) = run(key.reserve(limits, 100, now, 86_400_000)).unwrap();
        assert_eq!(remaining, Some(100), "the first's 400 is still reserved");
        key.settle(ticket, 400, 0);
        key.settle(next, 100, 0);
        // Yesterday's 400 is not today's: 400 of the day's 500 is left, 9,500 in total.
        assert_eq!(key.remaining(limits, 86_400_000), Some(400));
        run(key.reserve(limits, 400, now, 86_400_000)).unwrap();
    }

    #[test]
    fn tokens_per_minute_count_settled_tokens() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| l.tpm = Some(100));
        let now = Instant::now();
        let (ticket, _) = run(key.reserve(limits, 0, now, 0)).unwrap();
        key.settle(ticket, 0, 100);
        let err = run(key.reserve(limits, 0, now, 0)).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("rate_limit_tokens"));
        assert_eq!(err.status(), 429);
    }

    #[test]
    fn standing_in_for_redis_a_replica_takes_its_share_of_what_was_left() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| {
            l.budget_total_pusd = Some(1_000);
            l.rpm = Some(10);
        });
        let now = Instant::now();
        // Redis last said 400 was committed, with four replicas live: 150 each is left.
        key.sync(Windows::at(0), [0, 0, 400], 4);
        let (ticket, remaining) = run(key.reserve(limits, 100, now, 0)).unwrap();
        assert_eq!(remaining, Some(150));
        key.settle(ticket, 100, 0);
        let err = run(key.reserve(limits, 60, now, 0)).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("budget_exceeded"));
        assert!(
            err.message.contains("$0.0000000005 is spent or reserved"),
            "committed is 400 + 100 picodollars: {}",
            err.message
        );
        run(key.reserve(limits, 50, now, 0)).unwrap();
        // Requests per minute are shared the same way: 10 / 4 = 2 here.
        run(key.admit_request(10, now)).unwrap();
        run(key.admit_request(10, now)).unwrap();
        assert_eq!(run(key.admit_request(10, now)).unwrap_err().status(), 429);
    }

    #[test]
    fn costs_settled_in_redis_are_mirrored_for_a_fallback() {
        let key = Local::new("key_1".into(), Level::Key, None);
        let limits = limits(|l| l.budget_day_pusd = Some(1_000));
        key.sync(Windows::at(0), [300, 300, 300], 1);
        key.mirror(Windows::at(0), 200, 0);
        assert_eq!(key.remaining(limits, 0), Some(500));
    }
}
