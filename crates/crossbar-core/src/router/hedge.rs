//! Hedging: when the first attempt has produced nothing by a deadline, a second starts on the
//! next-ranked deployment and the first to answer wins. A token bucket caps hedges at a share
//! of the route's traffic, so a slow or failing provider cannot double the load.

use std::sync::Mutex;
use std::time::Duration;

use crate::config::{HedgeAfter, HedgeConfig};
use crate::router::lock;
use crate::router::stats::Series;

const DEFAULT_BUDGET: f64 = 0.1;
/// The bucket counts millionths of a hedge, so shares like 0.1 add up exactly.
const ONE: u64 = 1_000_000;
/// Hedges that may happen back to back when the budget has saved up.
const BURST: u64 = 3 * ONE;

#[derive(Debug)]
pub struct Hedging {
    pub after: HedgeAfter,
    pub budget: f64,
    /// Hedges that may start now, in millionths: every request adds `budget`, every hedge
    /// takes one.
    bucket: Mutex<u64>,
}

impl Hedging {
    pub fn new(after: HedgeAfter, budget: f64) -> Self {
        Self {
            after,
            budget,
            bucket: Mutex::new(0),
        }
    }

    /// `None` when the configuration does not parse (validation already refused it).
    pub fn from_config(config: &HedgeConfig) -> Option<Self> {
        let after = HedgeAfter::parse(config.after.get_ref()).ok()?;
        let budget = config
            .budget
            .as_ref()
            .map_or(DEFAULT_BUDGET, |b| *b.get_ref());
        Some(Self::new(after, budget))
    }

    /// Called once per request: earns it a share of a hedge.
    pub fn credit(&self) {
        let share = (self.budget.clamp(0.0, 1.0) * ONE as f64).round() as u64;
        let mut bucket = lock(&self.bucket);
        *bucket = (*bucket + share).min(BURST);
    }

    /// Takes a hedge from the budget, if one is left.
    pub fn try_spend(&self) -> bool {
        let mut bucket = lock(&self.bucket);
        if *bucket >= ONE {
            *bucket -= ONE;
            true
        } else {
            false
        }
    }

    /// How long to wait for the first attempt, given its deployment's recent times to first
    /// token; `None` when a percentile is asked for and too little is known yet.
    pub fn delay(&self, first_token: &Series) -> Option<Duration> {
        match self.after {
            HedgeAfter::Fixed(delay) => Some(delay),
            HedgeAfter::Percentile(p) => first_token
                .percentile(p)
                .map(|ms| Duration::from_secs_f64(ms.max(1.0) / 1000.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_hedges_at_a_share_of_requests() {
        let hedging = Hedging::new(HedgeAfter::Fixed(Duration::from_millis(10)), 0.1);
        let mut hedges = 0;
        for _ in 0..1000 {
            hedging.credit();
            if hedging.try_spend() {
                hedges += 1;
            }
        }
        assert_eq!(hedges, 100);
        // Savings are capped: after a quiet spell only a short burst is allowed.
        let quiet = Hedging::new(HedgeAfter::Fixed(Duration::from_millis(10)), 0.1);
        for _ in 0..1000 {
            quiet.credit();
        }
        let burst = (0..10).filter(|_| quiet.try_spend()).count();
        assert_eq!(burst, 3);
    }

    #[test]
    fn percentile_deadlines_wait_for_data() {
        let hedging = Hedging::new(HedgeAfter::Percentile(95), 0.1);
        let mut series = Series::default();
        assert_eq!(hedging.delay(&series), None);
        for ms in 1..=100 {
            series.add(f64::from(ms));
        }
        assert_eq!(hedging.delay(&series), Some(Duration::from_millis(97)));
    }
}
