//! Shadow traffic: a copy of a share of a route's chat requests goes, in the background, to a
//! shadow deployment (or the first available deployment of a shadow model). The client's
//! answer is the primary's and never waits for the copy; the copy's answer is measured
//! (latency, tokens, cost, errors, whether its tool calls' arguments parse as JSON) beside the
//! primary's for the same requests, per (primary, shadow) pair, and then dropped. Copies in
//! flight are bounded per route: beyond the bound a copy is dropped and counted.
//!
//! Copies are sent unstreamed whatever the client asked, and do not count in the shadow
//! deployment's routing statistics or breaker (they are not traffic the router chose).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::split::{Shadow, Target};
use super::{Deployment, Upstream, lock};
use crate::chat::{ChatRequest, ChatResponse, Usage};
use crate::error::Error;

/// Latencies kept per side for percentiles.
const LATENCY_WINDOW: usize = 1024;

/// What one call produced, on either side.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Outcome {
    pub latency: Duration,
    pub usage: Option<Usage>,
    pub cost_pico: u64,
    pub error: bool,
    pub tool_calls: u64,
    /// Tool calls whose arguments are not a JSON text.
    pub bad_tool_calls: u64,
}

impl Outcome {
    /// An answer: its usage priced at the deployment's price, its tool calls checked.
    pub fn answered(answer: &ChatResponse, latency: Duration, deployment: &Deployment) -> Self {
        let calls = &answer.message.tool_calls;
        let bad = calls
            .iter()
            .filter(|c| serde_json::from_str::<serde::de::IgnoredAny>(&c.arguments).is_err())
            .count();
        Self {
            latency,
            usage: answer.usage,
            cost_pico: answer
                .usage
                .map_or(0, |u| crate::pricing::cost(&deployment.price, &u).total()),
            error: false,
            tool_calls: calls.len() as u64,
            bad_tool_calls: bad as u64,
        }
    }

    fn of(
        result: &Result<ChatResponse, Error>,
        latency: Duration,
        deployment: &Deployment,
    ) -> Self {
        match result {
            Ok(answer) => Self::answered(answer, latency, deployment),
            Err(_) => Self {
                latency,
                error: true,
                ..Self::default()
            },
        }
    }
}

/// One side's totals.
#[derive(Debug, Default)]
struct Side {
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_pico: u64,
    tool_calls: u64,
    bad_tool_calls: u64,
    latency_ms_sum: f64,
    /// The latest latencies of answered calls, for percentiles.
    latencies: VecDeque<f64>,
}

impl Side {
    fn add(&mut self, outcome: &Outcome) {
        self.requests += 1;
        if outcome.error {
            self.errors += 1;
            return;
        }
        let ms = outcome.latency.as_secs_f64() * 1000.0;
        self.latency_ms_sum += ms;
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(ms);
        if let Some(usage) = outcome.usage {
            self.input_tokens += usage.input_tokens;
            self.output_tokens += usage.output_tokens;
        }
        self.cost_pico = self.cost_pico.saturating_add(outcome.cost_pico);
        self.tool_calls += outcome.tool_calls;
        self.bad_tool_calls += outcome.bad_tool_calls;
    }

    fn view(&self) -> SideView {
        let answered = self.requests - self.errors;
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let percentile = |p: f64| {
            (!sorted.is_empty()).then(|| {
                let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
                sorted[at.min(sorted.len() - 1)]
            })
        };
        SideView {
            requests: self.requests,
            errors: self.errors,
            error_rate: if self.requests == 0 {
                0.0
            } else {
                self.errors as f64 / self.requests as f64
            },
            latency_ms_mean: (answered > 0).then(|| self.latency_ms_sum / answered as f64),
            latency_ms_p50: percentile(0.5),
            latency_ms_p95: percentile(0.95),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: crate::pricing::pico_to_usd(self.cost_pico),
            tool_calls: self.tool_calls,
            tool_calls_invalid_json: self.bad_tool_calls,
        }
    }
}

/// One side's figures as `GET /v1/crossbar/shadow` shows them.
#[derive(Clone, Debug, Serialize, PartialEq, schemars::JsonSchema)]
pub struct SideView {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// Over answered calls; `null` before any.
    pub latency_ms_mean: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub tool_calls: u64,
    /// Tool calls whose arguments did not parse as JSON.
    pub tool_calls_invalid_json: u64,
}

/// A primary and its shadow compared on the same requests.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ShadowView {
    pub route: String,
    /// The deployment that answered the client (`model@provider`).
    pub primary: String,
    pub shadow: String,
    pub primary_figures: SideView,
    pub shadow_figures: SideView,
    /// Copies not sent because the route's copies in flight were at their bound.
    pub dropped: u64,
    /// Copies sent and not yet answered.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct Pair {
    primary: Side,
    shadow: Side,
    dropped: u64,
    in_flight: u64,
}

/// A shadow copy's answer, for whoever keeps records of them (the gateway's usage ledger).
#[derive(Clone, Debug)]
pub struct ShadowAnswer {
    pub route: String,
    /// The deployment that answered the client.
    pub primary: String,
    /// The shadow deployment the copy went to.
    pub deployment: Arc<Deployment>,
    pub latency: Duration,
    pub usage: Option<Usage>,
    pub cost_pico: u64,
    /// Why the copy failed, if it did.
    pub error: Option<Error>,
}

/// Told of every shadow answer.
pub type ShadowHook = Arc<dyn Fn(ShadowAnswer) + Send + Sync>;

/// Every pair's figures, since the gateway started, and who else hears of each answer.
#[derive(Default)]
pub(crate) struct Book {
    pairs: Mutex<BTreeMap<(String, String, String), Pair>>,
    hook: std::sync::RwLock<Option<ShadowHook>>,
}

impl std::fmt::Debug for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Book").finish_non_exhaustive()
    }
}

impl Book {
    pub fn set_hook(&self, hook: ShadowHook) {
        *self
            .hook
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hook);
    }

    /// Takes over `from`'s figures and hook (a reload); copies still in flight on the old
    /// router finish into its own book.
    pub fn adopt(&self, from: &Book) {
        let pairs = std::mem::take(&mut *lock(&from.pairs));
        *lock(&self.pairs) = pairs;
        if let Some(hook) = from.hook() {
            self.set_hook(hook);
        }
    }

    pub(super) fn hook(&self) -> Option<ShadowHook> {
        self.hook
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn with(&self, key: &(String, String, String), f: impl FnOnce(&mut Pair)) {
        let mut pairs = lock(&self.pairs);
        if let Some(pair) = pairs.get_mut(key) {
            f(pair);
        } else {
            f(pairs.entry(key.clone()).or_default());
        }
    }

    pub fn views(&self) -> Vec<ShadowView> {
        lock(&self.pairs)
            .iter()
            .map(|((route, primary, shadow), pair)| ShadowView {
                route: route.clone(),
                primary: primary.clone(),
                shadow: shadow.clone(),
                primary_figures: pair.primary.view(),
                shadow_figures: pair.shadow.view(),
                dropped: pair.dropped,
                in_flight: pair.in_flight,
            })
            .collect()
    }
}

/// Where a copy goes: the named deployment, or the model's first available one.
pub(crate) fn pick<'d>(
    target: &Target,
    deployments: &'d [Arc<Deployment>],
    now: Instant,
) -> Option<&'d Arc<Deployment>> {
    deployments
        .iter()
        .find(|d| target.matches(d) && d.available(now))
        .or_else(|| deployments.iter().find(|d| target.matches(d)))
}

/// Sends the copy in the background and records both sides when it is answered; a copy that
/// finds the route's copies at their bound is dropped and counted, and the primary's figures
/// are then left out too, so both sides cover the same requests.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
pub(crate) fn send(
    book: &Arc<Book>,
    gate: &Shadow,
    upstream: &Arc<dyn Upstream>,
    route: &str,
    primary: &Deployment,
    primary_outcome: Outcome,
    shadow: Arc<Deployment>,
    request: &ChatRequest,
) {
    let key = (route.to_owned(), primary.id(), shadow.id());
    let Ok(permit) = Arc::clone(&gate.permits).try_acquire_owned() else {
        book.with(&key, |pair| pair.dropped += 1);
        return;
    };
    book.with(&key, |pair| {
        pair.primary.add(&primary_outcome);
        pair.in_flight += 1;
    });
    let mut copy = request.clone();
    copy.stream = false;
    let book = Arc::clone(book);
    let upstream = Arc::clone(upstream);
    tokio::spawn(async move {
        let started = Instant::now();
        let result = upstream.chat(Arc::clone(&shadow), &copy).await;
        let outcome = Outcome::of(&result, started.elapsed(), &shadow);
        if let Err(error) = &result {
            tracing::debug!(shadow = %shadow.id(), %error, "shadow copy failed");
        }
        book.with(&key, |pair| {
            pair.shadow.add(&outcome);
            pair.in_flight -= 1;
        });
        drop(permit);
        if let Some(hook) = book.hook() {
            let (route, primary, _) = key;
            hook(ShadowAnswer {
                route,
                primary,
                deployment: shadow,
                latency: outcome.latency,
                usage: outcome.usage,
                cost_pico: outcome.cost_pico,
                error: result.err(),
            });
        }
    });
}
