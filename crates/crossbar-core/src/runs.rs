//! The runs API's contract between the gateway (which takes submits) and the agent runtime
//! (which knows what a spec is): the gateway asks a [`RunSpecs`] to turn a submit into a run
//! it can queue, so a bad submit is refused before anything is queued.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

/// `[agents]`: agent runs submitted over HTTP (`POST /v1/crossbar/runs`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// The directory of agent specs a submit names (`"agent": "researcher"` is
    /// `DIR/researcher.toml`).
    pub specs: std::path::PathBuf,
    /// Whether a submit may carry its own spec (`"spec": "<toml>"`). Off by default: a spec
    /// decides what workers run (HTTP calls, MCP servers); inline specs never start stdio
    /// MCP servers.
    #[serde(default)]
    pub allow_inline: bool,
}

/// A submit's overrides of its spec's limits; each may only tighten the spec's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// USD the run may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Seconds of running time (the spec's `budget.wall_time_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_s: Option<u64>,
}

impl RunLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `POST /v1/crossbar/runs`.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// A spec of the configured directory, by name.
    #[serde(default)]
    pub agent: Option<String>,
    /// An inline spec (TOML), when `[agents] allow_inline`.
    #[serde(default)]
    pub spec: Option<String>,
    /// The task: text, or a JSON value checked against the spec's `input_schema`.
    pub input: Value,
    #[serde(default)]
    pub budget: RunLimits,
}

/// A submit the runtime accepted: what the queue keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub agent: String,
    pub spec_path: String,
    /// The spec's text, so the run runs the spec as it was when submitted.
    pub spec: String,
    /// The task as the model reads it.
    pub task: String,
}

/// Turns submits into runs; the agent runtime implements it.
pub trait RunSpecs: Send + Sync {
    /// The run `submit` asks for, or a 4xx naming the field that is wrong.
    fn prepare(&self, submit: &Submit) -> Result<Prepared, Error>;
}
