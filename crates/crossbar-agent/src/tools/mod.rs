//! Tools an agent may call: built-ins, HTTP tools from the spec and MCP servers' tools, all
//! behind [`Tool`]. The [`Toolbox`] checks a call's arguments against the tool's JSON Schema
//! before running it and turns every failure — unknown tool, invalid arguments, tool error,
//! timeout — into a tool result the model reads, never into a failed run.

pub mod builtin;
pub mod http;
pub mod mcp;
pub mod memory;
pub mod retrieval;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crossbar_core::chat::{self, ToolCall};
use crossbar_core::dialects::rules::parse_tool_arguments;
use futures::future::BoxFuture;
use serde_json::Value;

tokio::task_local! {
    /// The idempotency key of the tool call running in this task: the same for a call
    /// whatever process runs it (derived from run, step and call id), so a tool that
    /// deduplicates on it runs a side effect once even when a run is taken over mid-call.
    pub static IDEMPOTENCY_KEY: String;
}

/// The idempotency key of the tool call running in this task, if any.
pub fn idempotency_key() -> Option<String> {
    IDEMPOTENCY_KEY.try_with(Clone::clone).ok()
}

/// The idempotency key of call `call_id` of `step` in run `run_id`: a digest, so it is
/// header-safe whatever id the model gave the call.
pub fn idempotency_key_for(run_id: &str, step: u32, call_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0])
        .chain_update(step.to_be_bytes())
        .chain_update([0])
        .chain_update(call_id.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("xb-{hex}")
}

/// Longest tool result handed back to the model; the rest is cut with a note.
pub const MAX_RESULT_CHARS: usize = 32 * 1024;

pub trait Tool: Send + Sync {
    /// Name, description and JSON Schema, as offered to the model.
    fn definition(&self) -> chat::Tool;

    /// Safe to run twice: re-run on resume when a run died while it was running.
    fn idempotent(&self) -> bool;

    /// Runs with arguments already validated against the schema. `Err` is the message the
    /// model gets as an error result.
    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>>;

    /// Longest a call may take; `None` = the toolbox's default.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// A tool's answer as the model will read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

struct Entry {
    tool: Arc<dyn Tool>,
    validator: Option<jsonschema::Validator>,
}

/// Every tool of an agent, by name.
pub struct Toolbox {
    tools: BTreeMap<String, Entry>,
    timeout: Duration,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    pub fn new(timeout: Duration) -> Self {
        Self {
            tools: BTreeMap::new(),
            timeout,
        }
    }

    /// Adds a tool; fails when the name is taken or its schema does not compile (remote
    /// `$ref`s cannot: the validator is built without network access).
    pub fn add(&mut self, tool: Arc<dyn Tool>) -> Result<(), String> {
        let definition = tool.definition();
        if self.tools.contains_key(&definition.name) {
            return Err(format!("two tools are named `{}`", definition.name));
        }
        let validator = match &definition.parameters {
            Some(schema) => Some(jsonschema::validator_for(schema).map_err(|e| {
                format!(
                    "tool `{}`: its parameters are not a valid JSON Schema: {e}",
                    definition.name
                )
            })?),
            None => None,
        };
        self.tools
            .insert(definition.name.clone(), Entry { tool, validator });
        Ok(())
    }

    /// What the model is offered, in name order (stable, so prompts cache).
    pub fn definitions(&self) -> Vec<chat::Tool> {
        self.tools.values().map(|e| e.tool.definition()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    pub fn is_idempotent(&self, name: &str) -> bool {
        self.tools.get(name).is_some_and(|e| e.tool.idempotent())
    }

    /// Runs one call; whatever happens becomes a result for the model.
    pub async fn run(&self, call: &ToolCall) -> ToolOutput {
        let Some(entry) = self.tools.get(&call.name) else {
            return ToolOutput::error(format!(
                "Unknown tool `{}`. Available tools: {}.",
                call.name,
                self.names().join(", ")
            ));
        };
        let arguments = match parse_tool_arguments(&call.arguments, "arguments") {
            Ok(arguments) => arguments,
            Err(e) => return ToolOutput::error(format!("Invalid arguments: {}", e.message)),
        };
        if let Some(validator) = &entry.validator {
            let problems: Vec<String> = validator
                .iter_errors(&arguments)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    }
                })
                .collect();
            if !problems.is_empty() {
                return ToolOutput::error(format!(
                    "Invalid arguments for `{}`: {}",
                    call.name,
                    problems.join("; ")
                ));
            }
        }
        let limit = entry.tool.timeout().unwrap_or(self.timeout);
        match tokio::time::timeout(limit, entry.tool.call(arguments)).await {
            Ok(Ok(content)) => ToolOutput {
                content: truncate(content),
                is_error: false,
            },
            Ok(Err(message)) => ToolOutput::error(truncate(message)),
            Err(_) => ToolOutput::error(format!(
                "Tool `{}` timed out after {} s.",
                call.name,
                limit.as_secs_f64()
            )),
        }
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_RESULT_CHARS {
        let mut cut = MAX_RESULT_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = text.len();
        text.truncate(cut);
        text.push_str(&format!("\n[truncated: {total} bytes in all]"));
    }
    text
}

/// A tool's definition from its name, description and JSON Schema.
pub(crate) fn definition(name: &str, description: &str, parameters: Value) -> chat::Tool {
    chat::Tool {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        parameters: Some(parameters),
        strict: None,
    }
}

/// A string argument, or the error the model gets back.
pub(crate) fn text_arg<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, String> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{name}` must be a string"))
}

/// A search tool's definition: a `query` and an optional `limit` of at most `max_limit`.
pub(crate) fn search_tool(name: &str, description: &str, max_limit: u32) -> chat::Tool {
    definition(
        name,
        description,
        serde_json::json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": max_limit}
            },
            "required": ["query"],
            "additionalProperties": false
        }),
    )
}

/// A search tool's `query` and `limit` (`default` when absent).
pub(crate) fn search_arguments(
    arguments: &Value,
    default: usize,
) -> Result<(String, usize), String> {
    let query = text_arg(arguments, "query")?.to_owned();
    let limit = arguments
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(default, |l| usize::try_from(l).unwrap_or(default));
    Ok((query, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same call gets the same key in any process; another step, call or run does not.
    #[test]
    fn idempotency_keys_are_stable_per_call_and_distinct_between_calls() {
        let key = idempotency_key_for("run_1", 2, "call_a");
        assert_eq!(key.len(), 3 + 32);
        assert!(key.starts_with("xb-") && key[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key, idempotency_key_for("run_1", 2, "call_a"));
        let others = [
            idempotency_key_for("run_1", 3, "call_a"),
            idempotency_key_for("run_1", 2, "call_b"),
            idempotency_key_for("run_2", 2, "call_a"),
            // The separators keep ("run_1", "2call") apart from ("run_12", "call").
            idempotency_key_for("run_12", 2, "call_a"),
        ];
        assert!(others.iter().all(|k| *k != key), "{others:?}");
        assert_eq!(idempotency_key(), None, "outside a tool call");
    }

    #[tokio::test]
    async fn the_running_call_sees_its_key() {
        let seen = IDEMPOTENCY_KEY
            .scope("xb-1".to_owned(), async { idempotency_key() })
            .await;
        assert_eq!(seen.as_deref(), Some("xb-1"));
    }
}
