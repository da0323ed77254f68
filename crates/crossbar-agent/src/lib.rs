//! Crossbar's agent runtime: an agent is a TOML spec ([`spec`]); a run ([`run`]) loops model →
//! tools → model until a final answer, a limit or the budget, journaling every step to the
//! store so it can be resumed anywhere. Models are reached only through
//! [`crossbar_core::ModelClient`] ([`model`]): the router in this process or a gateway over
//! HTTP, with the same code. Tools ([`tools`]) are built-ins, HTTP tools and MCP servers.

pub mod model;
pub mod run;
pub mod service;
pub mod spec;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

pub use model::{AgentModel, InProcess, ModelAnswer, Remote, TokenPrice};
pub use run::{Agent, Entry, Event, Observer, RunError, RunOutcome, RunStatus, Totals};
pub use spec::{AgentSpec, SpecError};
pub use spec::{RetrievalMode, RetrievalSpec};
pub use tools::{Tool, ToolOutput, Toolbox};

use crossbar_store::{JournalStore, VectorStore};
use tools::builtin::{Calculator, HttpFetch, Now, ReadFile, WriteFile};
use tools::http::HttpTool;
pub use tools::mcp::McpServer;
use tools::memory::{Recall, Remember};
use tools::retrieval::{DocIndex, SearchDocs};

/// A tool that the spec marks idempotent although its kind is not by default.
struct Idempotent(Arc<dyn Tool>);

impl Tool for Idempotent {
    fn definition(&self) -> crossbar_core::chat::Tool {
        self.0.definition()
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(
        &self,
        arguments: serde_json::Value,
    ) -> futures::future::BoxFuture<'_, Result<String, String>> {
        self.0.call(arguments)
    }

    fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }
}

/// What tools need beyond the spec.
#[derive(Clone)]
pub struct ToolContext {
    /// Keeps the agent's memory when `[memory]` is enabled.
    pub journal: Arc<dyn JournalStore>,
    /// The model layer: `search_docs` embeds queries through it for vector retrieval.
    pub model: Arc<dyn AgentModel>,
    /// pgvector in the store, when the store is PostgreSQL (indexes ingested there need it).
    pub vectors: Option<Arc<dyn VectorStore>>,
}

/// Every tool a spec declares, MCP servers started (keep the servers: dropping them ends
/// stdio processes).
pub async fn tools_for(
    spec: &AgentSpec,
    context: &ToolContext,
) -> Result<(Toolbox, Vec<Arc<McpServer>>), String> {
    let mut toolbox = toolbox(spec)?;
    if spec.memory {
        toolbox.add(Arc::new(Remember {
            agent: spec.name.clone(),
            store: Arc::clone(&context.journal),
        }))?;
        toolbox.add(Arc::new(Recall {
            agent: spec.name.clone(),
            store: Arc::clone(&context.journal),
        }))?;
    }
    if let Some(retrieval) = &spec.retrieval {
        let index = DocIndex::open(
            &retrieval.index,
            retrieval.mode,
            Some(Arc::clone(&context.model)),
            context.vectors.as_ref(),
        )
        .map_err(|e| format!("{}: retrieval.index: {e}", spec.origin))?;
        toolbox.add(Arc::new(SearchDocs { index }))?;
    }
    let servers = tools::mcp::add_servers(&mut toolbox, &spec.mcp).await?;
    Ok((toolbox, servers))
}

/// The built-in and HTTP tools a spec declares (MCP servers are added by [`tools_for`]).
pub fn toolbox(spec: &AgentSpec) -> Result<Toolbox, String> {
    let mut toolbox = Toolbox::new(Duration::from_secs(spec.tools.timeout_s));
    let workspace = spec.tools.workspace.clone().unwrap_or_default();
    if spec.tools.workspace.is_some() {
        std::fs::create_dir_all(&workspace).map_err(|e| {
            format!(
                "{}: tools.workspace: cannot create {}: {e}",
                spec.origin,
                workspace.display()
            )
        })?;
    }
    for name in &spec.tools.builtin {
        let tool: Arc<dyn Tool> = match name.as_str() {
            "calculator" => Arc::new(Calculator),
            "now" => Arc::new(Now),
            "read_file" => Arc::new(ReadFile {
                workspace: workspace.clone(),
            }),
            "write_file" => Arc::new(WriteFile {
                workspace: workspace.clone(),
            }),
            "http_fetch" => Arc::new(HttpFetch {
                settings: spec.tools.http_fetch.clone(),
            }),
            other => return Err(format!("unknown built-in tool `{other}`")),
        };
        let tool = if spec.tools.idempotent.contains(name) {
            Arc::new(Idempotent(tool))
        } else {
            tool
        };
        toolbox.add(tool)?;
    }
    for http in &spec.tools.http {
        toolbox.add(Arc::new(HttpTool { spec: http.clone() }))?;
    }
    Ok(toolbox)
}
