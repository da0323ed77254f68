//! The `crossbar` command: the gateway (`serve`), standalone simulated providers (`sim`) and
//! the routing-policy simulator (`simulate`).

mod admin_tokens;
mod agent;
mod catalog;
mod keys;
mod models;
mod report;
mod simulate;
mod teams;
mod usage;
mod whatif;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use crossbar_core::config::Config;
use crossbar_server::{Gateway, Reloadable, ServeLimits, serve};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use tokio::net::TcpListener;

/// mimalloc instead of glibc's malloc: allocation and freeing were about a fifth of the
/// gateway's instructions per request (many small, short-lived buffers across tokio workers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "crossbar",
    version,
    about = "Provider-portable gateway and runtime for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file; without one, ./crossbar.toml if present, else every catalog model
        /// the environment's credentials reach (see `crossbar models`), else the built-in
        /// simulated providers.
        #[arg(long, env = "CROSSBAR_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `server.listen`; default 127.0.0.1:4000).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a simulated provider speaking a real wire format.
    Sim {
        #[arg(long, default_value = "openai")]
        dialect: SimDialect,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// TOML file with the simulator's latency and fault settings (see `[providers.sim]`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep no copy of requests and answers, so memory stays flat under long load (the
        /// benchmark uses it).
        #[arg(long)]
        no_record: bool,
    },
    /// Run agents from a TOML spec, resume killed runs, list runs.
    Agent(agent::AgentArgs),
    /// Run the shipped example agent offline on three simulated clouds, one failing mid-run.
    Demo {
        /// Print JSON events instead of the live view.
        #[arg(long)]
        json: bool,
    },
    /// List the catalog's models: which deployments this environment's credentials reach (what
    /// `serve` offers with no configuration file) and why the others are not reachable.
    Models(models::ModelsArgs),
    /// Refresh the catalog from LiteLLM's price list (`catalog import FILE`).
    Catalog(catalog::CatalogArgs),
    /// Manage virtual keys in the store: create (shown once), list, revoke.
    Keys(keys::KeysArgs),
    /// Manage teams (budgets, limits and allow-lists over their keys): create, list, show,
    /// update, delete.
    Teams(teams::TeamsArgs),
    /// Manage scoped admin tokens (admin, team-admin, viewer): create (shown once), list,
    /// revoke.
    AdminTokens(admin_tokens::AdminTokensArgs),
    /// Report recorded traffic: requests, tokens, cost, p50/p95 latency and error rate per
    /// team, key, end user, model, deployment, provider or cloud.
    Usage(usage::UsageArgs),
    /// Re-price the recorded traffic on every deployment of the same logical models (of this
    /// configuration or another), next to what it really cost.
    Whatif(whatif::WhatifArgs),
    /// Replay a synthetic workload through the real router under each routing policy, on a
    /// virtual clock, and print latency percentiles, error rate and cost per policy.
    Simulate {
        /// Scenario file (see examples/outage.toml).
        #[arg(long)]
        scenario: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenAPI 3.1 document of Crossbar's own API (what `GET /openapi.json` serves).
    Openapi,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let command = match cli.command {
        // Builds its own paused-clock runtimes, which cannot nest in the one below.
        Command::Simulate { scenario, json } => return simulate::command(&scenario, json),
        Command::Models(args) => return models::command(&args),
        Command::Catalog(args) => return catalog::command(args),
        Command::Openapi => {
            println!("{:#}", crossbar_server::openapi_document());
            return Ok(());
        }
        command => command,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        match command {
            Command::Serve { config, listen } => run_serve(config, listen).await,
            Command::Agent(args) => agent::command(args).await,
            Command::Demo { json } => agent::demo(json).await,
            Command::Keys(args) => keys::command(args).await,
            Command::Teams(args) => teams::command(args).await,
            Command::AdminTokens(args) => admin_tokens::command(args).await,
            Command::Usage(args) => usage::command(args).await,
            Command::Whatif(args) => whatif::command(args).await,
            Command::Sim {
                dialect,
                listen,
                config,
                no_record,
            } => run_sim(dialect, &listen, config, !no_record).await,
            Command::Simulate { .. }
            | Command::Models(_)
            | Command::Catalog(_)
            | Command::Openapi => {
                anyhow::bail!("runs without the runtime")
            }
        }
    });
    // A task stuck in CPU work must not hold the process after its work is done.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let default = PathBuf::from("crossbar.toml");
    let config = match path {
        Some(path) => Config::load(&path)?,
        None if default.exists() => Config::load(&default)?,
        None => Config::discover()?,
    };
    Ok(config)
}

async fn run_serve(config: Option<PathBuf>, listen: Option<String>) -> anyhow::Result<()> {
    // The file's text too: hot reload reports its sha256 and compares later versions with it.
    let file = match config {
        Some(path) => Some(path),
        None => Some(PathBuf::from("crossbar.toml")).filter(|p| p.exists()),
    }
    .map(|path| {
        let text = crossbar_core::config::read_toml(&path)?;
        anyhow::Ok((path, text))
    })
    .transpose()?;
    let config = match &file {
        Some((path, text)) => Config::from_toml(text, &path.display().to_string())?,
        None => Config::discover()?,
    };
    let listen = listen.unwrap_or_else(|| config.listen().to_owned());
    let mut gateway = Gateway::build(&config).await?;
    agent::take_runs(&mut gateway, &config)?;
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let any_virtual = match &gateway.state.virtual_keys {
        Some(keys) => keys
            .any_keys()
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?,
        None => false,
    };
    let open = config.server.api_keys.is_empty() && !any_virtual;
    if open && !addr.ip().is_loopback() {
        tracing::warn!(
            "no gateway keys are configured and {addr} is not loopback: only clients on this machine are served until a key exists (`crossbar keys create` or `server.api_keys`)"
        );
    } else if open {
        tracing::info!("no gateway keys are configured: open to local clients only");
    }
    tracing::info!(
        config = %config.origin,
        models = gateway.router.model_names().count(),
        deployments = gateway.router.deployments().count(),
        "gateway ready"
    );
    // The first line of stdout is the URL, so scripts and tests can find an ephemeral port.
    // SIGHUP, `POST /admin/reload` and changes to the file reload it (docs/operations.md);
    // SIGHUP is handled from here on, before anyone learns the address.
    let gateway = Reloadable::start(gateway, &config, file)?;
    println!("crossbar listening on http://{addr}");
    let limits = ServeLimits::of(&config.server);
    serve(listener, gateway.app(), watchdog(limits.grace), limits).await?;
    // Every finished request's record reaches the store before exit.
    gateway.flush().await;
    tracing::info!("stopped");
    Ok(())
}

async fn run_sim(
    dialect: SimDialect,
    listen: &str,
    config: Option<PathBuf>,
    record: bool,
) -> anyhow::Result<()> {
    let sim_config: SimConfig = match config {
        Some(path) => {
            let text =
                std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            toml::from_str(&text).with_context(|| path.display().to_string())?
        }
        None => SimConfig::default(),
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = SimServer::start(listener, dialect, sim_config).await?;
    sim.set_recording(record);
    println!("{}", sim.addr());
    println!("{dialect} simulator; base URL {}", sim.base_url());
    tokio::select! {
        () = sim.wait() => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

/// Extra time after the grace period for the last usage records to reach the store.
const FLUSH_ALLOWANCE: Duration = Duration::from_secs(10);

/// Resolves when SIGTERM or Ctrl-C arrives, watched from a thread of its own: if every worker
/// thread were busy with a request, the runtime could not even notice the signal. The same
/// thread ends the process if the drain and the flush overrun `grace` (plus an allowance), so a
/// stuck request can never keep the gateway alive past its grace period.
fn watchdog(grace: Duration) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("crossbar-shutdown".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "no runtime for the shutdown watchdog");
                    return;
                }
            };
            runtime.block_on(shutdown_signal());
            let _ = tx.send(());
            std::thread::sleep(grace + FLUSH_ALLOWANCE);
            tracing::error!(
                "still running {:?} after the shutdown signal: exiting now",
                grace + FLUSH_ALLOWANCE
            );
            std::process::exit(1);
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the shutdown watchdog");
    }
    async move {
        if rx.await.is_err() {
            // The watchdog could not start: fall back to watching signals here.
            shutdown_signal().await;
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
