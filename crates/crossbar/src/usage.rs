//! `crossbar usage`: what the recorded traffic cost, grouped by team, key, end user, model,
//! deployment, provider or cloud, with requests, tokens, exact cost, p50/p95 latency and error rate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::report;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use crossbar_core::pricing::format_usd;
use crossbar_store::{OrgStore as _, SqlStore, Store, TeamRecord, UsageRecord, now_ms};
use serde::Serialize;

/// Records read at most; a report over more should narrow `--since`.
const MAX_RECORDS: u32 = 2_000_000;

#[derive(Args)]
pub struct UsageArgs {
    /// Configuration file whose `[store]` holds the records (default as for `serve`).
    #[arg(long, env = "CROSSBAR_CONFIG")]
    config: Option<PathBuf>,
    /// Store URL, overriding the configuration's `store.url`.
    #[arg(long)]
    store: Option<String>,
    /// How far back: `90s`, `30m`, `24h`, `7d`.
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long, value_enum, default_value_t = By::Model)]
    by: By,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// The caller's key's team (`(none)` for keys without one).
    Team,
    Key,
    /// The end user inside a key (the request's `user` field or `x-crossbar-user`).
    User,
    Model,
    Deployment,
    Provider,
    Cloud,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// One group's totals.
#[derive(Debug, PartialEq, Serialize)]
pub struct Row {
    pub group: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Exact decimal USD.
    pub cost_usd: String,
    pub p50_latency_ms: u64,
    pub p95_latency_ms: u64,
    /// Failed requests (an error status, or a stream that broke) over all, in percent.
    pub error_rate_pct: f64,
}

/// `24h` → milliseconds.
pub fn parse_since(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .context("--since needs a unit: s, m, h or d")?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .context("--since: a whole number then s, m, h or d")?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => anyhow::bail!("--since: unknown unit `{other}` (s, m, h or d)"),
    };
    Ok(number.saturating_mul(unit_ms))
}

fn group_of(record: &UsageRecord, by: By) -> String {
    let value = match by {
        By::Team => record.tags.team_id.clone(),
        By::Key => record.key_id.clone(),
        By::User => record.tags.end_user.clone(),
        By::Model => Some(record.model.clone()).filter(|m| !m.is_empty()),
        By::Deployment => record.deployment.clone(),
        By::Provider => record.provider.clone(),
        By::Cloud => record.cloud.clone(),
    };
    value.unwrap_or_else(|| "(none)".to_owned())
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], pct: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (pct as usize * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Groups records into report rows, most expensive first.
pub fn aggregate(records: &[UsageRecord], by: By) -> Vec<Row> {
    let mut groups: BTreeMap<String, Vec<&UsageRecord>> = BTreeMap::new();
    for record in records {
        groups.entry(group_of(record, by)).or_default().push(record);
    }
    let mut rows: Vec<(u64, Row)> = groups
        .into_iter()
        .map(|(group, members)| {
            let mut latencies: Vec<u64> = members.iter().map(|r| r.latency_ms).collect();
            latencies.sort_unstable();
            let cost: u64 = members.iter().map(|r| r.cost_pusd).sum();
            let errors = members
                .iter()
                .filter(|r| r.status >= 400 || r.error.is_some())
                .count();
            let requests = members.len() as u64;
            let row = Row {
                group,
                requests,
                input_tokens: members.iter().map(|r| r.input_tokens).sum(),
                cached_input_tokens: members.iter().map(|r| r.cached_input_tokens).sum(),
                output_tokens: members.iter().map(|r| r.output_tokens).sum(),
                cost_usd: format_usd(cost),
                p50_latency_ms: percentile(&latencies, 50),
                p95_latency_ms: percentile(&latencies, 95),
                error_rate_pct: (errors as f64 * 1000.0 / requests.max(1) as f64).round() / 10.0,
            };
            (cost, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.group.cmp(&b.1.group)));
    rows.into_iter().map(|(_, row)| row).collect()
}

const HEADERS: [&str; 9] = [
    "group",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_usd",
    "p50_ms",
    "p95_ms",
    "error_pct",
];

fn cells(row: &Row) -> [String; 9] {
    [
        row.group.clone(),
        row.requests.to_string(),
        row.input_tokens.to_string(),
        row.cached_input_tokens.to_string(),
        row.output_tokens.to_string(),
        row.cost_usd.clone(),
        row.p50_latency_ms.to_string(),
        row.p95_latency_ms.to_string(),
        format!("{:.1}", row.error_rate_pct),
    ]
}

pub fn render(rows: &[Row], format: Format) -> anyhow::Result<String> {
    let cells: Vec<[String; 9]> = rows.iter().map(cells).collect();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(rows)?,
        Format::Csv => report::csv(&HEADERS, &cells),
        Format::Table => report::table(&HEADERS, &cells, 1),
    })
}

pub async fn command(args: UsageArgs) -> anyhow::Result<()> {
    let since = now_ms().saturating_sub(parse_since(&args.since)?);
    let url = match args.store {
        Some(url) => url,
        None => super::load_config(args.config)?.store.url().to_owned(),
    };
    let store = SqlStore::open(&url).await.context("opening the store")?;
    let records = store.usage_since(since, MAX_RECORDS).await;
    // Teams are shown by name too: their ids say little.
    let teams = match args.by {
        By::Team => store.list_teams().await.unwrap_or_default(),
        _ => Vec::new(),
    };
    store.close().await;
    let records = records?;
    if records.len() as u64 >= u64::from(MAX_RECORDS) {
        eprintln!("note: only the first {MAX_RECORDS} records were read; narrow --since");
    }
    let mut rows = aggregate(&records, args.by);
    name_teams(&mut rows, &teams);
    println!("{}", render(&rows, args.format)?);
    Ok(())
}

/// `team_…` groups as `name (team_…)`.
fn name_teams(rows: &mut [Row], teams: &[TeamRecord]) {
    for row in rows {
        if let Some(team) = teams.iter().find(|t| t.id == row.group) {
            row.group = format!("{} ({})", team.name, team.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        model: &str,
        cloud: &str,
        latency_ms: u64,
        cost_pusd: u64,
        status: u16,
    ) -> UsageRecord {
        UsageRecord {
            model: model.to_owned(),
            cloud: Some(cloud.to_owned()),
            latency_ms,
            cost_pusd,
            status,
            input_tokens: 100,
            output_tokens: 10,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn since_takes_a_unit() {
        assert_eq!(parse_since("24h").unwrap(), 86_400_000);
        assert_eq!(parse_since("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_since("90s").unwrap(), 90_000);
        assert!(parse_since("24").is_err());
        assert!(parse_since("3w").is_err());
    }

    #[test]
    fn groups_sum_exactly_and_rank_by_cost() {
        let mut records: Vec<_> = (1..=20)
            .map(|i| record("gpt-4o", "azure", i * 10, 2_500_000, 200))
            .collect();
        records.push(record("gpt-4o", "azure", 5000, 0, 503));
        records.push(record("claude", "aws", 40, 1, 200));
        let rows = aggregate(&records, By::Model);
        assert_eq!(rows.len(), 2);
        let gpt = &rows[0];
        assert_eq!(gpt.group, "gpt-4o");
        assert_eq!(gpt.requests, 21);
        assert_eq!(gpt.input_tokens, 2100);
        // 20 × 2,500,000 picodollars = $0.00005 exactly.
        assert_eq!(gpt.cost_usd, "0.00005");
        // Latencies 10..200 and 5000: the 11th of 21 is 110, the 20th is 200.
        assert_eq!(gpt.p50_latency_ms, 110);
        assert_eq!(gpt.p95_latency_ms, 200);
        assert_eq!(gpt.error_rate_pct, 4.8);
        assert_eq!(rows[1].cost_usd, "0.000000000001");
        let by_cloud = aggregate(&records, By::Cloud);
        assert_eq!(by_cloud[0].group, "azure");
        assert_eq!(aggregate(&records, By::Key)[0].group, "(none)");
    }

    #[test]
    fn groups_by_team_and_end_user_from_the_tags() {
        let tagged = |team: Option<&str>, user: Option<&str>, cost: u64| {
            let mut r = record("gpt-4o", "azure", 10, cost, 200);
            r.tags.team_id = team.map(str::to_owned);
            r.tags.end_user = user.map(str::to_owned);
            r
        };
        let records = [
            tagged(Some("team_a"), Some("ana"), 3),
            tagged(Some("team_a"), Some("bo"), 4),
            tagged(Some("team_b"), Some("ana"), 5),
            tagged(None, None, 1),
        ];
        let teams: Vec<(String, u64, String)> = aggregate(&records, By::Team)
            .into_iter()
            .map(|r| (r.group, r.requests, r.cost_usd))
            .collect();
        assert_eq!(
            teams,
            [
                ("team_a".to_owned(), 2, "0.000000000007".to_owned()),
                ("team_b".to_owned(), 1, "0.000000000005".to_owned()),
                ("(none)".to_owned(), 1, "0.000000000001".to_owned()),
            ]
        );
        let mut rows = aggregate(&records, By::Team);
        let research = TeamRecord {
            id: "team_a".to_owned(),
            name: "research".to_owned(),
            ..TeamRecord::default()
        };
        name_teams(&mut rows, &[research]);
        assert_eq!(rows[0].group, "research (team_a)");
        assert_eq!(
            rows[1].group, "team_b",
            "a team gone from the store keeps its id"
        );
        let users: Vec<(String, u64)> = aggregate(&records, By::User)
            .into_iter()
            .map(|r| (r.group, r.requests))
            .collect();
        assert_eq!(
            users,
            [
                ("ana".to_owned(), 2),
                ("bo".to_owned(), 1),
                ("(none)".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn renders_table_csv_and_json() {
        let rows = aggregate(&[record("a,b", "gcp", 10, 5, 200)], By::Model);
        let csv = render(&rows, Format::Csv).unwrap();
        assert_eq!(
            csv,
            "group,requests,input_tokens,cached_input_tokens,output_tokens,cost_usd,p50_ms,p95_ms,error_pct\n\"a,b\",1,100,0,10,0.000000000005,10,10,0.0"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&rows, Format::Json).unwrap()).unwrap();
        assert_eq!(json[0]["requests"], 1);
        let table = render(&rows, Format::Table).unwrap();
        assert!(table.lines().nth(1).unwrap().starts_with("a,b"), "{table}");
    }
}
