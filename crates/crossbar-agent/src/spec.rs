//! The agent spec (TOML): instructions, the model or route per role, tools, MCP servers, budget
//! and limits. Validated at load with messages `FILE:LINE: KEY: MESSAGE`, like `crossbar.toml`,
//! so a typo fails before the first model call rather than in the middle of a paid run. Reading,
//! parsing, message placement and `${VAR}` / `${VAR:-default}` expansion are `crossbar.toml`'s
//! own ([`TomlSource`]); expansion applies to `tools.http[].headers`, `mcp[].env` and
//! `mcp[].headers` values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crossbar_core::config::{ConfigError, TomlSource, read_toml};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// A spec problem, with its location in the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl From<ConfigError> for SpecError {
    fn from(error: ConfigError) -> Self {
        Self(error.0)
    }
}

pub const DEFAULT_MAX_STEPS: u32 = 10;
pub const DEFAULT_TOOL_TIMEOUT_S: u64 = 30;
/// Output tokens reserved for a call when the spec sets no `max_tokens`.
pub const DEFAULT_RESERVED_OUTPUT_TOKENS: u32 = 1024;

pub const BUILTIN_TOOLS: &[&str] = &["calculator", "now", "read_file", "write_file", "http_fetch"];
/// Names taken by `[memory]`'s tools.
pub const MEMORY_TOOLS: &[&str] = &["remember", "recall", "search_docs"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    instructions: Spanned<String>,
    /// The JSON Schema a submit's `input` must match (runs API); without it, any input.
    #[serde(default)]
    input_schema: Option<Spanned<toml::Value>>,
    /// Role → logical model or route. `default` is required; `planner` (first step) and
    /// `summarizer` (`[context]` summaries) are optional.
    models: Spanned<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    max_steps: Option<Spanned<u32>>,
    /// Per model call.
    #[serde(default)]
    max_tokens: Option<Spanned<u32>>,
    #[serde(default)]
    temperature: Option<Spanned<f64>>,
    /// Let the model ask for several tools in one turn (they then run concurrently).
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    budget: BudgetFile,
    context: Option<Spanned<ContextFile>>,
    #[serde(default)]
    tools: ToolsFile,
    #[serde(default)]
    mcp: Vec<Spanned<McpFile>>,
    #[serde(default)]
    memory: MemoryFile,
    retrieval: Option<RetrievalFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrievalFile {
    /// The index `crossbar agent ingest DIR --index PATH` made (relative to the spec); offers
    /// `search_docs`.
    index: Spanned<String>,
    /// `hybrid` (BM25 and vectors fused), `bm25` or `vector`; default: hybrid when the index
    /// has vectors, else bm25.
    mode: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryFile {
    /// Offer `remember` / `recall` over the agent's long-term memory in the store.
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    usd: Option<Spanned<f64>>,
    tokens: Option<Spanned<u64>>,
    wall_time_s: Option<Spanned<u64>>,
    on_budget_low: Option<Spanned<OnBudgetLowFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnBudgetLowFile {
    /// Share left of any budget (usd, tokens, max_steps, wall_time_s) below which the rule
    /// applies.
    remaining: Spanned<f64>,
    /// The cheaper model or route to continue on; without it the run stops.
    switch_to: Option<Spanned<String>>,
}

/// `[context]`: keeps the transcript under a size by summarizing its older part.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    /// Estimated prompt tokens above which older turns are summarized.
    max_tokens: Spanned<u64>,
    /// The latest assistant turns (each with its tool results) always kept verbatim.
    keep_turns: Option<Spanned<u32>>,
    /// The summary's length limit (the summarizer call's `max_tokens`).
    summary_max_tokens: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsFile {
    #[serde(default)]
    builtin: Vec<Spanned<String>>,
    /// Directory `read_file` / `write_file` are confined to, relative to the spec.
    workspace: Option<Spanned<String>>,
    timeout_s: Option<Spanned<u64>>,
    /// Built-in tools safe to run twice (re-run on resume when interrupted).
    #[serde(default)]
    idempotent: Vec<Spanned<String>>,
    #[serde(default)]
    http_fetch: HttpFetchFile,
    #[serde(default)]
    http: Vec<Spanned<HttpToolFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFetchFile {
    /// Host patterns (`example.com`, `*.example.org`); empty = any public host.
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    allow_private: bool,
    max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpToolFile {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(default = "get")]
    method: Spanned<String>,
    url: Spanned<String>,
    parameters: Option<Spanned<toml::Table>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    idempotent: Option<bool>,
    timeout_s: Option<Spanned<u64>>,
    #[serde(default)]
    allow_private: bool,
}

fn get() -> Spanned<String> {
    Spanned::new(0..0, "GET".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpFile {
    name: Spanned<String>,
    command: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    /// The stdio server's whole environment beyond a minimal base (`${VAR}` expanded): it does
    /// not inherit the agent's.
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    /// Only these of the server's tools (all when absent).
    tools: Option<Vec<String>>,
    #[serde(default)]
    idempotent: bool,
    timeout_s: Option<Spanned<u64>>,
}

/// A validated agent spec.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub name: String,
    pub description: Option<String>,
    pub instructions: String,
    /// What a runs-API submit's `input` must match (JSON Schema).
    pub input_schema: Option<serde_json::Value>,
    /// Role → logical model or route; always has `default`.
    pub models: BTreeMap<String, String>,
    pub max_steps: u32,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub parallel_tool_calls: bool,
    pub budget: Budget,
    /// Transcript compaction by the `summarizer` role; none: the transcript only grows.
    pub context: Option<ContextSpec>,
    pub tools: ToolsSpec,
    pub mcp: Vec<McpSpec>,
    /// `remember` / `recall` are offered.
    pub memory: bool,
    /// The document index `search_docs` searches.
    pub retrieval: Option<RetrievalSpec>,
    /// Where the spec came from, for messages.
    pub origin: String,
    /// The spec's text, journaled with a run so a resume runs the same agent.
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextSpec {
    pub max_tokens: u64,
    pub keep_turns: u32,
    pub summary_max_tokens: u32,
}

pub const DEFAULT_KEEP_TURNS: u32 = 2;
pub const DEFAULT_SUMMARY_MAX_TOKENS: u32 = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalSpec {
    pub index: PathBuf,
    /// None: decided by the index (hybrid when it has vectors).
    pub mode: Option<RetrievalMode>,
}

/// How `search_docs` ranks passages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrievalMode {
    Hybrid,
    Bm25,
    Vector,
}

impl RetrievalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hybrid => "hybrid",
            Self::Bm25 => "bm25",
            Self::Vector => "vector",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Hybrid, Self::Bm25, Self::Vector]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budget {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
    pub wall_time_s: Option<u64>,
    pub on_budget_low: Option<OnBudgetLow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OnBudgetLow {
    pub remaining: f64,
    pub switch_to: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ToolsSpec {
    pub builtin: Vec<String>,
    pub workspace: Option<PathBuf>,
    pub timeout_s: u64,
    pub idempotent: Vec<String>,
    pub http_fetch: HttpFetchSpec,
    pub http: Vec<HttpToolSpec>,
}

#[derive(Clone, Debug, Default)]
pub struct HttpFetchSpec {
    pub allow: Vec<String>,
    pub allow_private: bool,
    pub max_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct HttpToolSpec {
    pub name: String,
    pub description: Option<String>,
    pub method: reqwest::Method,
    /// With `{argument}` placeholders, filled URL-encoded.
    pub url: String,
    pub parameters: Value,
    /// Values with `${ENV}` already expanded.
    pub headers: Vec<(String, String)>,
    pub idempotent: bool,
    pub timeout_s: u64,
    pub allow_private: bool,
}

#[derive(Clone, Debug)]
pub enum McpTransport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

#[derive(Clone, Debug)]
pub struct McpSpec {
    pub name: String,
    pub transport: McpTransport,
    pub tools: Option<Vec<String>>,
    pub idempotent: bool,
    pub timeout_s: u64,
}

/// Agent, tool and server names: what every provider accepts as a function name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The spec's text, placing messages and expanding `${VAR}` as `crossbar.toml` does.
struct Located<'a> {
    origin: &'a str,
    toml: TomlSource<'a>,
}

impl Located<'_> {
    fn at<T>(&self, at: &Spanned<T>, key: &str, message: impl fmt::Display) -> SpecError {
        self.toml.error_at(at, key, message).into()
    }

    /// `${VAR}` / `${VAR:-default}` expanded; an unset variable is an error at the key.
    fn expand(&self, value: &Spanned<String>, key: &str) -> Result<String, SpecError> {
        Ok(self.toml.expand(value, key)?)
    }
}

impl AgentSpec {
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let source = read_toml(path)?;
        Self::from_toml(&source, &path.display().to_string())
    }

    /// Parses and validates; relative paths are resolved against `origin`'s directory.
    pub fn from_toml(source: &str, origin: &str) -> Result<Self, SpecError> {
        let toml = TomlSource::new(source, origin);
        let file: SpecFile = toml.parse()?;
        let here = Located { origin, toml };
        let base = Path::new(origin)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let name = file.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(here.at(
                &file.name,
                "name",
                "must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if file.instructions.get_ref().trim().is_empty() {
            return Err(here.at(&file.instructions, "instructions", "must not be empty"));
        }
        let mut models = BTreeMap::new();
        for (role, model) in file.models.get_ref() {
            if model.get_ref().trim().is_empty() {
                return Err(here.at(
                    model,
                    &format!("models.{role}"),
                    "must name a model or route",
                ));
            }
            models.insert(role.clone(), model.get_ref().clone());
        }
        if !models.contains_key("default") {
            return Err(here.at(
                &file.models,
                "models",
                "a `default` model or route is required",
            ));
        }
        let max_steps = match &file.max_steps {
            Some(steps) if !(1..=1000).contains(steps.get_ref()) => {
                return Err(here.at(steps, "max_steps", "must be 1 to 1000"));
            }
            Some(steps) => *steps.get_ref(),
            None => DEFAULT_MAX_STEPS,
        };
        if let Some(max) = &file.max_tokens
            && *max.get_ref() == 0
        {
            return Err(here.at(max, "max_tokens", "must be at least 1"));
        }
        if let Some(t) = &file.temperature
            && !(0.0..=2.0).contains(t.get_ref())
        {
            return Err(here.at(t, "temperature", "must be between 0 and 2"));
        }
        let budget = Self::budget(&here, &file.budget)?;
        let context = match &file.context {
            Some(context) => Some(Self::context(&here, context.get_ref())?),
            None => None,
        };
        let tools = Self::tools(&here, &file.tools, &base)?;
        let mut names: Vec<&str> = tools.builtin.iter().map(String::as_str).collect();
        for (i, tool) in file.tools.http.iter().enumerate() {
            let name = tool.get_ref().name.get_ref().as_str();
            if names.contains(&name) {
                return Err(here.at(
                    &tool.get_ref().name,
                    &format!("tools.http[{i}].name"),
                    format!("tool `{name}` is declared twice"),
                ));
            }
            names.push(name);
        }
        let input_schema = match &file.input_schema {
            Some(schema) => {
                let json = serde_json::to_value(schema.get_ref())
                    .map_err(|e| here.at(schema, "input_schema", e.to_string()))?;
                jsonschema::validator_for(&json).map_err(|e| {
                    here.at(
                        schema,
                        "input_schema",
                        format!("not a valid JSON Schema: {e}"),
                    )
                })?;
                Some(json)
            }
            None => None,
        };
        let mut mcp = Vec::new();
        for (i, server) in file.mcp.iter().enumerate() {
            let spec = Self::mcp(&here, i, server)?;
            if mcp.iter().any(|m: &McpSpec| m.name == spec.name) {
                return Err(here.at(
                    &server.get_ref().name,
                    &format!("mcp[{i}].name"),
                    format!("server `{}` is declared twice", spec.name),
                ));
            }
            mcp.push(spec);
        }
        Ok(Self {
            name,
            description: file.description,
            instructions: file.instructions.into_inner(),
            input_schema,
            models,
            max_steps,
            max_tokens: file.max_tokens.map(Spanned::into_inner),
            temperature: file.temperature.map(Spanned::into_inner),
            parallel_tool_calls: file.parallel_tool_calls.unwrap_or(true),
            budget,
            context,
            tools,
            mcp,
            memory: file.memory.enabled,
            retrieval: match &file.retrieval {
                Some(r) if r.index.get_ref().trim().is_empty() => {
                    return Err(here.at(&r.index, "retrieval.index", "must not be empty"));
                }
                Some(r) => Some(RetrievalSpec {
                    index: base.join(r.index.get_ref()),
                    mode: match &r.mode {
                        None => None,
                        Some(mode) => {
                            Some(RetrievalMode::parse(mode.get_ref()).ok_or_else(|| {
                                here.at(mode, "retrieval.mode", "must be hybrid, bm25 or vector")
                            })?)
                        }
                    },
                }),
                None => None,
            },
            origin: origin.to_owned(),
            source: source.to_owned(),
        })
    }

    fn context(here: &Located<'_>, file: &ContextFile) -> Result<ContextSpec, SpecError> {
        if *file.max_tokens.get_ref() < 100 {
            return Err(here.at(
                &file.max_tokens,
                "context.max_tokens",
                "must be at least 100 (estimated prompt tokens)",
            ));
        }
        let keep_turns = match &file.keep_turns {
            Some(keep) if !(1..=100).contains(keep.get_ref()) => {
                return Err(here.at(keep, "context.keep_turns", "must be 1 to 100"));
            }
            Some(keep) => *keep.get_ref(),
            None => DEFAULT_KEEP_TURNS,
        };
        let summary_max_tokens = match &file.summary_max_tokens {
            Some(max) if *max.get_ref() == 0 => {
                return Err(here.at(max, "context.summary_max_tokens", "must be at least 1"));
            }
            Some(max) => *max.get_ref(),
            None => DEFAULT_SUMMARY_MAX_TOKENS,
        };
        Ok(ContextSpec {
            max_tokens: *file.max_tokens.get_ref(),
            keep_turns,
            summary_max_tokens,
        })
    }

    fn budget(here: &Located<'_>, file: &BudgetFile) -> Result<Budget, SpecError> {
        if let Some(usd) = &file.usd
            && !(usd.get_ref().is_finite() && *usd.get_ref() > 0.0)
        {
            return Err(here.at(usd, "budget.usd", "must be a positive amount"));
        }
        if let Some(tokens) = &file.tokens
            && *tokens.get_ref() == 0
        {
            return Err(here.at(tokens, "budget.tokens", "must be at least 1"));
        }
        if let Some(wall) = &file.wall_time_s
            && *wall.get_ref() == 0
        {
            return Err(here.at(wall, "budget.wall_time_s", "must be at least 1"));
        }
        let on_budget_low = match &file.on_budget_low {
            Some(rule) => {
                // No budget needed besides: `max_steps` always has a value.
                let r = rule.get_ref();
                if !(*r.remaining.get_ref() > 0.0 && *r.remaining.get_ref() < 1.0) {
                    return Err(here.at(
                        &r.remaining,
                        "budget.on_budget_low.remaining",
                        "must be between 0 and 1 (the share left of each budget: usd, tokens, max_steps, wall_time_s)",
                    ));
                }
                if let Some(to) = &r.switch_to
                    && to.get_ref().trim().is_empty()
                {
                    return Err(here.at(
                        to,
                        "budget.on_budget_low.switch_to",
                        "must name a model or route",
                    ));
                }
                Some(OnBudgetLow {
                    remaining: *r.remaining.get_ref(),
                    switch_to: r.switch_to.as_ref().map(|s| s.get_ref().clone()),
                })
            }
            None => None,
        };
        Ok(Budget {
            usd: file.usd.as_ref().map(|v| *v.get_ref()),
            tokens: file.tokens.as_ref().map(|v| *v.get_ref()),
            wall_time_s: file.wall_time_s.as_ref().map(|v| *v.get_ref()),
            on_budget_low,
        })
    }

    fn tools(here: &Located<'_>, file: &ToolsFile, base: &Path) -> Result<ToolsSpec, SpecError> {
        let mut builtin = Vec::new();
        for (i, name) in file.builtin.iter().enumerate() {
            let key = format!("tools.builtin[{i}]");
            if !BUILTIN_TOOLS.contains(&name.get_ref().as_str()) {
                return Err(here.at(
                    name,
                    &key,
                    format!(
                        "unknown built-in tool `{}` (expected one of {})",
                        name.get_ref(),
                        BUILTIN_TOOLS.join(", ")
                    ),
                ));
            }
            if builtin.contains(name.get_ref()) {
                return Err(here.at(name, &key, format!("`{}` is listed twice", name.get_ref())));
            }
            builtin.push(name.get_ref().clone());
        }
        let needs_workspace = builtin
            .iter()
            .any(|b| b == "read_file" || b == "write_file");
        let workspace = match &file.workspace {
            Some(dir) if dir.get_ref().trim().is_empty() => {
                return Err(here.at(dir, "tools.workspace", "must not be empty"));
            }
            Some(dir) => Some(base.join(dir.get_ref())),
            None if needs_workspace => {
                let at = file
                    .builtin
                    .iter()
                    .find(|b| b.get_ref() == "read_file" || b.get_ref() == "write_file");
                return Err(match at {
                    Some(at) => here.at(
                        at,
                        "tools.workspace",
                        "read_file and write_file need a workspace directory",
                    ),
                    None => SpecError(format!("{}: tools.workspace: required", here.origin)),
                });
            }
            None => None,
        };
        for (i, name) in file.idempotent.iter().enumerate() {
            if !builtin.contains(name.get_ref()) {
                return Err(here.at(
                    name,
                    &format!("tools.idempotent[{i}]"),
                    format!(
                        "`{}` is not one of this agent's built-in tools",
                        name.get_ref()
                    ),
                ));
            }
        }
        let timeout_s = match &file.timeout_s {
            Some(t) if *t.get_ref() == 0 => {
                return Err(here.at(t, "tools.timeout_s", "must be at least 1"));
            }
            Some(t) => *t.get_ref(),
            None => DEFAULT_TOOL_TIMEOUT_S,
        };
        for (i, host) in file.http_fetch.allow.iter().enumerate() {
            let h = host.get_ref();
            if h.is_empty() || h.contains('/') || h.contains(':') && !h.starts_with('[') {
                return Err(here.at(
                    host,
                    &format!("tools.http_fetch.allow[{i}]"),
                    "must be a host name or `*.domain`, without scheme, port or path",
                ));
            }
        }
        let mut http = Vec::new();
        for (i, tool) in file.http.iter().enumerate() {
            http.push(Self::http_tool(here, i, tool.get_ref(), timeout_s)?);
        }
        Ok(ToolsSpec {
            builtin,
            workspace,
            timeout_s,
            idempotent: file
                .idempotent
                .iter()
                .map(|n| n.get_ref().clone())
                .collect(),
            http_fetch: HttpFetchSpec {
                allow: file
                    .http_fetch
                    .allow
                    .iter()
                    .map(|h| h.get_ref().to_lowercase())
                    .collect(),
                allow_private: file.http_fetch.allow_private,
                max_bytes: file.http_fetch.max_bytes.unwrap_or(64 * 1024),
            },
            http,
        })
    }

    fn http_tool(
        here: &Located<'_>,
        i: usize,
        tool: &HttpToolFile,
        default_timeout: u64,
    ) -> Result<HttpToolSpec, SpecError> {
        let key = |field: &str| format!("tools.http[{i}].{field}");
        let name = tool.name.get_ref();
        if !valid_name(name)
            || BUILTIN_TOOLS.contains(&name.as_str())
            || MEMORY_TOOLS.contains(&name.as_str())
        {
            return Err(here.at(
                &tool.name,
                &key("name"),
                "must be 1 to 64 letters, digits, '_' or '-', and not a built-in tool's name",
            ));
        }
        let method: reqwest::Method = match tool.method.get_ref().to_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            _ => {
                return Err(here.at(
                    &tool.method,
                    &key("method"),
                    "must be GET, POST, PUT, PATCH or DELETE",
                ));
            }
        };
        let url = tool.url.get_ref();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(here.at(&tool.url, &key("url"), "must be an http:// or https:// URL"));
        }
        let parameters = match &tool.parameters {
            Some(table) => {
                let schema = serde_json::to_value(table.get_ref())
                    .map_err(|e| here.at(table, &key("parameters"), e))?;
                jsonschema::validator_for(&schema).map_err(|e| {
                    here.at(
                        table,
                        &key("parameters"),
                        format!("not a valid JSON Schema: {e}"),
                    )
                })?;
                if schema.get("type").and_then(Value::as_str) != Some("object") {
                    return Err(here.at(
                        table,
                        &key("parameters"),
                        "must be an object schema (`type = \"object\"`)",
                    ));
                }
                schema
            }
            None => serde_json::json!({"type": "object", "properties": {}}),
        };
        for placeholder in placeholders(url) {
            let declared = parameters
                .get("properties")
                .and_then(|p| p.get(&placeholder))
                .is_some();
            if !declared {
                return Err(here.at(
                    &tool.url,
                    &key("url"),
                    format!("placeholder `{{{placeholder}}}` is not a declared parameter"),
                ));
            }
        }
        let mut headers = Vec::new();
        for (header, value) in &tool.headers {
            let expanded = here.expand(value, &key(&format!("headers.{header}")))?;
            headers.push((header.clone(), expanded));
        }
        let timeout_s = match &tool.timeout_s {
            Some(t) if *t.get_ref() == 0 => {
                return Err(here.at(t, &key("timeout_s"), "must be at least 1"));
            }
            Some(t) => *t.get_ref(),
            None => default_timeout,
        };
        Ok(HttpToolSpec {
            name: name.clone(),
            description: tool.description.clone(),
            idempotent: tool
                .idempotent
                .unwrap_or(matches!(method, reqwest::Method::GET)),
            method,
            url: url.clone(),
            parameters,
            headers,
            timeout_s,
            allow_private: tool.allow_private,
        })
    }

    fn mcp(here: &Located<'_>, i: usize, server: &Spanned<McpFile>) -> Result<McpSpec, SpecError> {
        let key = |field: &str| format!("mcp[{i}].{field}");
        let file = server.get_ref();
        if !valid_name(file.name.get_ref()) {
            return Err(here.at(
                &file.name,
                &key("name"),
                "must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        let transport = match (&file.command, &file.url) {
            (Some(command), None) => {
                if command.get_ref().trim().is_empty() {
                    return Err(here.at(command, &key("command"), "must not be empty"));
                }
                let mut env = BTreeMap::new();
                for (name, value) in &file.env {
                    let expanded = here.expand(value, &key(&format!("env.{name}")))?;
                    env.insert(name.clone(), expanded);
                }
                McpTransport::Stdio {
                    command: command.get_ref().clone(),
                    args: file.args.clone(),
                    env,
                }
            }
            (None, Some(url)) => {
                if !(url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://"))
                {
                    return Err(here.at(url, &key("url"), "must be an http:// or https:// URL"));
                }
                let mut headers = Vec::new();
                for (header, value) in &file.headers {
                    let expanded = here.expand(value, &key(&format!("headers.{header}")))?;
                    headers.push((header.clone(), expanded));
                }
                McpTransport::Http {
                    url: url.get_ref().clone(),
                    headers,
                }
            }
            _ => {
                return Err(here.at(
                    server,
                    &format!("mcp[{i}]"),
                    "needs exactly one of `command` (stdio) or `url` (streamable HTTP)",
                ));
            }
        };
        let timeout_s = match &file.timeout_s {
            Some(t) if *t.get_ref() == 0 => {
                return Err(here.at(t, &key("timeout_s"), "must be at least 1"));
            }
            Some(t) => *t.get_ref(),
            None => DEFAULT_TOOL_TIMEOUT_S,
        };
        Ok(McpSpec {
            name: file.name.get_ref().clone(),
            transport,
            tools: file.tools.clone(),
            idempotent: file.idempotent,
            timeout_s,
        })
    }

    /// The model or route for a role, `default` when the role has none.
    pub fn model_for(&self, role: &str) -> &str {
        self.models
            .get(role)
            .or_else(|| self.models.get("default"))
            .map_or("", String::as_str)
    }
}

/// The `{name}` placeholders of a URL template.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &str) -> String {
        AgentSpec::from_toml(source, "agent.toml").unwrap_err().0
    }

    const MINIMAL: &str =
        "name = \"a\"\ninstructions = \"Help.\"\n[models]\ndefault = \"gpt-4o\"\n";

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = AgentSpec::from_toml(MINIMAL, "dir/agent.toml").unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        assert_eq!(spec.max_steps, DEFAULT_MAX_STEPS);
        assert_eq!(spec.model_for("planner"), "gpt-4o");
        assert!(spec.tools.builtin.is_empty());
        assert!(spec.parallel_tool_calls);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            error("name = \"a\"\ninstructions = \"x\"\nmax_steps = 0\n[models]\ndefault = \"m\"\n"),
            "agent.toml:3: max_steps: must be 1 to 1000"
        );
        assert_eq!(
            error("name = \"a\"\ninstructions = \"x\"\n[models]\nplanner = \"m\"\n"),
            "agent.toml:3: models: a `default` model or route is required"
        );
        assert_eq!(
            error(&format!(
                "{MINIMAL}[tools]\nbuiltin = [\"now\", \"shell\"]\n"
            )),
            "agent.toml:6: tools.builtin[1]: unknown built-in tool `shell` (expected one of calculator, now, read_file, write_file, http_fetch)"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[tools]\nbuiltin = [\"read_file\"]\n")),
            "agent.toml:6: tools.workspace: read_file and write_file need a workspace directory"
        );
        assert_eq!(
            error(&format!(
                "{MINIMAL}[budget]\nusd = 1.0\non_budget_low = {{ remaining = 1.5 }}\n"
            )),
            "agent.toml:7: budget.on_budget_low.remaining: must be between 0 and 1 (the share left of each budget: usd, tokens, max_steps, wall_time_s)"
        );
        assert_eq!(
            error(&format!(
                "{MINIMAL}[[tools.http]]\nname = \"w\"\nurl = \"https://x.test/{{city}}\"\n"
            )),
            "agent.toml:7: tools.http[0].url: placeholder `{city}` is not a declared parameter"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[[mcp]]\nname = \"fs\"\n")),
            "agent.toml:5: mcp[0]: needs exactly one of `command` (stdio) or `url` (streamable HTTP)"
        );
        assert_eq!(
            error(&format!("{MINIMAL}[context]\nmax_tokens = 10\n")),
            "agent.toml:6: context.max_tokens: must be at least 100 (estimated prompt tokens)"
        );
        assert_eq!(
            error(&format!(
                "{MINIMAL}[context]\nmax_tokens = 1000\nkeep_turns = 0\n"
            )),
            "agent.toml:7: context.keep_turns: must be 1 to 100"
        );
        let context = AgentSpec::from_toml(
            &format!("{MINIMAL}[context]\nmax_tokens = 1000\n"),
            "agent.toml",
        )
        .unwrap_or_else(|e| panic!("{}", e.0))
        .context;
        assert_eq!(
            context,
            Some(ContextSpec {
                max_tokens: 1000,
                keep_turns: DEFAULT_KEEP_TURNS,
                summary_max_tokens: DEFAULT_SUMMARY_MAX_TOKENS,
            })
        );
        assert_eq!(
            error(&MINIMAL.replace("[models]", "max_step = 3\n[models]")),
            "agent.toml:3: max_step: unknown field, expected one of `name`, `description`, `instructions`, `input_schema`, `models`, `max_steps`, `max_tokens`, `temperature`, `parallel_tool_calls`, `budget`, `context`, `tools`, `mcp`, `memory`, `retrieval`"
        );
        let bad_input =
            error(&MINIMAL.replace("[models]", "input_schema = { type = \"nope\" }\n[models]"));
        assert!(
            bad_input.starts_with("agent.toml:3: input_schema: not a valid JSON Schema: "),
            "{bad_input}"
        );
        let schema = error(&format!(
            "{MINIMAL}[[tools.http]]\nname = \"w\"\nurl = \"https://x.test/\"\nparameters = {{ type = \"nonsense\" }}\n"
        ));
        assert!(
            schema.starts_with("agent.toml:8: tools.http[0].parameters: not a valid JSON Schema"),
            "{schema}"
        );
    }

    #[test]
    fn retrieval_mode_is_checked() {
        assert_eq!(
            error(&format!(
                "{MINIMAL}[retrieval]\nindex = \"idx\"\nmode = \"semantic\"\n"
            )),
            "agent.toml:7: retrieval.mode: must be hybrid, bm25 or vector"
        );
        let spec = AgentSpec::from_toml(
            &format!("{MINIMAL}[retrieval]\nindex = \"idx\"\nmode = \"vector\"\n"),
            "dir/agent.toml",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            spec.retrieval,
            Some(RetrievalSpec {
                index: PathBuf::from("dir/idx"),
                mode: Some(RetrievalMode::Vector)
            })
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let spec = AgentSpec::from_toml(
            include_str!("../../../examples/agent.toml"),
            "examples/agent.toml",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(spec.model_for("default"), "claude-sonnet");
        assert_eq!(spec.budget.usd, Some(0.5));
        assert_eq!(
            spec.tools.workspace.as_deref(),
            Some(Path::new("examples/agent-workspace"))
        );
    }

    #[test]
    fn header_values_expand_environment_variables_without_echoing_them() {
        let missing = error(&format!(
            "{MINIMAL}[[tools.http]]\nname = \"w\"\nurl = \"https://x.test/\"\nheaders = {{ Authorization = \"Bearer ${{CROSSBAR_AGENT_TEST_UNSET_VAR}}\" }}\n"
        ));
        assert_eq!(
            missing,
            "agent.toml:8: tools.http[0].headers.Authorization: environment variable `CROSSBAR_AGENT_TEST_UNSET_VAR` is not set"
        );
        assert_eq!(placeholders("https://h/{a}/x?q={b}"), ["a", "b"]);
    }

    /// MCP stdio servers no longer inherit the agent's environment, so what they need is named
    /// in `env`, from the agent's environment without writing the secret into the spec.
    #[test]
    fn mcp_env_values_expand_environment_variables_without_echoing_them() {
        let missing = error(&format!(
            "{MINIMAL}[[mcp]]\nname = \"gh\"\ncommand = \"server\"\nenv = {{ GITHUB_TOKEN = \"${{CROSSBAR_AGENT_TEST_UNSET_VAR}}\" }}\n"
        ));
        assert_eq!(
            missing,
            "agent.toml:8: mcp[0].env.GITHUB_TOKEN: environment variable `CROSSBAR_AGENT_TEST_UNSET_VAR` is not set"
        );
    }

    /// `${VAR:-default}` works in a spec wherever `${VAR}` does, as in `crossbar.toml`: HTTP tool
    /// headers, MCP stdio `env` and MCP HTTP headers. `CARGO_PKG_NAME` is set by cargo for the
    /// test process; the other variable is never set.
    #[test]
    fn defaults_apply_in_every_expanded_field() {
        let spec = AgentSpec::from_toml(
            &format!(
                "{MINIMAL}[[tools.http]]\nname = \"w\"\nurl = \"https://x.test/\"\nheaders = {{ Authorization = \"Bearer ${{CROSSBAR_AGENT_TEST_UNSET_VAR:-anonymous}}\", X-Pkg = \"${{CARGO_PKG_NAME:-none}}\" }}\n\n[[mcp]]\nname = \"gh\"\ncommand = \"server\"\nenv = {{ TOKEN = \"${{CROSSBAR_AGENT_TEST_UNSET_VAR:-dev-token}}\", PKG = \"${{CARGO_PKG_NAME:-none}}\" }}\n\n[[mcp]]\nname = \"remote\"\nurl = \"https://mcp.test/\"\nheaders = {{ Authorization = \"${{CROSSBAR_AGENT_TEST_UNSET_VAR:-}}\", X-Pkg = \"v-${{CARGO_PKG_NAME:-none}}\" }}\n"
            ),
            "agent.toml",
        )
        .unwrap_or_else(|e| panic!("{}", e.0));
        assert_eq!(
            spec.tools.http[0].headers,
            [
                ("Authorization".to_owned(), "Bearer anonymous".to_owned()),
                ("X-Pkg".to_owned(), "crossbar-agent".to_owned()),
            ]
        );
        let McpTransport::Stdio { env, .. } = &spec.mcp[0].transport else {
            panic!("{:?}", spec.mcp[0].transport);
        };
        assert_eq!(
            env,
            &BTreeMap::from([
                ("PKG".to_owned(), "crossbar-agent".to_owned()),
                ("TOKEN".to_owned(), "dev-token".to_owned()),
            ])
        );
        let McpTransport::Http { headers, .. } = &spec.mcp[1].transport else {
            panic!("{:?}", spec.mcp[1].transport);
        };
        assert_eq!(
            headers,
            &[
                ("Authorization".to_owned(), String::new()),
                ("X-Pkg".to_owned(), "v-crossbar-agent".to_owned()),
            ]
        );
    }

    /// An unset `${VAR}` without a default is one error in a spec and in `crossbar.toml`:
    /// `file:line: key: environment variable ... is not set`, without the rest of the value.
    #[test]
    fn unset_variable_is_the_same_error_as_in_crossbar_toml() {
        let secret = "sk-live-0123456789abcdef";
        let spec = error(&format!(
            "{MINIMAL}[[mcp]]\nname = \"remote\"\nurl = \"https://mcp.test/\"\nheaders = {{ Authorization = \"{secret}${{CROSSBAR_AGENT_TEST_UNSET_VAR}}\" }}\n"
        ));
        assert_eq!(
            spec,
            "agent.toml:8: mcp[0].headers.Authorization: environment variable `CROSSBAR_AGENT_TEST_UNSET_VAR` is not set"
        );
        let config = crossbar_core::config::Config::from_toml(
            &format!(
                "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"{secret}${{CROSSBAR_AGENT_TEST_UNSET_VAR}}\"\n"
            ),
            "crossbar.toml",
        )
        .map(|_| ())
        .unwrap_err()
        .0;
        assert_eq!(
            config,
            "crossbar.toml:4: providers[0].api_key: environment variable `CROSSBAR_AGENT_TEST_UNSET_VAR` is not set"
        );
        assert!(!spec.contains("sk-live") && !config.contains("sk-live"));
    }

    /// A spec's parse errors go through `crossbar.toml`'s: a secret typed in the wrong place is
    /// never printed back.
    #[test]
    fn parse_errors_never_print_values() {
        let secret = "sk-live-0123456789abcdef";
        assert_eq!(
            error(&format!(
                "{MINIMAL}[[tools.http]]\nname = \"w\"\nurl = \"https://x.test/\"\nheaders = {{ Authorization = [\"{secret}\"] }}\n"
            )),
            "agent.toml:8: tools.http[0].headers.Authorization: invalid type: sequence, expected a string"
        );
        assert_eq!(
            error(&MINIMAL.replace("[models]", &format!("max_steps = \"{secret}\"\n[models]"))),
            "agent.toml:3: max_steps: invalid type: string, expected u32"
        );
        assert_eq!(
            error(&format!("{MINIMAL}api_kye = \"{secret}\n")),
            "agent.toml:5: api_kye: invalid basic string"
        );
    }
}
