//! `crossbar admin-tokens create | list | revoke`: scoped admin tokens in the configured store
//! (`admin`, `team-admin` of one team, `viewer`). A new token's secret is printed once; only
//! its hash is stored. Every change is audited.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use crossbar_server::tokens::{self, NewToken, token_json};
use crossbar_store::{OrgStore as _, SqlStore};

use crate::keys::audit;

#[derive(Args)]
pub struct AdminTokensArgs {
    /// Configuration file whose `[store]` holds the tokens (default as for `serve`).
    #[arg(long, env = "CROSSBAR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Store URL, overriding the configuration's `store.url`.
    #[arg(long, global = true)]
    store: Option<String>,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// `admin`, `team-admin` or `viewer`.
        #[arg(long)]
        role: String,
        /// The team (id or name) a `team-admin` manages.
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id or name.
    Revoke { id: String },
}

pub async fn command(args: AdminTokensArgs) -> anyhow::Result<()> {
    let url = match args.store {
        Some(url) => url,
        None => super::load_config(args.config)?.store.url().to_owned(),
    };
    let store = SqlStore::open(&url).await.context("opening the store")?;
    let result = run(&store, args.command).await;
    store.close().await;
    result
}

async fn run(store: &SqlStore, command: TokensCommand) -> anyhow::Result<()> {
    let fail = |e: crossbar_core::Error| anyhow::anyhow!(e.message);
    match command {
        TokensCommand::Create {
            role,
            team,
            name,
            json,
        } => {
            let (secret, token) = tokens::create(store, NewToken { name, role, team })
                .await
                .map_err(fail)?;
            let view = token_json(&token);
            audit(store, "token.create", &token.id, None, Some(view.clone())).await;
            if json {
                let mut shown = view;
                shown["token"] = serde_json::json!(secret);
                println!("{shown}");
            } else {
                println!("{secret}");
                eprintln!(
                    "created {} ({}{}): this is the only time the token is shown",
                    token.id,
                    token.role,
                    token
                        .team_id
                        .as_deref()
                        .map(|t| format!(" of {t}"))
                        .unwrap_or_default()
                );
            }
        }
        TokensCommand::List { json } => {
            let list = store.list_admin_tokens().await?;
            if json {
                let data: Vec<_> = list.iter().map(token_json).collect();
                println!("{}", serde_json::Value::Array(data));
                return Ok(());
            }
            println!(
                "{:<21} {:<16} {:<12} {:<11} {:<22} status",
                "id", "name", "prefix", "role", "team"
            );
            for token in &list {
                println!(
                    "{:<21} {:<16} {:<12} {:<11} {:<22} {}",
                    token.id,
                    token.name.as_deref().unwrap_or("-"),
                    token.prefix,
                    token.role,
                    token.team_id.as_deref().unwrap_or("-"),
                    if token.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "live"
                    }
                );
            }
        }
        TokensCommand::Revoke { id } => {
            let (before, after) = tokens::revoke(store, &id).await.map_err(fail)?;
            audit(
                store,
                "token.revoke",
                &before.id,
                Some(token_json(&before)),
                Some(token_json(&after)),
            )
            .await;
            println!("revoked {}", before.id);
        }
    }
    Ok(())
}
