//! Test helpers: a gateway on simulated providers built in-process, a SQLite journal in a
//! temporary directory, and agents built from spec text.
#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbar_agent::{
    Agent, AgentSpec, Entry, Event, InProcess, Observer, RunOutcome, ToolContext, toolbox,
};
use crossbar_core::config::Config;
use crossbar_server::Gateway;
use crossbar_store::{JournalStore, SqlStore};

/// Two simulated providers on two clouds; `smart`, `cheap` and `embed` (embeddings) each have
/// one deployment, so which provider answers never depends on live statistics.
pub const CONFIG: &str = crossbar_testkit::providers::AGENT_CATALOG;

pub struct Harness {
    pub gateway: Gateway,
    pub store: Arc<SqlStore>,
    pub dir: tempfile::TempDir,
}

pub async fn harness(config: &str) -> Harness {
    harness_with_store(config, None).await
}

/// As [`harness`], journaling to `store` (a URL) instead of a SQLite file in the temp dir.
#[expect(clippy::unwrap_used, reason = "test helper")]
pub async fn harness_with_store(config: &str, store: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml(config, "test.toml").unwrap();
    let gateway = Gateway::build(&config).await.unwrap();
    let url = store.map_or_else(
        || {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("journal.db").display()
            )
        },
        str::to_owned,
    );
    let store = Arc::new(SqlStore::open(&url).await.unwrap());
    Harness {
        gateway,
        store,
        dir,
    }
}

impl Harness {
    /// Writes the spec beside the journal (so `workspace = "ws"` lands in the temp dir).
    #[expect(clippy::unwrap_used, reason = "test helper")]
    pub fn spec(&self, text: &str) -> AgentSpec {
        let path = self.dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        AgentSpec::load(&path).unwrap()
    }

    #[expect(clippy::unwrap_used, reason = "test helper")]
    pub fn agent(&self, spec: AgentSpec) -> (Agent, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let observer: Observer = Arc::new(move |event: &Event| {
            sink.lock().unwrap().push(event.clone());
        });
        let tools = toolbox(&spec).unwrap();
        let agent = Agent {
            spec: Arc::new(spec),
            model: Arc::new(InProcess::new(Arc::clone(&self.gateway.router))),
            tools: Arc::new(tools),
            journal: Arc::clone(&self.store) as Arc<dyn JournalStore>,
            observer: Some(observer),
            spans: None,
        };
        (agent, seen)
    }

    /// The journal and the in-process model layer, for `tools_for`.
    pub fn tool_context(&self) -> ToolContext {
        ToolContext {
            journal: Arc::clone(&self.store) as Arc<dyn JournalStore>,
            model: Arc::new(InProcess::new(Arc::clone(&self.gateway.router))),
            vectors: None,
        }
    }

    /// A copy of run `run_id` whose journal ends at its first `kind` entry, as if the process
    /// had died right after journaling it; returns the copy's id, ready to resume.
    #[expect(clippy::unwrap_used, reason = "test helper")]
    pub async fn copy_run_until(&self, run_id: &str, kind: &str) -> String {
        let original = self.store.events(run_id).await.unwrap();
        let cut = original.iter().position(|e| e.kind == kind).unwrap();
        let mut run = self.store.run(run_id).await.unwrap().unwrap();
        let copy = format!("{run_id}_copy");
        run.id.clone_from(&copy);
        run.status = "running".to_owned();
        run.answer = None;
        self.store.create_run(&run).await.unwrap();
        for event in &original[..=cut] {
            let event = crossbar_store::EventRecord {
                run_id: copy.clone(),
                ..event.clone()
            };
            self.store
                .append_event(&event, "running", run.totals)
                .await
                .unwrap();
        }
        copy
    }

    pub fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join(relative)
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The journal entries an agent's observer saw, in order.
#[expect(clippy::unwrap_used, reason = "test helper")]
pub fn entries(events: &Mutex<Vec<Event>>) -> Vec<Entry> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.entry.clone())
        .collect()
}

/// The provider of each model call of a run, every one of which must have one.
#[expect(clippy::unwrap_used, reason = "test helper")]
pub fn providers(outcome: &RunOutcome) -> Vec<&str> {
    outcome
        .providers
        .iter()
        .map(|p| p.as_deref().unwrap())
        .collect()
}

/// The entry script of npm MCP server `package` (tests/mcp, installed by scripts/test with
/// `npm ci`), or `None` (with a message) when node is not installed.
pub fn mcp_server(package: &str) -> Option<PathBuf> {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: node is not installed, so the npm MCP servers cannot run");
        return None;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        script.exists(),
        "{} is missing: run `npm ci` in crates/crossbar-agent/tests/mcp (scripts/test does)",
        script.display()
    );
    Some(script)
}
