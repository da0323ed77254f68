//! Which policy a request falls under and which deployments it may use: the route's
//! constraints, then what the caller narrowed with headers and (with virtual keys) its key.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Constraints, HostedTools, Objective, RouteConfig, UnknownFields};
use crate::error::{Error, Result};
use crate::router::Deployment;
use crate::router::affinity::AffinitySettings;
use crate::router::hedge::Hedging;
use crate::router::retry::Backoff;
use crate::router::split::{DEFAULT_SHADOW_CONCURRENCY, Shadow, Split, Target};

pub const ROUTE_HEADER: &str = "x-crossbar-route";
pub const PROVIDER_HEADER: &str = "x-crossbar-provider";
pub const MAX_COST_HEADER: &str = "x-crossbar-max-cost-usd";

const DEFAULT_COST_WEIGHT: f64 = 0.5;
const DEFAULT_EXPLORE: f64 = 0.05;

/// A route with every setting decided: its own, else `routes.default`'s, else built-in.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Models used when a request names this route as its model.
    pub models: Vec<String>,
    pub objective: Objective,
    pub cost_weight: f64,
    pub fallbacks: Vec<String>,
    pub constraints: Constraints,
    pub attempts: Option<u32>,
    pub backoff: Backoff,
    pub ttft_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    pub hedge: Option<Hedging>,
    pub affinity: Option<AffinitySettings>,
    pub explore: f64,
    /// What the ingress does with a provider-hosted tool the deployment cannot run.
    pub hosted_tools: HostedTools,
    /// What the ingress does with a request field it does not know.
    pub unknown_fields: UnknownFields,
    /// Personal data and secrets in what requests send: the route's own table, else the
    /// default route's (whole, not merged).
    pub guardrails: Arc<crate::guardrails::Rules>,
    /// The response cache's settings, when the route (or the default route) enables it.
    pub cache: Option<Arc<crate::cache::CacheConfig>>,
    /// Whether request and answer bodies are kept with the usage record.
    pub payload_log: bool,
    /// Shares of conversations that start on a named deployment or model (canaries).
    pub split: Vec<Split>,
    /// Where copies of a share of requests go, measured and never returned.
    pub shadow: Option<Arc<Shadow>>,
    /// Whether reported quota (headroom) ranks deployments down before they answer 429.
    pub headroom: bool,
    /// Round-robin position.
    pub rotation: AtomicUsize,
}

impl Route {
    pub fn resolve(name: &str, own: Option<&RouteConfig>, default: Option<&RouteConfig>) -> Self {
        /// A setting from the route, else from the default route.
        fn pick<'c, T>(
            own: Option<&'c RouteConfig>,
            default: Option<&'c RouteConfig>,
            field: impl Fn(&'c RouteConfig) -> Option<T>,
        ) -> Option<T> {
            own.and_then(&field).or_else(|| default.and_then(&field))
        }
        let timeouts = pick(own, default, |c| c.timeouts.as_ref().map(|t| *t.get_ref()));
        Self {
            name: name.to_owned(),
            models: own
                .map(|c| c.models.iter().map(|m| m.get_ref().clone()).collect())
                .unwrap_or_default(),
            objective: pick(own, default, |c| c.objective).unwrap_or(Objective::Balanced),
            cost_weight: pick(own, default, |c| {
                c.cost_weight.as_ref().map(|w| *w.get_ref())
            })
            .unwrap_or(DEFAULT_COST_WEIGHT),
            fallbacks: pick(own, default, |c| c.fallbacks.as_ref())
                .map(|f| f.iter().map(|m| m.get_ref().clone()).collect())
                .unwrap_or_default(),
            constraints: pick(own, default, |c| c.constraints.clone()).unwrap_or_default(),
            attempts: pick(own, default, |c| c.attempts.as_ref().map(|a| *a.get_ref())),
            backoff: Backoff::from_config(
                pick(own, default, |c| c.backoff.as_ref().map(|b| *b.get_ref())).as_ref(),
            ),
            ttft_timeout: timeouts.and_then(|t| t.ttft_ms).map(Duration::from_millis),
            total_timeout: timeouts.and_then(|t| t.total_ms).map(Duration::from_millis),
            hedge: pick(own, default, |c| c.hedge.as_ref()).and_then(Hedging::from_config),
            affinity: AffinitySettings::from_config(
                pick(own, default, |c| c.affinity.as_ref().map(|a| *a.get_ref())).as_ref(),
            ),
            explore: pick(own, default, |c| c.explore.as_ref().map(|e| *e.get_ref()))
                .unwrap_or(DEFAULT_EXPLORE),
            hosted_tools: pick(own, default, |c| c.hosted_tools).unwrap_or_default(),
            unknown_fields: pick(own, default, |c| c.unknown_fields).unwrap_or_default(),
            guardrails: Arc::new(pick(own, default, |c| c.guardrails.clone()).unwrap_or_default()),
            cache: pick(own, default, |c| c.cache.clone())
                .filter(|c| c.enabled)
                .map(Arc::new),
            payload_log: pick(own, default, |c| c.payload_log).unwrap_or(false),
            split: pick(own, default, |c| c.split.as_ref())
                .map(|s| {
                    s.get_ref()
                        .iter()
                        .filter_map(|e| {
                            Some(Split {
                                target: Target::from_config(
                                    e.deployment.as_ref(),
                                    e.model.as_ref(),
                                )?,
                                share: e.share,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            shadow: pick(own, default, |c| c.shadow.as_ref()).and_then(|s| {
                let s = s.get_ref();
                let max_concurrency = s.max_concurrency.unwrap_or(DEFAULT_SHADOW_CONCURRENCY);
                Some(Arc::new(Shadow {
                    target: Target::from_config(s.deployment.as_ref(), s.model.as_ref())?,
                    share: s.share,
                    max_concurrency,
                    permits: Arc::new(tokio::sync::Semaphore::new(max_concurrency)),
                }))
            }),
            headroom: pick(own, default, |c| c.headroom).unwrap_or(true),
            rotation: AtomicUsize::new(0),
        }
    }
}

/// What a caller's key allows. Gateway keys carry no scope yet: virtual keys (issue 5) fill
/// this in, and the router applies it on top of the route and the headers, so a header can
/// only narrow what the key allows, never widen it.
#[derive(Clone, Debug, Default)]
pub struct KeyScope {
    pub constraints: Constraints,
    /// Routes the key may pick; `None` allows all.
    pub routes: Option<Vec<String>>,
    /// Models (or route names, globs allowed) the key may use; `None` allows all. Applies to
    /// fallbacks too, so a route cannot serve a key a model it may not call.
    pub models: Option<Vec<String>>,
    pub max_cost_usd: Option<f64>,
    /// The key's id: mixed into the conversation hash of canary splits, so two callers sending
    /// the same first message are split independently.
    pub id: Option<String>,
}

/// What a caller asked of the router for one request.
#[derive(Clone, Debug, Default)]
pub struct Preferences {
    /// `x-crossbar-route`: the policy to apply instead of the model's.
    pub route: Option<String>,
    /// `x-crossbar-provider: a,b`: only these providers (globs allowed).
    pub providers: Vec<String>,
    /// `x-crossbar-provider: !a`: never these providers.
    pub exclude_providers: Vec<String>,
    /// `x-crossbar-max-cost-usd`: skip deployments whose estimated cost of this call is higher.
    pub max_cost_usd: Option<f64>,
    pub key: Option<KeyScope>,
    /// Where a request that fails outright leaves its attempts (a success carries them).
    pub attempt_log: AttemptLog,
}

/// A caller's collection of a failed request's attempts; off unless [`AttemptLog::enabled`].
#[derive(Clone, Debug, Default)]
pub struct AttemptLog(Option<Arc<Mutex<Vec<super::Attempt>>>>);

impl AttemptLog {
    pub fn enabled() -> Self {
        Self(Some(Arc::default()))
    }

    pub(crate) fn extend(&self, attempts: Vec<super::Attempt>) {
        if let Some(log) = &self.0 {
            super::lock(log).extend(attempts);
        }
    }

    /// The attempts logged so far, leaving the log empty.
    pub fn take(&self) -> Vec<super::Attempt> {
        self.0
            .as_ref()
            .map(|log| std::mem::take(&mut *super::lock(log)))
            .unwrap_or_default()
    }
}

impl Preferences {
    /// Reads the three request headers; malformed values are the client's 400.
    pub fn from_headers(
        route: Option<&str>,
        provider: Option<&str>,
        max_cost: Option<&str>,
    ) -> Result<Self> {
        let mut preferences = Self {
            route: route
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            ..Self::default()
        };
        let entries = provider.unwrap_or("").split(',').map(str::trim);
        if entries.clone().count() > MAX_PROVIDER_PATTERNS {
            return Err(Error::invalid_field(
                PROVIDER_HEADER,
                format!("`{PROVIDER_HEADER}` may name at most {MAX_PROVIDER_PATTERNS} providers."),
            ));
        }
        for entry in entries {
            check_provider_pattern(entry)?;
            match entry.strip_prefix('!') {
                Some(excluded) if !excluded.trim().is_empty() => {
                    preferences
                        .exclude_providers
                        .push(excluded.trim().to_owned());
                }
                Some(_) => {
                    return Err(Error::invalid_field(
                        PROVIDER_HEADER,
                        "`!` must be followed by a provider name.",
                    ));
                }
                None if !entry.is_empty() => preferences.providers.push(entry.to_owned()),
                None => {}
            }
        }
        if let Some(max_cost) = max_cost {
            let value = max_cost
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    Error::invalid_field(
                        MAX_COST_HEADER,
                        format!("`{MAX_COST_HEADER}` must be a non-negative number of US dollars."),
                    )
                })?;
            preferences.max_cost_usd = Some(value);
        }
        Ok(preferences)
    }

    /// The tightest cost cap of the header and the key.
    pub fn max_cost(&self) -> Option<f64> {
        let key = self.key.as_ref().and_then(|k| k.max_cost_usd);
        match (self.max_cost_usd, key) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the key (if any) may use this logical model.
    pub fn key_allows_model(&self, model: &str) -> bool {
        match self.key.as_ref().and_then(|k| k.models.as_ref()) {
            Some(patterns) => patterns.iter().any(|p| glob(p, model)),
            None => true,
        }
    }

    /// Refuses a route the key may not use.
    pub fn check_route(&self, route: &str) -> Result<()> {
        match self.key.as_ref().and_then(|k| k.routes.as_ref()) {
            Some(allowed) if !allowed.iter().any(|r| r == route) => Err(Error::permission_denied(
                format!("Your key may not use route `{route}`."),
                "route_not_allowed",
            )
            .with_param(ROUTE_HEADER)),
            _ => Ok(()),
        }
    }

    /// Whether the caller allows every deployment (no provider headers, no key constraints).
    pub(crate) fn allows_all(&self) -> bool {
        self.providers.is_empty()
            && self.exclude_providers.is_empty()
            && self
                .key
                .as_ref()
                .is_none_or(|k| unconstrained(&k.constraints))
    }

    /// Whether the caller allows this deployment.
    pub fn allows(&self, deployment: &Deployment) -> bool {
        let name = deployment.provider.name.as_str();
        (self.providers.is_empty() || self.providers.iter().any(|p| glob(p, name)))
            && !self.exclude_providers.iter().any(|p| glob(p, name))
            && self
                .key
                .as_ref()
                .is_none_or(|k| allowed(&k.constraints, deployment))
    }
}

/// Whether constraints let every deployment through: then a routing decision skips checking
/// each one.
pub(crate) fn unconstrained(constraints: &Constraints) -> bool {
    constraints.clouds.is_empty()
        && constraints.regions.is_empty()
        && constraints.providers.is_empty()
}

/// Whether a deployment satisfies constraints.
pub fn allowed(constraints: &Constraints, deployment: &Deployment) -> bool {
    let matches = |patterns: &[String], value: &str| {
        patterns.is_empty() || patterns.iter().any(|p| glob(p, value))
    };
    matches(&constraints.clouds, &deployment.provider.cloud)
        && matches(&constraints.regions, &deployment.provider.region)
        && matches(&constraints.providers, &deployment.provider.name)
}

/// `*` matches any run of characters; everything else matches itself.
///
/// Linear in `pattern.len() + value.len()`: the literal pieces between stars are found left to
/// right, each at its first occurrence after the previous one (taking the earliest match never
/// loses a match when `*` is the only wildcard), so no input backtracks. Patterns come from
/// clients (`x-crossbar-provider`), so a recursive matcher here was a denial of service.
pub fn glob(pattern: &str, value: &str) -> bool {
    let mut pieces = pattern.split('*');
    // `split` always yields at least one piece.
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let Some(last) = pieces.next_back() else {
        // No star: the pattern is a literal.
        return rest.is_empty();
    };
    for middle in pieces.filter(|p| !p.is_empty()) {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The longest `x-crossbar-provider` entry accepted; provider names are short.
pub const MAX_PROVIDER_PATTERN_BYTES: usize = 128;
/// The most `*` an entry may hold; more says nothing a few cannot.
pub const MAX_PROVIDER_PATTERN_STARS: usize = 4;
/// The most comma-separated entries in `x-crossbar-provider`.
pub const MAX_PROVIDER_PATTERNS: usize = 32;

/// Refuses a client's provider pattern that is too long or too starry to be a real selection.
fn check_provider_pattern(pattern: &str) -> Result<()> {
    if pattern.len() > MAX_PROVIDER_PATTERN_BYTES {
        return Err(Error::invalid_field(
            PROVIDER_HEADER,
            format!("A provider pattern may be at most {MAX_PROVIDER_PATTERN_BYTES} bytes long."),
        ));
    }
    if pattern.matches('*').count() > MAX_PROVIDER_PATTERN_STARS {
        return Err(Error::invalid_field(
            PROVIDER_HEADER,
            format!("A provider pattern may hold at most {MAX_PROVIDER_PATTERN_STARS} `*`."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_regions() {
        assert!(glob("*", "eastus"));
        assert!(glob("eu-*", "eu-west-1"));
        assert!(!glob("eu-*", "us-east-1"));
        assert!(glob("*-east-*", "us-east-1"));
        assert!(glob("us-east-1", "us-east-1"));
        assert!(!glob("us-east-1", "us-east-2"));
        assert!(glob("a*b*c", "abc"));
        assert!(glob("a*b*c", "axxbyybzc"));
        assert!(!glob("a*b*c", "axxbyyb"));
        assert!(glob("*a*", "banana"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("ab*ba", "abba"));
        assert!(glob("**", ""));
        assert!(!glob("", "x"));
        assert!(glob("é*ü", "éxü"));
        assert!(!glob("a*", ""));
    }

    /// The recursive matcher took exponential time on a pattern of stars against a name that
    /// does not match; this one answers at once whatever the pattern.
    #[test]
    fn globs_of_many_stars_are_linear() {
        let pattern = format!("{}x", "*".repeat(10_000));
        let value = "a".repeat(10_000);
        assert!(!glob(&pattern, &value));
        let pattern = "a*".repeat(5_000);
        assert!(glob(&pattern, &"a".repeat(5_000)));
        assert!(!glob(&format!("{pattern}b"), &"a".repeat(5_000)));
    }

    #[test]
    fn absurd_provider_patterns_are_refused() {
        let stars = "*".repeat(19);
        let err = Preferences::from_headers(None, Some(&stars), None).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.param.as_deref(), Some(PROVIDER_HEADER));
        assert_eq!(err.message, "A provider pattern may hold at most 4 `*`.");
        let long = "a".repeat(MAX_PROVIDER_PATTERN_BYTES + 1);
        let err = Preferences::from_headers(None, Some(&long), None).unwrap_err();
        assert_eq!(
            err.message,
            "A provider pattern may be at most 128 bytes long."
        );
        let many = vec!["a"; MAX_PROVIDER_PATTERNS + 1].join(",");
        let err = Preferences::from_headers(None, Some(&many), None).unwrap_err();
        assert_eq!(
            err.message,
            "`x-crossbar-provider` may name at most 32 providers."
        );
        let fine = Preferences::from_headers(None, Some("sim-*-east-*,!*azure*"), None).unwrap();
        assert_eq!(fine.providers, ["sim-*-east-*"]);
        assert_eq!(fine.exclude_providers, ["*azure*"]);
    }

    #[test]
    fn headers_pin_exclude_and_cap() {
        let p = Preferences::from_headers(Some(" fast "), Some("a, !b ,c*"), Some("0.25")).unwrap();
        assert_eq!(p.route.as_deref(), Some("fast"));
        assert_eq!(p.providers, ["a", "c*"]);
        assert_eq!(p.exclude_providers, ["b"]);
        assert_eq!(p.max_cost(), Some(0.25));
        for bad in ["-1", "free", "NaN", "inf"] {
            let err = Preferences::from_headers(None, None, Some(bad)).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert_eq!(err.param.as_deref(), Some(MAX_COST_HEADER));
        }
        assert_eq!(
            Preferences::from_headers(None, Some("!"), None)
                .unwrap_err()
                .status(),
            400
        );
        let none = Preferences::from_headers(Some(""), Some(""), None).unwrap();
        assert!(none.route.is_none() && none.providers.is_empty());
    }

    #[test]
    fn a_key_narrows_the_cap_and_the_routes() {
        let p = Preferences {
            max_cost_usd: Some(1.0),
            key: Some(KeyScope {
                routes: Some(vec!["cheap".to_owned()]),
                max_cost_usd: Some(0.1),
                ..KeyScope::default()
            }),
            ..Preferences::default()
        };
        assert_eq!(p.max_cost(), Some(0.1));
        assert!(p.check_route("cheap").is_ok());
        assert_eq!(p.check_route("default").unwrap_err().status(), 403);
    }
}
