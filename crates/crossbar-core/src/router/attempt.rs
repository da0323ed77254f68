//! The attempt loop of one request: launches attempts in ranked order, fails over on
//! retryable errors, goes around again after a jittered backoff, hedges a slow first attempt,
//! and returns the first answer with a record of every attempt made on the way.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::rngs::StdRng;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::MAX_RETRY_AFTER;
use crate::router::breaker::Permit;
use crate::router::catalog::Route;
use crate::router::policy::Candidate;
use crate::router::retry::{self, Verdict};
use crate::router::{Attempt, Deployment, lock};

/// Everything decided about a request before its first attempt.
#[derive(Debug)]
pub struct Plan<'r> {
    pub model: String,
    pub route: Arc<Route>,
    /// Best first, as far as `ranked`; the rest rank after those, sorted when first needed
    /// ([`Plan::rank_all`]).
    pub candidates: Vec<Candidate<'r>>,
    pub ranked: usize,
    pub stream: bool,
    pub started: Instant,
    pub affinity_key: Option<u64>,
    /// The deployment (by index) that affinity put first.
    pub affinity_hit: Option<usize>,
    /// Whether a canary split put its target first.
    pub split: bool,
}

impl Plan<'_> {
    /// Upstream calls allowed: the route's budget, else every candidate once and at least 3.
    fn budget(&self) -> u32 {
        budget(self.route.attempts, self.candidates.len())
    }

    /// Puts every candidate in its ranked place (see [`super::policy::rank`]).
    pub fn rank_all(&mut self) {
        if self.ranked < self.candidates.len() {
            super::policy::rank_rest(self.route.objective, &mut self.candidates[self.ranked..]);
            self.ranked = self.candidates.len();
        }
    }

    /// Moves the candidate at `position` to the front, the others keeping their order.
    pub fn move_to_front(&mut self, position: usize) {
        if position >= self.ranked {
            self.rank_all();
        }
        self.candidates[..=position].rotate_right(1);
    }

    /// The position of the first candidate, in ranked order, that `wanted` accepts.
    pub fn find(&mut self, wanted: impl Fn(&Candidate<'_>) -> bool) -> Option<usize> {
        if let Some(position) = self.candidates[..self.ranked].iter().position(&wanted) {
            return Some(position);
        }
        let from = self.ranked;
        self.rank_all();
        self.candidates[from..]
            .iter()
            .position(wanted)
            .map(|position| from + position)
    }
}

/// Upstream calls allowed: `attempts` (the route's budget), else every candidate once and at
/// least 3, at most 10.
pub fn budget(attempts: Option<u32>, candidates: usize) -> u32 {
    attempts.unwrap_or_else(|| u32::try_from(candidates).unwrap_or(u32::MAX).clamp(3, 10))
}

/// Every attempt failed (or none could start): the error to answer with, and the attempts,
/// so that the failed request's record still shows where it went.
pub struct Failed {
    pub error: Error,
    pub attempts: Vec<Attempt>,
}

impl Failed {
    /// Hands the attempts to the caller's log, if it keeps one, and returns the error.
    pub fn report(self, preferences: &super::Preferences) -> Error {
        preferences.attempt_log.extend(self.attempts);
        self.error
    }
}

/// The first answer and how it came about.
pub struct Won<T> {
    pub value: T,
    /// Index into the plan's candidates.
    pub candidate: usize,
    /// When the winning attempt started.
    pub started: Instant,
    /// How long the winner took to its first token (or answer).
    pub first_token: Duration,
    pub attempts: Vec<Attempt>,
}

/// Leave to call a deployment. Dropping it unused hands a breaker probe back.
pub struct Lease {
    deployment: Arc<Deployment>,
    permit: Option<Permit>,
}

impl Lease {
    /// Leave unless the deployment is cooling down after a `Retry-After` or its breaker is open.
    pub fn acquire(deployment: &Arc<Deployment>, now: Instant, hedge: bool) -> Option<Self> {
        let mut live = deployment.live();
        if live.cooldown_until.is_some_and(|until| until > now) {
            return None;
        }
        let permit = live.breaker.acquire(now)?;
        live.stats.counters.attempts += 1;
        if hedge {
            live.stats.counters.hedges += 1;
        }
        Some(Self {
            deployment: Arc::clone(deployment),
            permit: Some(permit),
        })
    }

    fn succeeded(mut self, stream: bool, elapsed: Duration, hedge: bool) {
        let now = Instant::now();
        let permit = self.permit.take();
        let mut live = self.deployment.live();
        if let Some(permit) = permit {
            live.breaker.success(permit, now);
        }
        live.stats.record_outcome(false, false);
        live.stats.record_first_token(stream, elapsed);
        live.stats.counters.successes += 1;
        if hedge {
            live.stats.counters.hedges_won += 1;
        }
    }

    fn failed(mut self, error: &Error, stream: bool, elapsed: Duration) {
        let now = Instant::now();
        let permit = self.permit.take();
        let mut live = self.deployment.live();
        let rate_limited = retry::is_rate_limit(error);
        let blamed = retry::blames_deployment(error);
        if rate_limited {
            live.stats.counters.rate_limited += 1;
            // The upstream's word, clamped however the error was built: `now + 1e19 s`
            // would overflow and panic.
            if let Some(until) = error
                .retry_after
                .and_then(|after| now.checked_add(after.min(MAX_RETRY_AFTER)))
            {
                live.cooldown_until = Some(live.cooldown_until.map_or(until, |u| u.max(until)));
            }
        } else if blamed {
            live.stats.counters.failures += 1;
        } else {
            live.stats.counters.rejected += 1;
        }
        if let Some(permit) = permit {
            if blamed {
                live.breaker.failure(permit, now);
            } else {
                live.breaker.release(permit);
            }
        }
        live.stats.record_outcome(blamed, rate_limited);
        if error.kind == ErrorKind::UpstreamTimeout {
            // At least this slow: a timeout must push the latency estimate up.
            live.stats.record_first_token(stream, elapsed);
        }
    }

    /// Another attempt answered first. A primary that lost was at least this slow.
    fn cancelled(self, cost: f64, slow: Option<(bool, Duration)>) {
        let mut live = self.deployment.live();
        live.stats.counters.cancelled += 1;
        live.stats.counters.spent_pusd = live
            .stats
            .counters
            .spent_pusd
            .saturating_add(crate::pricing::usd_to_pico(cost));
        if let Some((stream, elapsed)) = slow {
            live.stats.record_first_token(stream, elapsed);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.deployment.live().breaker.release(permit);
        }
    }
}

struct InFlight {
    id: u64,
    candidate: usize,
    started: Instant,
    hedge: bool,
    lease: Lease,
}

enum Event<T> {
    Done(u64, Result<T>),
    Hedge,
}

/// Sleeps on the hedge timer when there is one, else never wakes.
async fn hedge_due(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

struct Run<'p, 'r, 'a, T> {
    plan: &'p mut Plan<'r>,
    rng: &'p Mutex<StdRng>,
    tried: Vec<bool>,
    excluded: Vec<bool>,
    round: u32,
    launched: u32,
    budget: u32,
    hedged: bool,
    next_id: u64,
    running: FuturesUnordered<BoxFuture<'a, (u64, Result<T>)>>,
    in_flight: Vec<InFlight>,
    attempts: Vec<Attempt>,
    hedge_timer: Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
}

impl<'a, T: Send + 'a> Run<'_, '_, 'a, T> {
    /// The best untried candidate that `take` takes, with what it returned. Walks the ranked
    /// candidates first and ranks the rest only if none of those will do.
    fn first_untried<X>(
        &mut self,
        mut take: impl FnMut(&Candidate<'_>) -> Option<X>,
    ) -> Option<(usize, X)> {
        let mut from = 0;
        loop {
            let end = self.plan.ranked;
            for i in from..end {
                if self.tried[i]
                    || self.excluded[i]
                    || self.in_flight.iter().any(|f| f.candidate == i)
                {
                    continue;
                }
                if let Some(taken) = take(&self.plan.candidates[i]) {
                    return Some((i, taken));
                }
            }
            if end == self.plan.candidates.len() {
                return None;
            }
            self.plan.rank_all();
            from = end;
        }
    }

    /// The best untried candidate that may be called now, with leave to call it.
    fn pick(&mut self, now: Instant) -> Option<(usize, Lease)> {
        self.first_untried(|c| Lease::acquire(c.deployment, now, false))
    }

    /// The best untried candidate that may be called now, without taking leave yet.
    fn next_available(&mut self, now: Instant) -> Option<usize> {
        self.first_untried(|c| c.deployment.available(now).then_some(()))
            .map(|(i, ())| i)
    }

    fn launch<F>(&mut self, candidate: usize, lease: Lease, hedge: bool, call: &F)
    where
        F: Fn(Arc<Deployment>) -> BoxFuture<'a, Result<T>>,
    {
        let deployment = Arc::clone(self.plan.candidates[candidate].deployment);
        self.tried[candidate] = true;
        self.launched += 1;
        self.hedged |= hedge;
        let id = self.next_id;
        self.next_id += 1;
        let call = call(Arc::clone(&deployment));
        let limit = self.plan.route.ttft_timeout;
        let name = deployment.id();
        self.running.push(Box::pin(async move {
            let result = match limit {
                None => call.await,
                Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                    Err(Error::upstream_timeout(format!(
                        "Deployment `{name}` produced no first token within {} ms.",
                        limit.as_millis()
                    )))
                }),
            };
            (id, result)
        }));
        self.in_flight.push(InFlight {
            id,
            candidate,
            started: Instant::now(),
            hedge,
            lease,
        });
        if !hedge
            && !self.hedged
            && let Some(hedging) = &self.plan.route.hedge
        {
            let delay = hedging.delay(deployment.live().stats.first_token(self.plan.stream));
            self.hedge_timer = delay.map(|d| Box::pin(tokio::time::sleep(d)));
        }
    }

    fn past_deadline(&self, at: Instant) -> bool {
        self.deadline.is_some_and(|deadline| at >= deadline)
    }

    /// Starts the next attempt after a failure: the next untried candidate, else (after a
    /// backoff) another round over all of them. `false` when the budget, the deadline or the
    /// candidates are exhausted.
    async fn fail_over<F>(&mut self, call: &F) -> bool
    where
        F: Fn(Arc<Deployment>) -> BoxFuture<'a, Result<T>>,
    {
        if self.launched >= self.budget || self.past_deadline(Instant::now()) {
            return false;
        }
        if let Some((i, lease)) = self.pick(Instant::now()) {
            self.launch(i, lease, false, call);
            return true;
        }
        if self.excluded.iter().all(|e| *e) {
            return false;
        }
        self.round += 1;
        let delay = self
            .plan
            .route
            .backoff
            .delay(self.round, &mut *lock(self.rng));
        let Some(wake) = Instant::now().checked_add(delay) else {
            return false;
        };
        if self.past_deadline(wake) {
            return false;
        }
        tokio::time::sleep_until(wake).await;
        self.tried.fill(false);
        match self.pick(Instant::now()) {
            Some((i, lease)) => {
                self.launch(i, lease, false, call);
                true
            }
            None => false,
        }
    }

    fn on_hedge_timer<F>(&mut self, call: &F)
    where
        F: Fn(Arc<Deployment>) -> BoxFuture<'a, Result<T>>,
    {
        self.hedge_timer = None;
        let route = Arc::clone(&self.plan.route);
        let Some(hedging) = &route.hedge else {
            return;
        };
        let now = Instant::now();
        if self.hedged || self.launched >= self.budget || self.past_deadline(now) {
            return;
        }
        // Budget is only spent when there is somewhere to hedge to.
        let Some(candidate) = self.next_available(now) else {
            return;
        };
        if !hedging.try_spend() {
            return;
        }
        let deployment = self.plan.candidates[candidate].deployment;
        if let Some(lease) = Lease::acquire(deployment, now, true) {
            tracing::debug!(deployment = %deployment.id(), "hedging a slow first attempt");
            self.launch(candidate, lease, true, call);
        }
    }

    fn take(&mut self, id: u64) -> Option<InFlight> {
        let position = self.in_flight.iter().position(|f| f.id == id)?;
        Some(self.in_flight.remove(position))
    }

    /// Drops every attempt still running (which cancels its upstream call) and records it,
    /// with its estimated cost: the upstream has read the prompt.
    fn cancel_rest(&mut self) {
        self.running = FuturesUnordered::new();
        for flight in self.in_flight.drain(..) {
            let candidate = &self.plan.candidates[flight.candidate];
            let cost = crate::router::estimate::estimated_cost(
                &candidate.deployment.price,
                candidate.prompt_tokens,
                0.0,
            );
            let elapsed = flight.started.elapsed();
            let slow = (!flight.hedge).then_some((self.plan.stream, elapsed));
            flight.lease.cancelled(cost, slow);
            self.attempts.push(Attempt {
                deployment: Arc::clone(candidate.deployment),
                elapsed,
                error: None,
                hedge: flight.hedge,
                cancelled: true,
                cost_pico: crate::pricing::usd_to_pico(cost),
            });
        }
    }
}

/// Runs the attempts of one request. `call` makes one upstream call and resolves at its first
/// token (streams) or answer. The attempts share the image URLs they fetch.
pub async fn execute<'a, T, F>(
    plan: &mut Plan<'_>,
    rng: &Mutex<StdRng>,
    call: F,
) -> std::result::Result<Won<T>, Failed>
where
    T: Send + 'a,
    F: Fn(Arc<Deployment>) -> BoxFuture<'a, Result<T>>,
{
    crate::images::fetched_once(attempts(plan, rng, call)).await
}

async fn attempts<'a, T, F>(
    plan: &mut Plan<'_>,
    rng: &Mutex<StdRng>,
    call: F,
) -> std::result::Result<Won<T>, Failed>
where
    T: Send + 'a,
    F: Fn(Arc<Deployment>) -> BoxFuture<'a, Result<T>>,
{
    let count = plan.candidates.len();
    let budget = plan.budget();
    let deadline = plan.route.total_timeout.map(|t| plan.started + t);
    if let Some(hedging) = &plan.route.hedge {
        hedging.credit();
    }
    let mut run: Run<'_, '_, 'a, T> = Run {
        plan,
        rng,
        tried: vec![false; count],
        excluded: vec![false; count],
        round: 0,
        launched: 0,
        budget,
        hedged: false,
        next_id: 0,
        running: FuturesUnordered::new(),
        in_flight: Vec::new(),
        attempts: Vec::new(),
        hedge_timer: None,
        deadline,
    };
    let Some((first, lease)) = run.pick(Instant::now()) else {
        return Err(Failed {
            error: unavailable(run.plan),
            attempts: Vec::new(),
        });
    };
    run.launch(first, lease, false, &call);
    let mut last_error: Option<Error> = None;
    loop {
        if run.running.is_empty() {
            return Err(Failed {
                error: last_error.unwrap_or_else(|| Error::internal("no attempt was made")),
                attempts: run.attempts,
            });
        }
        let event = {
            let Run {
                running,
                hedge_timer,
                ..
            } = &mut run;
            tokio::select! {
                biased;
                Some((id, result)) = running.next() => Event::Done(id, result),
                () = hedge_due(hedge_timer) => Event::Hedge,
            }
        };
        match event {
            Event::Hedge => run.on_hedge_timer(&call),
            Event::Done(id, result) => {
                let Some(flight) = run.take(id) else {
                    continue;
                };
                let elapsed = flight.started.elapsed();
                let deployment = Arc::clone(run.plan.candidates[flight.candidate].deployment);
                let stream = run.plan.stream;
                match result {
                    Ok(value) => {
                        flight.lease.succeeded(stream, elapsed, flight.hedge);
                        run.attempts.push(Attempt {
                            deployment,
                            elapsed,
                            error: None,
                            hedge: flight.hedge,
                            cancelled: false,
                            cost_pico: 0,
                        });
                        run.cancel_rest();
                        return Ok(Won {
                            value,
                            candidate: flight.candidate,
                            started: flight.started,
                            first_token: elapsed,
                            attempts: run.attempts,
                        });
                    }
                    Err(error) => {
                        tracing::info!(
                            deployment = %deployment.id(),
                            status = error.status(),
                            retryable = error.retryable,
                            hedge = flight.hedge,
                            "attempt failed: {}",
                            error.message
                        );
                        flight.lease.failed(&error, stream, elapsed);
                        run.attempts.push(Attempt {
                            deployment,
                            elapsed,
                            error: Some(error.clone()),
                            hedge: flight.hedge,
                            cancelled: false,
                            cost_pico: 0,
                        });
                        match retry::verdict(&error) {
                            Verdict::Stop => {
                                run.cancel_rest();
                                return Err(Failed {
                                    error,
                                    attempts: run.attempts,
                                });
                            }
                            Verdict::OtherDeployment => run.excluded[flight.candidate] = true,
                            Verdict::Retry => {}
                        }
                        last_error = Some(error);
                        if !flight.hedge {
                            // The timer was this attempt's; a failover arms its own.
                            run.hedge_timer = None;
                        }
                        if run.running.is_empty() && !run.fail_over(&call).await {
                            return Err(Failed {
                                error: last_error
                                    .unwrap_or_else(|| Error::internal("no attempt was made")),
                                attempts: run.attempts,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Why nothing could be tried: every candidate is cooling down after a `Retry-After`, or its
/// breaker is open. Says when to come back.
fn unavailable(plan: &Plan) -> Error {
    let now = Instant::now();
    let mut cooling: Option<Duration> = None;
    let mut reopening: Option<Duration> = None;
    for candidate in &plan.candidates {
        let live = candidate.deployment.live();
        if let Some(until) = live.cooldown_until.filter(|u| *u > now) {
            let wait = until - now;
            cooling = Some(cooling.map_or(wait, |c| c.min(wait)));
        }
        if let Some(wait) = live.breaker.reopens_in(now) {
            reopening = Some(reopening.map_or(wait, |r| r.min(wait)));
        }
    }
    let model = &plan.model;
    let mut error = match cooling {
        Some(wait) => Error::from_upstream_status(
            429,
            format!(
                "Every deployment of `{model}` asked to wait; retry after {} ms.",
                wait.as_millis()
            ),
        )
        .with_retry_after(Some(wait))
        .with_code("deployments_rate_limited"),
        None => {
            let wait = reopening.unwrap_or(Duration::from_secs(1));
            Error::from_upstream_status(
                503,
                format!(
                    "Every deployment of `{model}` is failing and its circuit breaker is open; retry after {} ms.",
                    wait.as_millis()
                ),
            )
            .with_retry_after(Some(wait))
            .with_code("circuit_open")
        }
    };
    // Decided here, not answered by an upstream.
    error.upstream_status = None;
    error
}
