//! Agents as a service: runs submitted to the gateway's runs API wait in the store's queue;
//! workers ([`Worker`], `crossbar agent worker`), any number on any hosts sharing the store,
//! claim them with leases, run them, and heartbeat the leases. A run whose worker dies is
//! claimed again once its lease expires and resumed from its journal, exactly as `crossbar
//! agent resume` would; the worker that lost it can no longer journal (every write is fenced
//! by the lease generation it claimed, see [`crossbar_store::RunQueue`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbar_core::error::Error;
use crossbar_core::runs::{AgentsConfig, Prepared, RunLimits, RunSpecs, Submit};
use crossbar_store::{
    Claim, EventRecord, Heartbeat, JournalStore, MemoryRecord, RunQueue, RunRecord, RunTotals,
    SqlStore, StoreError, now_ms,
};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Agent;
use crate::run::{Entry, RunError, RunStatus};
use crate::spec::{AgentSpec, McpTransport};
use crate::tools::mcp::McpServer;

/// Specs from `[agents] specs`, and inline ones when allowed: the gateway's [`RunSpecs`].
pub struct SpecDir {
    dir: PathBuf,
    allow_inline: bool,
}

impl SpecDir {
    pub fn new(config: &AgentsConfig) -> Self {
        Self {
            dir: config.specs.clone(),
            allow_inline: config.allow_inline,
        }
    }

    fn spec(&self, submit: &Submit) -> Result<AgentSpec, Error> {
        match (&submit.agent, &submit.spec) {
            (Some(_), Some(_)) => Err(Error::invalid_field(
                "spec",
                "Give either `agent` (a spec by name) or `spec` (inline), not both.",
            )),
            (None, None) => Err(Error::invalid_field(
                "agent",
                "Name the agent spec to run (`agent`).",
            )),
            (Some(name), None) => {
                if !crate::spec::valid_name(name) {
                    return Err(Error::invalid_field(
                        "agent",
                        "An agent name is 1 to 64 letters, digits, '_' or '-'.",
                    ));
                }
                let path = self.dir.join(format!("{name}.toml"));
                if !path.is_file() {
                    return Err(Error::not_found(format!("No agent spec `{name}`."))
                        .with_param("agent")
                        .with_code("unknown_agent"));
                }
                AgentSpec::load(&path).map_err(|e| {
                    Error::invalid_field("agent", format!("The spec `{name}` is invalid: {e}"))
                })
            }
            (None, Some(text)) => {
                if !self.allow_inline {
                    return Err(Error::invalid_field(
                        "spec",
                        "Inline specs are not allowed here (`[agents] allow_inline`).",
                    ));
                }
                let spec = AgentSpec::from_toml(text, &inline_origin(&self.dir)).map_err(|e| {
                    Error::invalid_field("spec", format!("The inline spec is invalid: {e}"))
                })?;
                if spec
                    .mcp
                    .iter()
                    .any(|m| matches!(m.transport, McpTransport::Stdio { .. }))
                {
                    return Err(Error::invalid_field(
                        "spec",
                        "An inline spec cannot start stdio MCP servers (they run commands on the workers).",
                    ));
                }
                Ok(spec)
            }
        }
    }
}

/// Where an inline spec's relative paths resolve: the specs directory.
fn inline_origin(dir: &Path) -> String {
    dir.join("inline.toml").display().to_string()
}

impl RunSpecs for SpecDir {
    fn prepare(&self, submit: &Submit) -> Result<Prepared, Error> {
        let spec = self.spec(submit)?;
        check_limits(&spec, &submit.budget)?;
        let task = match (&submit.input, &spec.input_schema) {
            (input, Some(schema)) => {
                let validator = jsonschema::validator_for(schema).map_err(|e| {
                    Error::internal(format!("the spec's input_schema does not compile: {e}"))
                })?;
                if let Some(error) = validator.iter_errors(input).next() {
                    let at = error.instance_path().to_string();
                    return Err(Error::invalid_field(
                        if at.is_empty() {
                            "input".to_owned()
                        } else {
                            format!("input{}", at.replace('/', "."))
                        },
                        format!("`input` does not match the spec's input_schema: {error}"),
                    ));
                }
                task_text(input)
            }
            (Value::String(text), None) if !text.trim().is_empty() => text.clone(),
            (Value::String(_), None) => {
                return Err(Error::invalid_field("input", "The task must not be empty."));
            }
            (input, None) => task_text(input),
        };
        Ok(Prepared {
            agent: spec.name.clone(),
            spec_path: spec.origin.clone(),
            spec: spec.source.clone(),
            task,
        })
    }
}

/// A structured input as the model reads it: JSON, text as itself.
fn task_text(input: &Value) -> String {
    match input {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A submit may tighten its spec's limits, never loosen them.
fn check_limits(spec: &AgentSpec, limits: &RunLimits) -> Result<(), Error> {
    fn above<T: PartialOrd + std::fmt::Display + Copy>(
        field: &str,
        asked: Option<T>,
        spec: Option<T>,
    ) -> Result<(), Error> {
        match (asked, spec) {
            (Some(asked), Some(spec)) if asked > spec => Err(Error::invalid_field(
                format!("budget.{field}"),
                format!("`budget.{field}` ({asked}) is above the spec's ({spec})."),
            )),
            _ => Ok(()),
        }
    }
    if limits
        .usd
        .is_some_and(|usd| !(usd.is_finite() && usd >= 0.0))
    {
        return Err(Error::invalid_field(
            "budget.usd",
            "`budget.usd` must be a non-negative number.",
        ));
    }
    if limits.max_steps == Some(0) || limits.deadline_s == Some(0) {
        return Err(Error::invalid_field(
            if limits.max_steps == Some(0) {
                "budget.max_steps"
            } else {
                "budget.deadline_s"
            },
            "Limits must be at least 1.",
        ));
    }
    above("usd", limits.usd, spec.budget.usd)?;
    above("tokens", limits.tokens, spec.budget.tokens)?;
    above("max_steps", limits.max_steps, Some(spec.max_steps))?;
    above("deadline_s", limits.deadline_s, spec.budget.wall_time_s)
}

/// The spec a run runs: its own, with the submit's tighter limits.
pub fn apply_limits(spec: &mut AgentSpec, limits: &RunLimits) {
    fn tighter<T: PartialOrd + Copy>(asked: Option<T>, spec: Option<T>) -> Option<T> {
        match (asked, spec) {
            (Some(a), Some(s)) => Some(if a < s { a } else { s }),
            (a, s) => a.or(s),
        }
    }
    spec.budget.usd = tighter(limits.usd, spec.budget.usd);
    spec.budget.tokens = tighter(limits.tokens, spec.budget.tokens);
    spec.budget.wall_time_s = tighter(limits.deadline_s, spec.budget.wall_time_s);
    if let Some(steps) = limits.max_steps {
        spec.max_steps = spec.max_steps.min(steps);
    }
}

/// The journal as one claim of a run sees it: steps and statuses are written only while the
/// claim's lease generation still holds the run.
struct Fenced {
    store: Arc<SqlStore>,
    generation: u64,
}

impl JournalStore for Fenced {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> BoxFuture<'a, crossbar_store::Result<()>> {
        self.store.create_run(run)
    }

    fn append_event<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
    ) -> BoxFuture<'a, crossbar_store::Result<()>> {
        self.store
            .append_fenced(event, status, totals, None, self.generation)
    }

    fn finish_run<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
        answer: Option<&'a str>,
    ) -> BoxFuture<'a, crossbar_store::Result<()>> {
        self.store
            .append_fenced(event, status, totals, answer, self.generation)
    }

    fn run<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, crossbar_store::Result<Option<RunRecord>>> {
        self.store.run(run_id)
    }

    fn list_runs(&self, limit: u32) -> BoxFuture<'_, crossbar_store::Result<Vec<RunRecord>>> {
        self.store.list_runs(limit)
    }

    fn events<'a>(
        &'a self,
        run_id: &'a str,
    ) -> BoxFuture<'a, crossbar_store::Result<Vec<EventRecord>>> {
        self.store.events(run_id)
    }

    fn remember<'a>(
        &'a self,
        memory: &'a MemoryRecord,
    ) -> BoxFuture<'a, crossbar_store::Result<()>> {
        self.store.remember(memory)
    }

    fn memories<'a>(
        &'a self,
        agent: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, crossbar_store::Result<Vec<MemoryRecord>>> {
        self.store.memories(agent, limit)
    }
}

/// An agent ready to run and the MCP servers it started (shut down when the run ends).
pub type Built = (Agent, Vec<Arc<McpServer>>);

/// Builds the agent for a claimed run: its tools, its way to the models, and `journal` as its
/// journal (the fenced one).
pub trait AgentBuilder: Send + Sync + 'static {
    fn build(
        &self,
        spec: AgentSpec,
        journal: Arc<dyn JournalStore>,
    ) -> BoxFuture<'_, Result<Built, String>>;
}

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// This worker's name in the store (`worker` column) and in logs.
    pub id: String,
    /// Runs at once.
    pub concurrency: usize,
    /// How long a claim holds a run without a heartbeat; heartbeats go every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for runs.
    pub poll: Duration,
    /// On shutdown, how long running runs may take to finish before they are handed back.
    pub grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            id: format!("worker-{}", std::process::id()),
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(30),
        }
    }
}

/// How a claim of a run ended on this worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// The run ended (any status) while this worker held it.
    Ended(RunStatus),
    /// Cancelled through the runs API.
    Cancelled,
    /// Another worker took it over (this one was too slow to heartbeat).
    Lost,
    /// Handed back to the queue on shutdown.
    HandedBack,
    /// It could not be run here (a spec that no longer builds, the store away); the lease
    /// runs out and another worker tries.
    Failed(String),
}

/// What a worker did, for its exit log and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub claimed: u64,
    pub takeovers: u64,
    pub ended: u64,
    pub cancelled: u64,
    pub lost: u64,
    pub handed_back: u64,
    pub failed: u64,
}

pub struct Worker {
    pub store: Arc<SqlStore>,
    pub builder: Arc<dyn AgentBuilder>,
    pub settings: WorkerSettings,
}

impl Worker {
    /// Claims and runs runs until `shutdown` resolves; then claims no more, lets running runs
    /// finish within the grace period and hands the rest back.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> WorkerReport {
        let settings = Arc::new(self.settings);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut running: JoinSet<Held> = JoinSet::new();
        let mut report = WorkerReport::default();
        tokio::pin!(shutdown);
        loop {
            while let Some(done) = running.try_join_next() {
                tally(&mut report, done);
            }
            let room = settings.concurrency.saturating_sub(running.len());
            let claims = if room == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .claim(
                        &settings.id,
                        millis(settings.lease),
                        u32::try_from(room).unwrap_or(u32::MAX),
                    )
                    .await
                {
                    Ok(claims) => claims,
                    Err(error) => {
                        tracing::warn!(worker = %settings.id, %error, "claiming runs failed");
                        Vec::new()
                    }
                }
            };
            let idle = claims.is_empty();
            for claim in claims {
                report.claimed += 1;
                if claim.takeover {
                    report.takeovers += 1;
                }
                tracing::info!(worker = %settings.id, run = %claim.run.id, generation = claim.generation,
                    takeover = claim.takeover, "claimed a run");
                running.spawn(hold(
                    Arc::clone(&self.store),
                    Arc::clone(&self.builder),
                    Arc::clone(&settings),
                    claim,
                    stop_rx.clone(),
                ));
            }
            if !idle {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = running.join_next(), if !running.is_empty() => {
                    tally(&mut report, done);
                }
                () = tokio::time::sleep(jittered(settings.poll)) => {}
            }
        }
        tracing::info!(worker = %settings.id, running = running.len(), "stopping: finishing or handing back runs");
        let deadline = tokio::time::Instant::now() + settings.grace;
        loop {
            tokio::select! {
                next = running.join_next() => match next {
                    Some(done) => tally(&mut report, done),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => {
                    let _ = stop_tx.send(true);
                    while let Some(done) = running.join_next().await {
                        tally(&mut report, done);
                    }
                    break;
                }
            }
        }
        report
    }
}

fn tally(report: &mut WorkerReport, done: Result<Held, tokio::task::JoinError>) {
    match done {
        Ok(Held::Ended(_)) => report.ended += 1,
        Ok(Held::Cancelled) => report.cancelled += 1,
        Ok(Held::Lost) => report.lost += 1,
        Ok(Held::HandedBack) => report.handed_back += 1,
        Ok(Held::Failed(_)) | Err(_) => report.failed += 1,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `poll` ± 20%, so idle workers do not query the store in step.
fn jittered(poll: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    poll.mul_f64(factor)
}

/// Why the heartbeat loop stopped.
enum Beat {
    Lost,
    Cancel,
}

/// Heartbeats `claim` every third of the lease until the lease is lost or the run is to be
/// cancelled. A store that cannot be reached counts as lost once the lease has run out.
async fn heartbeat(
    store: &SqlStore,
    settings: &WorkerSettings,
    run_id: &str,
    generation: u64,
) -> Beat {
    let every = settings.lease / 3;
    let mut held_until = tokio::time::Instant::now() + settings.lease;
    loop {
        tokio::time::sleep(every).await;
        match store
            .heartbeat(run_id, generation, millis(settings.lease))
            .await
        {
            Ok(Heartbeat::Held { cancel: false }) => {
                held_until = tokio::time::Instant::now() + settings.lease;
            }
            Ok(Heartbeat::Held { cancel: true }) => return Beat::Cancel,
            Ok(Heartbeat::Lost) => return Beat::Lost,
            Err(error) => {
                tracing::warn!(run = run_id, %error, "heartbeat failed");
                if tokio::time::Instant::now() >= held_until {
                    return Beat::Lost;
                }
            }
        }
    }
}

/// Runs one claimed run until it ends, is lost, is cancelled or is handed back.
async fn hold(
    store: Arc<SqlStore>,
    builder: Arc<dyn AgentBuilder>,
    settings: Arc<WorkerSettings>,
    claim: Claim,
    mut stop: watch::Receiver<bool>,
) -> Held {
    let run_id = claim.run.id.clone();
    let generation = claim.generation;
    let built = match prepare_spec(&claim) {
        Ok(spec) => {
            let journal: Arc<dyn JournalStore> = Arc::new(Fenced {
                store: Arc::clone(&store),
                generation,
            });
            builder.build(spec, journal).await
        }
        Err(message) => Err(message),
    };
    // A spec that no longer loads, or tools that cannot start (an MCP server that does not
    // answer): retrying elsewhere would fail the same way, so the run ends, saying why.
    let (agent, servers) = match built {
        Ok(built) => built,
        Err(message) => {
            tracing::error!(run = %run_id, %message, "the run's agent cannot be built");
            let reason = format!("the agent could not be started: {message}");
            if let Err(error) = end(&store, &claim.run, generation, RunStatus::Failed, reason).await
            {
                tracing::warn!(run = %run_id, %error, "recording the failure failed");
            }
            return Held::Failed(message);
        }
    };
    let held = {
        let running = agent.start_or_resume(&claim.run);
        tokio::pin!(running);
        tokio::select! {
            outcome = &mut running => match outcome {
                Ok(outcome) => Held::Ended(outcome.status),
                Err(RunError::Store(StoreError::Fenced(_))) => Held::Lost,
                Err(error) => Held::Failed(error.to_string()),
            },
            beat = heartbeat(&store, &settings, &run_id, generation) => match beat {
                Beat::Lost => Held::Lost,
                Beat::Cancel => Held::Cancelled,
            },
            _ = stop.wait_for(|stop| *stop) => Held::HandedBack,
        }
    };
    for server in &servers {
        server.shutdown().await;
    }
    match &held {
        Held::Cancelled => {
            let reason = "cancelled through the runs API".to_owned();
            if let Err(error) =
                end(&store, &claim.run, generation, RunStatus::Cancelled, reason).await
            {
                tracing::warn!(run = %run_id, %error, "recording the cancel failed");
            }
        }
        Held::HandedBack => {
            let _ = store.release(&run_id, generation).await;
        }
        Held::Failed(message) => {
            // The store is away or the run broke: hand it back so another claim retries.
            tracing::warn!(run = %run_id, %message, "run failed on this worker; handing it back");
            let _ = store.release(&run_id, generation).await;
        }
        Held::Lost => tracing::warn!(run = %run_id, "lease lost: another worker holds the run"),
        Held::Ended(status) => {
            tracing::info!(run = %run_id, status = status.as_str(), "run ended");
        }
    }
    held
}

/// The claimed run's spec with the submit's limits applied.
fn prepare_spec(claim: &Claim) -> Result<AgentSpec, String> {
    let mut spec =
        AgentSpec::from_toml(&claim.run.spec, &claim.run.spec_path).map_err(|e| e.to_string())?;
    if let Some(limits) = &claim.limits {
        let limits: RunLimits =
            serde_json::from_str(limits).map_err(|e| format!("the run's limits: {e}"))?;
        apply_limits(&mut spec, &limits);
    }
    Ok(spec)
}

/// Ends a run this worker holds without its agent (cancelled, or one that cannot start): a
/// `finished` entry after its last, with the status.
async fn end(
    store: &SqlStore,
    run: &RunRecord,
    generation: u64,
    status: RunStatus,
    reason: String,
) -> crossbar_store::Result<()> {
    let events = store.events(&run.id).await?;
    let current = store.run(&run.id).await?.map_or(run.totals, |r| r.totals);
    let entry = Entry::Finished {
        status,
        answer: None,
        reason,
    };
    let data = serde_json::to_string(&entry).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let record = EventRecord {
        run_id: run.id.clone(),
        seq: events.last().map_or(0, |e| e.seq + 1),
        time_ms: now_ms(),
        kind: entry.kind().to_owned(),
        data,
    };
    store
        .append_fenced(&record, status.as_str(), current, None, generation)
        .await
}
