//! `[routes.*]` and `[aliases]`: how a request's deployments are ordered, retried, hedged and
//! broken, and which model ids lead where.

use serde::Deserialize;
use toml::Spanned;

/// How a route orders the deployments it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The lowest estimated cost of this request.
    Cost,
    /// The lowest expected time to first token (streams) or to the answer.
    Latency,
    /// Normalized cost and latency mixed by `cost_weight`.
    Balanced,
    /// Config order: the first healthy deployment, as a primary with backups.
    Order,
    /// Each request starts one deployment further along the config order.
    RoundRobin,
}

impl Objective {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cost => "cost",
            Self::Latency => "latency",
            Self::Balanced => "balanced",
            Self::Order => "order",
            Self::RoundRobin => "round-robin",
        }
    }
}

/// A routing policy. `routes.default` applies to every model; `routes.NAME` applies to model
/// `NAME`, to requests that pick it with `x-crossbar-route`, and (when it lists `models`) to
/// requests that name it as their model. A named route takes each setting it leaves out from
/// `routes.default`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Default `balanced`.
    pub objective: Option<Objective>,
    /// For `balanced`: the weight of cost against latency, in `[0, 1]` (default 0.5).
    pub cost_weight: Option<Spanned<f64>>,
    /// The logical models a request naming this route may use, in addition to fallbacks.
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    /// Models whose deployments are tried after the requested model's.
    pub fallbacks: Option<Vec<Spanned<String>>>,
    pub constraints: Option<Constraints>,
    /// Upstream calls per request, hedges included (default: every candidate once, at least 3).
    pub attempts: Option<Spanned<u32>>,
    pub backoff: Option<Spanned<BackoffConfig>>,
    pub timeouts: Option<Spanned<RouteTimeouts>>,
    pub hedge: Option<HedgeConfig>,
    /// Only in `routes.default`: a breaker belongs to a deployment, whatever route uses it.
    pub breaker: Option<Spanned<BreakerConfig>>,
    pub affinity: Option<Spanned<AffinityConfig>>,
    /// Share of requests that start on a random other healthy deployment, so statistics of a
    /// demoted deployment stay fresh (default 0.05; 0 disables).
    pub explore: Option<Spanned<f64>>,
    /// What a provider-hosted tool (`web_search`...) does on a deployment that cannot run it.
    pub hosted_tools: Option<HostedTools>,
    /// What a request field the gateway does not know does.
    pub unknown_fields: Option<UnknownFields>,
    /// Personal data and secrets in what the request sends: `{ email = "mask",
    /// payment_card = "block", phone = "log" }`. A route's own table replaces the default
    /// route's whole (rules do not merge, so a route can also turn one off).
    pub guardrails: Option<crate::guardrails::Rules>,
    /// The response cache for deterministic requests (`cache = { enabled = true, ttl_s = 600 }`);
    /// a route's own table replaces the default route's whole.
    pub cache: Option<crate::cache::CacheConfig>,
    /// Keep request and answer bodies (after masking) with the usage record (`payload_log =
    /// true`; off by default), for `store.payload_retention_days`.
    pub payload_log: Option<bool>,
    /// Canary and weighted routing: `split = [{ deployment = "m@p", share = 0.1 }, { model =
    /// "m2", share = 0.1 }]`; each share of the route's conversations starts on its target
    /// (sticky per conversation), the rest route as usual. Shares sum to at most 1.
    pub split: Option<Spanned<Vec<TargetShare>>>,
    /// `shadow = { deployment = "m@p", share = 0.2 }` (or `model`): a copy of that share of
    /// requests goes to the shadow in the background; its answers are measured, never returned.
    pub shadow: Option<Spanned<ShadowConfig>>,
    /// Whether deployments are ranked down as the quota their provider reports runs out
    /// (`x-ratelimit-remaining-*`, `anthropic-ratelimit-*`), before they answer 429. Default true.
    pub headroom: Option<bool>,
}

/// A deployment (`model@provider`) or a logical model, and the share of requests it takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetShare {
    pub deployment: Option<String>,
    pub model: Option<String>,
    /// In `(0, 1]`.
    pub share: f64,
}

/// A shadow target: where copies go, what share of requests, how many at once.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub deployment: Option<String>,
    pub model: Option<String>,
    /// In `(0, 1]`.
    pub share: f64,
    /// Copies in flight at once (default 8); beyond it copies are dropped and counted.
    pub max_concurrency: Option<usize>,
}

/// `hosted_tools`: a tool only the provider can run (OpenAI's `web_search`, Anthropic's server
/// tools) on a deployment that cannot run it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostedTools {
    /// The request is refused, naming the tool (the default: nothing is silently lost).
    #[default]
    Refuse,
    /// The tool is left out and the request goes on without it.
    Drop,
}

/// `unknown_fields`: a request field the gateway does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// A 400 naming the field (the default).
    #[default]
    Reject,
    /// Forwarded untouched to same-dialect upstreams, which validate it themselves; refused by
    /// name only where the deployment speaks another dialect.
    Pass,
}

/// Where a request may go. Empty lists allow everything; entries may use `*` globs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    #[serde(default)]
    pub clouds: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// `"p95"` (the deployment's recent p95 time to first token; `p50`..`p99`) or a duration
    /// in milliseconds such as `"250ms"`.
    pub after: Spanned<String>,
    /// Largest share of requests that may start a hedge, in `[0, 1]` (default 0.1), so an
    /// outage cannot double the load.
    pub budget: Option<Spanned<f64>>,
}

/// When a hedge starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeAfter {
    Fixed(std::time::Duration),
    /// A percentile of the first deployment's recent time to first token.
    Percentile(u8),
}

impl HedgeAfter {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(p) = text.strip_prefix('p') {
            return match p.parse::<u8>() {
                Ok(p @ 50..=99) => Ok(Self::Percentile(p)),
                _ => Err(format!("`{text}`: a percentile must be p50 to p99")),
            };
        }
        match text.strip_suffix("ms").map(|n| n.trim().parse::<u64>()) {
            Some(Ok(ms)) if ms > 0 => Ok(Self::Fixed(std::time::Duration::from_millis(ms))),
            _ => Err(format!(
                "`{text}`: expected a percentile such as \"p95\" or milliseconds such as \"250ms\""
            )),
        }
    }
}

/// Jittered exponential backoff before a deployment is tried again within one request.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Default 100.
    pub base_ms: Option<u64>,
    /// Default 2000.
    pub max_ms: Option<u64>,
}

/// Deadlines of a routed call, on top of each provider's own.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTimeouts {
    /// An attempt with no first token (streams) or answer by then fails over.
    pub ttft_ms: Option<u64>,
    /// No new attempt starts after this long since the request arrived.
    pub total_ms: Option<u64>,
}

/// Per-deployment circuit breaker: opens when, within `window_s`, at least `failures` calls
/// failed and they were at least `ratio` of the calls; after `cooldown_s` one probe is let
/// through, which closes it or opens it again.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Default 5.
    pub failures: Option<u32>,
    /// Default 0.5.
    pub ratio: Option<f64>,
    /// Default 30.
    pub window_s: Option<u64>,
    /// Default 30.
    pub cooldown_s: Option<u64>,
}

/// Prompt-cache affinity: requests sharing a long prefix stick to the deployment that served
/// it, since cached input is billed at a fraction.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityConfig {
    /// Default 300; 0 disables affinity.
    pub ttl_s: Option<u64>,
    /// Shortest prefix (system + tools + first message), in estimated tokens, worth sticking
    /// for (default 1024, where providers start caching).
    pub min_prefix_tokens: Option<u64>,
}

/// The most `*` an alias pattern may hold.
pub const MAX_ALIAS_STARS: usize = 4;
