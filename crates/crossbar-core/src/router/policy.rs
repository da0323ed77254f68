//! Ranking: orders a request's candidates by the route's objective, from live statistics and
//! this request's estimated cost. Deployments nothing is known about rank as if instant, so
//! each is tried once early; after that a small exploration rate (seeded, so runs replay)
//! keeps the statistics of demoted deployments fresh, so a slow spell cannot lock one out.

use std::cmp::Ordering;
use std::sync::Arc;

use rand::Rng;

use crate::config::Objective;
use crate::router::Deployment;

/// Failure shares above this are treated as this, so a failing deployment still has a finite
/// expected latency (the breaker, not ranking, takes it out).
const MAX_FAILURE: f64 = 0.95;
/// What a failed call costs on top of its share of retries: about a retry's round trip. It
/// also keeps a deployment that has only ever failed (so has no latency sample) from ranking
/// as "unknown, hence instant".
const FAILURE_PENALTY_MS: f64 = 1000.0;

/// One deployment as this request sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub deployment: Arc<Deployment>,
    /// Our estimate before the deployment's calibration (what calibration is learned against).
    pub raw_prompt_tokens: f64,
    /// Calibrated by the usage the deployment reported so far.
    pub prompt_tokens: f64,
    pub estimated_cost: f64,
    /// Expected milliseconds to the first token (streams) or the answer, if known.
    pub expected_ms: Option<f64>,
    /// Recent share of failed and rate-limited calls.
    pub failure: f64,
    /// What the objective ranked on (lower is better), for the decision log.
    pub score: f64,
}

impl Candidate {
    /// Expected time including the retries failures cost; unknown counts as instant so that
    /// a new deployment is tried.
    pub fn latency_score(&self) -> f64 {
        let failure = self.failure.clamp(0.0, MAX_FAILURE);
        self.expected_ms.unwrap_or(0.0) / (1.0 - failure) + failure * FAILURE_PENALTY_MS
    }
}

fn cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

/// Orders `candidates` (given in config order) best first.
pub fn rank(objective: Objective, cost_weight: f64, rotation: usize, candidates: &mut [Candidate]) {
    match objective {
        Objective::Order => {
            for (i, c) in candidates.iter_mut().enumerate() {
                c.score = i as f64;
            }
        }
        Objective::RoundRobin => {
            if !candidates.is_empty() {
                let len = candidates.len();
                candidates.rotate_left(rotation % len);
            }
            for (i, c) in candidates.iter_mut().enumerate() {
                c.score = i as f64;
            }
        }
        Objective::Cost => {
            for c in candidates.iter_mut() {
                c.score = c.estimated_cost;
            }
            candidates.sort_by(|a, b| {
                cmp(a.estimated_cost, b.estimated_cost)
                    .then_with(|| cmp(a.latency_score(), b.latency_score()))
            });
        }
        Objective::Latency => {
            for c in candidates.iter_mut() {
                c.score = c.latency_score();
            }
            candidates.sort_by(|a, b| cmp(a.score, b.score));
        }
        Objective::Balanced => {
            let max_cost = candidates
                .iter()
                .map(|c| c.estimated_cost)
                .fold(0.0, f64::max);
            let max_latency = candidates
                .iter()
                .map(Candidate::latency_score)
                .fold(0.0, f64::max);
            let share = |value: f64, max: f64| if max > 0.0 { value / max } else { 0.0 };
            for c in candidates.iter_mut() {
                c.score = cost_weight * share(c.estimated_cost, max_cost)
                    + (1.0 - cost_weight) * share(c.latency_score(), max_latency);
            }
            candidates.sort_by(|a, b| cmp(a.score, b.score));
        }
    }
}

/// With probability `rate`, moves a random other candidate to the front. Only the ranking
/// objectives explore: `order` and `round-robin` are meant to be predictable.
pub fn explore(
    objective: Objective,
    rate: f64,
    rng: &mut impl Rng,
    candidates: &mut [Candidate],
) -> bool {
    if !matches!(
        objective,
        Objective::Cost | Objective::Latency | Objective::Balanced
    ) || candidates.len() < 2
        || rate <= 0.0
    {
        return false;
    }
    if rng.random::<f64>() >= rate {
        return false;
    }
    let chosen = rng.random_range(1..candidates.len());
    candidates[..=chosen].rotate_right(1);
    true
}
