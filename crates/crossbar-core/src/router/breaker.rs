//! Circuit breaker per deployment: closed → open after enough failures within a window →
//! half-open after a cooldown, letting one probe through → closed when it succeeds, open again
//! when it fails. Time comes from `tokio::time`, so paused-clock tests drive it exactly.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::BreakerConfig;

#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    pub failures: u32,
    pub ratio: f64,
    pub window: Duration,
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            ratio: 0.5,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(30),
        }
    }
}

impl BreakerSettings {
    pub fn from_config(config: Option<&BreakerConfig>) -> Self {
        let default = Self::default();
        let Some(config) = config else {
            return default;
        };
        Self {
            failures: config.failures.unwrap_or(default.failures),
            ratio: config.ratio.unwrap_or(default.ratio),
            window: config.window_s.map_or(default.window, Duration::from_secs),
            cooldown: config
                .cooldown_s
                .map_or(default.cooldown, Duration::from_secs),
        }
    }
}

/// What `GET /v1/crossbar/deployments` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Leave to call a deployment: a probe decides a half-open breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    Normal,
    Probe,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    /// Outcomes within the window: `true` for a failure.
    recent: VecDeque<(Instant, bool)>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: State::Closed,
            recent: VecDeque::new(),
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may start now (without taking the probe slot).
    pub fn allows(&self, now: Instant) -> bool {
        match self.state {
            State::Closed | State::HalfOpen { probing: false } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing: true } => false,
        }
    }

    /// Takes leave to call; a half-open breaker gives out one probe at a time.
    pub fn acquire(&mut self, now: Instant) -> Option<Permit> {
        match self.state {
            State::Closed => Some(Permit::Normal),
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                Some(Permit::Probe)
            }
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Some(Permit::Probe)
            }
            State::Open { .. } | State::HalfOpen { probing: true } => None,
        }
    }

    /// Time until calls are let through again, when open.
    pub fn reopens_in(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Open { until } if until > now => Some(until - now),
            _ => None,
        }
    }

    pub fn failures_in_window(&self) -> usize {
        self.recent.iter().filter(|(_, failed)| *failed).count()
    }

    pub fn success(&mut self, permit: Permit, now: Instant) {
        match permit {
            Permit::Probe => {
                self.state = State::Closed;
                self.recent.clear();
            }
            Permit::Normal => self.push(now, false),
        }
    }

    pub fn failure(&mut self, permit: Permit, now: Instant) {
        match permit {
            Permit::Probe => self.open(now),
            Permit::Normal => {
                self.push(now, true);
                let failures = self.failures_in_window();
                let ratio = failures as f64 / self.recent.len().max(1) as f64;
                if self.state == State::Closed
                    && failures >= self.settings.failures as usize
                    && ratio >= self.settings.ratio
                {
                    self.open(now);
                }
            }
        }
    }

    /// The call ended without saying anything about the deployment's health (cancelled, a
    /// client error, a 429): a probe slot is handed back.
    pub fn release(&mut self, permit: Permit) {
        if permit == Permit::Probe && self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    /// Another replica's breaker for this deployment is open until `until`: stop calling it
    /// here too, unless a probe of ours is already deciding.
    pub fn adopt_open(&mut self, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let adopt = match self.state {
            State::Closed | State::HalfOpen { probing: false } => true,
            State::Open { until: ours } => ours < until,
            State::HalfOpen { probing: true } => false,
        };
        if adopt {
            self.state = State::Open { until };
            self.recent.clear();
        }
    }

    /// Until when calls are refused, when open.
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.settings.cooldown,
        };
        self.recent.clear();
    }

    fn push(&mut self, now: Instant, failed: bool) {
        while let Some((at, _)) = self.recent.front() {
            if now.duration_since(*at) > self.settings.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back((now, failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            ratio: 0.5,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let mut b = breaker();
        let now = Instant::now();
        for _ in 0..2 {
            let permit = b.acquire(now).unwrap();
            b.failure(permit, now);
        }
        assert_eq!(b.state(now), BreakerState::Closed);
        let permit = b.acquire(now).unwrap();
        b.failure(permit, now);
        assert_eq!(b.state(now), BreakerState::Open);
        assert!(b.acquire(now).is_none());
        assert_eq!(b.reopens_in(now), Some(Duration::from_secs(5)));

        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        assert_eq!(b.state(now), BreakerState::HalfOpen);
        let probe = b.acquire(now).unwrap();
        assert_eq!(probe, Permit::Probe);
        assert!(b.acquire(now).is_none(), "one probe at a time");
        assert!(!b.allows(now));
        b.success(probe, now);
        assert_eq!(b.state(now), BreakerState::Closed);
        assert_eq!(b.acquire(now), Some(Permit::Normal));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_and_a_released_one_frees_the_slot() {
        let mut b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.failure(Permit::Normal, now);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        let probe = b.acquire(now).unwrap();
        b.release(probe);
        let probe = b.acquire(now).unwrap();
        b.failure(probe, now);
        assert_eq!(b.state(now), BreakerState::Open);
        assert_eq!(b.reopens_in(now), Some(Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_must_be_recent_and_a_large_enough_share() {
        let mut b = breaker();
        let now = Instant::now();
        b.failure(Permit::Normal, now);
        b.failure(Permit::Normal, now);
        tokio::time::advance(Duration::from_secs(11)).await;
        let now = Instant::now();
        b.failure(Permit::Normal, now);
        assert_eq!(b.state(now), BreakerState::Closed, "old failures expired");
        for _ in 0..4 {
            b.success(Permit::Normal, now);
        }
        b.failure(Permit::Normal, now);
        b.failure(Permit::Normal, now);
        // Three failures, but only three of seven calls.
        assert_eq!(b.state(now), BreakerState::Closed);
        b.failure(Permit::Normal, now);
        assert_eq!(b.state(now), BreakerState::Open);
    }
}
