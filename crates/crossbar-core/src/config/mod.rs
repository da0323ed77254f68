//! The `crossbar.toml` model: providers, logical models with their deployments and prices, and
//! routes. Validated at load, with errors naming the file, line and key, so a typo fails at start
//! rather than on the first request. `${ENV}` is expanded after parsing, in the fields that take
//! it, so a secret never appears in a parse error's quoted source line.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// A configuration problem, with its location in the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The built-in catalog used when no file and no provider keys are given: everything runs on
/// simulated providers, offline.
pub const BUILTIN_SIM: &str = include_str!("../../config/builtin-sim.toml");

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
const DEFAULT_SHUTDOWN_GRACE_S: u64 = 30;
/// `server.header_read_timeout_s` unless set.
const DEFAULT_HEADER_READ_TIMEOUT_S: u64 = 10;
/// `server.body_read_timeout_s` unless set.
const DEFAULT_BODY_READ_TIMEOUT_S: u64 = 30;
/// `server.max_connections` unless set.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<RouteConfig>>,
    /// Model ids clients ask for (exact, or `*` patterns) mapped to a logical model or a route
    /// name, so coding agents' own ids (`claude-opus-5-5`, `gpt-5.5`) reach a configured model.
    #[serde(default)]
    pub aliases: BTreeMap<String, Spanned<String>>,
    /// Where usage records and virtual keys live.
    #[serde(default)]
    pub store: StoreConfig,
    /// The admin HTTP API (`/admin/...`), closed unless a token is set.
    #[serde(default)]
    pub admin: AdminConfig,
    /// OpenTelemetry traces; nothing is sent anywhere without an endpoint.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// State shared by replicas (limits, budgets, breakers, latency); in memory without it.
    #[serde(default)]
    pub redis: RedisConfig,
    /// Where this configuration came from, for messages.
    #[serde(skip)]
    pub origin: String,
    #[serde(skip)]
    source: SourceText,
}

/// The file's text, kept to turn spans into line numbers; never printed, as it may hold keys.
#[derive(Default)]
struct SourceText(String);

impl fmt::Debug for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<String>,
    /// Keys clients must present as `Authorization: Bearer`; none means an open gateway.
    #[serde(default)]
    pub api_keys: Vec<Spanned<Secret>>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_s: Option<u64>,
    /// Seconds a client has to send a request's headers (and an idle keep-alive connection
    /// lives): slow-header clients must not hold connections forever.
    pub header_read_timeout_s: Option<u64>,
    /// Longest wait, in seconds, for the next piece of a request body.
    pub body_read_timeout_s: Option<u64>,
    /// Connections served at once; new ones past it get a 503. Keep it under the process's
    /// file-descriptor limit (each connection may also hold an upstream one).
    pub max_connections: Option<usize>,
}

impl ServerConfig {
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }

    pub fn shutdown_grace_s(&self) -> u64 {
        self.shutdown_grace_s.unwrap_or(DEFAULT_SHUTDOWN_GRACE_S)
    }

    pub fn header_read_timeout_s(&self) -> u64 {
        self.header_read_timeout_s
            .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_S)
            .max(1)
    }

    pub fn body_read_timeout_s(&self) -> u64 {
        self.body_read_timeout_s
            .unwrap_or(DEFAULT_BODY_READ_TIMEOUT_S)
            .max(1)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .max(1)
    }
}

/// Without `store.url`: a SQLite file in the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://crossbar.db?mode=rwc";

/// `[store]`: the usage ledger and the virtual keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://...`, `sqlite://FILE` or a bare file path. May hold a password, so secret.
    pub url: Option<Spanned<Secret>>,
    /// `false` keeps no records (and allows no virtual keys).
    pub enabled: Option<bool>,
    /// Records older than this many days are deleted in the background; 0 keeps them forever.
    pub retention_days: Option<Spanned<u64>>,
    /// Stored Responses API answers (`store: true`) older than this many days are deleted in
    /// the background, as OpenAI keeps them 30 days; 0 keeps them forever.
    pub responses_retention_days: Option<Spanned<u64>>,
    /// Records waiting to be written beyond this many are dropped (counted and logged).
    pub queue_capacity: Option<Spanned<usize>>,
    /// Records written per transaction at most.
    pub batch_size: Option<Spanned<usize>>,
}

impl StoreConfig {
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    pub fn url(&self) -> &str {
        self.url
            .as_ref()
            .map_or(DEFAULT_STORE_URL, |u| u.get_ref().0.as_str())
    }

    pub fn retention_days(&self) -> u64 {
        self.retention_days.as_ref().map_or(90, |d| *d.get_ref())
    }

    pub fn responses_retention_days(&self) -> u64 {
        self.responses_retention_days
            .as_ref()
            .map_or(30, |d| *d.get_ref())
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
            .as_ref()
            .map_or(10_000, |c| *c.get_ref())
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.as_ref().map_or(256, |b| *b.get_ref())
    }
}

/// `[admin]`: the token that guards `/admin/...` (`Authorization: Bearer <token>`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Option<Spanned<Secret>>,
}

/// `[redis]`: where replicas share rate-limit counters, budget spend, breaker states and
/// latency statistics.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; may hold a password, so secret.
    pub url: Option<Spanned<Secret>>,
    /// Prefix of every key, so several gateways can share one Redis.
    pub prefix: Option<String>,
    /// How often a replica publishes its deployments' health and reads the others'.
    pub sync_interval_ms: Option<Spanned<u64>>,
}

impl RedisConfig {
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("crossbar")
    }

    pub fn sync_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.sync_interval_ms
                .as_ref()
                .map_or(500, |ms| (*ms.get_ref()).max(10)),
        )
    }
}

/// `[telemetry]`: where to send traces (OTLP over HTTP, JSON encoding).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's base URL, e.g. `http://localhost:4318`; spans go to `/v1/traces`.
    pub otlp_endpoint: Option<Spanned<String>>,
    /// `service.name` of the spans; default `crossbar`.
    pub service_name: Option<String>,
}

/// A string that is never printed: `Debug` shows `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    AzureOpenai,
    OpenaiCompatible,
    Anthropic,
    Bedrock,
    Gemini,
    Vertex,
    /// Claude on Vertex AI: the Anthropic dialect at a Vertex publisher URL with Google auth.
    VertexAnthropic,
    /// Claude in Microsoft Foundry: the Anthropic dialect under a Foundry resource.
    FoundryAnthropic,
    Sim,
}

/// How an Azure deployment authenticates: `api-key` header or an Entra ID bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureAuth {
    ApiKey,
    Bearer,
}

/// The OpenAI API a provider's chat goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiApi {
    #[default]
    Chat,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensFieldConfig {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: Spanned<String>,
    pub kind: ProviderKind,
    pub endpoint: Option<Spanned<String>>,
    pub api_key: Option<Spanned<Secret>>,
    pub api_version: Option<String>,
    pub auth: Option<AzureAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<Secret>>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    /// For `kind = "sim"`: the wire format the simulated provider speaks.
    pub dialect: Option<Spanned<String>>,
    /// For `kind = "sim"`: the simulator's latency and fault settings.
    pub sim: Option<Spanned<toml::Table>>,
    pub max_tokens_field: Option<MaxTokensFieldConfig>,
    /// OpenAI and Azure OpenAI: which API chat goes through upstream (`chat` by default;
    /// `responses` for reasoning models whose reasoning items must be carried between turns).
    pub api: Option<OpenAiApi>,
    /// Vertex AI: the Google Cloud project.
    pub project: Option<String>,
    /// Vertex AI: the location (`us-central1`, `global`...).
    pub location: Option<String>,
    /// Bedrock: explicit AWS credentials; without them the standard AWS chain is used.
    pub aws: Option<AwsCredentials>,
    /// Vertex AI: a service-account JSON file; without it Google application-default
    /// credentials are used.
    pub google_credentials: Option<String>,
    /// How image URLs are fetched for providers that only take inline images.
    #[serde(default)]
    pub image_fetch: crate::images::ImageFetch,
    #[serde(default)]
    pub timeouts: Timeouts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentials {
    pub access_key_id: Option<Spanned<Secret>>,
    pub secret_access_key: Option<Spanned<Secret>>,
    pub session_token: Option<Spanned<Secret>>,
    pub profile: Option<String>,
}

/// Per-provider deadlines, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub connect_ms: Option<u64>,
    /// Until the response headers arrive.
    pub first_byte_ms: Option<u64>,
    /// Between two chunks of a stream.
    pub idle_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: Spanned<String>,
    pub deployments: Vec<DeploymentConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    pub provider: Spanned<String>,
    /// The provider's own id for the model (an Azure deployment name, a Bedrock model id...).
    pub target: String,
    #[serde(default)]
    pub price: Price,
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
}

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

impl Config {
    /// Routes: names, the models they use, and every setting's range.
    fn validate_routes(&self, model_names: &HashSet<&str>) -> Result<(), ConfigError> {
        for (route, spanned) in &self.routes {
            let config = spanned.get_ref();
            let key = |field: &str| format!("routes.{route}.{field}");
            if !valid_name(route) {
                return Err(self.error_at(
                    spanned,
                    &format!("routes.{route}"),
                    "a route name must be letters, digits, '-', '_' or '.'",
                ));
            }
            for model in &config.models {
                if !model_names.contains(model.get_ref().as_str()) {
                    return Err(self.error_at(
                        model,
                        &key("models"),
                        format!("unknown model `{}`", model.get_ref()),
                    ));
                }
            }
            if let Some(first) = config.models.first() {
                if route == "default" {
                    return Err(self.error_at(
                        first,
                        &key("models"),
                        "the default route applies to every model; list models in a named route",
                    ));
                }
                if model_names.contains(route.as_str()) {
                    return Err(self.error_at(
                        first,
                        &key("models"),
                        format!("a route named after model `{route}` is that model's policy and cannot list models"),
                    ));
                }
            }
            for fallback in config.fallbacks.iter().flatten() {
                if !model_names.contains(fallback.get_ref().as_str()) {
                    return Err(self.error_at(
                        fallback,
                        &key("fallbacks"),
                        format!("unknown model `{}`", fallback.get_ref()),
                    ));
                }
            }
            let share = |value: &Option<Spanned<f64>>, field: &str| match value {
                Some(v) if !(0.0..=1.0).contains(v.get_ref()) => {
                    Err(self.error_at(v, &key(field), "must be between 0 and 1"))
                }
                _ => Ok(()),
            };
            share(&config.cost_weight, "cost_weight")?;
            share(&config.explore, "explore")?;
            if let Some(attempts) = &config.attempts
                && !(1..=10).contains(attempts.get_ref())
            {
                return Err(self.error_at(attempts, &key("attempts"), "must be 1 to 10"));
            }
            if let Some(hedge) = &config.hedge {
                HedgeAfter::parse(hedge.after.get_ref())
                    .map_err(|e| self.error_at(&hedge.after, &key("hedge.after"), e))?;
                share(&hedge.budget, "hedge.budget")?;
            }
            if let Some(backoff) = &config.backoff {
                let b = backoff.get_ref();
                if b.base_ms.unwrap_or(0) > b.max_ms.unwrap_or(u64::MAX) {
                    return Err(self.error_at(
                        backoff,
                        &key("backoff"),
                        "base_ms must not exceed max_ms",
                    ));
                }
            }
            if let Some(timeouts) = &config.timeouts
                && (timeouts.get_ref().ttft_ms == Some(0) || timeouts.get_ref().total_ms == Some(0))
            {
                return Err(self.error_at(
                    timeouts,
                    &key("timeouts"),
                    "deadlines must be positive",
                ));
            }
            if let Some(breaker) = &config.breaker {
                if route != "default" {
                    return Err(self.error_at(
                        breaker,
                        &key("breaker"),
                        "only allowed in routes.default: a breaker belongs to the deployment, whatever route uses it",
                    ));
                }
                let b = breaker.get_ref();
                let bad = if b.failures == Some(0) {
                    Some("failures must be at least 1")
                } else if b.ratio.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
                    Some("ratio must be above 0 and at most 1")
                } else if b.window_s == Some(0) || b.cooldown_s == Some(0) {
                    Some("window_s and cooldown_s must be positive")
                } else {
                    None
                };
                if let Some(message) = bad {
                    return Err(self.error_at(breaker, &key("breaker"), message));
                }
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_store(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        if let Some(url) = &store.url {
            let text = url.get_ref().0.as_str();
            if text.is_empty() {
                return Err(self.error_at(url, "store.url", "must not be empty"));
            }
            if text.contains("://")
                && !["sqlite://", "postgres://", "postgresql://"]
                    .iter()
                    .any(|scheme| text.starts_with(scheme))
            {
                return Err(self.error_at(
                    url,
                    "store.url",
                    "must be sqlite://FILE, postgres://... or a file path",
                ));
            }
        }
        if let Some(url) = &self.redis.url {
            let text = url.get_ref().0.as_str();
            if !["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|scheme| text.starts_with(scheme))
            {
                return Err(self.error_at(
                    url,
                    "redis.url",
                    "must be redis://host:port, rediss://... or unix://PATH",
                ));
            }
        }
        for (value, key) in [
            (&store.queue_capacity, "store.queue_capacity"),
            (&store.batch_size, "store.batch_size"),
        ] {
            if let Some(v) = value
                && *v.get_ref() == 0
            {
                return Err(self.error_at(v, key, "must be at least 1"));
            }
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !["http://", "https://"]
                .iter()
                .any(|scheme| endpoint.get_ref().starts_with(scheme))
        {
            return Err(self.error_at(
                endpoint,
                "telemetry.otlp_endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(token) = &self.admin.token
            && token.get_ref().0.len() < 16
        {
            return Err(self.error_at(token, "admin.token", "must be at least 16 characters"));
        }
        Ok(())
    }

    /// Parses, expands `${ENV}` and validates a configuration.
    pub fn from_toml(source: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(source))
            .map_err(|e| parse_error(source, origin, &e))?;
        config.origin = origin.to_owned();
        config.source = SourceText(source.to_owned());
        config.expand_env()?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::from_toml(&source, &path.display().to_string())
    }

    /// With no file: providers from the usual environment variables, or else the built-in
    /// simulated providers.
    pub fn discover() -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut providers = Vec::new();
        if env("OPENAI_API_KEY").is_some() {
            providers.push(
                "[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\
                 endpoint = \"${OPENAI_BASE_URL:-https://api.openai.com/v1}\"\n\
                 api_key = \"${OPENAI_API_KEY}\"\ncloud = \"openai\"\nregion = \"global\"\n",
            );
        }
        if env("AZURE_OPENAI_API_KEY").is_some() && env("AZURE_OPENAI_ENDPOINT").is_some() {
            providers.push(
                "[[providers]]\nname = \"azure\"\nkind = \"azure-openai\"\n\
                 endpoint = \"${AZURE_OPENAI_ENDPOINT}\"\napi_key = \"${AZURE_OPENAI_API_KEY}\"\n\
                 api_version = \"2024-10-21\"\ncloud = \"azure\"\n",
            );
        }
        if providers.is_empty() {
            return Self::from_toml(BUILTIN_SIM, "<built-in simulated providers>");
        }
        let names: Vec<&str> = providers
            .iter()
            .map(|p| {
                if p.contains("\"azure\"") {
                    "azure"
                } else {
                    "openai"
                }
            })
            .collect();
        let mut source = providers.concat();
        for (model, price) in DISCOVERED_MODELS {
            source.push_str(&format!(
                "\n[[models]]\nname = \"{model}\"\ndeployments = [\n"
            ));
            for name in &names {
                // Azure deployments are assumed to be named after the model they serve.
                source.push_str(&format!(
                    "  {{ provider = \"{name}\", target = \"{model}\", price = {price} }},\n"
                ));
            }
            source.push_str("]\n");
        }
        Self::from_toml(&source, "<discovered from environment>")
    }

    pub fn listen(&self) -> &str {
        self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    /// The 1-based line of a byte offset in the source, for messages.
    pub fn line_of(&self, offset: usize) -> usize {
        self.source
            .0
            .get(..offset)
            .map_or(0, |before| before.bytes().filter(|b| *b == b'\n').count())
            + 1
    }

    /// A message located at a spanned value.
    pub fn error_at<T>(
        &self,
        at: &Spanned<T>,
        key: &str,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError(format!(
            "{}:{}: {key}: {message}",
            self.origin,
            self.line_of(at.span().start)
        ))
    }

    fn expand_env(&mut self) -> Result<(), ConfigError> {
        let mut failures: Vec<(usize, String, String)> = Vec::new();
        let mut expand = |value: &mut String, offset: usize, key: String| {
            if let Err(message) = expand_in_place(value) {
                failures.push((offset, key, message));
            }
        };
        for (i, provider) in self.providers.iter_mut().enumerate() {
            if let Some(endpoint) = &mut provider.endpoint {
                let offset = endpoint.span().start;
                expand(
                    endpoint.get_mut(),
                    offset,
                    format!("providers[{i}].endpoint"),
                );
            }
            if let Some(key) = &mut provider.api_key {
                let offset = key.span().start;
                expand(
                    &mut key.get_mut().0,
                    offset,
                    format!("providers[{i}].api_key"),
                );
            }
            for (name, value) in &mut provider.headers {
                let offset = value.span().start;
                expand(
                    &mut value.get_mut().0,
                    offset,
                    format!("providers[{i}].headers.{name}"),
                );
            }
        }
        for (i, key) in self.server.api_keys.iter_mut().enumerate() {
            let offset = key.span().start;
            expand(
                &mut key.get_mut().0,
                offset,
                format!("server.api_keys[{i}]"),
            );
        }
        if let Some(url) = &mut self.store.url {
            let offset = url.span().start;
            expand(&mut url.get_mut().0, offset, "store.url".to_owned());
        }
        if let Some(url) = &mut self.redis.url {
            let offset = url.span().start;
            expand(&mut url.get_mut().0, offset, "redis.url".to_owned());
        }
        if let Some(token) = &mut self.admin.token {
            let offset = token.span().start;
            expand(&mut token.get_mut().0, offset, "admin.token".to_owned());
        }
        match failures.into_iter().next() {
            None => Ok(()),
            Some((offset, key, message)) => Err(ConfigError(format!(
                "{}:{}: {key}: {message}",
                self.origin,
                self.line_of(offset)
            ))),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_store()?;
        let mut provider_names = HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let at = |key: &str| format!("providers[{i}].{key}");
            let name = provider.name.get_ref();
            if !valid_name(name) {
                return Err(self.error_at(
                    &provider.name,
                    &at("name"),
                    "must be non-empty letters, digits, '-', '_' or '.'",
                ));
            }
            if !provider_names.insert(name.as_str()) {
                return Err(self.error_at(
                    &provider.name,
                    &at("name"),
                    format!("duplicate provider name `{name}`"),
                ));
            }
            if let Some(endpoint) = &provider.endpoint
                && !(endpoint.get_ref().starts_with("http://")
                    || endpoint.get_ref().starts_with("https://"))
            {
                return Err(self.error_at(
                    endpoint,
                    &at("endpoint"),
                    "must be an http:// or https:// URL",
                ));
            }
            let needs = |what: &str| {
                self.error_at(
                    &provider.name,
                    &at(what),
                    format!("is required for kind {:?}", provider.kind),
                )
            };
            if let Some(setting) = crate::kinds::missing_setting(provider) {
                return Err(needs(setting.key()));
            }
            if provider.kind == ProviderKind::Sim {
                match &provider.dialect {
                    None => return Err(needs("dialect")),
                    Some(dialect) if crate::kinds::simulated(dialect.get_ref()).is_none() => {
                        return Err(self.error_at(
                            dialect,
                            &at("dialect"),
                            format!(
                                "unknown dialect `{}`, expected one of {:?}",
                                dialect.get_ref(),
                                crate::kinds::sim_dialects()
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if provider.kind != ProviderKind::Sim {
                if let Some(sim) = &provider.sim {
                    return Err(self.error_at(sim, &at("sim"), "is only allowed for kind \"sim\""));
                }
                if let Some(dialect) = &provider.dialect {
                    return Err(self.error_at(
                        dialect,
                        &at("dialect"),
                        "is only allowed for kind \"sim\" (the kind decides the dialect)",
                    ));
                }
            }
        }
        let mut model_names = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let name = model.name.get_ref();
            if name.is_empty() || !model_names.insert(name.as_str()) {
                return Err(self.error_at(
                    &model.name,
                    &format!("models[{i}].name"),
                    format!("empty or duplicate model name `{name}`"),
                ));
            }
            if model.deployments.is_empty() {
                return Err(self.error_at(
                    &model.name,
                    &format!("models[{i}].deployments"),
                    "needs at least one deployment",
                ));
            }
            for (j, deployment) in model.deployments.iter().enumerate() {
                let key = format!("models[{i}].deployments[{j}]");
                if !provider_names.contains(deployment.provider.get_ref().as_str()) {
                    return Err(self.error_at(
                        &deployment.provider,
                        &format!("{key}.provider"),
                        format!("unknown provider `{}`", deployment.provider.get_ref()),
                    ));
                }
                let price = deployment.price;
                let prices = [
                    Some(price.input),
                    Some(price.output),
                    price.cached_input,
                    price.cache_write,
                ];
                if prices
                    .into_iter()
                    .flatten()
                    .any(|p| !p.is_finite() || p < 0.0)
                {
                    return Err(self.error_at(
                        &deployment.provider,
                        &format!("{key}.price"),
                        "prices must be finite and non-negative",
                    ));
                }
            }
        }
        self.validate_routes(&model_names)?;
        self.validate_aliases(&model_names)?;
        Ok(())
    }

    /// Aliases: each key a name or pattern that can apply, each target a model or a route
    /// that lists models.
    fn validate_aliases(&self, model_names: &HashSet<&str>) -> Result<(), ConfigError> {
        for (alias, target) in &self.aliases {
            let key = format!("aliases.\"{alias}\"");
            let name = target.get_ref().as_str();
            let problem = if alias.trim().is_empty() {
                Some("an alias must not be empty".to_owned())
            } else if alias.matches('*').count() > MAX_ALIAS_STARS {
                Some(format!("a pattern may hold at most {MAX_ALIAS_STARS} `*`"))
            } else if model_names.contains(alias.as_str()) {
                Some(format!(
                    "`{alias}` is a model's name, which always wins: this alias could never apply"
                ))
            } else if self.routes.contains_key(alias) {
                Some(format!(
                    "`{alias}` is a route's name, which always wins: this alias could never apply"
                ))
            } else if !(model_names.contains(name) || self.route_lists_models(name)) {
                Some(format!(
                    "unknown model `{name}` (an alias leads to a model or a route that lists models)"
                ))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(self.error_at(target, &key, message));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Whether `name` is a route a request may name as its model.
    fn route_lists_models(&self, name: &str) -> bool {
        self.routes
            .get(name)
            .is_some_and(|r| !r.get_ref().models.is_empty())
    }
}

/// The most `*` an alias pattern may hold.
pub const MAX_ALIAS_STARS: usize = 4;

/// Logical models registered for providers discovered from the environment, with list prices.
const DISCOVERED_MODELS: &[(&str, &str)] = &[
    (
        "gpt-4o",
        "{ input = 2.50, output = 10.00, cached_input = 1.25 }",
    ),
    (
        "gpt-4o-mini",
        "{ input = 0.15, output = 0.60, cached_input = 0.075 }",
    ),
    (
        "gpt-4.1",
        "{ input = 2.00, output = 8.00, cached_input = 0.50 }",
    ),
    (
        "gpt-4.1-mini",
        "{ input = 0.40, output = 1.60, cached_input = 0.10 }",
    ),
    (
        "o4-mini",
        "{ input = 1.10, output = 4.40, cached_input = 0.275 }",
    ),
    ("text-embedding-3-small", "{ input = 0.02, output = 0.0 }"),
    ("text-embedding-3-large", "{ input = 0.13, output = 0.0 }"),
];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `file:line: key: message` for a TOML or type error. The message is rebuilt from the error's
/// span, key path and kind only: toml prints the offending source line and serde quotes the
/// value (`invalid type: string "sk-...", expected u64`), and either may be a secret typed under
/// a misspelled key or in the wrong place.
fn parse_error(
    source: &str,
    origin: &str,
    error: &serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let inner = error.inner();
    let mut key = String::new();
    let mut last = "";
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            // `$__serde_spanned_private_*` are the fields `Spanned` reads, not the file's keys.
            serde_path_to_error::Segment::Map { key: name } if !name.starts_with("$__") => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
                last = name;
            }
            _ => {}
        }
    }
    let (unknown_field, message) = value_free_message(inner.message());
    if let Some(field) = unknown_field
        && field != last
    {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(&field);
    }
    let start = inner.span().map(|span| span.start.min(source.len()));
    let line = start.map(|start| {
        let before = source.as_bytes().get(..start).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        if key.is_empty() {
            // A syntax error: toml knows no path, but the line's own key is before its `=`.
            key = key_before_equals(source.as_bytes().get(line_start..start).unwrap_or_default());
        }
        before.iter().filter(|b| **b == b'\n').count() + 1
    });
    let at = match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_owned(),
    };
    if key.is_empty() {
        ConfigError(format!("{at}: {message}"))
    } else {
        ConfigError(format!("{at}: {key}: {message}"))
    }
}

/// The key of a `key = value` line, from the text before the error's column, if that holds a
/// `=` and the key is made of key characters only (never part of a value).
fn key_before_equals(line: &[u8]) -> String {
    let Some(equals) = line.iter().position(|b| *b == b'=') else {
        return String::new();
    };
    let key = String::from_utf8_lossy(&line[..equals]).trim().to_owned();
    let key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ');
    if key.chars().all(key_char) {
        key
    } else {
        String::new()
    }
}

/// A toml/serde error message without the value it quotes, and the name of an unknown field
/// (a key, so fit to print, and better shown in the key path). Values appear in serde's
/// `invalid type`/`invalid value` (`string "…"`, ``integer `5` ``) and `unknown variant `…``
/// messages; toml's own messages name only keys, types and expected tokens.
fn value_free_message(message: &str) -> (Option<String>, String) {
    let message = message
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let backticked = |rest: &str| -> Option<(String, String)> {
        let rest = rest.strip_prefix('`')?;
        let end = rest.find('`')?;
        Some((rest[..end].to_owned(), rest[end + 1..].to_owned()))
    };
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some((field, after)) = backticked(rest)
    {
        return (Some(field), format!("unknown field{after}"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // The variant is a value; its end is the last "`, expected" or the end.
        let after = rest
            .rfind("`, expected")
            .map_or(String::new(), |end| rest[end + 1..].to_owned());
        return (None, format!("unknown variant{after}"));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `rest` is `<what it found>, expected <what it wanted>`; the found part names a
            // kind and perhaps the value (`string "…"`, ``integer `5` ``): keep the kind.
            let expected = rest
                .rfind(", expected ")
                .map_or(String::new(), |at| rest[at..].to_owned());
            let found = rest.split([' ', ',']).next().unwrap_or_default();
            let kind = match found {
                "floating" => "floating point",
                "unit" => "unit value",
                "byte" => "byte array",
                "string" | "integer" | "boolean" | "character" | "sequence" | "map" | "enum"
                | "Option" | "newtype" => found,
                _ => "value",
            };
            return (None, format!("{prefix}{kind}{expected}"));
        }
    }
    (None, message)
}

/// Expands `${VAR}` and `${VAR:-default}` from the environment.
fn expand_in_place(value: &mut String) -> Result<(), String> {
    if !value.contains("${") {
        return Ok(());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${`".to_owned())?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(found), _) => out.push_str(&found),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    *value = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_is_valid_and_offline() {
        let config = Config::from_toml(BUILTIN_SIM, "builtin").unwrap();
        assert!(config.providers.iter().all(|p| p.kind == ProviderKind::Sim));
        for model in ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"] {
            let found = config
                .models
                .iter()
                .find(|m| m.name.get_ref() == model)
                .unwrap();
            let clouds: HashSet<_> = found
                .deployments
                .iter()
                .map(|d| {
                    let p = config
                        .providers
                        .iter()
                        .find(|p| p.name.get_ref() == d.provider.get_ref())
                        .unwrap();
                    p.cloud.clone()
                })
                .collect();
            assert_eq!(clouds.len(), 2, "{model} should be on two clouds");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\nbogus = 1\n";
        let err = Config::from_toml(source, "x.toml").unwrap_err().0;
        assert!(
            err.starts_with("x.toml:5: providers[0].bogus: unknown field, expected one of "),
            "{err}"
        );
        let err = Config::from_toml("bogus = 1\n", "x.toml").unwrap_err().0;
        assert!(
            err.starts_with("x.toml:1: bogus: unknown field, expected one of `server`, "),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_located() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [\n  { provider = \"nope\", target = \"t\" },\n]\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert_eq!(
            err,
            "c.toml:9: models[0].deployments[0].provider: unknown provider `nope`"
        );
        let source = "[[providers]]\nname = \"a\"\nkind = \"warp\"\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert!(
            err.starts_with("c.toml:3: providers[0].kind: unknown variant, expected one of "),
            "{err}"
        );
        let source = "[[providers]]\nname = \"az\"\nkind = \"azure-openai\"\nendpoint = \"https://x\"\napi_key = \"k\"\n";
        let err = Config::from_toml(source, "c.toml").unwrap_err().0;
        assert_eq!(
            err,
            "c.toml:2: providers[0].api_version: is required for kind AzureOpenai"
        );
    }

    #[test]
    fn env_is_expanded_and_missing_env_is_located_without_leaking() {
        let source = "[[providers]]\nname = \"a\"\nkind = \"openai-compatible\"\nendpoint = \"${CROSSBAR_TEST_UNSET_URL:-http://localhost:1}\"\napi_key = \"${CROSSBAR_TEST_UNSET_KEY}\"\n";
        let err = Config::from_toml(source, "e.toml").unwrap_err().0;
        assert_eq!(
            err,
            "e.toml:5: providers[0].api_key: environment variable `CROSSBAR_TEST_UNSET_KEY` is not set"
        );
        let mut value = "a${CROSSBAR_TEST_UNSET_URL:-b}c".to_owned();
        expand_in_place(&mut value).unwrap();
        assert_eq!(value, "abc");
    }

    /// Issue 18 item 12: a secret under a misspelled key, or of the wrong type, used to be
    /// printed back (toml quotes the source line, serde the value); errors now name the file,
    /// line and key only.
    #[test]
    fn parse_errors_never_print_values() {
        let secret = "sk-live-0123456789abcdef";
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\n";
        let cases = [
            (
                format!("api_kye = \"{secret}\"\n"),
                "s.toml:4: providers[0].api_kye: unknown field, expected one of `name`, `kind`, `endpoint`, `api_key`, `api_version`, `auth`, `headers`, `cloud`, `region`, `dialect`, `sim`, `max_tokens_field`, `api`, `project`, `location`, `aws`, `google_credentials`, `image_fetch`, `timeouts`",
            ),
            (
                format!("api_key = \"k\"\naws = {{ acces_key_id = \"{secret}\" }}\n"),
                "s.toml:5: providers[0].aws.acces_key_id: unknown field, expected one of `access_key_id`, `secret_access_key`, `session_token`, `profile`",
            ),
            (
                format!("api_key = \"k\"\ncloud = {{ x = \"{secret}\" }}\n"),
                "s.toml:5: providers[0].cloud: invalid type: map, expected a string",
            ),
            (
                format!("api_key = \"k\"\nmax_tokens_field = \"{secret}\"\n"),
                "s.toml:5: providers[0].max_tokens_field: unknown variant, expected `max_tokens` or `max_completion_tokens`",
            ),
            (
                format!("api_key = \"k\"\nauth = \"{secret}\"\n"),
                "s.toml:5: providers[0].auth: unknown variant, expected `api-key` or `bearer`",
            ),
            (
                format!("api_key = \"k\"\n[server]\nmax_body_bytes = \"{secret}\"\n"),
                "s.toml:6: server.max_body_bytes: invalid type: string, expected usize",
            ),
            (
                format!("api_key = \"k\"\n[server]\napi_keys = \"{secret}\"\n"),
                "s.toml:6: server.api_keys: invalid type: string, expected a sequence",
            ),
            (
                format!("api_key = \"k\"\n[store]\nurl = [\"{secret}\"]\n"),
                "s.toml:6: store.url: invalid type: sequence, expected a string",
            ),
            (
                format!("api_key = \"k\"\n[admin]\ntoken = {{ value = \"{secret}\" }}\n"),
                "s.toml:6: admin.token: invalid type: map, expected a string",
            ),
            (
                format!("api_key = \"k\"\n[routes.default]\nobjective = \"{secret}\"\n"),
                "s.toml:6: routes.default.objective: unknown variant, expected one of `cost`, `latency`, `balanced`, `order`, `round-robin`",
            ),
            (
                "api_key = \"k\"\n[routes.default]\nattempts = 123456789012345\n".to_owned(),
                "s.toml:6: routes.default.attempts: invalid value: integer, expected u32",
            ),
            // Syntax errors: toml printed the whole line, value included.
            (
                format!("api_key = \"{secret}\n"),
                "s.toml:4: api_key: invalid basic string",
            ),
            (
                format!("api_key = {secret}\n"),
                "s.toml:4: api_key: invalid string; expected `\"`, `'`",
            ),
            (
                format!("api_key = \"k\"\napi_key = \"{secret}\"\n"),
                "s.toml:5: duplicate key `api_key` in table `providers`",
            ),
        ];
        for (extra, expected) in cases {
            let err = Config::from_toml(&format!("{base}{extra}"), "s.toml")
                .unwrap_err()
                .0;
            assert_eq!(err, expected, "{extra}");
            assert!(!err.contains("sk-live"), "{err}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let source =
            "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"sk-very-secret\"\n";
        let config = Config::from_toml(source, "s.toml").unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
    }

    #[test]
    fn store_and_admin_sections_are_validated_with_locations() {
        let config = Config::from_toml("", "c.toml").unwrap();
        assert!(config.store.enabled());
        assert_eq!(config.store.url(), DEFAULT_STORE_URL);
        assert_eq!(config.store.retention_days(), 90);
        let source = "[store]\nurl = \"postgres://u@h/db\"\nretention_days = 7\n[admin]\ntoken = \"0123456789abcdef\"\n";
        let config = Config::from_toml(source, "c.toml").unwrap();
        assert_eq!(config.store.url(), "postgres://u@h/db");
        assert_eq!(config.store.retention_days(), 7);
        assert_eq!(config.store.responses_retention_days(), 30);
        let config =
            Config::from_toml("[store]\nresponses_retention_days = 0\n", "c.toml").unwrap();
        assert_eq!(config.store.responses_retention_days(), 0);
        assert_eq!(config.store.retention_days(), 90);
        for (bad, message) in [
            ("-1", "invalid value: integer, expected u64"),
            ("\"30\"", "invalid type: string, expected u64"),
            ("1.5", "invalid type: floating point, expected u64"),
        ] {
            let source = format!("[store]\n\nresponses_retention_days = {bad}\n");
            let err = Config::from_toml(&source, "c.toml").unwrap_err().0;
            assert_eq!(
                err,
                format!("c.toml:3: store.responses_retention_days: {message}")
            );
        }
        let err = Config::from_toml("[store]\nurl = \"mysql://h\"\n", "c.toml")
            .unwrap_err()
            .0;
        assert!(err.starts_with("c.toml:2: store.url: "), "{err}");
        let err = Config::from_toml("[store]\n\nqueue_capacity = 0\n", "c.toml")
            .unwrap_err()
            .0;
        assert_eq!(err, "c.toml:3: store.queue_capacity: must be at least 1");
        let err = Config::from_toml("[admin]\ntoken = \"short\"\n", "c.toml")
            .unwrap_err()
            .0;
        assert_eq!(err, "c.toml:2: admin.token: must be at least 16 characters");
    }

    #[test]
    fn route_settings_are_validated_with_locations() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n";
        let ok = format!(
            "{base}[routes.default]\nobjective = \"round-robin\"\nattempts = 4\nhedge = {{ after = \"p95\", budget = 0.2 }}\nbreaker = {{ failures = 3, cooldown_s = 10 }}\naffinity = {{ ttl_s = 60 }}\n\n[routes.fast]\nmodels = [\"m\"]\nobjective = \"latency\"\ntimeouts = {{ ttft_ms = 2000 }}\n"
        );
        let config = Config::from_toml(&ok, "r.toml").unwrap();
        assert_eq!(
            config.routes["default"].get_ref().objective,
            Some(Objective::RoundRobin)
        );
        let cases = [
            (
                "[routes.default]\nhedge = { after = \"soon\" }\n",
                "r.toml:11: routes.default.hedge.after: ",
            ),
            (
                "[routes.default]\nhedge = { after = \"p100\" }\n",
                "r.toml:11: routes.default.hedge.after: ",
            ),
            (
                "[routes.default]\n\nattempts = 0\n",
                "r.toml:12: routes.default.attempts: must be 1 to 10",
            ),
            (
                "[routes.default]\ncost_weight = 1.5\n",
                "r.toml:11: routes.default.cost_weight: must be between 0 and 1",
            ),
            (
                "[routes.default]\nfallbacks = [\"nope\"]\n",
                "r.toml:11: routes.default.fallbacks: unknown model `nope`",
            ),
            (
                "[routes.x]\nmodels = [\"m\", \"zz\"]\n",
                "r.toml:11: routes.x.models: unknown model `zz`",
            ),
            (
                "[routes.m]\nmodels = [\"m\"]\n",
                "r.toml:11: routes.m.models: a route named after model `m`",
            ),
            (
                "[routes.default]\nmodels = [\"m\"]\n",
                "r.toml:11: routes.default.models: ",
            ),
            (
                "[routes.x]\nbreaker = { failures = 2 }\n",
                "r.toml:11: routes.x.breaker: only allowed in routes.default",
            ),
            (
                "[routes.default]\nbreaker = { ratio = 0.0 }\n",
                "r.toml:11: routes.default.breaker: ratio",
            ),
            (
                "[routes.default]\ntimeouts = { ttft_ms = 0 }\n",
                "r.toml:11: routes.default.timeouts: deadlines must be positive",
            ),
            ("[routes.default]\nobjective = \"fastest\"\n", "r.toml"),
        ];
        for (route, expected) in cases {
            let err = Config::from_toml(&format!("{base}{route}"), "r.toml")
                .unwrap_err()
                .0;
            assert!(err.starts_with(expected), "{route}: {err}");
        }
        assert_eq!(
            HedgeAfter::parse("250ms"),
            Ok(HedgeAfter::Fixed(std::time::Duration::from_millis(250)))
        );
        assert_eq!(HedgeAfter::parse("p90"), Ok(HedgeAfter::Percentile(90)));
    }

    #[test]
    fn aliases_are_validated_with_locations() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n[routes.fast]\nmodels = [\"m\"]\n\n[routes.policy]\nobjective = \"cost\"\n\n";
        let ok = format!(
            "{base}[aliases]\n\"claude-*\" = \"m\"\n\"my-fast\" = \"fast\"\n\"*-*-*-*\" = \"m\"\n"
        );
        let config = Config::from_toml(&ok, "a.toml").unwrap();
        assert_eq!(config.aliases["claude-*"].get_ref(), "m");
        assert_eq!(config.aliases["my-fast"].get_ref(), "fast");
        let cases = [
            (
                "\"x\" = \"nope\"",
                "a.toml:17: aliases.\"x\": unknown model `nope` (an alias leads to a model or a route that lists models)",
            ),
            (
                "\"x\" = \"policy\"",
                "a.toml:17: aliases.\"x\": unknown model `policy` (an alias leads to a model or a route that lists models)",
            ),
            (
                "\"m\" = \"fast\"",
                "a.toml:17: aliases.\"m\": `m` is a model's name, which always wins: this alias could never apply",
            ),
            (
                "\"fast\" = \"m\"",
                "a.toml:17: aliases.\"fast\": `fast` is a route's name, which always wins: this alias could never apply",
            ),
            (
                "\"*-*-*-*-*\" = \"m\"",
                "a.toml:17: aliases.\"*-*-*-*-*\": a pattern may hold at most 4 `*`",
            ),
            (
                "\"\" = \"m\"",
                "a.toml:17: aliases.\"\": an alias must not be empty",
            ),
        ];
        for (alias, expected) in cases {
            let err = Config::from_toml(&format!("{base}[aliases]\n{alias}\n"), "a.toml")
                .unwrap_err()
                .0;
            assert_eq!(err, expected, "{alias}");
        }
    }

    #[test]
    fn route_policies_parse_and_refuse_unknown_values() {
        let base = "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\" }]\n\n";
        let config = Config::from_toml(
            &format!("{base}[routes.default]\nhosted_tools = \"drop\"\nunknown_fields = \"pass\"\n\n[routes.m]\nhosted_tools = \"refuse\"\n"),
            "p.toml",
        )
        .unwrap();
        let default = config.routes["default"].get_ref();
        assert_eq!(default.hosted_tools, Some(HostedTools::Drop));
        assert_eq!(default.unknown_fields, Some(UnknownFields::Pass));
        let m = config.routes["m"].get_ref();
        assert_eq!(m.hosted_tools, Some(HostedTools::Refuse));
        assert_eq!(m.unknown_fields, None);
        let err = Config::from_toml(
            &format!("{base}[routes.default]\nunknown_fields = \"ignore\"\n"),
            "p.toml",
        )
        .unwrap_err()
        .0;
        assert_eq!(
            err,
            "p.toml:11: routes.default.unknown_fields: unknown variant, expected `reject` or `pass`"
        );
    }
}
