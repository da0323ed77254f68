//! `crossbar simulate --scenario FILE [--json]`: replays a synthetic workload through the real
//! router (ranking, retries, Retry-After, breakers, hedging) against modelled deployments on
//! tokio's paused clock, so minutes of traffic take a moment and every run replays exactly.
//! For each policy, with and without hedging, it reports latency percentiles, error rate and
//! total cost.
//!
//! Only the upstream call is modelled (behind `crossbar_core::router::Upstream`): each call's
//! fate is drawn from a hash of (scenario seed, request, deployment, nth call), so every policy
//! meets the same luck for the same request on the same deployment.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use crossbar_core::chat::{
    ChatRequest, ChatResponse, FinishReason, Message, Role, StreamEvent, Usage,
};
use crossbar_core::client::ChatStream;
use crossbar_core::config::{Config, Objective};
use crossbar_core::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crossbar_core::router::{Deployment, Router, Upstream};
use crossbar_core::{Error, Result as CoreResult};
use futures::StreamExt;
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A workload and the deployments it runs against.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    /// How many requests arrive, as a Poisson process at `rate_per_s`.
    pub requests: usize,
    pub rate_per_s: f64,
    /// Share of requests that stream.
    #[serde(default = "half")]
    pub stream_share: f64,
    /// Uniform ranges.
    pub prompt_tokens: Range,
    pub output_tokens: Range,
    /// `[routes.default]` settings shared by every policy (attempts, timeouts, breaker,
    /// hedge...); `objective` is set per policy and `hedge` only in the hedged runs (default
    /// `{ after = "p95", budget = 0.1 }`).
    #[serde(default)]
    pub route: toml::Table,
    pub deployments: Vec<SimDeployment>,
}

fn half() -> f64 {
    0.5
}

fn one() -> f64 {
    1.0
}

fn sim() -> String {
    "sim".to_owned()
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    fn draw(self, rng: &mut impl Rng) -> u64 {
        if self.max <= self.min {
            self.min
        } else {
            rng.random_range(self.min..=self.max)
        }
    }
}

/// One modelled deployment of the scenario's single logical model.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDeployment {
    pub name: String,
    #[serde(default = "sim")]
    pub cloud: String,
    #[serde(default = "sim")]
    pub region: String,
    /// USD per million tokens.
    pub price: SimPrice,
    pub ttft_ms: Latency,
    pub tokens_per_s: f64,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub rate_limit_rate: f64,
    #[serde(default = "one")]
    pub retry_after_s: f64,
    /// Calls that never answer (until the provider's own 120 s first-byte deadline).
    #[serde(default)]
    pub hang_rate: f64,
    /// Windows in which some settings are replaced (outages, 429 storms, slow spells).
    #[serde(default)]
    pub incidents: Vec<Incident>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPrice {
    pub input: f64,
    pub output: f64,
}

/// A log-normal time to first token fitted to its median and p99, optionally mixed with a
/// log-uniform tail (`tail_share` of calls between `tail_min` and `tail_max` ms).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub median: f64,
    pub p99: f64,
    #[serde(default)]
    pub tail_share: f64,
    #[serde(default)]
    pub tail_min: f64,
    #[serde(default)]
    pub tail_max: f64,
}

impl Latency {
    fn draw(&self, rng: &mut impl Rng) -> Duration {
        let ms = if self.tail_share > 0.0 && rng.random::<f64>() < self.tail_share {
            let (low, high) = (self.tail_min.max(1.0).ln(), self.tail_max.max(1.0).ln());
            (low + (high - low).max(0.0) * rng.random::<f64>()).exp()
        } else {
            // z for the 99th percentile of a standard normal.
            let sigma = (self.p99.max(self.median) / self.median.max(1.0)).ln() / 2.326;
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            self.median.max(1.0) * (sigma * z).exp()
        };
        Duration::from_secs_f64(ms.clamp(1.0, 600_000.0) / 1000.0)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    pub from_s: f64,
    pub to_s: f64,
    pub error_rate: Option<f64>,
    pub rate_limit_rate: Option<f64>,
    pub retry_after_s: Option<f64>,
    pub hang_rate: Option<f64>,
    pub ttft_ms: Option<Latency>,
}

impl SimDeployment {
    /// Settings in force `at` seconds into the run.
    fn at(&self, at: f64) -> SimDeployment {
        let mut now = self.clone();
        for incident in self
            .incidents
            .iter()
            .filter(|i| i.from_s <= at && at < i.to_s)
        {
            now.error_rate = incident.error_rate.unwrap_or(now.error_rate);
            now.rate_limit_rate = incident.rate_limit_rate.unwrap_or(now.rate_limit_rate);
            now.retry_after_s = incident.retry_after_s.unwrap_or(now.retry_after_s);
            now.hang_rate = incident.hang_rate.unwrap_or(now.hang_rate);
            now.ttft_ms = incident.ttft_ms.unwrap_or(now.ttft_ms);
        }
        now
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let scenario: Scenario = toml::from_str(text).with_context(|| origin.to_owned())?;
        anyhow::ensure!(
            !scenario.deployments.is_empty(),
            "{origin}: at least one deployment is needed"
        );
        anyhow::ensure!(
            scenario.rate_per_s > 0.0 && scenario.requests > 0,
            "{origin}: requests and rate_per_s must be positive"
        );
        anyhow::ensure!(
            !scenario.route.contains_key("objective"),
            "{origin}: route.objective is set per policy by the simulator"
        );
        Ok(scenario)
    }

    /// The gateway configuration of one policy: the deployments as providers (never called
    /// over HTTP here) and `routes.default` from the scenario plus the policy.
    fn config(&self, objective: Objective, hedge: bool) -> anyhow::Result<Config> {
        let mut root = toml::Table::new();
        let mut providers = Vec::new();
        let mut deployments = Vec::new();
        for d in &self.deployments {
            let mut provider = toml::Table::new();
            provider.insert("name".into(), d.name.clone().into());
            provider.insert("kind".into(), "openai-compatible".into());
            provider.insert("endpoint".into(), "http://127.0.0.1:9/v1".into());
            provider.insert("cloud".into(), d.cloud.clone().into());
            provider.insert("region".into(), d.region.clone().into());
            providers.push(toml::Value::Table(provider));
            let mut price = toml::Table::new();
            price.insert("input".into(), d.price.input.into());
            price.insert("output".into(), d.price.output.into());
            let mut deployment = toml::Table::new();
            deployment.insert("provider".into(), d.name.clone().into());
            deployment.insert("target".into(), d.name.clone().into());
            deployment.insert("price".into(), toml::Value::Table(price));
            deployments.push(toml::Value::Table(deployment));
        }
        let mut model = toml::Table::new();
        model.insert("name".into(), "m".into());
        model.insert("deployments".into(), toml::Value::Array(deployments));
        let mut route = self.route.clone();
        route.insert("objective".into(), objective.as_str().into());
        if hedge {
            if !route.contains_key("hedge") {
                let mut default = toml::Table::new();
                default.insert("after".into(), "p95".into());
                default.insert("budget".into(), 0.1.into());
                route.insert("hedge".into(), toml::Value::Table(default));
            }
        } else {
            route.remove("hedge");
        }
        let mut routes = toml::Table::new();
        routes.insert("default".into(), toml::Value::Table(route));
        root.insert("providers".into(), toml::Value::Array(providers));
        root.insert(
            "models".into(),
            toml::Value::Array(vec![toml::Value::Table(model)]),
        );
        root.insert("routes".into(), toml::Value::Table(routes));
        let text = toml::to_string(&root)?;
        Ok(Config::from_toml(&text, "<scenario route>")?)
    }
}

/// One request of the workload, the same for every policy.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    at: Duration,
    prompt_tokens: u64,
    output_tokens: u64,
    stream: bool,
}

/// Seconds from a scenario's numbers: negative or NaN is zero, and an absurd value caps at a
/// year rather than panicking.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.clamp(0.0, 365.0 * 86_400.0)).unwrap_or_default()
}

fn workload(scenario: &Scenario) -> Vec<Arrival> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let mut at = 0.0f64;
    (0..scenario.requests)
        .map(|_| {
            at += -(1.0 - rng.random::<f64>()).ln() / scenario.rate_per_s;
            Arrival {
                at: seconds(at),
                prompt_tokens: scenario.prompt_tokens.draw(&mut rng),
                output_tokens: scenario.output_tokens.draw(&mut rng),
                stream: rng.random::<f64>() < scenario.stream_share,
            }
        })
        .collect()
}

/// The modelled upstream: latency, errors, 429s and hangs by deployment and virtual time.
struct Modelled {
    seed: u64,
    start: Instant,
    deployments: HashMap<String, SimDeployment>,
    /// Calls so far per (request, deployment), so a retry meets fresh luck.
    calls: Mutex<HashMap<(u64, String), u64>>,
}

/// What the request carries for the model: its index and true prompt size, in `user`.
fn tag(request: &ChatRequest) -> (u64, u64) {
    let mut parts = request.user.as_deref().unwrap_or("0:0").split(':');
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

enum Fate {
    Answer { ttft: Duration, per_token: Duration },
    Fail { after: Duration, error: Error },
}

/// How long a hung call lasts before the provider's first-byte deadline ends it.
const HANG: Duration = Duration::from_secs(120);
/// How long an error answer takes.
const ERROR_AFTER: Duration = Duration::from_millis(50);

impl Modelled {
    fn fate(&self, deployment: &Deployment, request: &ChatRequest) -> Fate {
        let (index, _) = tag(request);
        let name = deployment.provider.name.clone();
        let nth = {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            let count = calls.entry((index, name.clone())).or_insert(0);
            *count += 1;
            *count
        };
        let mut hasher = DefaultHasher::new();
        (self.seed, index, &name, nth).hash(&mut hasher);
        let mut rng = StdRng::seed_from_u64(hasher.finish());
        let Some(model) = self.deployments.get(&name) else {
            return Fate::Fail {
                after: Duration::ZERO,
                error: Error::internal(format!("no model of deployment `{name}`")),
            };
        };
        let now = self.start.elapsed().as_secs_f64();
        let model = model.at(now);
        let draws: [f64; 3] = rng.random();
        if draws[0] < model.rate_limit_rate {
            return Fate::Fail {
                after: ERROR_AFTER,
                error: Error::from_upstream_status(429, format!("{name}: rate limited"))
                    .with_retry_after(Some(seconds(model.retry_after_s))),
            };
        }
        if draws[1] < model.error_rate {
            return Fate::Fail {
                after: ERROR_AFTER,
                error: Error::from_upstream_status(503, format!("{name}: unavailable")),
            };
        }
        if draws[2] < model.hang_rate {
            return Fate::Fail {
                after: HANG,
                error: Error::upstream_timeout(format!("{name}: did not answer in time")),
            };
        }
        Fate::Answer {
            ttft: model.ttft_ms.draw(&mut rng),
            per_token: seconds(1.0 / model.tokens_per_s.max(0.001)),
        }
    }
}

fn usage(request: &ChatRequest) -> Usage {
    Usage {
        input_tokens: tag(request).1,
        output_tokens: u64::from(request.max_tokens.unwrap_or(0)),
        ..Usage::default()
    }
}

/// Output tokens per streamed chunk.
const CHUNK: u32 = 20;
/// True prompt tokens per word of the prompt text sent.
const PROMPT_SCALE: u64 = 20;

impl Upstream for Modelled {
    fn chat<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, CoreResult<ChatResponse>> {
        Box::pin(async move {
            match self.fate(&deployment, request) {
                Fate::Fail { after, error } => {
                    tokio::time::sleep(after).await;
                    Err(error)
                }
                Fate::Answer { ttft, per_token } => {
                    let output = request.max_tokens.unwrap_or(0);
                    tokio::time::sleep(ttft + per_token * output).await;
                    Ok(ChatResponse {
                        id: "sim".to_owned(),
                        model: deployment.target.clone(),
                        created: 0,
                        message: Message::text(Role::Assistant, "ok"),
                        finish_reason: FinishReason::Stop,
                        raw_finish_reason: None,
                        usage: Some(usage(request)),
                        system_fingerprint: None,
                    })
                }
            }
        })
    }

    fn chat_stream<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, CoreResult<ChatStream>> {
        Box::pin(async move {
            let (ttft, per_token) = match self.fate(&deployment, request) {
                Fate::Fail { after, error } => {
                    tokio::time::sleep(after).await;
                    return Err(error);
                }
                Fate::Answer { ttft, per_token } => (ttft, per_token),
            };
            let output = request.max_tokens.unwrap_or(0);
            let usage = usage(request);
            let stream: ChatStream = Box::pin(async_stream::stream! {
                tokio::time::sleep(ttft).await;
                yield Ok(StreamEvent::Start { id: "sim".to_owned(), model: "m".to_owned(), created: 0 });
                yield Ok(StreamEvent::TextDelta("ok".to_owned()));
                let mut sent = 1;
                while sent < output {
                    let chunk = CHUNK.min(output - sent);
                    tokio::time::sleep(per_token * chunk).await;
                    sent += chunk;
                    yield Ok(StreamEvent::TextDelta(" ok".repeat(chunk as usize)));
                }
                yield Ok(StreamEvent::Finish { reason: FinishReason::Stop, raw: None });
                yield Ok(StreamEvent::Usage(usage));
            });
            Ok(stream)
        })
    }

    fn embed<'a>(
        &'a self,
        _deployment: Arc<Deployment>,
        _request: &'a EmbeddingRequest,
    ) -> BoxFuture<'a, CoreResult<EmbeddingResponse>> {
        Box::pin(async { Err(Error::internal("the simulator models chat only")) })
    }
}

/// The policies compared, in table order.
pub const POLICIES: [Objective; 5] = [
    Objective::Order,
    Objective::RoundRobin,
    Objective::Cost,
    Objective::Latency,
    Objective::Balanced,
];

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub policy: &'static str,
    pub hedge: bool,
    pub requests: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Streamed requests' time to first token.
    pub ttft_p99_ms: f64,
    pub error_rate: f64,
    pub cost_usd: f64,
    pub calls_per_request: f64,
    pub hedges: u64,
    /// This row's p99 over the same policy's p99 without hedging (hedged rows only).
    pub p99_vs_unhedged: Option<f64>,
}

struct Outcome {
    ok: bool,
    latency_ms: f64,
    /// Streams only: time to the first content event.
    ttft_ms: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn one_request(router: Arc<Router>, index: usize, arrival: Arrival) -> Outcome {
    // One word per `PROMPT_SCALE` true tokens keeps tokenizing cheap; the true count is in
    // the usage the model reports, and the router's calibration learns the factor within a
    // few calls, as it does for any provider whose tokenizer differs from our estimate.
    let words = usize::try_from(arrival.prompt_tokens / PROMPT_SCALE).unwrap_or(0);
    let text = "lorem ".repeat(words.max(1));
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, text)]);
    request.max_tokens = u32::try_from(arrival.output_tokens).ok();
    request.stream = arrival.stream;
    request.user = Some(format!("{index}:{}", arrival.prompt_tokens));
    let started = Instant::now();
    let millis = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
    let failed = Outcome {
        ok: false,
        latency_ms: 0.0,
        ttft_ms: None,
    };
    if !arrival.stream {
        return match router.chat(&request).await {
            Ok(_) => Outcome {
                ok: true,
                latency_ms: millis(started),
                ttft_ms: None,
            },
            Err(_) => failed,
        };
    }
    let Ok(routed) = router.chat_stream(&request).await else {
        return failed;
    };
    let mut events = routed.value;
    let mut ttft = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) if event.is_content() && ttft.is_none() => ttft = Some(millis(started)),
            Ok(_) => {}
            Err(_) => return failed,
        }
    }
    Outcome {
        ok: true,
        latency_ms: millis(started),
        ttft_ms: Some(ttft.unwrap_or_else(|| millis(started))),
    }
}

/// Runs the workload under one policy on a fresh router and a paused clock.
fn run_policy(
    scenario: &Scenario,
    arrivals: &[Arrival],
    objective: Objective,
    hedge: bool,
) -> anyhow::Result<Row> {
    let config = scenario.config(objective, hedge)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let upstream = Arc::new(Modelled {
            seed: scenario.seed,
            start: Instant::now(),
            deployments: scenario
                .deployments
                .iter()
                .map(|d| (d.name.clone(), d.clone()))
                .collect(),
            calls: Mutex::new(HashMap::new()),
        });
        let router = Arc::new(Router::with_upstream(&config, &HashMap::new(), upstream)?);
        router.set_seed(scenario.seed);
        let start = Instant::now();
        let tasks: Vec<_> = arrivals
            .iter()
            .enumerate()
            .map(|(index, arrival)| {
                let router = Arc::clone(&router);
                let arrival = *arrival;
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + arrival.at).await;
                    one_request(router, index, arrival).await
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await?);
        }
        let mut latencies: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.ok)
            .map(|o| o.latency_ms)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let mut ttfts: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.ok)
            .filter_map(|o| o.ttft_ms)
            .collect();
        ttfts.sort_by(f64::total_cmp);
        let snapshot = router.snapshot();
        let errors = outcomes.iter().filter(|o| !o.ok).count();
        let calls: u64 = snapshot.iter().map(|d| d.stats.counters.attempts).sum();
        Ok(Row {
            policy: objective.as_str(),
            hedge,
            requests: outcomes.len(),
            p50_ms: percentile(&latencies, 50.0),
            p95_ms: percentile(&latencies, 95.0),
            p99_ms: percentile(&latencies, 99.0),
            ttft_p99_ms: percentile(&ttfts, 99.0),
            error_rate: errors as f64 / outcomes.len().max(1) as f64,
            cost_usd: crossbar_core::pricing::pico_to_usd(
                snapshot.iter().map(|d| d.stats.counters.spent_pusd).sum(),
            ),
            calls_per_request: calls as f64 / outcomes.len().max(1) as f64,
            hedges: snapshot.iter().map(|d| d.stats.counters.hedges).sum(),
            p99_vs_unhedged: None,
        })
    })
}

/// Every policy, without then with hedging.
pub fn run(scenario: &Scenario) -> anyhow::Result<Vec<Row>> {
    let arrivals = workload(scenario);
    let mut rows = Vec::new();
    for objective in POLICIES {
        let plain = run_policy(scenario, &arrivals, objective, false)?;
        let mut hedged = run_policy(scenario, &arrivals, objective, true)?;
        if plain.p99_ms > 0.0 {
            hedged.p99_vs_unhedged = Some(hedged.p99_ms / plain.p99_ms);
        }
        rows.push(plain);
        rows.push(hedged);
    }
    Ok(rows)
}

pub fn table(origin: &str, scenario: &Scenario, rows: &[Row]) -> String {
    let span = workload(scenario)
        .last()
        .map_or(0.0, |a| a.at.as_secs_f64());
    let mut out = format!(
        "scenario {origin}: {} requests over {span:.0} s (virtual), {} deployments, seed {}\n",
        scenario.requests,
        scenario.deployments.len(),
        scenario.seed
    );
    if !scenario.description.is_empty() {
        out.push_str(&format!("{}\n", scenario.description.trim()));
    }
    out.push_str(&format!(
        "\n{:<12} {:<5} {:>8} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9} {:>6} {:>9}\n",
        "policy",
        "hedge",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p99",
        "errors",
        "cost USD",
        "calls/req",
        "hedges",
        "p99 ratio"
    ));
    for row in rows {
        out.push_str(&format!(
            "{:<12} {:<5} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>6.2}% {:>9.4} {:>9.3} {:>6} {:>9}\n",
            row.policy,
            if row.hedge { "on" } else { "off" },
            row.p50_ms,
            row.p95_ms,
            row.p99_ms,
            row.ttft_p99_ms,
            row.error_rate * 100.0,
            row.cost_usd,
            row.calls_per_request,
            row.hedges,
            row.p99_vs_unhedged
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
        ));
    }
    out
}

#[derive(Serialize)]
struct Report<'a> {
    scenario: &'a str,
    description: &'a str,
    requests: usize,
    seed: u64,
    rows: &'a [Row],
}

/// The command: runs and prints the table, or JSON for machines.
pub fn command(path: &Path, json: bool) -> anyhow::Result<()> {
    let scenario = Scenario::load(path)?;
    // The router logs every failed attempt; thousands of them would bury the table.
    let quiet = std::env::var_os("RUST_LOG").is_none();
    let rows = if quiet {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            run(&scenario)
        })?
    } else {
        run(&scenario)?
    };
    let origin = path.display().to_string();
    let mut out = std::io::stdout().lock();
    if json {
        let report = Report {
            scenario: &origin,
            description: scenario.description.trim(),
            requests: scenario.requests,
            seed: scenario.seed,
            rows: &rows,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", table(&origin, &scenario, &rows))?;
    }
    // A closed pipe (`| head`) is an error to report, not a panic as `println!` would make it.
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAVY_TAIL: &str = include_str!("../../../examples/heavy-tail.toml");
    const OUTAGE: &str = include_str!("../../../examples/outage.toml");

    #[test]
    fn hedging_cuts_the_p99_of_a_heavy_tail() {
        let mut scenario = Scenario::parse(HEAVY_TAIL, "heavy-tail.toml").unwrap();
        scenario.requests = 800;
        let arrivals = workload(&scenario);
        for policy in [Objective::Latency, Objective::RoundRobin] {
            let plain = run_policy(&scenario, &arrivals, policy, false).unwrap();
            let hedged = run_policy(&scenario, &arrivals, policy, true).unwrap();
            let ratio = hedged.p99_ms / plain.p99_ms;
            assert!(
                ratio < 0.6,
                "{policy:?}: p99 {} → {} ms",
                plain.p99_ms,
                hedged.p99_ms
            );
            assert!(hedged.hedges > 0);
            // The budget holds: hedges stay within a tenth of the traffic (plus a burst).
            assert!(hedged.hedges <= 80 + 3, "{}", hedged.hedges);
            assert_eq!(hedged.error_rate, 0.0);
        }
    }

    #[test]
    fn routing_around_an_outage_keeps_errors_away() {
        let mut scenario = Scenario::parse(OUTAGE, "outage.toml").unwrap();
        scenario.requests = 1200;
        let arrivals = workload(&scenario);
        let cost = run_policy(&scenario, &arrivals, Objective::Cost, false).unwrap();
        let order = run_policy(&scenario, &arrivals, Objective::Order, false).unwrap();
        for r in [&cost, &order] {
            assert!(r.error_rate < 0.005, "{}: {}", r.policy, r.error_rate);
        }
        assert!(
            cost.cost_usd < order.cost_usd,
            "{} vs {}",
            cost.cost_usd,
            order.cost_usd
        );
        // The same scenario replays exactly.
        let again = run_policy(&scenario, &arrivals, Objective::Cost, false).unwrap();
        assert_eq!(again.p99_ms, cost.p99_ms);
        assert_eq!(again.cost_usd, cost.cost_usd);
    }

    #[test]
    fn scenario_errors_are_reported() {
        assert!(Scenario::parse("requests = 1\nrate_per_s = 1.0\n", "x.toml").is_err());
        let bad = format!("{OUTAGE}\nbogus = 1\n");
        let error = Scenario::parse(&bad, "x.toml").unwrap_err();
        assert!(format!("{error:#}").contains("bogus"), "{error:#}");
        let scenario = Scenario::parse(OUTAGE, "outage.toml").unwrap();
        assert!(scenario.config(Objective::Cost, true).is_ok());
    }
}
