//! `crossbar teams create | list | show | update | delete`: teams in the configured store, the
//! level between the organization (this gateway) and its keys. Every change is audited.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use crossbar_server::teams::{self, NewTeam, TeamPatch, team_json};
use crossbar_store::{OrgStore as _, SqlStore, Store as _, key_json};

use crate::keys::audit;

#[derive(Args)]
pub struct TeamsArgs {
    /// Configuration file whose `[store]` holds the teams (default as for `serve`).
    #[arg(long, env = "CROSSBAR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Store URL, overriding the configuration's `store.url`.
    #[arg(long, global = true)]
    store: Option<String>,
    #[command(subcommand)]
    command: TeamsCommand,
}

/// A team's limits and allow-lists, as `create` and `update` take them.
#[derive(Args, Debug, Default)]
struct Limits {
    /// A logical model (glob) the team's keys may call; repeat for more. None: any.
    #[arg(long = "model")]
    models: Vec<String>,
    /// A route the team's keys may use; repeat for more. None: any.
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Requests per minute, all the team's keys together.
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute, all the team's keys together.
    #[arg(long)]
    tpm: Option<u64>,
    /// USD per UTC day.
    #[arg(long)]
    budget_day: Option<f64>,
    /// USD per UTC month.
    #[arg(long)]
    budget_month: Option<f64>,
    /// USD over the team's life.
    #[arg(long)]
    budget_total: Option<f64>,
}

#[derive(Subcommand)]
enum TeamsCommand {
    /// Create a team.
    Create {
        name: String,
        #[command(flatten)]
        limits: Limits,
        #[arg(long)]
        json: bool,
    },
    /// List teams.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a team (by id or name) and its keys.
    Show { team: String },
    /// Change a team's name, allow-lists or limits (those given; `--clear rpm` removes one).
    Update {
        team: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: Limits,
        /// Replace the model allow-list with none (any model).
        #[arg(long)]
        any_model: bool,
        /// Replace the route allow-list with none (any route).
        #[arg(long)]
        any_route: bool,
        /// Remove a limit: rpm, tpm, budget-day, budget-month or budget-total; repeat for more.
        #[arg(long)]
        clear: Vec<String>,
    },
    /// Delete a team that has no live keys.
    Delete { team: String },
}

pub async fn command(args: TeamsArgs) -> anyhow::Result<()> {
    let url = match args.store {
        Some(url) => url,
        None => super::load_config(args.config)?.store.url().to_owned(),
    };
    let store = SqlStore::open(&url).await.context("opening the store")?;
    let result = run(&store, args.command).await;
    store.close().await;
    result
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

async fn run(store: &SqlStore, command: TeamsCommand) -> anyhow::Result<()> {
    let fail = |e: crossbar_core::Error| anyhow::anyhow!(e.message);
    match command {
        TeamsCommand::Create { name, limits, json } => {
            let new = NewTeam {
                name,
                models: limits.models,
                routes: limits.routes,
                rpm: limits.rpm,
                tpm: limits.tpm,
                budget_usd_day: limits.budget_day,
                budget_usd_month: limits.budget_month,
                budget_usd_total: limits.budget_total,
            };
            let team = teams::create(store, new).await.map_err(fail)?;
            let view = team_json(&team);
            audit(store, "team.create", &team.id, None, Some(view.clone())).await;
            if json {
                println!("{view}");
            } else {
                println!("created {} ({})", team.id, team.name);
            }
        }
        TeamsCommand::List { json } => {
            let list = store.list_teams().await?;
            if json {
                let data: Vec<_> = list.iter().map(team_json).collect();
                println!("{}", serde_json::Value::Array(data));
                return Ok(());
            }
            let keys = store.list_keys().await?;
            println!(
                "{:<22} {:<16} {:<5} {:<8} {:<8} limits",
                "id", "name", "keys", "models", "routes"
            );
            for team in &list {
                let view = team_json(team);
                let limits: Vec<String> = [
                    "rpm",
                    "tpm",
                    "budget_usd_day",
                    "budget_usd_month",
                    "budget_usd_total",
                ]
                .iter()
                .filter(|k| !view[**k].is_null())
                .map(|k| format!("{k}={}", view[*k]))
                .collect();
                let live = keys
                    .iter()
                    .filter(|k| k.revoked_ms.is_none() && k.team_id.as_deref() == Some(&team.id))
                    .count();
                let shown = |list: &[String]| {
                    if list.is_empty() {
                        "any".to_owned()
                    } else {
                        list.join(",")
                    }
                };
                println!(
                    "{:<22} {:<16} {:<5} {:<8} {:<8} {}",
                    team.id,
                    team.name,
                    live,
                    shown(&team.models),
                    shown(&team.routes),
                    limits.join(" ")
                );
            }
        }
        TeamsCommand::Show { team } => {
            let Some(found) = teams::get(store, &team).await.map_err(fail)? else {
                anyhow::bail!("no team `{team}`");
            };
            let members: Vec<_> = store
                .list_keys()
                .await?
                .iter()
                .filter(|k| k.team_id.as_deref() == Some(&found.id))
                .map(key_json)
                .collect();
            let mut view = team_json(&found);
            view["keys"] = serde_json::Value::Array(members);
            println!("{}", pretty(&view));
        }
        TeamsCommand::Update {
            team,
            name,
            limits,
            any_model,
            any_route,
            clear,
        } => {
            let mut patch = TeamPatch {
                name,
                models: (any_model || !limits.models.is_empty()).then_some(limits.models),
                routes: (any_route || !limits.routes.is_empty()).then_some(limits.routes),
                rpm: limits.rpm.map(Some),
                tpm: limits.tpm.map(Some),
                budget_usd_day: limits.budget_day.map(Some),
                budget_usd_month: limits.budget_month.map(Some),
                budget_usd_total: limits.budget_total.map(Some),
            };
            for limit in &clear {
                match limit.as_str() {
                    "rpm" => patch.rpm = Some(None),
                    "tpm" => patch.tpm = Some(None),
                    "budget-day" => patch.budget_usd_day = Some(None),
                    "budget-month" => patch.budget_usd_month = Some(None),
                    "budget-total" => patch.budget_usd_total = Some(None),
                    other => anyhow::bail!(
                        "--clear {other}: one of rpm, tpm, budget-day, budget-month, budget-total"
                    ),
                }
            }
            let (before, after) = teams::update(store, &team, patch).await.map_err(fail)?;
            let view = team_json(&after);
            audit(
                store,
                "team.update",
                &after.id,
                Some(team_json(&before)),
                Some(view.clone()),
            )
            .await;
            println!("{}", pretty(&view));
        }
        TeamsCommand::Delete { team } => {
            let gone = teams::delete(store, &team).await.map_err(fail)?;
            audit(store, "team.delete", &gone.id, Some(team_json(&gone)), None).await;
            println!("deleted {} ({})", gone.id, gone.name);
        }
    }
    Ok(())
}
