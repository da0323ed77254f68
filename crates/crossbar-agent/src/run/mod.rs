//! A run: call the model, run the tool calls it asks for (concurrently), append the results,
//! repeat until a final answer, `max_steps` or the budget. Every step is journaled to the store
//! before the run moves on, so a killed run resumes where it stopped, on any host sharing the
//! store.
//!
//! The transcript is kept in canonical form with the provider of each turn, so a run continues
//! on another provider (after a failover, a resume elsewhere or a budget switch) with the
//! history translated by the dialects' cross-provider rules.
//!
//! The pieces: `journal` (the entries' format), `replay` (a run rebuilt from them, for a
//! resume), `budget` (steps, tokens, picodollars and wall time against the spec's limits),
//! `summarize` (`[context]`'s summarizer step), `trace` (the run's spans) and `drive` (the
//! loop that ties them together).

mod budget;
mod drive;
mod journal;
mod replay;
mod summarize;
mod trace;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbar_core::chat::{Message, Role};
use crossbar_core::pricing;
use crossbar_core::trace::SpanSink;
use crossbar_store::{JournalStore, RunTotals};
use serde::{Deserialize, Serialize};

pub use journal::Entry;
pub use trace::{run_span_id, step_span_id, trace_id, trace_id_bytes, traceparent};

use crate::model::AgentModel;
use crate::spec::AgentSpec;
use crate::tools::{ToolOutput, Toolbox};
use budget::Used;

/// What a run ended with (or `Running` while it goes on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// The model gave a final answer.
    Completed,
    /// `max_steps` model calls were made without a final answer.
    MaxSteps,
    /// The next call's reservation did not fit the USD, token or wall-time budget.
    BudgetExhausted,
    /// `on_budget_low` without `switch_to` stopped the run.
    BudgetLow,
    /// The model layer failed (every deployment); resumable.
    Failed,
    /// Cancelled through the runs API.
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::MaxSteps => "max_steps",
            Self::BudgetExhausted => "budget_exhausted",
            Self::BudgetLow => "budget_low",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether `crossbar agent resume` may continue it.
    pub fn resumable(status: &str) -> bool {
        matches!(status, "running" | "failed")
    }
}

/// What observers (the CLI) see: each entry as journaled, with the run's totals after it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub run_id: String,
    pub seq: u64,
    #[serde(flatten)]
    pub entry: Entry,
    pub totals: Totals,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub steps: u32,
    pub tokens: u64,
    /// The run's cost in picodollars: the sum of its calls' (models, summaries, tools).
    pub cost_pusd: u64,
    /// `cost_pusd` in dollars, for display.
    pub cost_usd: f64,
    pub elapsed_ms: u64,
}

/// How a run ended (for now).
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    pub answer: Option<String>,
    pub reason: String,
    pub totals: Totals,
    /// Provider of each model call, in order (this process's calls only).
    pub providers: Vec<Option<String>>,
}

/// A run failed for a reason that is not the model's or a tool's: the store, a bad run id.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(#[from] crossbar_store::StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// An agent ready to run: its spec, its way to the models, its tools and its journal.
pub struct Agent {
    pub spec: Arc<AgentSpec>,
    pub model: Arc<dyn AgentModel>,
    pub tools: Arc<Toolbox>,
    pub journal: Arc<dyn JournalStore>,
    pub observer: Option<Observer>,
    /// Where the run's spans go (an OTLP exporter); none: not traced.
    pub spans: Option<Arc<dyn SpanSink>>,
}

/// A run in progress.
struct State {
    run_id: String,
    seq: u64,
    messages: Vec<Message>,
    /// Model calls made.
    steps: u32,
    tokens: u64,
    /// Picodollars spent, every call's exact cost summed.
    cost_pusd: u64,
    /// Wall time of earlier processes on this run.
    elapsed_before_ms: u64,
    started: Instant,
    /// The task as given: the first user message, to which a summary is appended.
    task: String,
    /// The latest summary of the older turns (`[context]`), part of the first user message.
    summary: Option<String>,
    /// When the run was created (by whichever process), the start of its span.
    created: SystemTime,
    /// Failed calls of the next step so far (each resume retries it with a span of its own).
    attempt: u32,
    /// The model every role uses after `on_budget_low` switched.
    switched_to: Option<String>,
    status: RunStatus,
    providers: Vec<Option<String>>,
}

impl State {
    fn totals(&self) -> Totals {
        Totals {
            steps: self.steps,
            tokens: self.tokens,
            cost_pusd: self.cost_pusd,
            cost_usd: pricing::pico_to_usd(self.cost_pusd),
            elapsed_ms: self.elapsed_ms(),
        }
    }

    /// Replaces the first `turns` assistant turns (each with its tool results) by `summary`
    /// (see [`summarize::compact`]), kept as the latest summary.
    fn compact(&mut self, turns: u32, summary: String) {
        summarize::compact(&mut self.messages, &self.task, turns, &summary);
        self.summary = Some(summary);
    }

    fn spend(&mut self, pusd: u64) {
        self.cost_pusd = self.cost_pusd.saturating_add(pusd);
    }

    /// What the run has used of its budgets so far.
    fn used(&self) -> Used {
        Used {
            pusd: self.cost_pusd,
            tokens: self.tokens,
            steps: self.steps,
            elapsed_ms: self.elapsed_ms(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.elapsed_before_ms
            .saturating_add(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn store_totals(&self) -> RunTotals {
        RunTotals {
            steps: u64::from(self.steps),
            tokens: self.tokens,
            cost_pusd: self.cost_pusd,
            elapsed_ms: self.elapsed_ms(),
        }
    }
}

fn tool_message(call_id: &str, name: &str, output: &ToolOutput) -> Message {
    let mut message = Message::text(Role::Tool, output.content.clone());
    message.tool_call_id = Some(call_id.to_owned());
    message.name = Some(name.to_owned());
    message.tool_error = output.is_error;
    message
}
