//! `crossbar models`: every deployment of the catalog (built-in, with the local override laid
//! over it), whether this environment's credentials reach it and through which provider, or
//! why not (a missing credential, a region that does not serve it). What `crossbar serve`
//! offers when no configuration file is given.

use clap::Args;
use crossbar_core::catalog::{Catalog, kind_str, override_path, reach};
use serde::Serialize;

use crate::report;
use crate::usage::Format;

#[derive(Args)]
pub struct ModelsArgs {
    /// List only what is reachable.
    #[arg(long)]
    reachable: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// One catalog deployment as listed.
#[derive(Debug, PartialEq, Serialize)]
pub struct Row {
    pub model: String,
    pub kind: String,
    pub target: String,
    /// The region it would be called in, when reachable.
    pub region: Option<String>,
    /// USD per million tokens.
    pub input: f64,
    pub cached_input: Option<f64>,
    pub output: f64,
    pub context: Option<u64>,
    pub capabilities: Vec<&'static str>,
    /// The provider serving it, when reachable.
    pub provider: Option<String>,
    /// Why it is not reachable.
    pub reason: Option<String>,
}

const HEADERS: [&str; 8] = [
    "model",
    "door",
    "target",
    "region",
    "status",
    "usd_per_m_in",
    "usd_per_m_out",
    "context",
];

fn cells(row: &Row) -> [String; 8] {
    let status = match (&row.provider, &row.reason) {
        (Some(provider), _) => format!("reachable as {provider}"),
        (None, Some(reason)) => reason.clone(),
        (None, None) => "-".to_owned(),
    };
    [
        row.model.clone(),
        row.kind.clone(),
        row.target.clone(),
        row.region.clone().unwrap_or_else(|| "-".to_owned()),
        status,
        format!("{:.3}", row.input),
        format!("{:.3}", row.output),
        row.context
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
    ]
}

/// The rows for `catalog` under `env`.
pub fn rows(catalog: &Catalog, env: reach::Env<'_>) -> Vec<Row> {
    reach::reach(catalog, env)
        .into_iter()
        .map(|offer| {
            let d = offer.deployment;
            let (provider, region, reason) = match offer.outcome {
                Ok(plan) => (Some(plan.name), plan.region, None),
                Err(reason) => (None, None, Some(reason)),
            };
            Row {
                model: d.model.clone(),
                kind: kind_str(d.kind),
                target: d.target.clone(),
                region,
                input: d.price.input,
                cached_input: d.price.cached_input,
                output: d.price.output,
                context: d.limits.context,
                capabilities: d.limits.capabilities.iter().map(|c| c.as_str()).collect(),
                provider,
                reason,
            }
        })
        .collect()
}

pub fn command(args: &ModelsArgs) -> anyhow::Result<()> {
    let catalog = Catalog::load()?;
    let mut rows = rows(&catalog, &reach::process_env);
    if args.reachable {
        rows.retain(|r| r.provider.is_some());
    }
    let cells: Vec<[String; 8]> = rows.iter().map(cells).collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => println!("{}", report::csv(&HEADERS, &cells)),
        Format::Table => {
            println!("{}", report::table(&HEADERS, &cells, 5));
            let reachable = rows.iter().filter(|r| r.provider.is_some()).count();
            println!(
                "\n{reachable} of {} deployments reachable with this environment's credentials.",
                rows.len()
            );
            if let Some(path) = override_path() {
                println!("Catalog override: {}", path.display());
            }
            if std::path::Path::new("crossbar.toml").exists() {
                println!(
                    "Note: ./crossbar.toml exists, so `crossbar serve` uses it instead of this list."
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbar_core::catalog::BUILTIN;

    #[test]
    fn rows_say_where_each_deployment_is_served_or_why_not() {
        let catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        let env = |name: &str| match name {
            "ANTHROPIC_API_KEY" => Some("sk-ant".to_owned()),
            "AWS_PROFILE" => Some("dev".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        };
        let rows = rows(&catalog, &env);
        let find = |kind: &str, target: &str| {
            rows.iter()
                .find(|r| r.kind == kind && r.target == target)
                .unwrap()
        };
        let sonnet = find(
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        );
        assert_eq!(sonnet.provider.as_deref(), Some("bedrock-eu-west-1"));
        assert_eq!(sonnet.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            cells(sonnet)[4],
            "reachable as bedrock-eu-west-1".to_owned()
        );
        let direct = find("anthropic", "claude-sonnet-4-5");
        assert_eq!(direct.provider.as_deref(), Some("anthropic"));
        assert_eq!(direct.input, 3.0);
        let mantle = find("bedrock-mantle-responses", "openai.gpt-5.4");
        assert_eq!(
            mantle.reason.as_deref(),
            Some("not served in AWS_REGION=eu-west-1 (served in us-east-2, us-west-2)")
        );
        assert_eq!(
            find("vertex-openai-responses", "gpt-5.4").reason.as_deref(),
            Some(
                "no Google credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login or GOOGLE_OAUTH_ACCESS_TOKEN)"
            )
        );
    }
}
