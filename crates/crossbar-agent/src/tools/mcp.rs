//! MCP servers over stdio (a child process) and streamable HTTP, through `rmcp`: their tools
//! are listed at start and called like any other tool.
//!
//! Each server sits behind a supervisor ([`McpServer`]): before a call it checks the
//! connection, and a dead stdio server is started again (a new process) or a lost HTTP
//! session re-initialized (a new `initialize` handshake) transparently. A call that breaks
//! mid-way is retried on the new connection only when the tool is idempotent; otherwise the
//! model is told the call may or may not have run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbar_core::chat;
use futures::future::BoxFuture;
use rmcp::model::{CallToolRequestParams, CallToolResult, RawContent};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Tool, Toolbox};
use crate::spec::{McpSpec, McpTransport};

type Connection = RunningService<RoleClient, ()>;

/// The variables of the agent's own environment that a stdio server gets (when set): what a
/// node or python server needs to start, as the MCP SDKs' default list, plus locale and the
/// temporary folder. Nothing else is inherited (cloud credentials, API keys): the spec names
/// whatever else the server needs in its `env`.
#[cfg(not(windows))]
pub const INHERITED_ENV: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR",
    "TZ",
];

/// The variables of the agent's own environment that a stdio server gets (when set): what a
/// node or python server needs to start, as the MCP SDKs' default list, plus the temporary
/// folder. Nothing else is inherited (cloud credentials, API keys): the spec names whatever
/// else the server needs in its `env`.
#[cfg(windows)]
pub const INHERITED_ENV: &[&str] = &[
    "APPDATA",
    "COMSPEC",
    "HOMEDRIVE",
    "HOMEPATH",
    "LOCALAPPDATA",
    "PATH",
    "PATHEXT",
    "PROCESSOR_ARCHITECTURE",
    "PROGRAMFILES",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TEMP",
    "TMP",
    "USERNAME",
    "USERPROFILE",
    "WINDIR",
];

/// A connection and, for stdio, its process id.
struct Connected {
    service: Connection,
    pid: Option<u32>,
}

/// One MCP server and its current connection.
pub struct McpServer {
    spec: McpSpec,
    connection: Mutex<Option<Connected>>,
    /// Connections made after the first: restarts and re-initializations.
    reconnects: AtomicU64,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

/// The agent's values of [`INHERITED_ENV`] that are set.
fn inherited_env() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    INHERITED_ENV
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
}

async fn connect(spec: &McpSpec) -> Result<Connected, String> {
    let name = &spec.name;
    let mut pid = None;
    let connected = match &spec.transport {
        McpTransport::Stdio { command, args, env } => {
            let mut process = tokio::process::Command::new(command);
            process
                .args(args)
                .env_clear()
                .envs(inherited_env())
                .envs(env);
            let (transport, _stderr) = TokioChildProcess::builder(process)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("MCP server `{name}`: cannot start `{command}`: {e}"))?;
            pid = transport.id();
            ().serve(transport).await
        }
        McpTransport::Http { url, headers } => {
            let mut map = reqwest::header::HeaderMap::new();
            for (header, value) in headers {
                let header = reqwest::header::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("MCP server `{name}`: invalid header name `{header}`"))?;
                // The value may be a secret: never echo it.
                let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                    format!("MCP server `{name}`: invalid value for header `{header}`")
                })?;
                map.insert(header, value);
            }
            let client = reqwest::Client::builder()
                .default_headers(map)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("MCP server `{name}`: HTTP client: {e}"))?;
            let transport = StreamableHttpClientTransport::with_client(
                client,
                StreamableHttpClientTransportConfig::with_uri(url.as_str()),
            );
            ().serve(transport).await
        }
    };
    let service =
        connected.map_err(|e| format!("MCP server `{name}`: initialization failed: {e}"))?;
    Ok(Connected { service, pid })
}

/// Whether an error means the connection (process or session) is gone, as opposed to the
/// server answering the call with an error.
fn connection_lost(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    )
}

impl McpServer {
    /// Connects (spawning the process or initializing the session).
    pub async fn start(spec: McpSpec) -> Result<Arc<Self>, String> {
        let connection = tokio::time::timeout(Duration::from_secs(spec.timeout_s), connect(&spec))
            .await
            .map_err(|_| format!("MCP server `{}`: no answer to initialize", spec.name))??;
        Ok(Arc::new(Self {
            spec,
            connection: Mutex::new(Some(connection)),
            reconnects: AtomicU64::new(0),
        }))
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// How many times the supervisor reconnected.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// The live connection's peer and generation, reconnecting first when it is gone.
    async fn peer(&self) -> Result<(rmcp::Peer<RoleClient>, u64), String> {
        let mut guard = self.connection.lock().await;
        if let Some(connection) = guard.as_ref()
            && !connection.service.is_closed()
        {
            return Ok((connection.service.peer().clone(), self.reconnects()));
        }
        let peer = self.reconnect_locked(&mut guard).await?;
        Ok((peer, self.reconnects()))
    }

    async fn reconnect_locked(
        &self,
        guard: &mut Option<Connected>,
    ) -> Result<rmcp::Peer<RoleClient>, String> {
        if let Some(old) = guard.take() {
            // Ends the old process or session; its outcome no longer matters.
            let _ = old.service.cancel().await;
        }
        tracing::warn!(server = %self.spec.name, "MCP connection lost: reconnecting");
        let connection = tokio::time::timeout(
            Duration::from_secs(self.spec.timeout_s),
            connect(&self.spec),
        )
        .await
        .map_err(|_| format!("MCP server `{}`: no answer to initialize", self.spec.name))??;
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        let peer = connection.service.peer().clone();
        *guard = Some(connection);
        Ok(peer)
    }

    /// Reconnects after a call on connection `generation` lost it, unless a concurrent call
    /// already did (then its new connection is used, not replaced).
    async fn reconnect(&self, generation: u64) -> Result<rmcp::Peer<RoleClient>, String> {
        let mut guard = self.connection.lock().await;
        if self.reconnects() != generation
            && let Some(connection) = guard.as_ref()
            && !connection.service.is_closed()
        {
            return Ok(connection.service.peer().clone());
        }
        self.reconnect_locked(&mut guard).await
    }

    /// The server's tools (all pages), reconnecting once if the connection is gone.
    pub async fn list_tools(&self) -> Result<Vec<rmcp::model::Tool>, String> {
        let (peer, generation) = self.peer().await?;
        match peer.list_all_tools().await {
            Ok(tools) => Ok(tools),
            Err(e) if connection_lost(&e) => self
                .reconnect(generation)
                .await?
                .list_all_tools()
                .await
                .map_err(|e| format!("MCP server `{}`: listing tools: {e}", self.spec.name)),
            Err(e) => Err(format!(
                "MCP server `{}`: listing tools: {e}",
                self.spec.name
            )),
        }
    }

    /// Calls a tool. `Err` is a message for the model.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Value,
        idempotent: bool,
    ) -> Result<String, String> {
        // MCP has no idempotency header: the key travels in the request's `_meta`.
        let meta = super::idempotency_key().map(|key| {
            let mut meta = rmcp::model::Meta::new();
            meta.0
                .insert("idempotency_key".to_owned(), Value::String(key));
            meta
        });
        let params = CallToolRequestParams {
            meta,
            name: tool.to_owned().into(),
            arguments: match arguments {
                Value::Object(map) => Some(map),
                _ => None,
            },
            task: None,
        };
        let (peer, generation) = self.peer().await?;
        let result = match peer.call_tool(params.clone()).await {
            Ok(result) => result,
            Err(e) if connection_lost(&e) => {
                let peer = self.reconnect(generation).await?;
                if !idempotent {
                    return Err(format!(
                        "The connection to MCP server `{}` was lost during the call, so it may or may not have run; the server was reconnected.",
                        self.spec.name
                    ));
                }
                peer.call_tool(params)
                    .await
                    .map_err(|e| format!("MCP server `{}`: {e}", self.spec.name))?
            }
            Err(e) => return Err(format!("MCP server `{}`: {e}", self.spec.name)),
        };
        render(result)
    }

    /// Ends the connection (the stdio process exits).
    pub async fn shutdown(&self) {
        if let Some(connection) = self.connection.lock().await.take() {
            let _ = connection.service.cancel().await;
        }
    }

    /// The process id of a stdio server's current process.
    pub async fn pid(&self) -> Option<u32> {
        self.connection.lock().await.as_ref().and_then(|c| c.pid)
    }
}

/// A tool result as text: text parts joined, other parts described, structured content as
/// JSON when there is no text.
fn render(result: CallToolResult) -> Result<String, String> {
    let mut parts = Vec::new();
    for content in &result.content {
        match &content.raw {
            RawContent::Text(text) => parts.push(text.text.clone()),
            RawContent::Image(image) => parts.push(format!("[image {}]", image.mime_type)),
            RawContent::Audio(audio) => parts.push(format!("[audio {}]", audio.mime_type)),
            RawContent::Resource(resource) => {
                parts.push(serde_json::to_string(&resource.resource).unwrap_or_default());
            }
            RawContent::ResourceLink(link) => parts.push(format!("[resource {}]", link.uri)),
        }
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        Err(text)
    } else {
        Ok(text)
    }
}

/// One MCP tool, offered to the model like any other.
pub struct McpTool {
    server: Arc<McpServer>,
    definition: chat::Tool,
    idempotent: bool,
    timeout: Duration,
}

impl Tool for McpTool {
    fn definition(&self) -> chat::Tool {
        self.definition.clone()
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            self.server
                .call(&self.definition.name, arguments, self.idempotent)
                .await
        })
    }
}

/// Starts every MCP server of a spec and adds their tools to the toolbox; returns the servers
/// (keep them to shut them down).
pub async fn add_servers(
    toolbox: &mut Toolbox,
    specs: &[McpSpec],
) -> Result<Vec<Arc<McpServer>>, String> {
    let mut servers = Vec::new();
    for spec in specs {
        let server = McpServer::start(spec.clone()).await?;
        let tools = server.list_tools().await?;
        for tool in tools {
            if let Some(wanted) = &spec.tools
                && !wanted.iter().any(|w| *w == tool.name)
            {
                continue;
            }
            let definition = chat::Tool {
                name: tool.name.to_string(),
                description: tool.description.as_ref().map(ToString::to_string),
                parameters: Some(Value::Object((*tool.input_schema).clone())),
                strict: None,
            };
            // The server's own hint counts too: a read-only or idempotent tool may re-run.
            let hinted = tool
                .annotations
                .as_ref()
                .is_some_and(|a| a.idempotent_hint == Some(true) || a.read_only_hint == Some(true));
            toolbox
                .add(Arc::new(McpTool {
                    server: Arc::clone(&server),
                    definition,
                    idempotent: spec.idempotent || hinted,
                    timeout: Duration::from_secs(spec.timeout_s),
                }))
                .map_err(|e| format!("MCP server `{}`: {e}", spec.name))?;
        }
        servers.push(server);
    }
    Ok(servers)
}
