//! `crossbar agent run | resume | runs | journal` and `crossbar demo`: agents from a TOML spec,
//! calling models through the router in this process (`--config`, the default) or through a
//! gateway elsewhere (`--gateway URL --key KEY`), journaled to the store so any host sharing it
//! can resume a run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use crossbar_agent::service::{AgentBuilder, Built, SpecDir, Worker, WorkerSettings};
use crossbar_agent::tools::retrieval::Embedding;
use crossbar_agent::tools::retrieval::vectors::{Backend, Embedder};
use crossbar_agent::{
    Agent, AgentModel, AgentSpec, Entry, Event, InProcess, McpServer, Observer, Remote, RunOutcome,
    RunStatus, ToolContext, tools_for,
};
use crossbar_core::config::Config;
use crossbar_core::trace::SpanSink;
use crossbar_server::Gateway;
use crossbar_server::Telemetry;
use crossbar_store::{DEFAULT_URL, JournalStore, SqlStore, Store as _, VectorStore};
use secrecy::SecretString;

#[derive(Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

/// Where models are reached and where runs are journaled.
#[derive(Args, Clone)]
pub struct Connection {
    /// Gateway configuration for in-process routing (default: ./crossbar.toml if present,
    /// else providers from the environment, else the built-in simulated providers).
    #[arg(long, env = "CROSSBAR_CONFIG", conflicts_with = "gateway")]
    config: Option<PathBuf>,
    /// Call models through a Crossbar gateway at this URL instead of in-process.
    #[arg(long, env = "CROSSBAR_GATEWAY")]
    gateway: Option<String>,
    /// The gateway key (sent as a Bearer token).
    #[arg(long, env = "CROSSBAR_GATEWAY_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Journal store URL (sqlite://FILE, postgres://...); default: the configuration's store,
    /// else ./crossbar.db.
    #[arg(long, env = "CROSSBAR_AGENT_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Print one JSON event per line instead of the live view.
    #[arg(long)]
    json: bool,
    /// Send the run's spans (the run, each model call, each tool call) to this OpenTelemetry
    /// collector over OTLP/HTTP, e.g. http://localhost:4318; in-process, the configuration's
    /// `telemetry.otlp_endpoint` is the default.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run an agent spec on a task, showing each step live.
    Run {
        /// The agent spec (TOML; see examples/agent.toml).
        spec: PathBuf,
        /// What to do.
        task: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Continue a run that was killed or failed, from its journal.
    Resume {
        run_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// List runs with their status and cost, newest first.
    Runs {
        #[arg(long, env = "CROSSBAR_AGENT_STORE", hide_env_values = true)]
        store: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Index the text files under DIR for an agent's `search_docs` tool (`[retrieval] index`).
    Ingest {
        dir: PathBuf,
        /// The index directory (created when missing; files indexed again are replaced).
        #[arg(long, default_value = "crossbar-index")]
        index: PathBuf,
        /// Also embed every passage with this embeddings model (a logical model or route), so
        /// `search_docs` ranks hybrid. The vectors go to pgvector when the store is
        /// PostgreSQL, else beside the index.
        #[arg(long)]
        embeddings: Option<String>,
        /// Keep the vectors beside the index even when the store is PostgreSQL.
        #[arg(long, requires = "embeddings")]
        embedded_vectors: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Claim runs submitted to the runs API (`POST /v1/crossbar/runs`) from the shared store
    /// and run them, heartbeating each lease; on SIGTERM, finish within `--grace-s` or hand
    /// the runs back. Any number of workers, on any hosts, may share one store (PostgreSQL).
    Worker {
        /// Runs at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds a claim holds a run without a heartbeat (another worker takes it over
        /// after that).
        #[arg(long, default_value_t = 30)]
        lease_s: u64,
        /// Milliseconds between looks for new runs when idle.
        #[arg(long, default_value_t = 500)]
        poll_ms: u64,
        /// Seconds running runs may take to finish on SIGTERM before they are handed back.
        #[arg(long, default_value_t = 30)]
        grace_s: u64,
        /// This worker's name in the store and the logs (default: worker-<pid>@<host>).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Print a run's journal, one JSON entry per line.
    Journal {
        run_id: String,
        #[arg(long, env = "CROSSBAR_AGENT_STORE", hide_env_values = true)]
        store: Option<String>,
    },
}

pub async fn command(args: AgentArgs) -> anyhow::Result<()> {
    match args.command {
        AgentCommand::Run {
            spec,
            task,
            connection,
        } => {
            let spec = AgentSpec::load(&spec)?;
            let session = Session::open(&connection).await?;
            let (agent, servers) = session.agent(spec, &connection).await?;
            let outcome = agent.run(&task).await;
            shutdown(&servers).await;
            session.flush().await;
            let outcome = outcome?;
            summary(&outcome, connection.json)
        }
        AgentCommand::Resume { run_id, connection } => {
            let session = Session::open(&connection).await?;
            let run = session
                .journal
                .run(&run_id)
                .await?
                .with_context(|| format!("no run `{run_id}` in the store"))?;
            let spec = AgentSpec::from_toml(&run.spec, &run.spec_path)?;
            let (agent, servers) = session.agent(spec, &connection).await?;
            let outcome = agent.resume(&run_id).await;
            shutdown(&servers).await;
            session.flush().await;
            let outcome = outcome?;
            summary(&outcome, connection.json)
        }
        AgentCommand::Runs { store, limit, json } => {
            let journal = open_store(store.as_deref(), None).await?;
            let runs = journal.list_runs(limit).await?;
            if json {
                for run in runs {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": run.id, "agent": run.agent, "status": run.status,
                            "task": run.task, "steps": run.totals.steps, "tokens": run.totals.tokens,
                            "cost_usd": crossbar_core::pricing::pico_to_usd(run.totals.cost_pusd),
                            "created_ms": run.created_ms, "answer": run.answer,
                        })
                    );
                }
                return Ok(());
            }
            let rows: Vec<[String; 6]> = runs
                .iter()
                .map(|run| {
                    [
                        run.id.clone(),
                        run.agent.clone(),
                        run.status.clone(),
                        run.totals.steps.to_string(),
                        run.totals.tokens.to_string(),
                        format!(
                            "${:.6}",
                            crossbar_core::pricing::pico_to_usd(run.totals.cost_pusd)
                        ),
                    ]
                })
                .collect();
            println!(
                "{}",
                crate::report::table(
                    &["run", "agent", "status", "steps", "tokens", "cost"],
                    &rows,
                    3
                )
            );
            Ok(())
        }
        AgentCommand::Ingest {
            dir,
            index,
            embeddings,
            embedded_vectors,
            connection,
        } => ingest(&dir, &index, embeddings, embedded_vectors, &connection).await,
        AgentCommand::Worker {
            concurrency,
            lease_s,
            poll_ms,
            grace_s,
            id,
            connection,
        } => {
            if concurrency == 0 || lease_s == 0 || poll_ms == 0 {
                bail!("--concurrency, --lease-s and --poll-ms must be at least 1");
            }
            let session = Arc::new(Session::open(&connection).await?);
            let settings = WorkerSettings {
                id: id.unwrap_or_else(default_worker_id),
                concurrency,
                lease: Duration::from_secs(lease_s),
                poll: Duration::from_millis(poll_ms),
                grace: Duration::from_secs(grace_s),
            };
            // Stdout's first line says the worker is up (scripts and tests wait for it).
            println!(
                "crossbar worker {} ready · {} run(s) at once · lease {lease_s}s · models via {} · store {}",
                settings.id,
                concurrency,
                session.model.describe(),
                session.journal.backend()
            );
            let worker = Worker {
                store: Arc::clone(&session.journal),
                builder: Arc::new(WorkerAgents(Arc::clone(&session))),
                settings,
            };
            let report = worker.run(crate::shutdown_signal()).await;
            session.flush().await;
            eprintln!(
                "worker stopped: {} claimed ({} taken over), {} ended, {} cancelled, {} lost, {} handed back, {} failed",
                report.claimed,
                report.takeovers,
                report.ended,
                report.cancelled,
                report.lost,
                report.handed_back,
                report.failed
            );
            Ok(())
        }
        AgentCommand::Journal { run_id, store } => {
            let journal = open_store(store.as_deref(), None).await?;
            for event in journal.events(&run_id).await? {
                println!("{}", event.data);
            }
            Ok(())
        }
    }
}

async fn open_store(url: Option<&str>, config: Option<&Config>) -> anyhow::Result<Arc<SqlStore>> {
    let url = match (url, config) {
        (Some(url), _) => url.to_owned(),
        (None, Some(config)) if config.store.url.is_some() => config.store.url().to_owned(),
        _ => DEFAULT_URL.to_owned(),
    };
    Ok(Arc::new(SqlStore::open(&url).await?))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let default = PathBuf::from("crossbar.toml");
    Ok(match path {
        Some(path) => Config::load(path)?,
        None if default.exists() => Config::load(&default)?,
        None => Config::discover()?,
    })
}

/// The model layer and the journal for one command; keeps the in-process gateway (and its
/// simulators) alive while the agent runs.
struct Session {
    model: Arc<dyn AgentModel>,
    journal: Arc<SqlStore>,
    /// The exporter of the run's spans, when a collector is configured.
    telemetry: Option<Arc<Telemetry>>,
    _gateway: Option<Gateway>,
}

impl Session {
    async fn open(connection: &Connection) -> anyhow::Result<Self> {
        if let Some(url) = &connection.gateway {
            let key = connection.key.clone().map(SecretString::from);
            let model = Remote::new(url, key).map_err(|e| anyhow::anyhow!(e.message))?;
            let journal = open_store(connection.store.as_deref(), None).await?;
            return Ok(Self {
                model: Arc::new(model),
                journal,
                telemetry: telemetry(connection.otlp_endpoint.as_deref())?,
                _gateway: None,
            });
        }
        let config = load_config(connection.config.as_deref())?;
        let journal = open_store(connection.store.as_deref(), Some(&config)).await?;
        let gateway = Gateway::build(&config).await?;
        let endpoint = connection.otlp_endpoint.as_deref().or_else(|| {
            config
                .telemetry
                .otlp_endpoint
                .as_ref()
                .map(|e| e.get_ref().as_str())
        });
        Ok(Self {
            model: Arc::new(InProcess::new(Arc::clone(&gateway.router))),
            journal,
            telemetry: telemetry(endpoint)?,
            _gateway: Some(gateway),
        })
    }

    /// Sends the spans still queued: before the command exits, or they are lost.
    async fn flush(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.flush().await;
        }
    }

    fn tool_context(&self) -> ToolContext {
        ToolContext {
            journal: Arc::clone(&self.journal) as Arc<dyn JournalStore>,
            model: Arc::clone(&self.model),
            vectors: pgvector(&self.journal),
        }
    }

    async fn agent(
        &self,
        spec: AgentSpec,
        connection: &Connection,
    ) -> anyhow::Result<(Agent, Vec<Arc<McpServer>>)> {
        let (tools, servers) = tools_for(&spec, &self.tool_context())
            .await
            .map_err(anyhow::Error::msg)?;
        let observer: Observer = if connection.json {
            Arc::new(|event: &Event| {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            })
        } else {
            let target = self.model.describe();
            Arc::new(move |event: &Event| live(event, &target))
        };
        let agent = Agent {
            spec: Arc::new(spec),
            model: Arc::clone(&self.model),
            tools: Arc::new(tools),
            journal: Arc::clone(&self.journal) as Arc<dyn JournalStore>,
            observer: Some(observer),
            spans: self.telemetry.clone().map(|t| t as Arc<dyn SpanSink>),
        };
        Ok((agent, servers))
    }
}

/// With `[agents]`, the gateway takes runs (`POST /v1/crossbar/runs`) of the specs in
/// `[agents] specs` (relative to the configuration file) for workers to claim.
pub fn take_runs(gateway: &mut Gateway, config: &Config) -> anyhow::Result<()> {
    let Some(agents) = &config.agents else {
        return Ok(());
    };
    let Some(runs) = gateway.state.runs.as_mut() else {
        bail!(
            "{}: [agents] needs the store (store.enabled)",
            config.origin
        );
    };
    let mut agents = agents.clone();
    if agents.specs.is_relative()
        && let Some(dir) = Path::new(&config.origin).parent()
    {
        agents.specs = dir.join(&agents.specs);
    }
    if !agents.specs.is_dir() {
        bail!(
            "{}: agents.specs: {} is not a directory",
            config.origin,
            agents.specs.display()
        );
    }
    tracing::info!(specs = %agents.specs.display(), "taking agent runs");
    runs.specs = Some(Arc::new(SpecDir::new(&agents)));
    Ok(())
}

/// `worker-<pid>@<host>`: unique among live workers, readable in the store.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned());
    format!("worker-{}@{host}", std::process::id())
}

/// A worker's agents: the session's model layer and tools, journaling through the claim's
/// fenced journal, each step logged.
struct WorkerAgents(Arc<Session>);

impl AgentBuilder for WorkerAgents {
    fn build(
        &self,
        spec: AgentSpec,
        journal: Arc<dyn JournalStore>,
    ) -> futures::future::BoxFuture<'_, Result<Built, String>> {
        Box::pin(async move {
            let session = &self.0;
            let context = ToolContext {
                journal: Arc::clone(&journal),
                model: Arc::clone(&session.model),
                vectors: pgvector(&session.journal),
            };
            let (tools, servers) = tools_for(&spec, &context).await?;
            let observer: Observer = Arc::new(|event: &Event| {
                tracing::info!(run = %event.run_id, seq = event.seq, kind = event.entry.kind(),
                    steps = event.totals.steps, cost_usd = event.totals.cost_usd, "step");
            });
            let agent = Agent {
                spec: Arc::new(spec),
                model: Arc::clone(&session.model),
                tools: Arc::new(tools),
                journal,
                observer: Some(observer),
                spans: session.telemetry.clone().map(|t| t as Arc<dyn SpanSink>),
            };
            Ok((agent, servers))
        })
    }
}

/// The store's pgvector when the store is PostgreSQL.
fn pgvector(store: &Arc<SqlStore>) -> Option<Arc<dyn VectorStore>> {
    (store.backend() == "postgres").then(|| Arc::clone(store) as Arc<dyn VectorStore>)
}

/// `crossbar agent ingest`: the text index always; vectors through the model layer with
/// `--embeddings`.
async fn ingest(
    dir: &Path,
    index: &Path,
    embeddings: Option<String>,
    embedded_vectors: bool,
    connection: &Connection,
) -> anyhow::Result<()> {
    let session = match &embeddings {
        Some(_) => Some(Session::open(connection).await?),
        None => None,
    };
    let embedding = match (embeddings, &session) {
        (Some(name), Some(session)) => Some(Embedding {
            embedder: Embedder {
                model: Arc::clone(&session.model),
                name,
            },
            store: if embedded_vectors {
                None
            } else {
                pgvector(&session.journal)
            },
        }),
        _ => None,
    };
    let done = crossbar_agent::tools::retrieval::ingest(dir, index, embedding, progress)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!();
    if connection.json {
        println!(
            "{}",
            serde_json::json!({
                "index": index.display().to_string(), "files": done.files,
                "passages": done.passages, "skipped": done.skipped, "embedded": done.embedded,
                "embedding_tokens": done.embedding_tokens, "embedding_usd": done.embedding_usd,
                "vectors": done.vectors.map(|b| format!("{b:?}").to_lowercase()),
            })
        );
        return Ok(());
    }
    println!(
        "indexed {} file(s) as {} passage(s) into {} ({} skipped: not UTF-8 text)",
        done.files,
        done.passages,
        index.display(),
        done.skipped
    );
    if let Some(backend) = done.vectors {
        let place = match backend {
            Backend::Embedded => "beside the index",
            Backend::Pgvector => "in PostgreSQL (pgvector)",
        };
        println!(
            "embedded {} passage(s) ({} input tokens, ${:.6}); vectors kept {place}",
            done.embedded, done.embedding_tokens, done.embedding_usd
        );
    }
    Ok(())
}

/// The span exporter for `endpoint` (service `crossbar-agent`, or `OTEL_SERVICE_NAME`).
fn telemetry(endpoint: Option<&str>) -> anyhow::Result<Option<Arc<Telemetry>>> {
    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        // Not echoed: a collector URL may carry credentials.
        bail!("--otlp-endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) must be an http:// or https:// URL");
    }
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "crossbar-agent".to_owned());
    Ok(Some(Arc::new(Telemetry::start(endpoint, &service))))
}

/// Ends MCP connections (stdio servers exit) before the command does.
async fn shutdown(servers: &[Arc<McpServer>]) {
    for server in servers {
        server.shutdown().await;
    }
}

/// A progress bar on stderr, redrawn in place.
fn progress(done: usize, total: usize) {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    eprint!(
        "\r[{}{}] {done}/{total} files",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    let _ = std::io::stderr().flush();
}

/// One line (or two) per step, as it happens.
fn live(event: &Event, target: &str) {
    let totals = &event.totals;
    let line = match &event.entry {
        Entry::Started { agent, .. } => {
            format!("run {} · agent {agent} · models via {target}", event.run_id)
        }
        Entry::Resumed { after_step } => {
            format!(
                "run {} resumed after step {after_step} · models via {target}",
                event.run_id
            )
        }
        Entry::ModelCall {
            step,
            model,
            provider,
            usage,
            cost_usd,
            message,
            ..
        } => {
            let what = if message.tool_calls.is_empty() {
                "final answer".to_owned()
            } else {
                format!("{} tool call(s)", message.tool_calls.len())
            };
            format!(
                "step {step}  {model} → {}  {} in / {} out tokens  ${cost_usd:.6}  {what}  (total ${:.6})",
                provider.as_deref().unwrap_or("?"),
                usage.input_tokens,
                usage.output_tokens,
                totals.cost_usd
            )
        }
        Entry::ModelFailed { step, model, error } => {
            format!("step {step}  {model} failed: {error}")
        }
        Entry::ModelSwitched {
            to, from, reason, ..
        } => {
            format!("budget low: switching {from} → {to} ({reason})")
        }
        Entry::Summarized {
            model,
            provider,
            turns,
            usage,
            cost_usd,
            ..
        } => {
            format!(
                "context: {turns} earlier turn(s) summarized by {model} → {}  {} in / {} out tokens  ${cost_usd:.6}  (total ${:.6})",
                provider.as_deref().unwrap_or("?"),
                usage.input_tokens,
                usage.output_tokens,
                totals.cost_usd
            )
        }
        Entry::ToolStarted {
            name, arguments, ..
        } => {
            format!("  → {name} {}", clip(arguments, 100))
        }
        Entry::ToolResult {
            name,
            content,
            is_error,
            interrupted,
            ..
        } => {
            let mark = if *interrupted {
                "interrupted"
            } else if *is_error {
                "error"
            } else {
                "ok"
            };
            format!("  ← {name} [{mark}] {}", clip(content, 100))
        }
        Entry::Finished { .. } => return,
    };
    println!("{line}");
}

fn clip(text: &str, max: usize) -> String {
    let flat: String = text.replace('\n', " ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max).collect();
    out.push('…');
    out
}

fn summary(outcome: &RunOutcome, json: bool) -> anyhow::Result<()> {
    let totals = &outcome.totals;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "summary", "run_id": outcome.run_id, "status": outcome.status,
                "reason": outcome.reason, "answer": outcome.answer, "totals": totals,
            })
        );
    } else {
        if let Some(answer) = &outcome.answer {
            println!("answer: {answer}");
        }
        println!(
            "{} after {} step(s) · {} tokens · ${:.6} · {:.1} s · run {}{}",
            outcome.status.as_str(),
            totals.steps,
            totals.tokens,
            totals.cost_usd,
            totals.elapsed_ms as f64 / 1000.0,
            outcome.run_id,
            if outcome.status == RunStatus::Completed {
                String::new()
            } else {
                format!(" ({})", outcome.reason)
            }
        );
    }
    if outcome.status == RunStatus::Failed {
        bail!(
            "run {} failed: {} (continue it with `crossbar agent resume {}`)",
            outcome.run_id,
            outcome.reason,
            outcome.run_id
        );
    }
    Ok(())
}

/// `crossbar demo`: three simulated clouds serving `claude-sonnet`, the cheapest first; the
/// one serving the run fails after step 2, and the run carries on elsewhere.
const DEMO_CONFIG: &str = r#"
[[providers]]
name = "sim-aws-us-east-1"
kind = "sim"
dialect = "bedrock"
cloud = "aws"
region = "us-east-1"
aws = { access_key_id = "AKIDSIMULATED", secret_access_key = "simulated-secret" }
sim = { ttft_ms = 70, tokens_per_s = 400, seed = 4 }

[[providers]]
name = "sim-gcp-us-east5"
kind = "sim"
dialect = "vertex-anthropic"
cloud = "gcp"
region = "us-east5"
project = "crossbar-sim"
location = "us-east5"
api_key = "ya29.simulated"
sim = { ttft_ms = 60, tokens_per_s = 400, seed = 5 }

[[providers]]
name = "sim-anthropic"
kind = "sim"
dialect = "anthropic"
cloud = "anthropic"
region = "us"
api_key = "sk-ant-simulated"
sim = { ttft_ms = 50, tokens_per_s = 400, seed = 3 }

[[providers]]
name = "sim-gemini"
kind = "sim"
dialect = "gemini"
cloud = "google"
region = "global"
api_key = "simulated-gemini-key"
sim = { ttft_ms = 45, tokens_per_s = 400, seed = 6 }

[[models]]
name = "claude-sonnet"
deployments = [
  { provider = "sim-aws-us-east-1", target = "us.anthropic.claude-sonnet-4-20250514-v1:0", price = { input = 2.70, output = 13.50 } },
  { provider = "sim-gcp-us-east5", target = "claude-sonnet-4@20250514", price = { input = 3.00, output = 15.00 } },
  { provider = "sim-anthropic", target = "claude-sonnet-4-20250514", price = { input = 3.30, output = 16.50 } },
]

[[models]]
name = "gemini-2.5-flash"
deployments = [
  { provider = "sim-gemini", target = "gemini-2.5-flash", price = { input = 0.30, output = 2.50 } },
]

[routes.default]
objective = "cost"
explore = 0.0

[store]
enabled = false
"#;

const DEMO_SPEC: &str = include_str!("../../../examples/agent.toml");

/// The simulated model follows `sim-step` lines, so the demo is the same every time.
const DEMO_TASK: &str = "Three nights in Lisbon at 129.90 EUR plus two dinners at 45 EUR: what is the total? File a note.
sim-step 1: calculator {\"expression\": \"3 * 129.90 + 2 * 45\"}
sim-step 1: now
sim-step 2: write_file {\"path\": \"lisbon.md\", \"content\": \"# Lisbon\\n3 nights x 129.90 + 2 dinners x 45 = 479.70 EUR\\n\"}
sim-step 3: read_file {\"path\": \"lisbon.md\"}";

pub async fn demo(json: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("crossbar-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let result = run_demo(&dir, json).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_demo(dir: &Path, json: bool) -> anyhow::Result<()> {
    let config = Config::from_toml(DEMO_CONFIG, "<demo>")?;
    let clouds: std::collections::HashMap<String, String> = config
        .providers
        .iter()
        .map(|p| {
            (
                p.name.get_ref().clone(),
                p.cloud.clone().unwrap_or_default(),
            )
        })
        .collect();
    let gateway = Arc::new(Gateway::build(&config).await?);
    let spec_path = dir.join("agent.toml");
    std::fs::write(&spec_path, DEMO_SPEC)?;
    let spec = AgentSpec::load(&spec_path)?;
    let store = format!("sqlite://{}?mode=rwc", dir.join("journal.db").display());
    let journal = Arc::new(SqlStore::open(&store).await?);
    if !json {
        println!(
            "crossbar demo: agent `{}` on `claude-sonnet`, served by simulated AWS Bedrock, GCP Vertex AI and Anthropic (cheapest first), all offline.",
            spec.name
        );
    }
    let outage = Arc::clone(&gateway);
    let clouds_seen = clouds.clone();
    let observer: Observer = Arc::new(move |event: &Event| {
        if json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
        } else {
            live(event, "in-process router");
        }
        if let Entry::ModelCall {
            step: 2,
            provider: Some(provider),
            ..
        } = &event.entry
            && let Some(sim) = outage.sims.get(provider)
        {
            sim.set_config(crossbar_sim::SimConfig {
                error_rate: 1.0,
                error_status: 503,
                ..sim.config()
            });
            if !json {
                println!(
                    "!! outage: {provider} ({}) now fails every call with 503",
                    clouds_seen.get(provider).map_or("?", String::as_str)
                );
            }
        }
    });
    let context = ToolContext {
        journal: Arc::clone(&journal) as Arc<dyn JournalStore>,
        model: Arc::new(InProcess::new(Arc::clone(&gateway.router))),
        vectors: None,
    };
    let (tools, _servers) = tools_for(&spec, &context)
        .await
        .map_err(anyhow::Error::msg)?;
    let agent = Agent {
        spec: Arc::new(spec),
        model: Arc::new(InProcess::new(Arc::clone(&gateway.router))),
        tools: Arc::new(tools),
        journal: Arc::clone(&journal) as Arc<dyn JournalStore>,
        observer: Some(observer),
        spans: None,
    };
    let outcome = agent.run(DEMO_TASK).await?;
    if json {
        return summary(&outcome, true);
    }
    println!();
    println!("How the work was routed:");
    let mut rows = Vec::new();
    let mut served = Vec::new();
    for event in journal.events(&outcome.run_id).await? {
        if let Ok(Entry::ModelCall {
            step,
            provider,
            usage,
            cost_usd,
            message,
            ..
        }) = serde_json::from_str::<Entry>(&event.data)
        {
            let provider = provider.unwrap_or_default();
            served.push(provider.clone());
            rows.push([
                step.to_string(),
                provider.clone(),
                clouds.get(&provider).cloned().unwrap_or_default(),
                if message.tool_calls.is_empty() {
                    "answer".to_owned()
                } else {
                    message
                        .tool_calls
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                usage.total_tokens().to_string(),
                format!("${cost_usd:.6}"),
            ]);
        }
    }
    println!(
        "{}",
        crate::report::table(
            &["step", "provider", "cloud", "asked for", "tokens", "cost"],
            &rows,
            4
        )
    );
    summary(&outcome, false)?;
    let first = served.first().cloned().unwrap_or_default();
    let after: Vec<&String> = served.iter().skip(2).collect();
    if outcome.status == RunStatus::Completed && after.iter().all(|p| **p != first) {
        println!(
            "The run survived the outage: {first} failed after step 2 and steps 3-{} ran on {}, with the conversation translated to its dialect.",
            served.len(),
            after.first().map_or("another provider", |p| p.as_str())
        );
    } else {
        bail!(
            "the demo run did not survive the outage: {}",
            outcome.reason
        );
    }
    Ok(())
}
