//! Shadow traffic's figures for operators: `GET /v1/crossbar/shadow` (behind the dashboard's
//! guard) lists each (route, primary, shadow) pair with both sides' figures over the same
//! requests, `/metrics` carries them as gauges, and every copy's answer becomes a usage record
//! flagged `api = "shadow"` (no key, so no budget pays for it). The copies themselves are the
//! router's.

use axum::Json;
use axum::extract::State;
use std::sync::Arc;

use crossbar_core::router::{Router, ShadowAnswer, ShadowView, SideView};
use crossbar_store::{UsageRecord, UsageWriter, now_ms};
use rand::Rng;
use schemars::JsonSchema;
use serde::Serialize;

use crate::app::AppState;

/// An OpenAI-style list.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Shadows {
    #[schemars(extend("const" = "list"))]
    object: &'static str,
    data: Vec<ShadowView>,
}

/// `GET /v1/crossbar/shadow`.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Shadows> {
    Json(Shadows {
        object: "list",
        data: state.router.shadow_figures(),
    })
}

/// Sets the shadow gauges from the router's figures (at each scrape).
pub(crate) fn export(router: &Router) {
    for pair in router.shadow_figures() {
        let labels = |side: &'static str| {
            [
                ("route", pair.route.clone()),
                ("primary", pair.primary.clone()),
                ("shadow", pair.shadow.clone()),
                ("side", side.to_owned()),
            ]
        };
        for (side, figures) in [
            ("primary", &pair.primary_figures),
            ("shadow", &pair.shadow_figures),
        ] {
            side_gauges(&labels(side), figures);
        }
        metrics::gauge!("crossbar_shadow_dropped", &labels("shadow")).set(pair.dropped as f64);
        metrics::gauge!("crossbar_shadow_in_flight", &labels("shadow")).set(pair.in_flight as f64);
    }
}

fn side_gauges(labels: &[(&'static str, String); 4], figures: &SideView) {
    metrics::gauge!("crossbar_shadow_requests", labels).set(figures.requests as f64);
    metrics::gauge!("crossbar_shadow_errors", labels).set(figures.errors as f64);
    metrics::gauge!("crossbar_shadow_cost_usd", labels).set(figures.cost_usd);
    metrics::gauge!("crossbar_shadow_input_tokens", labels).set(figures.input_tokens as f64);
    metrics::gauge!("crossbar_shadow_output_tokens", labels).set(figures.output_tokens as f64);
    metrics::gauge!("crossbar_shadow_tool_calls", labels).set(figures.tool_calls as f64);
    metrics::gauge!("crossbar_shadow_tool_calls_invalid_json", labels)
        .set(figures.tool_calls_invalid_json as f64);
    for (stat, value) in [
        ("mean", figures.latency_ms_mean),
        ("p50", figures.latency_ms_p50),
        ("p95", figures.latency_ms_p95),
    ] {
        if let Some(value) = value {
            let mut with_stat: Vec<(&'static str, String)> = labels.to_vec();
            with_stat.push(("stat", stat.to_owned()));
            metrics::gauge!("crossbar_shadow_latency_ms", &with_stat).set(value);
        }
    }
}

/// What `api` a shadow copy's usage record carries.
pub(crate) const SHADOW_API: &str = "shadow";

/// Writes a usage record for every shadow copy the router's answers make: the shadow's
/// deployment, tokens, cost and latency, its error if it failed, flagged `api = "shadow"`, with
/// no key (the copy is the operator's experiment, not the caller's spend) and the route whose
/// shadow it is.
pub(crate) fn record_answers(router: &Router, writer: UsageWriter) {
    router.on_shadow_answer(Arc::new(move |answer: ShadowAnswer| {
        writer.submit(usage_record(&answer));
    }));
}

fn usage_record(answer: &ShadowAnswer) -> UsageRecord {
    let deployment = &answer.deployment;
    let usage = answer.usage.unwrap_or_default();
    let latency_ms = u64::try_from(answer.latency.as_millis()).unwrap_or(u64::MAX);
    UsageRecord {
        request_id: format!("shadow_{}", hex::encode(rand::rng().random::<[u8; 12]>())),
        time_ms: now_ms().saturating_sub(i64::try_from(latency_ms).unwrap_or(0)),
        api: SHADOW_API.to_owned(),
        model: deployment.model.clone(),
        route: Some(answer.route.clone()),
        deployment: Some(deployment.id()),
        provider: Some(deployment.provider.name.clone()),
        cloud: Some(deployment.provider.cloud.clone()),
        region: Some(deployment.provider.region.clone()),
        status: answer.error.as_ref().map_or(200, |e| e.status()),
        error: answer.error.as_ref().map(|e| e.message.clone()),
        input_tokens: usage.input_tokens,
        cached_input_tokens: usage.cached_input_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        output_tokens: usage.output_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        cost_pusd: answer.cost_pico,
        latency_ms,
        ..UsageRecord::default()
    }
}
