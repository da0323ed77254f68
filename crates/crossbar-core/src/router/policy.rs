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
/// Under `order` and `round-robin`, deployments at least this close to their limit go after
/// the others, in their order.
const PRESSURE_LAST: f64 = 0.5;

/// One deployment as this request sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'r> {
    /// The router's own handle: a decision clones none of them, only what it calls.
    pub deployment: &'r Arc<Deployment>,
    /// Position among the request's candidates before ranking: ties rank in this order.
    pub order: usize,
    /// Our estimate before the deployment's calibration (what calibration is learned against).
    pub raw_prompt_tokens: f64,
    /// Calibrated by the usage the deployment reported so far.
    pub prompt_tokens: f64,
    pub estimated_cost: f64,
    /// Expected milliseconds to the first token (streams) or the answer, if known.
    pub expected_ms: Option<f64>,
    /// Recent share of failed and rate-limited calls.
    pub failure: f64,
    /// How close the deployment is to its provider's rate limit, from 0 (not near) to 1
    /// (nothing left): see [`super::headroom`].
    pub pressure: f64,
    /// What the objective ranked on (lower is better), for the decision log.
    pub score: f64,
    /// [`Candidate::latency_score`], once ranking computed it.
    pub latency: f64,
}

impl Candidate<'_> {
    /// Expected time including the retries failures cost; unknown counts as instant so that
    /// a new deployment is tried.
    pub fn latency_score(&self) -> f64 {
        // Nearing a rate limit counts as that share of calls about to be refused.
        let failure = self
            .failure
            .max(self.pressure * MAX_FAILURE)
            .clamp(0.0, MAX_FAILURE);
        self.expected_ms.unwrap_or(0.0) / (1.0 - failure) + failure * FAILURE_PENALTY_MS
    }
}

/// A score (lower is better) scaled up as a deployment nears its rate limit: by
/// `1 / (1 - pressure)`, i.e. the threshold over the share left (1 at the threshold, 2 at half
/// of it, 10 at a tenth), and last of all once nothing is left, where its next call would
/// be refused.
fn held_back(score: f64, pressure: f64) -> f64 {
    if pressure >= 1.0 {
        f64::INFINITY
    } else {
        score / (1.0 - pressure)
    }
}

fn cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

/// Orders `candidates` (given in config order) best first, as far as the first `keep` (the
/// attempts a request may make): returns how many lead in their final order. The rest all rank
/// after them, in no particular order until [`rank_rest`] sorts them, which the attempt loop
/// does only if it walks past the first `keep` (deployments cooling down or failing). Sorting
/// every candidate of a 1,000-deployment model was most of a routing decision.
pub fn rank(
    objective: Objective,
    cost_weight: f64,
    rotation: usize,
    keep: usize,
    candidates: &mut Vec<Candidate<'_>>,
) -> usize {
    match objective {
        Objective::Order | Objective::RoundRobin => {
            if objective == Objective::RoundRobin && !candidates.is_empty() {
                let len = candidates.len();
                candidates.rotate_left(rotation % len);
            }
            if candidates.iter().any(|c| c.pressure >= PRESSURE_LAST) {
                // Stable: the rest keep their order.
                candidates.sort_by_key(|c| c.pressure >= PRESSURE_LAST);
            }
            for (i, c) in candidates.iter_mut().enumerate() {
                c.score = i as f64;
            }
            return candidates.len();
        }
        Objective::Cost => {
            for c in candidates.iter_mut() {
                c.latency = c.latency_score();
                c.score = held_back(c.estimated_cost, c.pressure);
            }
        }
        Objective::Latency => {
            for c in candidates.iter_mut() {
                c.latency = c.latency_score();
                c.score = held_back(c.latency, c.pressure);
            }
        }
        Objective::Balanced => {
            let (mut max_cost, mut max_latency) = (0.0, 0.0);
            for c in candidates.iter_mut() {
                c.latency = c.latency_score();
                max_cost = f64::max(max_cost, c.estimated_cost);
                max_latency = f64::max(max_latency, c.latency);
            }
            let share = |value: f64, max: f64| if max > 0.0 { value / max } else { 0.0 };
            for c in candidates.iter_mut() {
                c.score = held_back(
                    cost_weight * share(c.estimated_cost, max_cost)
                        + (1.0 - cost_weight) * share(c.latency, max_latency),
                    c.pressure,
                );
            }
        }
    }
    select(objective, keep.max(1), candidates)
}

/// Moves the best `keep` candidates, in order, to the front, the rest following in their
/// current order; returns how many lead in order. One pass over the candidates, comparing
/// most of them with the worst kept only.
fn select(objective: Objective, keep: usize, candidates: &mut Vec<Candidate<'_>>) -> usize {
    let by = |a: &Candidate<'_>, b: &Candidate<'_>| compare(objective, a, b);
    let len = candidates.len();
    // Selecting pays off only when it leaves most candidates unsorted.
    if len <= keep.saturating_mul(4) {
        candidates.sort_unstable_by(by);
        return len;
    }
    // Positions of the best so far, best first.
    let mut best: Vec<usize> = Vec::with_capacity(keep + 1);
    for (i, c) in candidates.iter().enumerate() {
        if best.len() == keep
            && best
                .last()
                .is_some_and(|&worst| by(c, &candidates[worst]) != Ordering::Less)
        {
            continue;
        }
        let at = best.partition_point(|&b| by(&candidates[b], c) == Ordering::Less);
        best.insert(at, i);
        best.truncate(keep);
    }
    let mut chosen = vec![false; len];
    for &b in &best {
        chosen[b] = true;
    }
    let mut ranked = Vec::with_capacity(len);
    ranked.extend(best.iter().map(|&b| candidates[b]));
    ranked.extend(
        candidates
            .iter()
            .zip(&chosen)
            .filter(|(_, chosen)| !**chosen)
            .map(|(c, _)| *c),
    );
    *candidates = ranked;
    best.len()
}

/// Sorts the candidates [`rank`] left unsorted (they all rank after those it sorted).
pub fn rank_rest(objective: Objective, rest: &mut [Candidate<'_>]) {
    rest.sort_unstable_by(|a, b| compare(objective, a, b));
}

/// The ranking order: the objective's, then config order, so it is total and an unstable sort
/// orders as a stable one would.
fn compare(objective: Objective, a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    let by_objective = match objective {
        Objective::Order | Objective::RoundRobin => Ordering::Equal,
        Objective::Cost => cmp(a.score, b.score).then_with(|| cmp(a.latency, b.latency)),
        Objective::Latency | Objective::Balanced => cmp(a.score, b.score),
    };
    by_objective.then(a.order.cmp(&b.order))
}

/// With probability `rate`, picks a random other candidate to move to the front, returning its
/// position. Only the ranking objectives explore: `order` and `round-robin` are meant to be
/// predictable.
pub fn explore(
    objective: Objective,
    rate: f64,
    rng: &mut impl Rng,
    candidates: usize,
) -> Option<usize> {
    if !matches!(
        objective,
        Objective::Cost | Objective::Latency | Objective::Balanced
    ) || candidates < 2
        || rate <= 0.0
    {
        return None;
    }
    if rng.random::<f64>() >= rate {
        return None;
    }
    Some(rng.random_range(1..candidates))
}
