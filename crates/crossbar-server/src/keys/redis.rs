//! A key's limits counted in Redis, shared by every replica, with a [`Local`] limiter kept in
//! step behind it: every answer from Redis resets the local count to Redis's, every settlement
//! is mirrored into it, and when Redis cannot be reached the local one decides, taking this
//! replica's share of what was left. What was spent during an outage is added to Redis when it
//! answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbar_core::{Error, Result};
use crossbar_store::{KeyLimits, Store};
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::calendar::Windows;
use super::limiter::{Level, Limiter, Ticket, budget_error, rpm_error, tpm_error};
use super::local::{Local, read_spend};
use super::lock;
use crate::shared::{self, Reserved, Shared};

/// Reservations whose settlement did not reach Redis, kept to release them later; beyond this
/// many they are left to expire there on their own.
const MAX_UNRELEASED: usize = 1024;
/// A seed or clock correction, then the reservation: more answers than that is a fault.
const ATTEMPTS: usize = 3;

/// Spend Redis has not seen yet: costs settled while it was out of reach, by window.
#[derive(Debug, Default)]
struct Unsynced {
    costs: HashMap<Windows, u64>,
    /// Reservation members to release.
    members: Vec<String>,
}

impl Unsynced {
    fn add(&mut self, windows: Windows, cost: u64, member: Option<String>) {
        if cost > 0 {
            let total = self.costs.entry(windows).or_default();
            *total = total.saturating_add(cost);
        }
        if let Some(member) = member
            && self.members.len() < MAX_UNRELEASED
        {
            self.members.push(member);
        }
    }
}

/// A key's limits in Redis, with a local stand-in.
pub(crate) struct SharedLimiter {
    id: String,
    level: Level,
    shared: Arc<Shared>,
    local: Local,
    ledger: Arc<dyn Store>,
    /// This replica's reservations held in Redis, not yet settled.
    in_flight: AtomicU64,
    unsynced: Arc<Mutex<Unsynced>>,
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter")
            .field("id", &self.id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl SharedLimiter {
    pub(crate) fn new(
        id: String,
        level: Level,
        shared: Arc<Shared>,
        ledger: Arc<dyn Store>,
    ) -> Self {
        Self {
            local: Local::new(id.clone(), level, Some(Arc::clone(&ledger))),
            id,
            level,
            shared,
            ledger,
            in_flight: AtomicU64::new(0),
            unsynced: Arc::new(Mutex::new(Unsynced::default())),
        }
    }

    /// Hands Redis what was settled while it was out of reach; kept for later if it fails.
    async fn flush(&self) -> redis::RedisResult<()> {
        let pending = std::mem::take(&mut *lock(&self.unsynced));
        if pending.costs.is_empty() && pending.members.is_empty() {
            return Ok(());
        }
        // Releasing a member needs no window: any will do.
        let now = Windows::at(self.shared.now_ms());
        let work: Vec<(Windows, u64, String)> = pending
            .costs
            .into_iter()
            .map(|(windows, cost)| (windows, cost, String::new()))
            .chain(pending.members.into_iter().map(|m| (now, 0, m)))
            .collect();
        for (done, (windows, cost, member)) in work.iter().enumerate() {
            if let Err(error) = self
                .shared
                .settle(&self.id, member, *windows, *cost, 0)
                .await
            {
                let mut unsynced = lock(&self.unsynced);
                for (windows, cost, member) in work.into_iter().skip(done) {
                    unsynced.add(windows, cost, Some(member).filter(|m| !m.is_empty()));
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Reserves in Redis, seeding a window's spend from the ledger or correcting the clock
    /// when Redis asks; `Ok(None)` after a Redis failure (the caller falls back).
    async fn reserve_shared(
        &self,
        limits: &KeyLimits,
        estimate: u64,
    ) -> Result<Option<(Ticket, Option<u64>)>> {
        if let Err(error) = self.flush().await {
            shared::degraded("reserve", &error);
            return Ok(None);
        }
        let mut windows = Windows::at(self.shared.now_ms());
        for _ in 0..ATTEMPTS {
            let answer = match self
                .shared
                .reserve(&self.id, limits, estimate, windows)
                .await
            {
                Ok(answer) => answer,
                Err(error) => {
                    shared::degraded("reserve", &error);
                    return Ok(None);
                }
            };
            match answer {
                Reserved::Ok {
                    member,
                    remaining,
                    committed,
                } => {
                    let in_flight = self.in_flight.fetch_add(estimate, Ordering::Relaxed);
                    // Redis's count without this replica's own reservations, which settle
                    // into the local count (mirrored) instead.
                    let others = committed.map(|c| c.saturating_sub(in_flight + estimate));
                    self.local.sync(windows, others, self.shared.replicas());
                    let ticket = Ticket::Shared {
                        member,
                        estimate,
                        windows,
                    };
                    return Ok(Some((ticket, remaining)));
                }
                Reserved::TokensPerMinute { wait } => {
                    return Err(tpm_error(limits.tpm.unwrap_or(0), wait));
                }
                Reserved::Budget { window, committed } => {
                    return Err(budget_error(
                        window,
                        window.budget(limits).unwrap_or(0),
                        committed,
                        estimate,
                        windows,
                        self.shared.now_ms(),
                    ));
                }
                Reserved::Unseeded => {
                    let spent =
                        read_spend(self.ledger.as_ref(), self.level, &self.id, windows).await?;
                    if let Err(error) = self.shared.seed_spend(&self.id, windows, spent).await {
                        shared::degraded("seed_spend", &error);
                        return Ok(None);
                    }
                }
                Reserved::Clock { now_ms } => windows = Windows::at(now_ms),
            }
        }
        Err(Error::internal(
            "The shared limit state kept changing under this request; try again.",
        ))
    }
}

impl Limiter for SharedLimiter {
    fn admit_request(&self, rpm: u64, now: Instant) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.shared.admit_request(&self.id, rpm).await {
                Ok(None) => {
                    self.local.note_request(now);
                    Ok(())
                }
                Ok(Some(wait)) => Err(rpm_error(rpm, wait)),
                Err(error) => {
                    shared::degraded("admit_request", &error);
                    self.local.admit_request(rpm, now).await
                }
            }
        })
    }

    fn reserve(
        &self,
        limits: KeyLimits,
        estimate: u64,
        now: Instant,
        _now_ms: i64,
    ) -> BoxFuture<'_, Result<(Ticket, Option<u64>)>> {
        Box::pin(async move {
            if let Some(reserved) = self.reserve_shared(&limits, estimate).await? {
                return Ok(reserved);
            }
            self.local
                .reserve(limits, estimate, now, self.shared.now_ms())
                .await
        })
    }

    fn settle(&self, ticket: Ticket, cost: u64, tokens: u64) {
        match ticket {
            Ticket::Local { windows, .. } => {
                // Spent while Redis was out of reach: Redis gets it when it answers again.
                lock(&self.unsynced).add(windows, cost, None);
                self.local.settle(ticket, cost, tokens);
            }
            Ticket::Shared {
                member,
                estimate,
                windows,
            } => {
                let _ = self
                    .in_flight
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(estimate))
                    });
                self.local.mirror(windows, cost, tokens);
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    lock(&self.unsynced).add(windows, cost, Some(member));
                    return;
                };
                let (shared, id, unsynced) = (
                    Arc::clone(&self.shared),
                    self.id.clone(),
                    Arc::clone(&self.unsynced),
                );
                runtime.spawn(async move {
                    if let Err(error) = shared.settle(&id, &member, windows, cost, tokens).await {
                        shared::degraded("settle", &error);
                        lock(&unsynced).add(windows, cost, Some(member));
                    }
                });
            }
        }
    }

    fn remaining(&self, limits: KeyLimits, _now_ms: i64) -> Option<u64> {
        self.local.remaining(limits, self.shared.now_ms())
    }
}
