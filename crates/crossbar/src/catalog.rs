//! `crossbar catalog import FILE`: refreshes the catalog's prices, limits and capabilities from
//! LiteLLM's `model_prices_and_context_window.json` without a release. The result is a local
//! override, `./crossbar-catalog.toml` (or the file `CROSSBAR_CATALOG` names), which `crossbar
//! serve` (with no configuration file) and `crossbar models` lay over the built-in catalog;
//! a `[[models]]` entry in `crossbar.toml` still overrides both.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use crossbar_core::catalog::{Catalog, Overrides, litellm, override_target};

#[derive(Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Read LiteLLM's model_prices_and_context_window.json and write (or update) the local
    /// catalog override for every catalog deployment it lists.
    Import {
        /// LiteLLM's JSON file.
        file: PathBuf,
        /// Where to write the override (default: $CROSSBAR_CATALOG, else
        /// ./crossbar-catalog.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn command(args: CatalogArgs) -> anyhow::Result<()> {
    match args.command {
        CatalogCommand::Import { file, out } => import(&file, out),
    }
}

fn import(file: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let json = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let target = out.unwrap_or_else(override_target);
    let mut overrides = Overrides::read(&target)?;
    // The deployments an earlier override added are refreshed too.
    let mut catalog = Catalog::builtin();
    catalog.apply(&overrides);
    let report = litellm::import(&catalog, &json, &mut overrides)?;
    std::fs::write(&target, overrides.to_toml()?).with_context(|| target.display().to_string())?;
    for (deployment, key) in &report.updated {
        println!("updated  {deployment}  (LiteLLM `{key}`)");
    }
    for deployment in &report.unmatched {
        println!("kept     {deployment}  (not in LiteLLM's list)");
    }
    println!(
        "{} deployments updated, {} kept; wrote {}. `crossbar serve` (with no crossbar.toml) and \
         `crossbar models` read it from the working directory, or from the file CROSSBAR_CATALOG \
         names.",
        report.updated.len(),
        report.unmatched.len(),
        target.display()
    );
    Ok(())
}
