//! `crossbar whatif`: re-prices the recorded traffic of each logical model on every deployment
//! of that model in a configuration (this one, or another with `--config`), next to what it
//! really cost and the latency each deployment showed on the same traffic where it served any.
//!
//! With `--gateway URL`, a deployment that served none of the traffic but received shadow
//! copies of it (a route's `shadow`) takes the latency and error rate the gateway measured on
//! those copies, from `GET /v1/crossbar/shadow`: the figures of a cloud tried on real traffic
//! before switching to it.

use std::collections::HashMap;

use std::path::PathBuf;

use crate::report;
use anyhow::Context as _;
use clap::Args;
use crossbar_store::whatif::{Row, candidates, reprice};
use crossbar_store::{SqlStore, Store, now_ms};

use crate::usage::{Format, parse_since};

const MAX_RECORDS: u32 = 2_000_000;

#[derive(Args)]
pub struct WhatifArgs {
    /// The configuration whose deployments and prices to re-price on (default as for `serve`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store URL holding the records (default: the `store.url` of the configuration `serve`
    /// would use).
    #[arg(long)]
    store: Option<String>,
    /// How far back: `30m`, `24h`, `7d`.
    #[arg(long, default_value = "7d")]
    since: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// A running gateway (`http://host:port`) whose shadow figures fill in the latency and
    /// error rate of deployments that only received shadow copies.
    #[arg(long)]
    gateway: Option<String>,
    /// The admin token for `--gateway` (else `CROSSBAR_ADMIN_TOKEN`); an open gateway needs
    /// none.
    #[arg(long, env = "CROSSBAR_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// What a gateway measured of a deployment on shadow copies.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Shadowed {
    pub requests: u64,
    pub p50_latency_ms: Option<u64>,
    pub error_rate: f64,
}

/// A row with, when it served nothing itself, what shadow copies measured.
#[derive(Debug, serde::Serialize)]
pub struct Measured<'r> {
    #[serde(flatten)]
    pub row: &'r Row,
    /// Median latency: of the traffic it served, else of the shadow copies it answered.
    pub p50_ms: Option<u64>,
    /// Where the row's latency comes from: `served` (its own traffic), `shadow` (copies).
    pub latency_from: Option<&'static str>,
    /// Share of failed calls on the traffic (shadow copies) the latency comes from.
    pub error_rate: Option<f64>,
}

/// Each shadow deployment's figures in a gateway's `GET /v1/crossbar/shadow` answer, summed
/// over the primaries it shadows (requests-weighted error rate, the largest pair's p50).
pub fn shadow_figures(list: &serde_json::Value) -> HashMap<String, Shadowed> {
    let mut out: HashMap<String, Shadowed> = HashMap::new();
    for pair in list["data"].as_array().into_iter().flatten() {
        let (Some(shadow), figures) = (pair["shadow"].as_str(), &pair["shadow_figures"]) else {
            continue;
        };
        let requests = figures["requests"].as_u64().unwrap_or(0);
        let errors = figures["errors"].as_u64().unwrap_or(0);
        let p50 = figures["latency_ms_p50"]
            .as_f64()
            .map(|ms| ms.round() as u64);
        let entry = out.entry(shadow.to_owned()).or_insert(Shadowed {
            requests: 0,
            p50_latency_ms: None,
            error_rate: 0.0,
        });
        let failed = entry.error_rate * entry.requests as f64 + errors as f64;
        if requests > entry.requests {
            entry.p50_latency_ms = p50.or(entry.p50_latency_ms);
        }
        entry.requests += requests;
        entry.error_rate = if entry.requests == 0 {
            0.0
        } else {
            failed / entry.requests as f64
        };
    }
    out
}

/// The rows with their latency's source: their own traffic, else shadow copies.
pub fn measured<'r>(rows: &'r [Row], shadows: &HashMap<String, Shadowed>) -> Vec<Measured<'r>> {
    rows.iter()
        .map(
            |row| match (row.p50_latency_ms, shadows.get(&row.deployment)) {
                (Some(p50), _) => Measured {
                    row,
                    p50_ms: Some(p50),
                    latency_from: Some("served"),
                    error_rate: None,
                },
                (None, Some(shadow)) if shadow.requests > 0 => Measured {
                    row,
                    p50_ms: shadow.p50_latency_ms,
                    latency_from: Some("shadow"),
                    error_rate: Some(shadow.error_rate),
                },
                (None, _) => Measured {
                    row,
                    p50_ms: None,
                    latency_from: None,
                    error_rate: None,
                },
            },
        )
        .collect()
}

async fn fetch_shadow(gateway: &str, token: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/v1/crossbar/shadow", gateway.trim_end_matches('/'));
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("asking {url} for its shadow figures"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    response
        .json()
        .await
        .with_context(|| format!("reading {url}'s shadow figures"))
}

const HEADERS: [&str; 11] = [
    "model",
    "deployment",
    "cloud",
    "region",
    "requests",
    "cost_usd",
    "actual_usd",
    "vs_actual",
    "p50_ms",
    "latency_from",
    "error_rate",
];

fn cells(measured: &Measured<'_>) -> [String; 11] {
    let row = measured.row;
    [
        row.model.clone(),
        row.deployment.clone(),
        row.cloud.clone(),
        row.region.clone(),
        row.requests.to_string(),
        row.cost_usd.clone(),
        row.actual_usd.clone(),
        row.vs_actual_pct
            .map_or_else(|| "-".to_owned(), |p| format!("{p:+.1}%")),
        measured
            .p50_ms
            .map_or_else(|| "-".to_owned(), |p| p.to_string()),
        measured.latency_from.unwrap_or("-").to_owned(),
        measured
            .error_rate
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
    ]
}

pub fn render(rows: &[Measured<'_>], format: Format) -> anyhow::Result<String> {
    let cells: Vec<[String; 11]> = rows.iter().map(cells).collect();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(rows)?,
        Format::Csv => report::csv(&HEADERS, &cells),
        Format::Table => report::table(&HEADERS, &cells, 4),
    })
}

pub async fn command(args: WhatifArgs) -> anyhow::Result<()> {
    let since = now_ms().saturating_sub(parse_since(&args.since)?);
    let catalog = super::load_config(args.config)?;
    let url = match args.store {
        Some(url) => url,
        None => super::load_config(None)?.store.url().to_owned(),
    };
    let store = SqlStore::open(&url).await.context("opening the store")?;
    let records = store.usage_since(since, MAX_RECORDS).await;
    store.close().await;
    // Shadow copies' records are the gateway's experiments, not traffic to re-price.
    let mut records = records?;
    records.retain(|r| r.api != "shadow");
    let rows = reprice(&records, &candidates(&catalog));
    let shadows = match &args.gateway {
        Some(gateway) => shadow_figures(&fetch_shadow(gateway, args.token.as_deref()).await?),
        None => HashMap::new(),
    };
    println!("{}", render(&measured(&rows, &shadows), args.format)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbar_core::config::{Config, Price};
    use crossbar_store::UsageRecord;
    use crossbar_store::whatif::Candidate;

    fn candidate(provider: &str, input: f64, output: f64, cached: Option<f64>) -> Candidate {
        Candidate {
            model: "gpt-4o".to_owned(),
            deployment: format!("gpt-4o@{provider}"),
            cloud: provider.to_owned(),
            region: "r".to_owned(),
            price: Price {
                input,
                output,
                cached_input: cached,
                cache_write: None,
            },
        }
    }

    fn record(deployment: &str, cost_pusd: u64, latency_ms: u64, status: u16) -> UsageRecord {
        UsageRecord {
            model: "gpt-4o".to_owned(),
            deployment: Some(deployment.to_owned()),
            input_tokens: 1000,
            cached_input_tokens: 400,
            output_tokens: 100,
            cost_pusd,
            latency_ms,
            status,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn traffic_is_repriced_exactly_on_each_deployment() {
        // At $2.50 / $1.25 cached / $10: 600 × 2.5 + 400 × 1.25 + 100 × 10 = 3000 µ$ a call.
        let actual = 3_000_000_000;
        let records = vec![
            record("gpt-4o@azure", actual, 100, 200),
            record("gpt-4o@azure", actual, 300, 200),
            record("gpt-4o@azure", 0, 9000, 503),
        ];
        let rows = reprice(
            &records,
            &[
                candidate("azure", 2.5, 10.0, Some(1.25)),
                // No cache discount: 1000 × 2 + 100 × 8 = 2800 µ$ a call.
                candidate("other", 2.0, 8.0, None),
            ],
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].deployment, "gpt-4o@other", "cheapest first");
        assert_eq!(rows[0].requests, 2, "failed requests are not re-priced");
        assert_eq!(rows[0].cost_usd, "0.0056");
        assert_eq!(rows[0].actual_usd, "0.006");
        assert_eq!(rows[0].vs_actual_pct, Some(-6.7));
        assert_eq!(
            rows[0].p50_latency_ms, None,
            "it served none of this traffic"
        );
        assert_eq!(rows[1].cost_usd, "0.006");
        assert_eq!(rows[1].vs_actual_pct, Some(0.0));
        assert_eq!(rows[1].p50_latency_ms, Some(100));
        assert_eq!(rows[1].served, 2);
        let table = render(&measured(&rows, &HashMap::new()), Format::Table).unwrap();
        assert!(table.contains("-6.7%"), "{table}");
    }

    #[test]
    fn candidates_come_from_the_configuration() {
        let config = Config::from_toml(
            "[[providers]]\nname = \"a\"\nkind = \"sim\"\ndialect = \"openai\"\ncloud = \"aws\"\nregion = \"us-east-1\"\n\n[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", target = \"t\", price = { input = 1.0, output = 2.0 } }]\n",
            "c.toml",
        )
        .unwrap();
        let found = candidates(&config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].deployment, "m@a");
        assert_eq!(
            (found[0].cloud.as_str(), found[0].region.as_str()),
            ("aws", "us-east-1")
        );
    }

    /// A deployment that served none of the traffic takes the latency and error rate its
    /// shadow copies measured, as the gateway's `GET /v1/crossbar/shadow` reports them.
    #[test]
    fn shadow_copies_fill_in_a_deployment_that_served_nothing() {
        let records = vec![record("gpt-4o@azure", 3_000_000_000, 100, 200)];
        let rows = reprice(
            &records,
            &[
                candidate("azure", 2.5, 10.0, Some(1.25)),
                candidate("other", 2.0, 8.0, None),
            ],
        );
        let list = serde_json::json!({"object": "list", "data": [
            {"route": "gpt-4o", "primary": "gpt-4o@azure", "shadow": "gpt-4o@other",
             "primary_figures": {"requests": 40, "errors": 0, "latency_ms_p50": 100.0},
             "shadow_figures": {"requests": 40, "errors": 2, "latency_ms_p50": 240.4},
             "dropped": 0, "in_flight": 0}
        ]});
        let shadows = shadow_figures(&list);
        assert_eq!(
            shadows["gpt-4o@other"],
            Shadowed {
                requests: 40,
                p50_latency_ms: Some(240),
                error_rate: 0.05
            }
        );
        let measured = measured(&rows, &shadows);
        let other = measured
            .iter()
            .find(|m| m.row.deployment == "gpt-4o@other")
            .unwrap();
        assert_eq!(
            (other.p50_ms, other.latency_from, other.error_rate),
            (Some(240), Some("shadow"), Some(0.05))
        );
        let azure = measured
            .iter()
            .find(|m| m.row.deployment == "gpt-4o@azure")
            .unwrap();
        assert_eq!(
            (azure.p50_ms, azure.latency_from),
            (Some(100), Some("served"))
        );
        let table = render(&measured, Format::Table).unwrap();
        assert!(
            table.contains("shadow") && table.contains("5.0%"),
            "{table}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&measured, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["latency_from"], "shadow");
        assert_eq!(json[0]["p50_ms"], 240);
    }
}
