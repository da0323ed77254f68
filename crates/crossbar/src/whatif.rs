//! `crossbar whatif`: re-prices the recorded traffic of each logical model on every deployment
//! of that model in a configuration (this one, or another with `--config`), next to what it
//! really cost and the latency each deployment showed on the same traffic where it served any.

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
}

const HEADERS: [&str; 9] = [
    "model",
    "deployment",
    "cloud",
    "region",
    "requests",
    "cost_usd",
    "actual_usd",
    "vs_actual",
    "p50_ms",
];

fn cells(row: &Row) -> [String; 9] {
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
        row.p50_latency_ms
            .map_or_else(|| "-".to_owned(), |p| p.to_string()),
    ]
}

pub fn render(rows: &[Row], format: Format) -> anyhow::Result<String> {
    let cells: Vec<[String; 9]> = rows.iter().map(cells).collect();
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
    let rows = reprice(&records?, &candidates(&catalog));
    println!("{}", render(&rows, args.format)?);
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
        let table = render(&rows, Format::Table).unwrap();
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
}
