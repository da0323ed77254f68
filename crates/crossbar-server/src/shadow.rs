//! Shadow traffic's figures for operators: `GET /v1/crossbar/shadow` (behind the dashboard's
//! guard) lists each (route, primary, shadow) pair with both sides' figures over the same
//! requests, and `/metrics` carries them as gauges. The copies themselves are the router's.

use axum::Json;
use axum::extract::State;
use crossbar_core::router::{Router, ShadowView, SideView};
use serde::Serialize;

use crate::app::AppState;

/// An OpenAI-style list.
#[derive(Serialize)]
pub(crate) struct Shadows {
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
