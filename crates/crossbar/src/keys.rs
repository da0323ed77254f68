//! `crossbar keys create | list | revoke`: virtual keys in the configured store. A new key's
//! secret is printed once and never again: only its hash is stored.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use crossbar_server::{NewKey, create_key};
use crossbar_store::{AuditEntry, AuditStore as _, SqlStore, Store, key_json, now_ms};

#[derive(Args)]
pub struct KeysArgs {
    /// Configuration file whose `[store]` holds the keys (default as for `serve`).
    #[arg(long, env = "CROSSBAR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Store URL, overriding the configuration's `store.url`.
    #[arg(long, global = true)]
    store: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown once).
    Create {
        #[arg(long)]
        name: Option<String>,
        /// A logical model (glob) the key may call; repeat for more. None: any.
        #[arg(long = "model")]
        models: Vec<String>,
        /// A route the key may use; repeat for more. None: any.
        #[arg(long = "route")]
        routes: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// USD per UTC day.
        #[arg(long)]
        budget_day: Option<f64>,
        /// USD per UTC month.
        #[arg(long)]
        budget_month: Option<f64>,
        /// USD over the key's life.
        #[arg(long)]
        budget_total: Option<f64>,
        /// The team (id or name) the key belongs to: its limits apply too, and the key's
        /// models and routes must be ones the team allows.
        #[arg(long)]
        team: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name.
    Revoke { id: String },
}

pub async fn command(args: KeysArgs) -> anyhow::Result<()> {
    let url = match args.store {
        Some(url) => url,
        None => super::load_config(args.config)?.store.url().to_owned(),
    };
    let store = SqlStore::open(&url).await.context("opening the store")?;
    let result = run(&store, args.command).await;
    store.close().await;
    result
}

async fn run(store: &SqlStore, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            models,
            routes,
            rpm,
            tpm,
            budget_day,
            budget_month,
            budget_total,
            team,
            json,
        } => {
            let new = NewKey {
                name,
                models,
                routes,
                rpm,
                tpm,
                budget_usd_day: budget_day,
                budget_usd_month: budget_month,
                budget_usd_total: budget_total,
                team,
            };
            let (secret, record) = create_key(store, new)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            audit(
                store,
                "key.create",
                &record.id,
                None,
                Some(key_json(&record)),
            )
            .await;
            if json {
                let mut shown = key_json(&record);
                shown["key"] = serde_json::json!(secret);
                println!("{shown}");
            } else {
                println!("{secret}");
                eprintln!(
                    "created {}{}: this is the only time the key is shown",
                    record.id,
                    record.name.map(|n| format!(" ({n})")).unwrap_or_default()
                );
            }
        }
        KeysCommand::List { json } => {
            let records = store.list_keys().await?;
            if json {
                let data: Vec<_> = records.iter().map(key_json).collect();
                println!("{}", serde_json::Value::Array(data));
                return Ok(());
            }
            println!(
                "{:<21} {:<16} {:<10} {:<8} {:<8} {:<8} {:<22} limits",
                "id", "name", "prefix", "status", "models", "routes", "team"
            );
            for record in &records {
                let view = key_json(record);
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
                let count = |list: &[String]| {
                    if list.is_empty() {
                        "any".to_owned()
                    } else {
                        list.join(",")
                    }
                };
                println!(
                    "{:<21} {:<16} {:<10} {:<8} {:<8} {:<8} {:<22} {}",
                    record.id,
                    record.name.as_deref().unwrap_or("-"),
                    record.prefix,
                    if record.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "live"
                    },
                    count(&record.models),
                    count(&record.routes),
                    record.team_id.as_deref().unwrap_or("-"),
                    limits.join(" ")
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let before =
                store.list_keys().await?.into_iter().find(|k| {
                    k.revoked_ms.is_none() && (k.id == id || k.name.as_deref() == Some(&id))
                });
            let at = now_ms();
            if store.revoke_key(&id, at).await? {
                if let Some(before) = before {
                    let mut after = before.clone();
                    after.revoked_ms = Some(at);
                    let (before, after) = (key_json(&before), key_json(&after));
                    let target = before["id"].as_str().unwrap_or_default().to_owned();
                    audit(store, "key.revoke", &target, Some(before), Some(after)).await;
                }
                println!("revoked {id}");
            } else {
                anyhow::bail!("no live key `{id}`");
            }
        }
    }
    Ok(())
}

/// Appends a change made from the command line to the audit log (actor `cli`, source
/// `cli:<user>@<host>`). A failure is said on stderr; the change itself stands.
pub(crate) async fn audit(
    store: &SqlStore,
    action: &str,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) {
    let team_id = crossbar_store::audit_team(action, target, after.as_ref().or(before.as_ref()));
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let entry = AuditEntry {
        id: 0,
        at_ms: now_ms(),
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
        source: format!("cli:{user}@{host}"),
        team_id,
    };
    if let Err(error) = store.append_audit(&entry).await {
        eprintln!("warning: the audit entry for {action} {target} was not written: {error}");
    }
}
