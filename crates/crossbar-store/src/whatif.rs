//! The what-if replay: re-prices recorded traffic of each logical model on every deployment of
//! that model, next to what it really cost and the latency each deployment showed on the same
//! traffic where it served any. Shared by `crossbar whatif` (deployments from a configuration)
//! and the dashboard (deployments from the running router).

use std::collections::BTreeMap;

use crossbar_core::chat::Usage;
use crossbar_core::config::{Config, Price};
use crossbar_core::pricing::{self, format_usd};
use crossbar_core::router::DeploymentView;
use serde::Serialize;

use crate::UsageRecord;

/// One deployment a model's traffic could have gone to.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub model: String,
    pub deployment: String,
    pub cloud: String,
    pub region: String,
    pub price: Price,
}

/// The deployments of every logical model in a configuration.
pub fn candidates(config: &Config) -> Vec<Candidate> {
    let mut out = Vec::new();
    for model in &config.models {
        for d in &model.deployments {
            let provider = config
                .providers
                .iter()
                .find(|p| p.name.get_ref() == d.provider.get_ref());
            out.push(Candidate {
                model: model.name.get_ref().clone(),
                deployment: format!("{}@{}", model.name.get_ref(), d.provider.get_ref()),
                cloud: provider
                    .and_then(|p| p.cloud.clone())
                    .unwrap_or_else(|| "-".to_owned()),
                region: provider
                    .and_then(|p| p.region.clone())
                    .unwrap_or_else(|| "-".to_owned()),
                price: d.price,
            });
        }
    }
    out
}

/// The deployments the running router knows, with their prices.
pub fn candidates_from_views(views: &[DeploymentView]) -> Vec<Candidate> {
    views
        .iter()
        .map(|v| Candidate {
            model: v.model.clone(),
            deployment: v.id.clone(),
            cloud: v.cloud.clone(),
            region: v.region.clone(),
            price: Price {
                input: v.price.input,
                output: v.price.output,
                cached_input: v.price.cached_input,
                cache_write: v.price.cache_write,
            },
        })
        .collect()
}

#[derive(Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Row {
    pub model: String,
    pub deployment: String,
    pub cloud: String,
    pub region: String,
    /// Successful requests of the model re-priced.
    pub requests: u64,
    /// What they would have cost here, exact decimal USD.
    pub cost_usd: String,
    /// What they really cost, wherever they ran.
    pub actual_usd: String,
    /// (would-cost − actual) / actual, in percent; `None` when nothing was spent.
    pub vs_actual_pct: Option<f64>,
    /// Median latency of the requests this deployment really served, if any.
    pub p50_latency_ms: Option<u64>,
    pub served: u64,
}

fn usage_of(record: &UsageRecord) -> Usage {
    Usage {
        input_tokens: record.input_tokens,
        cached_input_tokens: record.cached_input_tokens,
        cache_write_tokens: record.cache_write_tokens,
        output_tokens: record.output_tokens,
        reasoning_tokens: record.reasoning_tokens,
    }
}

/// Re-prices successful records on every candidate of their model; cheapest first per model.
pub fn reprice(records: &[UsageRecord], candidates: &[Candidate]) -> Vec<Row> {
    let ok: Vec<&UsageRecord> = records
        .iter()
        .filter(|r| r.status < 400 && r.error.is_none())
        .collect();
    let mut rows = Vec::new();
    let mut by_model: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for candidate in candidates {
        by_model
            .entry(&candidate.model)
            .or_default()
            .push(candidate);
    }
    for (model, deployments) in by_model {
        let traffic: Vec<&&UsageRecord> = ok.iter().filter(|r| r.model == model).collect();
        if traffic.is_empty() {
            continue;
        }
        let actual: u64 = traffic.iter().map(|r| r.cost_pusd).sum();
        let mut model_rows: Vec<(u64, Row)> = deployments
            .iter()
            .map(|c| {
                let cost: u64 = traffic
                    .iter()
                    .map(|r| pricing::cost(&c.price, &usage_of(r)).total())
                    .sum();
                let mut served: Vec<u64> = traffic
                    .iter()
                    .filter(|r| r.deployment.as_deref() == Some(c.deployment.as_str()))
                    .map(|r| r.latency_ms)
                    .collect();
                served.sort_unstable();
                let row = Row {
                    model: model.to_owned(),
                    deployment: c.deployment.clone(),
                    cloud: c.cloud.clone(),
                    region: c.region.clone(),
                    requests: traffic.len() as u64,
                    cost_usd: format_usd(cost),
                    actual_usd: format_usd(actual),
                    vs_actual_pct: (actual > 0).then(|| {
                        ((cost as f64 - actual as f64) * 1000.0 / actual as f64).round() / 10.0
                    }),
                    p50_latency_ms: (!served.is_empty()).then(|| served[(served.len() - 1) / 2]),
                    served: served.len() as u64,
                };
                (cost, row)
            })
            .collect();
        model_rows.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.deployment.cmp(&b.1.deployment))
        });
        rows.extend(model_rows.into_iter().map(|(_, row)| row));
    }
    rows
}
