//! Prometheus metrics on `GET /metrics`: requests, latency, time to first token and gateway
//! overhead histograms, tokens and cost by deployment and key, attempts and hedges, breaker
//! states, limit rejections, and the store queue's depth and drops.
//!
//! The `metrics` facade has one global recorder per process; it is installed on first use and
//! shared by every gateway the process builds (tests build many).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::router::BreakerState;
use crossbar_store::UsageRecord;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

/// Seconds: from a millisecond of gateway overhead to a ten-minute stream.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process; `None` if another recorder got there
/// first (then `/metrics` answers 503 and everything else works).
pub(crate) fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!("metrics disabled: {error}");
                    None
                }
            }
        })
        .clone()
}

/// How often histogram samples are folded into their buckets without a scrape.
const UPKEEP: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP`]: the recorder keeps
/// each sample until upkeep runs, and only a scrape of `/metrics` ran it, so a gateway nobody
/// scraped grew by every request's samples (100 -> 115 MB over a 10-minute soak at 500 req/s).
/// A thread, not a task: the recorder outlives any one runtime.
fn upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!("metrics upkeep not started (histograms grow until scraped): {error}");
    }
}

/// Counts a request refused before a key was known (it leaves no usage record).
pub(crate) fn unauthenticated_rejected(reason: &'static str) {
    metrics::counter!("crossbar_unauthenticated_rejections_total", "reason" => reason).increment(1);
}

fn label(value: Option<&str>) -> String {
    value.unwrap_or("none").to_owned()
}

/// Counts a finished request.
pub(crate) fn request_finished(
    record: &UsageRecord,
    model: &str,
    latency: Duration,
    ttft: Option<Duration>,
    overhead: Duration,
) {
    let deployment = label(record.deployment.as_deref());
    let key = label(record.key_id.as_deref());
    let model = model.to_owned();
    metrics::counter!(
        "crossbar_requests_total",
        "api" => record.api.clone(),
        "model" => model.clone(),
        "deployment" => deployment.clone(),
        "status" => record.status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        "crossbar_request_duration_seconds",
        "api" => record.api.clone(),
        "model" => model.clone(),
        "deployment" => deployment.clone(),
    )
    .record(latency.as_secs_f64());
    if let Some(ttft) = ttft
        && record.status < 400
    {
        metrics::histogram!(
            "crossbar_ttft_seconds",
            "model" => model,
            "deployment" => deployment.clone(),
        )
        .record(ttft.as_secs_f64());
    }
    metrics::histogram!("crossbar_gateway_overhead_seconds", "api" => record.api.clone())
        .record(overhead.as_secs_f64());
    for (kind, tokens) in [
        ("input", record.input_tokens),
        ("cached_input", record.cached_input_tokens),
        ("cache_write", record.cache_write_tokens),
        ("output", record.output_tokens),
        ("reasoning", record.reasoning_tokens),
    ] {
        if tokens > 0 {
            metrics::counter!(
                "crossbar_tokens_total",
                "deployment" => deployment.clone(),
                "key" => key.clone(),
                "kind" => kind,
            )
            .increment(tokens);
        }
    }
    for attempt in &record.attempts {
        metrics::counter!(
            "crossbar_attempts_total",
            "deployment" => attempt.deployment.clone(),
            "outcome" => attempt.outcome.clone(),
        )
        .increment(1);
        if attempt.hedge {
            metrics::counter!("crossbar_hedges_total", "deployment" => attempt.deployment.clone())
                .increment(1);
        }
        if attempt.cost_pusd > 0 {
            // Exact integer picodollars: float sums of USD drift.
            metrics::counter!(
                "crossbar_cost_picousd_total",
                "deployment" => attempt.deployment.clone(),
                "key" => key.clone(),
            )
            .increment(attempt.cost_pusd);
        }
    }
}

/// Counts a request refused by its key's limits (`limit`: the error code).
pub(crate) fn limit_rejected(key_id: &str, limit: &str) {
    metrics::counter!(
        "crossbar_limit_rejections_total",
        "key" => key_id.to_owned(),
        "limit" => limit.to_owned(),
    )
    .increment(1);
}

/// `crossbar_agent_runs_submitted_total{agent}`: runs queued through the runs API.
pub(crate) fn run_submitted(agent: &str) {
    metrics::counter!("crossbar_agent_runs_submitted_total", "agent" => agent.to_owned())
        .increment(1);
}

/// The run queue's gauges, read from the store at each scrape: runs per status (queue depth
/// is `status="queued"`) and lease takeovers summed over runs.
async fn run_queue_gauges(state: &AppState) {
    let Some(runs) = &state.runs else {
        return;
    };
    match runs.store.queue_figures().await {
        Ok(figures) => {
            for (status, n) in &figures.by_status {
                metrics::gauge!("crossbar_agent_runs", "status" => status.clone()).set(*n as f64);
            }
            metrics::gauge!("crossbar_agent_run_takeovers").set(figures.takeovers as f64);
            let (mean, most) = figures.claim_latency_ms;
            metrics::gauge!("crossbar_agent_run_claim_latency_ms", "stat" => "mean")
                .set(mean as f64);
            metrics::gauge!("crossbar_agent_run_claim_latency_ms", "stat" => "max")
                .set(most as f64);
        }
        Err(error) => tracing::warn!(%error, "reading the run queue's figures failed"),
    }
}

/// `GET /metrics`, in the Prometheus text format. Open like `/healthz`: labels carry key ids
/// and names of deployments, never secrets.
pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let Some(handle) = install() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are disabled\n").into_response();
    };
    for deployment in state.router.deployments() {
        let value = match deployment.breaker_state() {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("crossbar_breaker_state", "deployment" => deployment.id()).set(value);
    }
    if let Some(writer) = state.metering.writer() {
        metrics::gauge!("crossbar_store_queue_depth").set(writer.depth() as f64);
    }
    run_queue_gauges(&state).await;
    crate::shadow::export(&state.router);
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
