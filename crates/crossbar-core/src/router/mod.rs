//! Picks the deployment that serves each call, and keeps picking until one answers.
//!
//! A request falls under a route (its model's, the one `x-crossbar-route` names, else
//! `routes.default`); the route's constraints and the caller's narrowing decide the candidates
//! (the model's deployments, then its fallbacks'); the route's objective ranks them from live
//! statistics and this request's estimated cost; then attempts run in ranked order, failing
//! over on retryable errors, skipping deployments that sent `Retry-After` or whose breaker is
//! open, backing off between rounds and hedging a slow first attempt. A stream is handed to
//! the caller only once it produced its first content event, so everything before that fails
//! over invisibly.
//!
//! One concern per file: [`catalog`] (routes, constraints, caller preferences), [`policy`]
//! (ranking, exploration), [`stats`], [`breaker`], [`retry`] (verdicts, backoff), [`hedge`],
//! [`estimate`] (tokens and cost), [`affinity`], [`attempt`] (the loop) and [`upstream`] (the
//! call itself, swappable for simulation).

mod affinity;
mod attempt;
mod breaker;
mod capabilities;
mod carry;
mod catalog;
mod estimate;
mod glance;
mod headroom;
mod hedge;
mod peers;
mod policy;
mod retry;
mod shadow;
mod split;
mod stats;
mod upstream;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::time::Instant;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent, Usage};
use crate::client::{ChatStream, ModelClient};
use crate::config::{Config, ConfigError, HostedTools, Price, UnknownFields};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};
use crate::provider::Provider;

use attempt::{Plan, Won};
use catalog::Route;
use policy::Candidate;

pub use breaker::{BreakerSettings, BreakerState};
pub use capabilities::{Accepts, Needs, needs};
pub use catalog::{
    AttemptLog, KeyScope, MAX_COST_HEADER, PROVIDER_HEADER, Preferences, ROUTE_HEADER, allowed,
    glob,
};
pub use estimate::{Prompt, Tokenizer};
pub use headroom::{HeadroomReport, HeadroomView, Limit, Quota, now_ms as wall_ms};
pub use peers::{HealthReport, PeerHealth};
pub use shadow::{ShadowAnswer, ShadowHook, ShadowView, SideView};
pub use split::{Shadow, Target};
pub use stats::{Counters, SeriesView, StatsView};
pub use upstream::{HttpUpstream, Upstream};

/// Locks ignoring poisoning: every critical section here leaves its data consistent, and one
/// panicking request must not stop routing for all.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One logical model served by one provider.
#[derive(Debug)]
pub struct Deployment {
    pub model: String,
    pub target: String,
    pub price: Price,
    pub provider: Arc<Provider>,
    /// Position in the catalog (models and their deployments in config order).
    pub index: usize,
    pub tokenizer: Tokenizer,
    /// What it accepts (capabilities, context, output), from its entry or the catalog.
    pub accepts: Accepts,
    live: Mutex<Live>,
    /// What ranking reads of `live`, readable without its lock.
    glance: glance::Glance,
    /// The quota the provider last reported left, and when it resets.
    headroom: headroom::Slot,
}

/// What the router learns about a deployment as it calls it.
#[derive(Debug)]
pub(crate) struct Live {
    pub stats: stats::Stats,
    pub breaker: breaker::Breaker,
    /// Honouring `Retry-After`: no call before then.
    pub cooldown_until: Option<Instant>,
    /// Other replicas' reports, merged; `None` without shared state.
    pub peers: Option<PeerHealth>,
}

impl Deployment {
    /// A stable name for logs and headers: `model@provider`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.model, self.provider.name)
    }

    pub(crate) fn live(&self) -> glance::LiveGuard<'_> {
        glance::LiveGuard::new(lock(&self.live), &self.glance)
    }

    /// Whether a call may start now: not cooling down, breaker not open.
    pub fn available(&self, now: Instant) -> bool {
        let live = self.live();
        live.cooldown_until.is_none_or(|until| until <= now) && live.breaker.allows(now)
    }

    /// Takes in the quota an answer from this deployment reported (see [`headroom`]).
    pub fn observe_quota(&self, quota: Quota) {
        self.headroom
            .observe(quota, Instant::now(), headroom::now_ms());
    }

    /// This replica's latest headroom reading, while it holds, for the other replicas.
    pub fn headroom_report(&self, now: Instant, now_ms: i64) -> Option<HeadroomReport> {
        self.headroom.report(now, now_ms)
    }

    /// Takes in another replica's headroom reading when it is newer than this one's.
    pub fn apply_headroom(&self, report: HeadroomReport, now: Instant, now_ms: i64) {
        self.headroom.apply(report, now, now_ms);
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.live().breaker.state(Instant::now())
    }

    pub fn view(&self) -> DeploymentView {
        let now = Instant::now();
        let live = self.live();
        DeploymentView {
            id: self.id(),
            model: self.model.clone(),
            provider: self.provider.name.clone(),
            cloud: self.provider.cloud.clone(),
            region: self.provider.region.clone(),
            target: self.target.clone(),
            price: PriceView {
                input: self.price.input,
                output: self.price.output,
                cached_input: self.price.cached_input,
                cache_write: self.price.cache_write,
            },
            breaker: BreakerView {
                state: live.breaker.state(now),
                failures_in_window: live.breaker.failures_in_window(),
                reopens_in_ms: live.breaker.reopens_in(now).map(millis),
            },
            retry_after_ms: live
                .cooldown_until
                .filter(|until| *until > now)
                .map(|until| millis(until - now)),
            stats: live.stats.view(),
            peers: live.peers,
            headroom: self.headroom.view(now),
        }
    }
}

/// Expected time to the first token (streams) or answer, and the share of failing calls, from
/// this replica's statistics and, with shared state, the other replicas' weighted by samples.
fn expectations(live: &Live, stream: bool) -> (Option<f64>, f64) {
    let local_failure = live.stats.error_rate + live.stats.rate_limit_rate;
    let Some(peers) = live.peers else {
        return (live.stats.expected_ms(stream), local_failure);
    };
    let (ours, theirs) = if stream {
        (&live.stats.ttft, (peers.ttft_ms, peers.ttft_samples))
    } else {
        (
            &live.stats.latency,
            (peers.latency_ms, peers.latency_samples),
        )
    };
    let expected = peers::blend(ours, Some(theirs)).or_else(|| live.stats.expected_ms(stream));
    let peer_failure = peers.error_rate + peers.rate_limit_rate;
    let n = peers.replicas as f64;
    (expected, (local_failure + peer_failure * n) / (n + 1.0))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A deployment as `GET /v1/crossbar/deployments` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DeploymentView {
    pub id: String,
    pub model: String,
    pub provider: String,
    pub cloud: String,
    pub region: String,
    pub target: String,
    /// USD per million tokens.
    pub price: PriceView,
    pub breaker: BreakerView,
    /// Time left before the deployment is called again after a `Retry-After`.
    pub retry_after_ms: Option<u64>,
    pub stats: StatsView,
    /// What the other replicas measured, when they share state through Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeerHealth>,
    /// The quota the provider last reported left (`null`: no reading, or it reset).
    pub headroom: Option<HeadroomView>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PriceView {
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BreakerView {
    pub state: BreakerState,
    pub failures_in_window: usize,
    pub reopens_in_ms: Option<u64>,
}

/// One upstream call made for a request.
#[derive(Debug)]
pub struct Attempt {
    pub deployment: Arc<Deployment>,
    pub elapsed: Duration,
    /// `None` when the attempt succeeded or was cancelled (see `cancelled`).
    pub error: Option<Error>,
    /// Started by hedging a slow attempt rather than after a failure.
    pub hedge: bool,
    /// Cancelled because another attempt answered first.
    pub cancelled: bool,
    /// In picodollars: [`crate::pricing::cost`] of the reported usage for the answer
    /// (non-streams), the router's estimate for a cancelled attempt (the upstream read the
    /// prompt), 0 for a failed one. What the usage record bills for the attempt.
    pub cost_pico: u64,
}

/// A result with the deployment that produced it and every attempt made on the way.
#[derive(Debug)]
pub struct Routed<T> {
    pub value: T,
    pub deployment: Arc<Deployment>,
    pub attempts: Vec<Attempt>,
    /// The route whose policy applied.
    pub route: String,
    /// Cost of every attempt in picodollars, when known now (a stream's is known only at its
    /// end): the sum of the attempts' `cost_pico`, what the usage record bills and the
    /// `x-crossbar-cost-usd` header says.
    pub cost_pico: Option<u64>,
    /// What the winning deployment was expected to cost before the call, in USD as a float:
    /// the ranking estimate, not money charged.
    pub estimated_cost_usd: f64,
    /// Whether prompt-cache affinity chose the deployment.
    pub affinity: bool,
}

/// Which canary models join a request's candidates.
#[derive(Clone, Copy, Debug)]
enum Extra {
    /// Every split's (what a budget reserves for).
    Splits,
    /// The one whose band holds the conversation's point, if any (`None`: not a chat).
    Split(Option<f64>),
}

/// What a chat or embedding call is expected to produce, for its cost estimate.
#[derive(Clone, Copy, Debug)]
enum Output {
    Chat { max_tokens: Option<u32> },
    Nothing,
}

pub struct Router {
    deployments: Vec<Arc<Deployment>>,
    models: BTreeMap<String, Vec<Arc<Deployment>>>,
    routes: BTreeMap<String, Arc<Route>>,
    default_route: Arc<Route>,
    /// `[aliases]` without `*`: requested id to model or route name.
    aliases: BTreeMap<String, String>,
    /// `[aliases]` with `*`, the most specific first (see [`by_specificity`]).
    patterns: Vec<(String, String)>,
    upstream: Arc<dyn Upstream>,
    affinity: affinity::Affinity,
    /// The replicas' shared store (Redis), once connected: reasoning and affinity go through it.
    shared: crate::shared_kv::SharedSlot,
    /// Exploration and backoff jitter; seeded so a run replays.
    rng: Mutex<StdRng>,
    /// Shadow copies' figures beside their primaries'.
    shadows: Arc<shadow::Book>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Orders alias patterns most specific first: more literal (non-`*`) characters, then name
/// order, so which pattern wins never depends on the file's order.
fn by_specificity(a: &str, b: &str) -> std::cmp::Ordering {
    let literal = |p: &str| p.chars().filter(|c| *c != '*').count();
    literal(b).cmp(&literal(a)).then_with(|| a.cmp(b))
}

/// A deployment a request may use, with the request's prompt tokens under its tokenizer.
type Priced<'r> = (&'r Arc<Deployment>, f64);

/// What the ingress applies to a request on its route before routing it.
#[derive(Clone, Debug)]
pub struct Policies {
    /// The route whose policies these are (a response cache is kept per route).
    pub route: String,
    /// The logical model the requested name resolved to (aliases of one model share cached
    /// answers).
    pub model: String,
    pub hosted_tools: HostedTools,
    pub unknown_fields: UnknownFields,
    pub guardrails: Arc<crate::guardrails::Rules>,
    /// The route's response cache settings; `None` when the route does not cache.
    pub cache: Option<Arc<crate::cache::CacheConfig>>,
    /// Whether request and answer bodies are kept with the usage record.
    pub payload_log: bool,
    /// Where copies of a share of the route's requests go; `None` without a shadow.
    pub shadow: Option<Arc<Shadow>>,
}

impl Router {
    /// Builds providers and the catalog. `endpoints` overrides provider endpoints by name
    /// (simulators started on ephemeral ports).
    pub fn from_config(
        config: &Config,
        endpoints: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let router = Self::with_upstream(config, endpoints, Arc::new(HttpUpstream))?;
        if router
            .deployments
            .iter()
            .any(|d| d.tokenizer == Tokenizer::OpenAi)
        {
            estimate::warm_up();
        }
        Ok(router)
    }

    /// As [`Router::from_config`], with every upstream call made by `upstream`.
    pub fn with_upstream(
        config: &Config,
        endpoints: &HashMap<String, String>,
        upstream: Arc<dyn Upstream>,
    ) -> Result<Self, ConfigError> {
        let shared = crate::shared_kv::SharedSlot::default();
        let reasoning = crate::reasoning_memory::Tiers::new(shared.clone());
        let mut providers = HashMap::new();
        let catalog = crate::catalog::Catalog::shared();
        let mut kinds = HashMap::new();
        for provider in &config.providers {
            kinds.insert(provider.name.get_ref().clone(), provider.kind);
            let name = provider.name.get_ref();
            let built = Provider::from_config(
                provider,
                endpoints.get(name).map(String::as_str),
                reasoning.clone(),
            )?;
            providers.insert(
                name.clone(),
                (Arc::new(built), crate::kinds::tokenizer(provider)),
            );
        }
        let default_config = config.routes.get("default").map(|r| r.get_ref());
        let breaker_settings = BreakerSettings::from_config(
            default_config
                .and_then(|r| r.breaker.as_ref())
                .map(|b| b.get_ref()),
        );
        let mut deployments = Vec::new();
        let mut models = BTreeMap::new();
        for model in &config.models {
            let name = model.name.get_ref().clone();
            let mut own = Vec::new();
            for d in &model.deployments {
                let (provider, tokenizer) = providers
                    .get(d.provider.get_ref())
                    .cloned()
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "model `{name}`: unknown provider `{}`",
                            d.provider.get_ref()
                        ))
                    })?;
                // Simulated providers take the catalog's word only through their entry.
                let listed = kinds
                    .get(d.provider.get_ref())
                    .filter(|kind| **kind != crate::config::ProviderKind::Sim)
                    .and_then(|kind| catalog.find(*kind, &d.target));
                let live = Live {
                    stats: stats::Stats::default(),
                    breaker: breaker::Breaker::new(breaker_settings),
                    cooldown_until: None,
                    peers: None,
                };
                let deployment = Arc::new(Deployment {
                    model: name.clone(),
                    target: d.target.clone(),
                    price: d.price,
                    provider,
                    index: deployments.len(),
                    tokenizer,
                    accepts: Accepts::resolve(d, listed),
                    glance: glance::Glance::of(&live),
                    live: Mutex::new(live),
                    headroom: headroom::Slot::new(),
                });
                deployments.push(Arc::clone(&deployment));
                own.push(deployment);
            }
            models.insert(name, own);
        }
        let routes: BTreeMap<String, Arc<Route>> = config
            .routes
            .iter()
            .map(|(name, route)| {
                let resolved = Route::resolve(name, Some(route.get_ref()), default_config);
                (name.clone(), Arc::new(resolved))
            })
            .collect();
        let default_route = routes
            .get("default")
            .cloned()
            .unwrap_or_else(|| Arc::new(Route::resolve("default", None, None)));
        let (patterns, aliases): (Vec<_>, Vec<_>) = config
            .aliases
            .iter()
            .map(|(alias, target)| (alias.clone(), target.get_ref().clone()))
            .partition(|(alias, _)| alias.contains('*'));
        let mut patterns = patterns;
        patterns.sort_by(|(a, _), (b, _)| by_specificity(a, b));
        Ok(Self {
            deployments,
            models,
            routes,
            default_route,
            aliases: aliases.into_iter().collect(),
            patterns,
            upstream,
            affinity: affinity::Affinity::default(),
            shared,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            shadows: Arc::default(),
        })
    }

    /// Shares reasoning and prompt-cache affinity with the other replicas through `shared`.
    pub fn share_state(&self, shared: Arc<dyn crate::shared_kv::SharedKv>) {
        self.shared.attach(shared);
    }

    /// Reseeds exploration and jitter (simulations compare policies on the same draws).
    pub fn set_seed(&self, seed: u64) {
        *lock(&self.rng) = StdRng::seed_from_u64(seed);
    }

    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The exact (`*`-free) aliases and what each leads to, in name order.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases
            .iter()
            .map(|(alias, target)| (alias.as_str(), target.as_str()))
    }

    /// The logical model, or the route listing models, that a requested model id stands for:
    /// a model's own name, else a route's, else an exact alias, else the most specific
    /// matching pattern (most literal characters, then name order). `None`: nothing does.
    /// Everything that looks at a request's model name goes through this first.
    pub fn resolve_model<'a>(&'a self, requested: &'a str) -> Option<&'a str> {
        if self.models.contains_key(requested) || self.lists_models(requested) {
            return Some(requested);
        }
        if let Some(target) = self.aliases.get(requested) {
            return Some(target);
        }
        self.patterns
            .iter()
            .find(|(pattern, _)| glob(pattern, requested))
            .map(|(_, target)| target.as_str())
    }

    /// Whether `name` is a route a request may name as its model.
    fn lists_models(&self, name: &str) -> bool {
        self.routes.get(name).is_some_and(|r| !r.models.is_empty())
    }

    /// The logical name for `requested`, refused as the router would refuse it: a 404 naming
    /// the closest names the caller may use, or a 403 when the key may not use it.
    fn resolve_for<'a>(&'a self, requested: &'a str, preferences: &Preferences) -> Result<&'a str> {
        let Some(logical) = self.resolve_model(requested) else {
            return Err(Error::model_not_found_near(
                requested,
                self.usable_names(preferences),
            ));
        };
        if !preferences.key_allows_model(logical) {
            return Err(Error::permission_denied(
                format!("Your key may not use model `{logical}`."),
                "model_not_allowed",
            )
            .with_param("model"));
        }
        Ok(logical)
    }

    /// Every name a caller may ask for (models, routes that list models, exact aliases),
    /// narrowed to what its key may use, in name order.
    pub fn usable_names<'a>(
        &'a self,
        preferences: &'a Preferences,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let models = self.models.keys().map(String::as_str);
        let routes = self
            .routes
            .iter()
            .filter(|(_, r)| !r.models.is_empty())
            .map(|(name, _)| name.as_str());
        let aliases = self.aliases.keys().map(String::as_str);
        models.chain(routes).chain(aliases).filter(|name| {
            self.resolve_model(name)
                .is_some_and(|logical| preferences.key_allows_model(logical))
        })
    }

    /// The ingress policies of the route a request for `model` would use (the same route as
    /// routing picks, after alias resolution).
    pub fn policies_for(&self, model: &str, preferences: &Preferences) -> Result<Policies> {
        let logical = self.resolve_for(model, preferences)?;
        let route = self.route_for(logical, preferences)?;
        Ok(Policies {
            route: route.name.clone(),
            model: logical.to_owned(),
            hosted_tools: route.hosted_tools,
            unknown_fields: route.unknown_fields,
            guardrails: Arc::clone(&route.guardrails),
            cache: route.cache.clone(),
            payload_log: route.payload_log,
            shadow: route.shadow.clone(),
        })
    }

    /// Every route that caches answers, with its settings (the default route too, also when
    /// the file has no `routes.default`), for building one response cache per route.
    pub fn cache_configs(&self) -> impl Iterator<Item = (&str, &Arc<crate::cache::CacheConfig>)> {
        let default =
            (!self.routes.contains_key(&self.default_route.name)).then_some(&self.default_route);
        self.routes
            .values()
            .chain(default)
            .filter_map(|route| route.cache.as_ref().map(|c| (route.name.as_str(), c)))
    }

    /// Every (route, primary, shadow) pair's figures, in that order.
    pub fn shadow_figures(&self) -> Vec<ShadowView> {
        self.shadows.views()
    }

    /// Tells `hook` of every shadow copy's answer (the gateway records them in its ledger).
    pub fn on_shadow_answer(&self, hook: ShadowHook) {
        self.shadows.set_hook(hook);
    }

    /// The route's shadow and the deployment a copy of `request` goes to, when the shadow's
    /// share takes this conversation and the shadow is not the deployment that answered.
    fn shadow_target(
        &self,
        plan: &Plan<'_>,
        request: &ChatRequest,
        preferences: &Preferences,
        primary: &Deployment,
    ) -> Option<(Arc<Shadow>, Arc<Deployment>)> {
        let gate = plan.route.shadow.as_ref()?;
        let caller = preferences.key.as_ref().and_then(|k| k.id.as_deref());
        if split::point(request, caller, "shadow") >= gate.share {
            return None;
        }
        let target = shadow::pick(&gate.target, &self.deployments, Instant::now())?;
        (target.index != primary.index).then(|| (Arc::clone(gate), Arc::clone(target)))
    }

    /// Sends a copy of `request` to the route's shadow, if it takes this one (see
    /// [`Router::shadow_target`]), recording the primary's `outcome` beside it.
    fn shadow_copy(
        &self,
        plan: &Plan<'_>,
        request: &ChatRequest,
        preferences: &Preferences,
        primary: &Deployment,
        outcome: shadow::Outcome,
    ) {
        if let Some((gate, target)) = self.shadow_target(plan, request, preferences, primary) {
            shadow::send(
                &self.shadows,
                &gate,
                &self.upstream,
                &plan.route.name,
                primary,
                outcome,
                target,
                request,
            );
        }
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments.iter()
    }

    /// Every deployment's state, statistics and price.
    pub fn snapshot(&self) -> Vec<DeploymentView> {
        self.deployments.iter().map(|d| d.view()).collect()
    }

    fn route_for(&self, model: &str, preferences: &Preferences) -> Result<Arc<Route>> {
        let route = match &preferences.route {
            Some(name) => self.routes.get(name).cloned().ok_or_else(|| {
                Error::not_found(format!("Unknown route `{name}`."))
                    .with_param(ROUTE_HEADER)
                    .with_code("route_not_found")
            })?,
            None => self
                .routes
                .get(model)
                .cloned()
                .unwrap_or_else(|| Arc::clone(&self.default_route)),
        };
        preferences.check_route(&route.name)?;
        Ok(route)
    }

    /// The deployments a request may use, in config order: the model's (or, for a route
    /// named as the model, the route's models'), then the fallbacks'.
    fn eligible(
        &self,
        route: &Route,
        model: &str,
        preferences: &Preferences,
        extra: Extra,
    ) -> Result<Vec<&Arc<Deployment>>> {
        let own: Vec<&str> = if self.models.contains_key(model) {
            vec![model]
        } else {
            match self.routes.get(model) {
                Some(named) if !named.models.is_empty() => {
                    named.models.iter().map(String::as_str).collect()
                }
                _ => {
                    return Err(Error::model_not_found_near(
                        model,
                        self.usable_names(preferences),
                    ));
                }
            }
        };
        let mut names: Vec<&str> = Vec::new();
        // The key was checked against the logical name; a fallback is another model, which
        // the key must allow in its own right.
        let fallbacks = route
            .fallbacks
            .iter()
            .map(String::as_str)
            .filter(|name| preferences.key_allows_model(name));
        // A canary's model joins the candidates of the requests it takes (after the others:
        // the split moves it first); a budget reserves for every one a request may take.
        let splits = route
            .split
            .iter()
            .filter(|s| match extra {
                Extra::Splits => true,
                Extra::Split(Some(point)) => split::pick(&route.split, point) == Some(&s.target),
                Extra::Split(None) => false,
            })
            .map(|s| s.target.model())
            .filter(|name| preferences.key_allows_model(name));
        for name in own.into_iter().chain(fallbacks).chain(splits) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let everyone = catalog::unconstrained(&route.constraints) && preferences.allows_all();
        let eligible: Vec<_> = names
            .iter()
            .filter_map(|name| self.models.get(*name))
            .flatten()
            .filter(|d| everyone || (allowed(&route.constraints, d) && preferences.allows(d)))
            .collect();
        if eligible.is_empty() {
            return Err(Error::not_found(format!(
                "No deployment of model `{model}` satisfies the route's constraints and the request's {PROVIDER_HEADER}."
            ))
            .with_param("model")
            .with_code("no_eligible_deployment"));
        }
        Ok(eligible)
    }

    /// Whether the route a request for `requested` falls under splits its traffic.
    fn splits(&self, requested: &str, preferences: &Preferences) -> bool {
        self.resolve_for(requested, preferences)
            .and_then(|model| self.route_for(model, preferences))
            .is_ok_and(|route| !route.split.is_empty())
    }

    /// The logical model, the route, and each deployment the request may use with its prompt
    /// tokens under the deployment's tokenizer (before calibration); the OpenAI tokenizer runs
    /// only if needed.
    fn eligible_priced<'r: 'm, 'm>(
        &'r self,
        requested: &'m str,
        preferences: &Preferences,
        prompt: &Prompt,
        extra: Extra,
    ) -> Result<(&'m str, Arc<Route>, Vec<Priced<'r>>)> {
        let model = self.resolve_for(requested, preferences)?;
        let route = self.route_for(model, preferences)?;
        let deployments = self.eligible(&route, model, preferences, extra)?;
        let approximate = prompt.tokens(Tokenizer::Approximate);
        let openai = deployments
            .iter()
            .any(|d| d.tokenizer == Tokenizer::OpenAi)
            .then(|| prompt.tokens(Tokenizer::OpenAi));
        let priced = deployments
            .into_iter()
            .map(|deployment| {
                let raw = match deployment.tokenizer {
                    Tokenizer::OpenAi => openai.unwrap_or(approximate),
                    Tokenizer::Approximate => approximate,
                };
                (deployment, raw)
            })
            .collect();
        Ok((model, route, priced))
    }

    /// The most a request can cost, in picodollars, on any deployment it may use (its
    /// fallbacks included, narrowed by the headers and the key): its prompt as the router
    /// estimates it plus `max_output` tokens. What a budget reserves before the call.
    pub fn reservation_pico(
        &self,
        model: &str,
        preferences: &Preferences,
        prompt: &Prompt,
        max_output: u64,
    ) -> Result<u64> {
        let (_, _, deployments) =
            self.eligible_priced(model, preferences, prompt, Extra::Splits)?;
        Ok(deployments
            .iter()
            .map(|(deployment, raw)| {
                reserved_prompt_tokens(deployment, *raw)
                    .saturating_mul(crate::pricing::pico_per_token(deployment.price.input))
                    .saturating_add(
                        max_output.saturating_mul(crate::pricing::pico_per_token(
                            deployment.price.output,
                        )),
                    )
            })
            .max()
            .unwrap_or(0))
    }

    /// The prompt tokens a budget reserves for a request: the largest estimate among the
    /// deployments it may use. What `count_tokens` answers, so a client that counts before it
    /// sends sees the number its budget is held to.
    pub fn prompt_tokens(
        &self,
        model: &str,
        preferences: &Preferences,
        prompt: &Prompt,
    ) -> Result<u64> {
        let (_, _, deployments) =
            self.eligible_priced(model, preferences, prompt, Extra::Splits)?;
        Ok(deployments
            .iter()
            .map(|(deployment, raw)| reserved_prompt_tokens(deployment, *raw))
            .max()
            .unwrap_or(0))
    }

    fn plan(
        &self,
        model: &str,
        preferences: &Preferences,
        stream: bool,
        prompt: &estimate::Prompt,
        output: Output,
        chat: Option<&ChatRequest>,
    ) -> Result<Plan<'_>> {
        // Where the conversation falls among the route's canary shares (chats on a route
        // with a split only: the hash reads the whole prefix).
        let point = chat
            .filter(|_| self.splits(model, preferences))
            .map(|request| {
                let caller = preferences.key.as_ref().and_then(|k| k.id.as_deref());
                split::point(request, caller, "split")
            });
        let (model, route, deployments) =
            self.eligible_priced(model, preferences, prompt, Extra::Split(point))?;
        let deployments = match chat {
            Some(request) => capabilities::admit(model, deployments, &needs(request))?,
            None => deployments,
        };
        let now = Instant::now();
        let mut candidates: Vec<Candidate<'_>> = deployments
            .into_iter()
            .enumerate()
            .map(|(order, (deployment, raw))| {
                let seen = deployment.glance.read(stream);
                let prompt_tokens = raw * seen.calibration.unwrap_or(1.0);
                let output_tokens = match output {
                    Output::Nothing => 0.0,
                    Output::Chat { max_tokens } => {
                        let expected = seen
                            .output_tokens
                            .unwrap_or(estimate::DEFAULT_OUTPUT_TOKENS);
                        max_tokens.map_or(expected, |max| expected.min(f64::from(max)))
                    }
                };
                Candidate {
                    estimated_cost: estimate::estimated_cost(
                        &deployment.price,
                        prompt_tokens,
                        output_tokens,
                    ),
                    deployment,
                    order,
                    raw_prompt_tokens: raw,
                    prompt_tokens,
                    expected_ms: seen.expected_ms,
                    failure: seen.failure,
                    pressure: if route.headroom {
                        deployment.headroom.pressure(now)
                    } else {
                        0.0
                    },
                    score: 0.0,
                    latency: 0.0,
                }
            })
            .collect();
        if let Some(cap) = preferences.max_cost() {
            let cheapest = candidates
                .iter()
                .map(|c| c.estimated_cost)
                .fold(f64::INFINITY, f64::min);
            candidates.retain(|c| c.estimated_cost <= cap);
            if candidates.is_empty() {
                return Err(Error::invalid_field(
                    MAX_COST_HEADER,
                    format!(
                        "No deployment of `{model}` is expected to cost at most ${cap} for this request; the cheapest is estimated at ${cheapest:.6}."
                    ),
                )
                .with_code("max_cost_exceeded"));
            }
        }
        let rotation = route.rotation.fetch_add(1, Ordering::Relaxed);
        // Only as many as the attempts may reach are sorted now.
        let keep = attempt::budget(route.attempts, candidates.len());
        let ranked = policy::rank(
            route.objective,
            route.cost_weight,
            rotation,
            usize::try_from(keep).unwrap_or(usize::MAX),
            &mut candidates,
        );
        let affinity_key = chat.and_then(|request| {
            route
                .affinity
                .and_then(|a| affinity::prefix_key(request, a.min_prefix_tokens))
        });
        let mut plan = Plan {
            model: model.to_owned(),
            route,
            candidates,
            ranked,
            stream,
            started: now,
            affinity_key,
            affinity_hit: None,
            split: false,
        };
        // A canary's conversations start on it; affinity and exploration leave them there.
        let split_target = point
            .and_then(|point| split::pick(&plan.route.split, point))
            .cloned();
        plan.split = split_target.is_some_and(|target| {
            plan.rank_all();
            let (mut first, rest): (Vec<_>, Vec<_>) = plan
                .candidates
                .drain(..)
                // Not while it cools down, is broken off, or has spent its quota.
                .partition(|c| {
                    target.matches(c.deployment) && c.pressure < 1.0 && c.deployment.available(now)
                });
            let moved = !first.is_empty();
            first.extend(rest);
            plan.candidates = first;
            moved
        });
        if !plan.split {
            plan.affinity_hit = affinity_key
                .and_then(|key| self.affinity.lookup(key, now))
                .and_then(|index| to_front(&mut plan, now, |d| d.index == index));
        }
        let explored = !plan.split
            && plan.affinity_hit.is_none()
            && policy::explore(
                plan.route.objective,
                plan.route.explore,
                &mut *lock(&self.rng),
                plan.candidates.len(),
            )
            // Not onto a deployment whose quota is spent: its provider would refuse the call.
            .filter(|chosen| plan.candidates[*chosen].pressure < 1.0)
            .map(|chosen| plan.move_to_front(chosen))
            .is_some();
        if tracing::enabled!(tracing::Level::DEBUG) {
            plan.rank_all();
            let ranked: Vec<String> = plan
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "{} (score {:.4}, ~${:.6}, {})",
                        c.deployment.id(),
                        c.score,
                        c.estimated_cost,
                        c.expected_ms.map_or_else(
                            || "latency unknown".to_owned(),
                            |ms| format!("~{ms:.0} ms")
                        )
                    )
                })
                .collect();
            tracing::debug!(
                route = %plan.route.name,
                model,
                objective = plan.route.objective.as_str(),
                explored,
                affinity = plan.affinity_hit.is_some(),
                ranked = %ranked.join(", "),
                "routing decision"
            );
        }
        Ok(plan)
    }

    /// Records a non-streamed answer and builds the result.
    fn finish<T>(&self, plan: &Plan<'_>, won: Won<T>, usage: Option<Usage>) -> Routed<T> {
        let candidate = &plan.candidates[won.candidate];
        let mut attempts = won.attempts;
        let cost = Completion::new(plan, won.candidate).record(usage, None);
        if let Some(winner) = attempts
            .iter_mut()
            .rev()
            .find(|a| a.error.is_none() && !a.cancelled)
        {
            winner.cost_pico = cost;
        }
        self.remember_affinity(plan, candidate);
        Routed {
            value: won.value,
            deployment: Arc::clone(candidate.deployment),
            route: plan.route.name.clone(),
            cost_pico: Some(attempts.iter().map(|a| a.cost_pico).sum()),
            estimated_cost_usd: candidate.estimated_cost,
            affinity: plan.affinity_hit == Some(candidate.deployment.index),
            attempts,
        }
    }

    /// With a store shared by the replicas, a prefix this replica has not seen goes where
    /// another replica placed it, if that deployment is a candidate and available: the first
    /// placement is the routing policy's (cost, latency, health), and every replica follows it.
    async fn shared_affinity(&self, plan: &mut Plan<'_>) {
        let (Some(key), None, Some(settings), Some(shared)) = (
            plan.affinity_key,
            plan.affinity_hit,
            plan.route.affinity,
            self.shared.get(),
        ) else {
            return;
        };
        let Some(id) = shared.load(&shared_affinity_key(key)).await else {
            return;
        };
        let now = Instant::now();
        if let Some(index) = to_front(plan, now, |d| d.id() == id) {
            plan.affinity_hit = Some(index);
            self.affinity.remember(key, index, now, settings.ttl);
        }
    }

    /// Tells the other replicas where a prefix was placed, when that is news: a first placement,
    /// or a move away from a deployment that failed.
    async fn share_affinity(&self, plan: &Plan<'_>, candidate: &Candidate<'_>) {
        if let (Some(key), Some(settings), Some(shared)) =
            (plan.affinity_key, plan.route.affinity, self.shared.get())
            && plan.affinity_hit != Some(candidate.deployment.index)
        {
            shared
                .save(
                    &shared_affinity_key(key),
                    candidate.deployment.id(),
                    settings.ttl,
                )
                .await;
        }
    }

    fn remember_affinity(&self, plan: &Plan<'_>, candidate: &Candidate<'_>) {
        if let (Some(key), Some(settings)) = (plan.affinity_key, plan.route.affinity) {
            self.affinity.remember(
                key,
                candidate.deployment.index,
                Instant::now(),
                settings.ttl,
            );
        }
    }

    /// The plan for a chat request, streamed or not.
    fn chat_plan(
        &self,
        request: &ChatRequest,
        preferences: &Preferences,
        stream: bool,
    ) -> Result<Plan<'_>> {
        let prompt = estimate::Prompt::of_chat(request);
        let output = Output::Chat {
            max_tokens: request.max_tokens,
        };
        self.plan(
            &request.model,
            preferences,
            stream,
            &prompt,
            output,
            Some(request),
        )
    }

    /// One routing decision for `request` (prompt estimated, candidates priced and ranked,
    /// nothing called), returning the catalog index of the deployment ranked first: what
    /// `crossbar-bench` times. Not an API.
    #[doc(hidden)]
    pub fn plan_for_bench(&self, request: &ChatRequest) -> Result<usize> {
        let plan = self.chat_plan(request, &Preferences::default(), request.stream)?;
        Ok(plan.candidates.first().map_or(0, |c| c.deployment.index))
    }

    pub async fn chat(&self, request: &ChatRequest) -> Result<Routed<ChatResponse>> {
        self.chat_with(request, &Preferences::default()).await
    }

    pub async fn chat_with(
        &self,
        request: &ChatRequest,
        preferences: &Preferences,
    ) -> Result<Routed<ChatResponse>> {
        let mut plan = self.chat_plan(request, preferences, false)?;
        self.shared_affinity(&mut plan).await;
        let upstream = &self.upstream;
        let won = attempt::execute(&mut plan, &self.rng, |d| upstream.chat(d, request))
            .await
            .map_err(|failed| failed.report(preferences))?;
        self.share_affinity(&plan, &plan.candidates[won.candidate])
            .await;
        let usage = won.value.usage;
        let routed = self.finish(&plan, won, usage);
        if plan.route.shadow.is_some()
            && let Some(winner) = routed
                .attempts
                .iter()
                .rev()
                .find(|a| a.error.is_none() && !a.cancelled)
        {
            let outcome = shadow::Outcome {
                cost_pico: winner.cost_pico,
                ..shadow::Outcome::answered(&routed.value, winner.elapsed, &routed.deployment)
            };
            self.shadow_copy(&plan, request, preferences, &routed.deployment, outcome);
        }
        Ok(routed)
    }

    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<Routed<ChatStream>> {
        self.chat_stream_with(request, &Preferences::default())
            .await
    }

    /// Starts a stream on the first deployment whose stream produces a first content event,
    /// so a failure before any byte reaches the client moves on invisibly.
    pub async fn chat_stream_with(
        &self,
        request: &ChatRequest,
        preferences: &Preferences,
    ) -> Result<Routed<ChatStream>> {
        let mut plan = self.chat_plan(request, preferences, true)?;
        self.shared_affinity(&mut plan).await;
        let upstream = &self.upstream;
        let won = attempt::execute(&mut plan, &self.rng, |d| {
            Box::pin(async move {
                let name = d.id();
                let stream = upstream.chat_stream(d, request).await?;
                until_first_content(stream, &name).await
            })
        })
        .await
        .map_err(|failed| failed.report(preferences))?;
        let candidate = &plan.candidates[won.candidate];
        self.remember_affinity(&plan, candidate);
        self.share_affinity(&plan, candidate).await;
        let (prefix, rest) = won.value;
        let completion = Completion::new(&plan, won.candidate);
        // A shadow copy is sent once the primary's stream ended, with its figures.
        let at_end = self
            .shadow_target(&plan, request, preferences, candidate.deployment)
            .map(|(gate, target)| {
                let (book, upstream) = (Arc::clone(&self.shadows), Arc::clone(&self.upstream));
                let (route, primary) = (plan.route.name.clone(), Arc::clone(candidate.deployment));
                let request = request.clone();
                Box::new(move |outcome: shadow::Outcome| {
                    shadow::send(
                        &book, &gate, &upstream, &route, &primary, outcome, target, &request,
                    );
                }) as AtEnd
            });
        let stream = recorded(
            prefix,
            rest,
            completion,
            won.started,
            won.first_token,
            at_end,
        );
        Ok(Routed {
            value: stream,
            deployment: Arc::clone(candidate.deployment),
            route: plan.route.name.clone(),
            cost_pico: None,
            estimated_cost_usd: candidate.estimated_cost,
            affinity: plan.affinity_hit == Some(candidate.deployment.index),
            attempts: won.attempts,
        })
    }

    pub async fn embed(&self, request: &EmbeddingRequest) -> Result<Routed<EmbeddingResponse>> {
        self.embed_with(request, &Preferences::default()).await
    }

    pub async fn embed_with(
        &self,
        request: &EmbeddingRequest,
        preferences: &Preferences,
    ) -> Result<Routed<EmbeddingResponse>> {
        let prompt = estimate::Prompt::of_embedding(request);
        let mut plan = self.plan(
            &request.model,
            preferences,
            false,
            &prompt,
            Output::Nothing,
            None,
        )?;
        let upstream = &self.upstream;
        let won = attempt::execute(&mut plan, &self.rng, |d| upstream.embed(d, request))
            .await
            .map_err(|failed| failed.report(preferences))?;
        let usage = Usage {
            input_tokens: won.value.input_tokens,
            ..Usage::default()
        };
        Ok(self.finish(&plan, won, Some(usage)))
    }
}

/// Reads a stream up to its first content event, keeping what came before, so that a stream
/// failing before any content is an attempt that failed, not a broken answer.
async fn until_first_content(
    mut stream: ChatStream,
    deployment: &str,
) -> Result<(Vec<StreamEvent>, ChatStream)> {
    let mut prefix = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                let content = event.is_content();
                prefix.push(event);
                if content {
                    return Ok((prefix, stream));
                }
            }
            Some(Err(error)) => return Err(error),
            None if prefix.is_empty() => {
                return Err(Error::stream_interrupted(format!(
                    "Deployment `{deployment}` ended its stream before any event."
                )));
            }
            // A complete answer without content (an empty reply).
            None => return Ok((prefix, stream)),
        }
    }
}

/// What is recorded when an answer is complete: usage, cost, calibration, affinity savings.
struct Completion {
    deployment: Arc<Deployment>,
    raw_prompt_tokens: f64,
    prompt_tokens: f64,
    estimated_cost: f64,
    affinity: bool,
}

impl Completion {
    fn new(plan: &Plan<'_>, candidate: usize) -> Self {
        let c = &plan.candidates[candidate];
        Self {
            deployment: Arc::clone(c.deployment),
            raw_prompt_tokens: c.raw_prompt_tokens,
            prompt_tokens: c.prompt_tokens,
            estimated_cost: c.estimated_cost,
            affinity: plan.affinity_hit == Some(c.deployment.index),
        }
    }

    /// Returns the cost in picodollars: [`crate::pricing::cost`] of the usage when reported,
    /// else the estimate. `stream` carries a stream's total time, time to first token and
    /// output size when usage is missing.
    fn record(self, usage: Option<Usage>, stream: Option<(Duration, Duration, u64)>) -> u64 {
        let price = self.deployment.price;
        let cost = usage.map_or(crate::pricing::usd_to_pico(self.estimated_cost), |u| {
            crate::pricing::cost(&price, &u).total()
        });
        let mut live = self.deployment.live();
        live.stats.counters.spent_pusd = live.stats.counters.spent_pusd.saturating_add(cost);
        if let Some(usage) = usage {
            live.stats.record_usage(
                usage.output_tokens,
                usage.input_tokens,
                self.raw_prompt_tokens,
            );
            live.stats.counters.cached_input_tokens += usage.cached_input_tokens;
        }
        if self.affinity {
            live.stats.counters.affinity_hits += 1;
            if let Some(usage) = usage {
                live.stats.counters.affinity_saving_pusd = live
                    .stats
                    .counters
                    .affinity_saving_pusd
                    .saturating_add(estimate::cache_saving(&price, &usage));
            }
        }
        if let Some((total, first_token, estimated_output)) = stream {
            let output = usage.map_or(estimated_output, |u| u.output_tokens);
            live.stats.record_stream_end(total, first_token, output);
        }
        cost
    }

    /// A stream broke after its first event: the deployment's fault, counted like a failure.
    fn broke(self, error: &Error, output_chars: usize) {
        let now = Instant::now();
        let price = self.deployment.price;
        let output = output_chars as f64 / 4.0;
        let cost = estimate::estimated_cost(&price, self.prompt_tokens, output);
        let mut live = self.deployment.live();
        live.stats.counters.spent_pusd = live
            .stats
            .counters
            .spent_pusd
            .saturating_add(crate::pricing::usd_to_pico(cost));
        if retry::blames_deployment(error) {
            live.stats.counters.failures += 1;
            live.stats.record_outcome(true, false);
            live.breaker.failure(breaker::Permit::Normal, now);
        }
    }
}

/// What runs once a stream ended, with the primary's figures (a shadow copy).
type AtEnd = Box<dyn FnOnce(shadow::Outcome) + Send>;

/// The stream handed to the caller: what was read while waiting for the first content event,
/// then the rest, recording usage, cost and timing when it ends.
fn recorded(
    prefix: Vec<StreamEvent>,
    mut rest: ChatStream,
    completion: Completion,
    started: Instant,
    first_token: Duration,
    at_end: Option<AtEnd>,
) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut usage = None;
        let mut output_chars = 0usize;
        // Each tool call's arguments, when a shadow compares them.
        let mut calls: BTreeMap<u32, String> = BTreeMap::new();
        let watch_calls = at_end.is_some();
        let mut observe = |event: &StreamEvent| match event {
            StreamEvent::Usage(u) => usage = Some(*u),
            StreamEvent::TextDelta(text) | StreamEvent::RefusalDelta(text) => output_chars += text.len(),
            StreamEvent::ToolCallDelta { index, arguments } => {
                output_chars += arguments.len();
                if watch_calls {
                    calls.entry(*index).or_default().push_str(arguments);
                }
            }
            StreamEvent::ToolCallStart { index, .. } if watch_calls => {
                calls.entry(*index).or_default();
            }
            _ => {}
        };
        for event in prefix {
            observe(&event);
            yield Ok(event);
        }
        while let Some(item) = rest.next().await {
            match &item {
                Ok(event) => observe(event),
                Err(error) => {
                    completion.broke(error, output_chars);
                    if let Some(at_end) = at_end {
                        at_end(shadow::Outcome {
                            latency: started.elapsed(),
                            error: true,
                            ..shadow::Outcome::default()
                        });
                    }
                    yield item;
                    return;
                }
            }
            yield item;
        }
        let estimated_output = u64::try_from(output_chars / 4).unwrap_or(u64::MAX);
        let total = started.elapsed();
        let cost_pico = completion.record(usage, Some((total, first_token, estimated_output)));
        if let Some(at_end) = at_end {
            let bad = calls
                .values()
                .filter(|a| serde_json::from_str::<serde::de::IgnoredAny>(a).is_err())
                .count();
            at_end(shadow::Outcome {
                latency: total,
                usage,
                cost_pico,
                error: false,
                tool_calls: calls.len() as u64,
                bad_tool_calls: bad as u64,
            });
        }
    })
}

impl ModelClient for Router {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse>> {
        Box::pin(async move { Router::chat(self, &request).await.map(|r| r.value) })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream>> {
        Box::pin(async move { Router::chat_stream(self, &request).await.map(|r| r.value) })
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingResponse>> {
        Box::pin(async move { Router::embed(self, &request).await.map(|r| r.value) })
    }
}

/// A deployment's prompt estimate as a reservation counts it: calibrated to what the deployment
/// reported before, never below the raw estimate.
fn reserved_prompt_tokens(deployment: &Deployment, raw: f64) -> u64 {
    let calibration = deployment.glance.calibration().unwrap_or(1.0);
    // Saturating float-to-int conversion: an absurd estimate caps, never wraps.
    (raw * calibration.max(1.0)).ceil() as u64
}

/// Where a prompt prefix's deployment is shared: the prefix hash is the same on every replica
/// (the same build hashes the same bytes alike).
fn shared_affinity_key(key: u64) -> String {
    format!("affinity:{key:016x}")
}

/// Moves the first candidate whose deployment matches `wanted` to the front, if it is
/// available, and returns its index: affinity yields to health and constraints, so only an
/// eligible, available deployment is moved.
fn to_front(
    plan: &mut Plan<'_>,
    now: Instant,
    wanted: impl Fn(&Deployment) -> bool,
) -> Option<usize> {
    let position = plan.find(|c| wanted(c.deployment) && c.deployment.available(now))?;
    plan.move_to_front(position);
    Some(plan.candidates[0].deployment.index)
}
