//! The loop: call the model, run the tool calls it asks for (concurrently), append the results,
//! repeat until a final answer, `max_steps` or the budget. Every step is journaled to the store
//! before the run moves on, so a killed run resumes where it stopped, on any host sharing the
//! store: a tool whose result was journaled is never run again, and one that started but never
//! finished is re-run only when idempotent — otherwise the model is told it was interrupted.
//!
//! The transcript is kept in canonical form with the provider of each turn, so a run continues
//! on another provider (after a failover, a resume elsewhere or a budget switch) with the
//! history translated by the dialects' cross-provider rules.
//!
//! With `[context]`, a transcript grown past its token limit has its older turns replaced by a
//! summary the `summarizer` role writes, journaled like a step so a resume replays it.
//!
//! With a [`SpanSink`], a run is traced (OpenTelemetry GenAI conventions): an `invoke_agent`
//! span for the run, a `chat MODEL` client span per model call — its id is the one the call's
//! `traceparent` carried, so a gateway's server span is its child — and an `execute_tool NAME`
//! span per tool call. Tool spans are children of the run span, not of the step that asked
//! for them: a step's span ends when the model has answered, before its tools run. Every id is
//! derived from the run id, so a resumed run's spans join the same trace and the same run span.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbar_core::chat::{ChatRequest, FinishReason, Message, Role, ToolCall, Usage};
use crossbar_core::pricing;
use crossbar_core::trace::{SpanKind, SpanRecord, SpanSink};
use crossbar_store::{EventRecord, JournalStore, RunRecord, RunTotals, now_ms};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use crate::model::{AgentModel, TOOL_SPEND, ToolSpend};
use crate::spec::{AgentSpec, DEFAULT_RESERVED_OUTPUT_TOKENS};
use crate::tools::{ToolOutput, Toolbox};

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
        }
    }

    /// Whether `crossbar agent resume` may continue it.
    pub fn resumable(status: &str) -> bool {
        matches!(status, "running" | "failed")
    }
}

/// One journaled step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Started {
        task: String,
        agent: String,
        /// The W3C trace every model call of the run belongs to (sent to a remote gateway).
        #[serde(default)]
        trace_id: Option<String>,
    },
    Resumed {
        /// Model calls already made.
        after_step: u32,
    },
    ModelCall {
        step: u32,
        role: String,
        /// The logical model or route asked for.
        model: String,
        provider: Option<String>,
        deployment: Option<String>,
        /// The assistant turn, canonical.
        message: Box<Message>,
        usage: Usage,
        /// `cost_pusd` in dollars, for readers of the journal (dashboard, CLI).
        cost_usd: f64,
        /// What the call cost in picodollars: what the run counts (0 in journals written
        /// before it was kept: `cost_usd` is read then).
        #[serde(default)]
        cost_pusd: u64,
        /// What was reserved from the budget before the call, in dollars.
        reserved_usd: f64,
        finish_reason: FinishReason,
    },
    ModelFailed {
        step: u32,
        model: String,
        error: String,
    },
    ModelSwitched {
        step: u32,
        from: String,
        to: String,
        reason: String,
    },
    /// `[context]`: the transcript grew past `max_tokens`, and the older turns were replaced
    /// by a summary the `summarizer` role wrote (replayed from here on resume, not re-asked).
    Summarized {
        /// The step whose model call comes next.
        step: u32,
        model: String,
        provider: Option<String>,
        deployment: Option<String>,
        /// Assistant turns (each with its tool results) the summary replaced.
        turns: u32,
        summary: String,
        usage: Usage,
        /// `cost_pusd` in dollars, for readers of the journal.
        cost_usd: f64,
        #[serde(default)]
        cost_pusd: u64,
    },
    ToolStarted {
        step: u32,
        call_id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        step: u32,
        call_id: String,
        name: String,
        content: String,
        is_error: bool,
        /// The run died while the tool ran and the tool was not re-run.
        #[serde(default)]
        interrupted: bool,
        /// What the tool spent on models (e.g. embedding a query), counted in the run's cost;
        /// `cost_pusd` in dollars, for readers of the journal.
        #[serde(default, skip_serializing_if = "is_zero")]
        cost_usd: f64,
        #[serde(default, skip_serializing_if = "is_zero_pico")]
        cost_pusd: u64,
    },
    Finished {
        status: RunStatus,
        answer: Option<String>,
        reason: String,
    },
}

impl Entry {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Resumed { .. } => "resumed",
            Self::ModelCall { .. } => "model_call",
            Self::ModelFailed { .. } => "model_failed",
            Self::ModelSwitched { .. } => "model_switched",
            Self::Summarized { .. } => "summarized",
            Self::ToolStarted { .. } => "tool_started",
            Self::ToolResult { .. } => "tool_result",
            Self::Finished { .. } => "finished",
        }
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

    /// Replaces the first `turns` assistant turns (each with its tool results) by `summary`,
    /// appended to the task: the system prompt, the task and the later turns stay as they are.
    fn compact(&mut self, turns: u32, summary: String) {
        let starts = turn_starts(&self.messages);
        let end = usize::try_from(turns)
            .ok()
            .and_then(|t| starts.get(t).copied())
            .unwrap_or(self.messages.len());
        if end > 2 {
            self.messages.drain(2..end);
        }
        if let Some(first) = self.messages.get_mut(1) {
            *first = Message::text(
                Role::User,
                format!(
                    "{}\n\n[Summary of this run's earlier steps]\n{summary}",
                    self.task
                ),
            );
        }
        self.summary = Some(summary);
    }

    fn spend(&mut self, pusd: u64) {
        self.cost_pusd = self.cost_pusd.saturating_add(pusd);
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

/// Where each assistant turn starts, after the system prompt and the task: a turn is the
/// assistant message and the tool results after it, never split.
fn turn_starts(messages: &[Message]) -> Vec<usize> {
    messages
        .iter()
        .enumerate()
        .skip(2)
        .filter(|(_, m)| m.role == Role::Assistant)
        .map(|(i, _)| i)
        .collect()
}

/// What the summarizer is asked to do.
const SUMMARIZER_INSTRUCTIONS: &str = "You condense the earlier part of an AI agent's work so \
the agent can continue without it. Keep every fact, number, file name, tool result and \
decision the agent may still need, and what remains to be done; drop pleasantries and \
repetition. Answer with the summary only.";

/// The older part of a transcript as plain text for the summarizer (tool calls as text, so
/// any model can read it, whatever its tool-calling dialect).
fn render_for_summary(previous: Option<&str>, messages: &[Message]) -> String {
    let mut out = String::new();
    if let Some(previous) = previous {
        out.push_str("Summary of the steps before these:\n");
        out.push_str(previous);
        out.push_str("\n\n");
    }
    out.push_str("Steps to summarize:\n");
    for message in messages {
        let text = message.text_content();
        match message.role {
            Role::Assistant => {
                if !text.is_empty() {
                    out.push_str(&format!("Agent: {text}\n"));
                }
                for call in &message.tool_calls {
                    out.push_str(&format!("Agent called {}({})\n", call.name, call.arguments));
                }
            }
            Role::Tool => {
                let name = message.name.as_deref().unwrap_or("tool");
                let how = if message.tool_error {
                    "failed with"
                } else {
                    "returned"
                };
                out.push_str(&format!("{name} {how}: {text}\n"));
            }
            Role::User | Role::System | Role::Developer => out.push_str(&format!("{text}\n")),
        }
    }
    out
}

fn tool_message(call_id: &str, name: &str, output: &ToolOutput) -> Message {
    let mut message = Message::text(Role::Tool, output.content.clone());
    message.tool_call_id = Some(call_id.to_owned());
    message.name = Some(name.to_owned());
    message.tool_error = output.is_error;
    message
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if signature"
)]
fn is_zero_pico(value: &u64) -> bool {
    *value == 0
}

/// A journaled cost in picodollars: `cost_pusd`, or for an entry journaled before it was kept,
/// `cost_usd` rounded to picodollars.
fn journaled_pico(cost_pusd: u64, cost_usd: f64) -> u64 {
    if cost_pusd == 0 {
        pricing::usd_to_pico(cost_usd)
    } else {
        cost_pusd
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A span id from a seed: never zero (invalid in W3C and OTLP).
fn span_id(seed: &str) -> [u8; 8] {
    fnv(seed).max(1).to_be_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The run's trace id: derived from the run id, so a resumed run stays in its trace.
pub fn trace_id_bytes(run_id: &str) -> [u8; 16] {
    let mut id = [0; 16];
    id[..8].copy_from_slice(&fnv(run_id).to_be_bytes());
    id[8..].copy_from_slice(&fnv(&format!("{run_id}/trace")).to_be_bytes());
    id
}

/// The run's W3C trace id, as hex.
pub fn trace_id(run_id: &str) -> String {
    hex(&trace_id_bytes(run_id))
}

/// The run's `invoke_agent` span: every process working on the run records under it.
pub fn run_span_id(run_id: &str) -> [u8; 8] {
    span_id(&format!("{run_id}/run"))
}

/// The `chat` span of a step's model call; `attempt` counts earlier failed calls of that step
/// (retried by a resume), so each call has a span of its own.
pub fn step_span_id(run_id: &str, step: u32, attempt: u32) -> [u8; 8] {
    if attempt == 0 {
        span_id(&format!("{run_id}/step/{step}"))
    } else {
        span_id(&format!("{run_id}/step/{step}/attempt/{attempt}"))
    }
}

/// The `chat` span of the summarizer call made before `step` (after `attempt` failed calls).
fn summary_span_id(run_id: &str, step: u32, attempt: u32) -> [u8; 8] {
    span_id(&format!("{run_id}/summary/{step}/{attempt}"))
}

fn tool_span_id(run_id: &str, step: u32, call_id: &str) -> [u8; 8] {
    span_id(&format!("{run_id}/step/{step}/tool/{call_id}"))
}

/// `traceparent` for a step's (first) model call: the run's trace, the step's span.
pub fn traceparent(run_id: &str, step: u32) -> String {
    traceparent_at(run_id, step, 0)
}

fn traceparent_at(run_id: &str, step: u32, attempt: u32) -> String {
    traceparent_of(run_id, step_span_id(run_id, step, attempt))
}

fn traceparent_of(run_id: &str, span: [u8; 8]) -> String {
    format!("00-{}-{}-01", trace_id(run_id), hex(&span))
}

fn new_run_id() -> String {
    let bytes: [u8; 8] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("run_{hex}")
}

/// Roughly four characters a token: the same estimate the gateway uses for providers that
/// report nothing, good enough to reserve budget before a call.
fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    let mut chars = 0usize;
    for message in &request.messages {
        chars += message.text_content().len() + 16;
        for call in &message.tool_calls {
            chars += call.name.len() + call.arguments.len();
        }
    }
    for tool in &request.tools {
        chars += tool.name.len()
            + tool.description.as_ref().map_or(0, String::len)
            + tool.parameters.as_ref().map_or(0, |p| p.to_string().len());
    }
    u64::try_from(chars / 4).unwrap_or(u64::MAX)
}

/// What a run has used of its budgets so far.
#[derive(Clone, Copy, Debug)]
struct Used {
    /// Picodollars.
    pusd: u64,
    tokens: u64,
    steps: u32,
    elapsed_ms: u64,
}

/// `on_budget_low`: each budget set (USD, tokens, `max_steps`, wall time) with less than
/// `remaining` of it left, said for the journal; empty when none is low. USD also counts as
/// low when what is left would not cover `reserved_pusd`, the next call's reservation.
fn low_budgets(spec: &AgentSpec, remaining: f64, used: Used, reserved_pusd: u64) -> Vec<String> {
    let share = |left: f64, total: f64| total > 0.0 && left / total < remaining;
    let budget = &spec.budget;
    let mut low = Vec::new();
    if let Some(usd) = budget.usd {
        let total = pricing::usd_to_pico(usd);
        // Signed: the last call may have overspent.
        let left = i128::from(total) - i128::from(used.pusd);
        let left_usd = signed_usd(left);
        if share(left as f64, total as f64) {
            low.push(format!("USD: ${left_usd:.6} of ${usd} left"));
        } else if left < i128::from(reserved_pusd) {
            low.push(format!(
                "USD: ${left_usd:.6} of ${usd} left, less than the ${:.6} the next call may cost",
                pricing::pico_to_usd(reserved_pusd)
            ));
        }
    }
    if let Some(tokens) = budget.tokens {
        let left = tokens.saturating_sub(used.tokens);
        if share(left as f64, tokens as f64) {
            low.push(format!("tokens: {left} of {tokens} left"));
        }
    }
    let steps = spec.max_steps;
    let left = steps.saturating_sub(used.steps);
    if share(f64::from(left), f64::from(steps)) {
        low.push(format!("steps: {left} of max_steps {steps} left"));
    }
    if let Some(wall) = budget.wall_time_s {
        let total = wall.saturating_mul(1000);
        let left = total.saturating_sub(used.elapsed_ms);
        if share(left as f64, total as f64) {
            low.push(format!(
                "wall time: {:.1} s of {wall} s left",
                left as f64 / 1000.0
            ));
        }
    }
    low
}

/// Signed picodollars in dollars, for messages.
fn signed_usd(pusd: i128) -> f64 {
    let usd = pricing::pico_to_usd(u64::try_from(pusd.unsigned_abs()).unwrap_or(u64::MAX));
    if pusd < 0 { -usd } else { usd }
}

/// Whether `reserved_pusd` more would take `spent_pusd` past a USD budget.
fn over_budget(usd: f64, spent_pusd: u64, reserved_pusd: u64) -> bool {
    spent_pusd.saturating_add(reserved_pusd) > pricing::usd_to_pico(usd)
}

enum Admission {
    Go { model: String, reserved_pusd: u64 },
    Stop { status: RunStatus, reason: String },
}

impl Agent {
    /// Starts a new run of `task`.
    pub async fn run(&self, task: &str) -> Result<RunOutcome, RunError> {
        let run_id = new_run_id();
        let now = now_ms();
        self.journal
            .create_run(&RunRecord {
                id: run_id.clone(),
                agent: self.spec.name.clone(),
                spec_path: self.spec.origin.clone(),
                spec: self.spec.source.clone(),
                task: task.to_owned(),
                status: RunStatus::Running.as_str().to_owned(),
                created_ms: now,
                updated_ms: now,
                totals: RunTotals::default(),
                answer: None,
            })
            .await?;
        let mut state = State {
            run_id,
            seq: 0,
            messages: vec![
                Message::text(Role::System, self.spec.instructions.clone()),
                Message::text(Role::User, task.to_owned()),
            ],
            steps: 0,
            tokens: 0,
            cost_pusd: 0,
            elapsed_before_ms: 0,
            started: Instant::now(),
            task: task.to_owned(),
            summary: None,
            created: SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(now).unwrap_or_default()),
            attempt: 0,
            switched_to: None,
            status: RunStatus::Running,
            providers: Vec::new(),
        };
        let trace = trace_id(&state.run_id);
        self.record(
            &mut state,
            Entry::Started {
                task: task.to_owned(),
                agent: self.spec.name.clone(),
                trace_id: Some(trace),
            },
        )
        .await?;
        self.drive(state).await
    }

    /// Continues a run from its journal.
    pub async fn resume(&self, run_id: &str) -> Result<RunOutcome, RunError> {
        let run = self
            .journal
            .run(run_id)
            .await?
            .ok_or_else(|| RunError::Invalid(format!("no run `{run_id}` in the store")))?;
        if !RunStatus::resumable(&run.status) {
            return Err(RunError::Invalid(format!(
                "run `{run_id}` already ended ({}); only running or failed runs resume",
                run.status
            )));
        }
        let records = self.journal.events(run_id).await?;
        let mut entries = Vec::new();
        for record in &records {
            let entry: Entry = serde_json::from_str(&record.data).map_err(|e| {
                RunError::Invalid(format!(
                    "run `{run_id}` step {}: unreadable journal entry: {e}",
                    record.seq
                ))
            })?;
            entries.push(entry);
        }
        let mut state = State {
            run_id: run_id.to_owned(),
            seq: records.last().map_or(0, |r| r.seq + 1),
            messages: vec![
                Message::text(Role::System, self.spec.instructions.clone()),
                Message::text(Role::User, run.task.clone()),
            ],
            steps: 0,
            tokens: 0,
            cost_pusd: 0,
            elapsed_before_ms: run.totals.elapsed_ms,
            started: Instant::now(),
            task: run.task.clone(),
            summary: None,
            created: SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(run.created_ms).unwrap_or_default()),
            attempt: 0,
            switched_to: None,
            status: RunStatus::Running,
            providers: Vec::new(),
        };
        let mut results: HashMap<String, ToolOutput> = HashMap::new();
        let mut started: HashSet<String> = HashSet::new();
        let mut turns: Vec<(u32, Message)> = Vec::new();
        let mut failed: Vec<u32> = Vec::new();
        // Summaries by the step they came before: (turns replaced, summary).
        let mut summaries: HashMap<u32, (u32, String)> = HashMap::new();
        for entry in entries {
            match entry {
                Entry::ModelCall {
                    step,
                    message,
                    usage,
                    cost_usd,
                    cost_pusd,
                    ..
                } => {
                    state.steps = state.steps.max(step);
                    state.tokens += usage.total_tokens();
                    state.spend(journaled_pico(cost_pusd, cost_usd));
                    turns.push((step, *message));
                }
                Entry::ModelSwitched { to, .. } => state.switched_to = Some(to),
                Entry::ToolStarted { call_id, .. } => {
                    started.insert(call_id);
                }
                Entry::ToolResult {
                    call_id,
                    content,
                    is_error,
                    cost_usd,
                    cost_pusd,
                    ..
                } => {
                    state.spend(journaled_pico(cost_pusd, cost_usd));
                    results.insert(call_id, ToolOutput { content, is_error });
                }
                Entry::ModelFailed { step, .. } => failed.push(step),
                Entry::Summarized {
                    step,
                    turns,
                    summary,
                    usage,
                    cost_usd,
                    cost_pusd,
                    ..
                } => {
                    state.tokens += usage.total_tokens();
                    state.spend(journaled_pico(cost_pusd, cost_usd));
                    summaries.insert(step, (turns, summary));
                }
                Entry::Started { .. } | Entry::Resumed { .. } | Entry::Finished { .. } => {}
            }
        }
        let after_step = state.steps;
        state.attempt = u32::try_from(failed.iter().filter(|s| **s == after_step + 1).count())
            .unwrap_or(u32::MAX);
        self.record(&mut state, Entry::Resumed { after_step })
            .await?;
        let last = turns.len();
        for (index, (step, message)) in turns.into_iter().enumerate() {
            let calls = message.tool_calls.clone();
            state.messages.push(message);
            if index + 1 < last {
                for call in &calls {
                    // A journal always has earlier turns' results; keep the transcript valid anyway.
                    let output = results
                        .get(&call.id)
                        .cloned()
                        .unwrap_or_else(|| ToolOutput::error("No result was recorded."));
                    state
                        .messages
                        .push(tool_message(&call.id, &call.name, &output));
                }
                if let Some((turns, summary)) = summaries.remove(&(step + 1)) {
                    state.compact(turns, summary);
                }
                continue;
            }
            if calls.is_empty() {
                // The final answer was journaled but not the end of the run.
                let answer = state.messages.last().map(Message::text_content);
                return self
                    .finish(
                        &mut state,
                        RunStatus::Completed,
                        answer,
                        "final answer".into(),
                    )
                    .await;
            }
            let mut pending = Vec::new();
            let mut known = Vec::new();
            for call in calls {
                if let Some(output) = results.get(&call.id) {
                    known.push((call, output.clone()));
                } else if started.contains(&call.id) && !self.tools.is_idempotent(&call.name) {
                    let output = ToolOutput::error(format!(
                        "The run was interrupted while `{}` was running, and it is not marked idempotent, so it was not run again: its effect is unknown.",
                        call.name
                    ));
                    self.record(
                        &mut state,
                        Entry::ToolResult {
                            step,
                            call_id: call.id.clone(),
                            name: call.name.clone(),
                            content: output.content.clone(),
                            is_error: true,
                            interrupted: true,
                            cost_usd: 0.0,
                            cost_pusd: 0,
                        },
                    )
                    .await?;
                    known.push((call, output));
                } else {
                    pending.push(call);
                }
            }
            let mut outputs: HashMap<String, ToolOutput> = known
                .into_iter()
                .map(|(call, output)| (call.id, output))
                .collect();
            let ran = self.run_tools(&mut state, step, &pending, &started).await?;
            outputs.extend(ran);
            let calls = state
                .messages
                .last()
                .map(|m| m.tool_calls.clone())
                .unwrap_or_default();
            for call in calls {
                if let Some(output) = outputs.get(&call.id) {
                    state
                        .messages
                        .push(tool_message(&call.id, &call.name, output));
                }
            }
            if let Some((turns, summary)) = summaries.remove(&(step + 1)) {
                state.compact(turns, summary);
            }
        }
        self.drive(state).await
    }

    /// Appends an entry to the journal (waiting for the store) and tells the observer.
    async fn record(&self, state: &mut State, entry: Entry) -> Result<(), RunError> {
        let data = serde_json::to_string(&entry)
            .map_err(|e| RunError::Invalid(format!("journal entry: {e}")))?;
        let record = EventRecord {
            run_id: state.run_id.clone(),
            seq: state.seq,
            time_ms: now_ms(),
            kind: entry.kind().to_owned(),
            data,
        };
        self.journal
            .append_event(&record, state.status.as_str(), state.store_totals())
            .await?;
        if let Some(observer) = &self.observer {
            observer(&Event {
                run_id: state.run_id.clone(),
                seq: state.seq,
                entry,
                totals: state.totals(),
            });
        }
        state.seq += 1;
        Ok(())
    }

    async fn finish(
        &self,
        state: &mut State,
        status: RunStatus,
        answer: Option<String>,
        reason: String,
    ) -> Result<RunOutcome, RunError> {
        state.status = status;
        self.trace_run(state, &reason);
        self.record(
            state,
            Entry::Finished {
                status,
                answer: answer.clone(),
                reason: reason.clone(),
            },
        )
        .await?;
        self.journal
            .set_run_status(
                &state.run_id,
                status.as_str(),
                state.store_totals(),
                answer.as_deref(),
            )
            .await?;
        Ok(RunOutcome {
            run_id: state.run_id.clone(),
            status,
            answer,
            reason,
            totals: state.totals(),
            providers: std::mem::take(&mut state.providers),
        })
    }

    /// A span of this run, ending now: under the run span unless it is the run span.
    fn span(
        &self,
        state: &State,
        name: String,
        kind: SpanKind,
        id: [u8; 8],
        start: SystemTime,
    ) -> SpanRecord {
        let run = run_span_id(&state.run_id);
        SpanRecord {
            name,
            kind,
            trace_id: trace_id_bytes(&state.run_id),
            span_id: id,
            parent_span_id: (id != run).then_some(run),
            start,
            end: SystemTime::now(),
            attributes: vec![
                (
                    "gen_ai.agent.name".to_owned(),
                    self.spec.name.as_str().into(),
                ),
                ("crossbar.run.id".to_owned(), state.run_id.as_str().into()),
            ],
            error: None,
        }
    }

    fn emit(&self, span: SpanRecord) {
        if let Some(sink) = &self.spans {
            sink.record(vec![span]);
        }
    }

    /// The run's span, from its creation to now. Each process that ends its part of the run
    /// records it (same id, later end): a failed run resumed later is recorded again, and the
    /// last record covers the whole run.
    fn trace_run(&self, state: &State, reason: &str) {
        if self.spans.is_none() {
            return;
        }
        let mut span = self
            .span(
                state,
                format!("invoke_agent {}", self.spec.name),
                SpanKind::Internal,
                run_span_id(&state.run_id),
                state.created,
            )
            .attribute("gen_ai.operation.name", "invoke_agent")
            .attribute("crossbar.run.status", state.status.as_str())
            .attribute("crossbar.run.reason", reason)
            .attribute("crossbar.steps", state.steps)
            .attribute("crossbar.tokens", state.tokens)
            .attribute("crossbar.cost_usd", pricing::pico_to_usd(state.cost_pusd));
        if state.status == RunStatus::Failed {
            span.error = Some(reason.to_owned());
        }
        self.emit(span);
    }

    /// The model for the next step and what is reserved for it, or why the run must stop.
    async fn admit(
        &self,
        state: &mut State,
        request: &mut ChatRequest,
    ) -> Result<Admission, RunError> {
        let spec = &self.spec;
        if state.steps >= spec.max_steps {
            return Ok(Admission::Stop {
                status: RunStatus::MaxSteps,
                reason: format!("reached max_steps ({})", spec.max_steps),
            });
        }
        let budget = &spec.budget;
        if let Some(wall) = budget.wall_time_s
            && state.elapsed_ms() >= wall.saturating_mul(1000)
        {
            return Ok(Admission::Stop {
                status: RunStatus::BudgetExhausted,
                reason: format!("wall-time budget of {wall} s used up"),
            });
        }
        let role = if state.steps == 0 && spec.models.contains_key("planner") {
            "planner"
        } else {
            "default"
        };
        let mut model = state
            .switched_to
            .clone()
            .unwrap_or_else(|| spec.model_for(role).to_owned());
        let output_tokens = u64::from(spec.max_tokens.unwrap_or(DEFAULT_RESERVED_OUTPUT_TOKENS));
        let prompt_tokens = estimate_prompt_tokens(request);
        if let Some(limit) = budget.tokens
            && state.tokens + prompt_tokens + output_tokens > limit
        {
            return Ok(Admission::Stop {
                status: RunStatus::BudgetExhausted,
                reason: format!(
                    "token budget: {} used, the next call may need {} of the {limit} allowed",
                    state.tokens,
                    prompt_tokens + output_tokens
                ),
            });
        }
        let mut reserved = self.reserve(&model, prompt_tokens, output_tokens).await;
        if let Some(rule) = &budget.on_budget_low
            && state.switched_to.is_none()
        {
            let used = Used {
                pusd: state.cost_pusd,
                tokens: state.tokens,
                steps: state.steps,
                elapsed_ms: state.elapsed_ms(),
            };
            let low = low_budgets(spec, rule.remaining, used, reserved);
            if !low.is_empty() {
                let which = format!(
                    "{} (below {:.0}% left)",
                    low.join("; "),
                    rule.remaining * 100.0
                );
                match &rule.switch_to {
                    Some(cheaper) if *cheaper != model => {
                        state.switched_to = Some(cheaper.clone());
                        self.record(
                            state,
                            Entry::ModelSwitched {
                                step: state.steps + 1,
                                from: model.clone(),
                                to: cheaper.clone(),
                                reason: which,
                            },
                        )
                        .await?;
                        model = cheaper.clone();
                        reserved = self.reserve(&model, prompt_tokens, output_tokens).await;
                    }
                    Some(_) => {}
                    None => {
                        return Ok(Admission::Stop {
                            status: RunStatus::BudgetLow,
                            reason: format!("on_budget_low: {which}"),
                        });
                    }
                }
            }
        }
        if let Some(usd) = budget.usd
            && over_budget(usd, state.cost_pusd, reserved)
        {
            return Ok(Admission::Stop {
                status: RunStatus::BudgetExhausted,
                reason: format!(
                    "USD budget: ${:.6} spent, the next call may cost ${:.6} of the ${usd} allowed",
                    pricing::pico_to_usd(state.cost_pusd),
                    pricing::pico_to_usd(reserved)
                ),
            });
        }
        request.model.clone_from(&model);
        Ok(Admission::Go {
            model,
            reserved_pusd: reserved,
        })
    }

    /// The most the next call may cost, in picodollars, at the dearest price of `model`.
    async fn reserve(&self, model: &str, prompt_tokens: u64, output_tokens: u64) -> u64 {
        match self.model.price(model).await {
            Ok(Some(price)) => price.cost_pico(prompt_tokens, output_tokens),
            // Unknown price: nothing to reserve; spend is still counted from what calls cost.
            _ => 0,
        }
    }

    fn request(&self, state: &State) -> ChatRequest {
        let mut request = ChatRequest::new(self.spec.model_for("default"), state.messages.clone());
        request.tools = self.tools.definitions();
        if !request.tools.is_empty() {
            request.parallel_tool_calls = Some(self.spec.parallel_tool_calls);
        }
        request.max_tokens = self.spec.max_tokens;
        request.sampling.temperature = self.spec.temperature;
        request
    }

    /// `[context]`: when the next request would be over `max_tokens` (estimated), has the
    /// `summarizer` role (else `default`) summarize the turns before the last `keep_turns`, and
    /// journals the summary; the call's cost counts in the budget, not as a step. Returns why
    /// the run must stop instead, if it must.
    async fn summarize_if_needed(
        &self,
        state: &mut State,
    ) -> Result<Option<(RunStatus, String)>, RunError> {
        let Some(context) = self.spec.context else {
            return Ok(None);
        };
        if state.steps >= self.spec.max_steps
            || estimate_prompt_tokens(&self.request(state)) <= context.max_tokens
        {
            return Ok(None);
        }
        let starts = turn_starts(&state.messages);
        let keep = usize::try_from(context.keep_turns).unwrap_or(usize::MAX);
        let older = starts.len().saturating_sub(keep);
        let Some(end) = starts.get(older).copied().filter(|_| older > 0) else {
            // Everything past the task is in the turns to keep.
            return Ok(None);
        };
        let step = state.steps + 1;
        let model = state
            .switched_to
            .clone()
            .unwrap_or_else(|| self.spec.model_for("summarizer").to_owned());
        let mut request = ChatRequest::new(
            model.clone(),
            vec![
                Message::text(
                    Role::System,
                    format!(
                        "{SUMMARIZER_INSTRUCTIONS}\n\nThe agent's task:\n{}",
                        state.task
                    ),
                ),
                Message::text(
                    Role::User,
                    render_for_summary(
                        state.summary.as_deref(),
                        state.messages.get(2..end).unwrap_or_default(),
                    ),
                ),
            ],
        );
        request.max_tokens = Some(context.summary_max_tokens);
        let prompt_tokens = estimate_prompt_tokens(&request);
        let output_tokens = u64::from(context.summary_max_tokens);
        let reserved = self.reserve(&model, prompt_tokens, output_tokens).await;
        if let Some(limit) = self.spec.budget.tokens
            && state.tokens + prompt_tokens + output_tokens > limit
        {
            return Ok(Some((
                RunStatus::BudgetExhausted,
                format!(
                    "token budget: {} used, summarizing the context may need {} of the {limit} allowed",
                    state.tokens,
                    prompt_tokens + output_tokens
                ),
            )));
        }
        if let Some(usd) = self.spec.budget.usd
            && over_budget(usd, state.cost_pusd, reserved)
        {
            return Ok(Some((
                RunStatus::BudgetExhausted,
                format!(
                    "USD budget: ${:.6} spent, summarizing the context may cost ${:.6} of the ${usd} allowed",
                    pricing::pico_to_usd(state.cost_pusd),
                    pricing::pico_to_usd(reserved)
                ),
            )));
        }
        let span_id = summary_span_id(&state.run_id, step, state.attempt);
        let started = SystemTime::now();
        let answer = crate::model::TRACEPARENT
            .scope(
                traceparent_of(&state.run_id, span_id),
                self.model.complete(request),
            )
            .await;
        let span = self
            .span(
                state,
                format!("chat {model}"),
                SpanKind::Client,
                span_id,
                started,
            )
            .attribute("gen_ai.operation.name", "chat")
            .attribute("gen_ai.request.model", model.as_str())
            .attribute("crossbar.step", step)
            .attribute("crossbar.agent.role", "summarizer");
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                let mut span = span.attribute("error.type", format!("{:?}", error.kind));
                span.error = Some(error.message.clone());
                self.emit(span);
                self.record(
                    state,
                    Entry::ModelFailed {
                        step,
                        model,
                        error: error.message.clone(),
                    },
                )
                .await?;
                return Ok(Some((
                    RunStatus::Failed,
                    format!("the summarizer call failed: {}", error.message),
                )));
            }
        };
        let usage = answer.response.usage.unwrap_or_default();
        self.emit(
            span.attribute("gen_ai.response.model", answer.response.model.as_str())
                .attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                .attribute("gen_ai.usage.output_tokens", usage.output_tokens)
                .attribute("crossbar.cost_usd", pricing::pico_to_usd(answer.cost_pico))
                .attribute(
                    "crossbar.provider",
                    answer.provider.as_deref().unwrap_or_default(),
                ),
        );
        state.tokens += usage.total_tokens();
        state.spend(answer.cost_pico);
        let summary = answer.response.message.text_content();
        if summary.trim().is_empty() {
            // Compacting would lose the older turns with nothing in their place, and not
            // compacting would ask again before every step: stop (resumable) instead.
            let error = "the summarizer returned an empty summary".to_owned();
            self.record(
                state,
                Entry::ModelFailed {
                    step,
                    model,
                    error: error.clone(),
                },
            )
            .await?;
            return Ok(Some((RunStatus::Failed, error)));
        }
        let turns = u32::try_from(older).unwrap_or(u32::MAX);
        state.compact(turns, summary.clone());
        self.record(
            state,
            Entry::Summarized {
                step,
                model,
                provider: answer.provider,
                deployment: answer.deployment,
                turns,
                summary,
                usage,
                cost_usd: pricing::pico_to_usd(answer.cost_pico),
                cost_pusd: answer.cost_pico,
            },
        )
        .await?;
        Ok(None)
    }

    async fn drive(&self, mut state: State) -> Result<RunOutcome, RunError> {
        loop {
            if let Some((status, reason)) = self.summarize_if_needed(&mut state).await? {
                return self.finish(&mut state, status, None, reason).await;
            }
            let mut request = self.request(&state);
            let (model, reserved_pusd) = match self.admit(&mut state, &mut request).await? {
                Admission::Go {
                    model,
                    reserved_pusd,
                } => (model, reserved_pusd),
                Admission::Stop { status, reason } => {
                    return self.finish(&mut state, status, None, reason).await;
                }
            };
            let step = state.steps + 1;
            let role = if step == 1 && self.spec.models.contains_key("planner") {
                "planner"
            } else {
                "default"
            };
            let traceparent = traceparent_at(&state.run_id, step, state.attempt);
            let call_started = SystemTime::now();
            let span = tracing::info_span!(
                "agent.step",
                run_id = %state.run_id,
                step,
                model = %model,
                traceparent = %traceparent
            );
            let answer = crate::model::TRACEPARENT
                .scope(
                    traceparent,
                    tracing::Instrument::instrument(self.model.complete(request), span),
                )
                .await;
            let mut call_span = self
                .span(
                    &state,
                    format!("chat {model}"),
                    SpanKind::Client,
                    step_span_id(&state.run_id, step, state.attempt),
                    call_started,
                )
                .attribute("gen_ai.operation.name", "chat")
                .attribute("gen_ai.request.model", model.as_str())
                .attribute("crossbar.step", step)
                .attribute("crossbar.agent.role", role);
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    state.attempt += 1;
                    call_span.error = Some(error.message.clone());
                    self.emit(call_span.attribute("error.type", format!("{:?}", error.kind)));
                    self.record(
                        &mut state,
                        Entry::ModelFailed {
                            step,
                            model: model.clone(),
                            error: error.message.clone(),
                        },
                    )
                    .await?;
                    return self
                        .finish(
                            &mut state,
                            RunStatus::Failed,
                            None,
                            format!("the model call failed: {}", error.message),
                        )
                        .await;
                }
            };
            let usage = answer.response.usage.unwrap_or_default();
            call_span = call_span
                .attribute("gen_ai.response.model", answer.response.model.as_str())
                .attribute("gen_ai.response.id", answer.response.id.as_str())
                .attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                .attribute("gen_ai.usage.output_tokens", usage.output_tokens)
                .attribute("crossbar.cost_usd", pricing::pico_to_usd(answer.cost_pico))
                .attribute("crossbar.reserved_usd", pricing::pico_to_usd(reserved_pusd));
            if let Some(provider) = &answer.provider {
                call_span = call_span.attribute("crossbar.provider", provider.as_str());
            }
            if let Some(deployment) = &answer.deployment {
                call_span = call_span.attribute("crossbar.deployment", deployment.as_str());
            }
            self.emit(call_span);
            state.attempt = 0;
            state.steps = step;
            state.tokens += usage.total_tokens();
            state.spend(answer.cost_pico);
            state.providers.push(answer.provider.clone());
            let message = answer.response.message.clone();
            self.record(
                &mut state,
                Entry::ModelCall {
                    step,
                    role: role.to_owned(),
                    model,
                    provider: answer.provider,
                    deployment: answer.deployment,
                    message: Box::new(message.clone()),
                    usage,
                    cost_usd: pricing::pico_to_usd(answer.cost_pico),
                    cost_pusd: answer.cost_pico,
                    reserved_usd: pricing::pico_to_usd(reserved_pusd),
                    finish_reason: answer.response.finish_reason,
                },
            )
            .await?;
            let calls = message.tool_calls.clone();
            state.messages.push(message);
            if calls.is_empty() {
                let answer = state.messages.last().map(Message::text_content);
                return self
                    .finish(
                        &mut state,
                        RunStatus::Completed,
                        answer,
                        "final answer".into(),
                    )
                    .await;
            }
            let outputs = self
                .run_tools(&mut state, step, &calls, &HashSet::new())
                .await?;
            for call in &calls {
                let output = outputs
                    .get(&call.id)
                    .cloned()
                    .unwrap_or_else(|| ToolOutput::error("The tool produced no result."));
                state
                    .messages
                    .push(tool_message(&call.id, &call.name, &output));
            }
        }
    }

    /// Journals each call's start, runs them concurrently, journals each result as it comes.
    /// `already_started` calls (re-runs on resume) are not journaled as started twice.
    async fn run_tools(
        &self,
        state: &mut State,
        step: u32,
        calls: &[ToolCall],
        already_started: &HashSet<String>,
    ) -> Result<HashMap<String, ToolOutput>, RunError> {
        for call in calls {
            if already_started.contains(&call.id) {
                continue;
            }
            self.record(
                state,
                Entry::ToolStarted {
                    step,
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
            )
            .await?;
        }
        let mut running: FuturesUnordered<_> = calls
            .iter()
            .map(|call| {
                let tools = Arc::clone(&self.tools);
                async move {
                    let started = SystemTime::now();
                    let spend = Arc::new(ToolSpend::default());
                    let output = TOOL_SPEND.scope(Arc::clone(&spend), tools.run(call)).await;
                    (call, output, started, spend.pico())
                }
            })
            .collect();
        let mut outputs = HashMap::new();
        while let Some((call, output, started, cost_pusd)) = running.next().await {
            let mut span = self
                .span(
                    state,
                    format!("execute_tool {}", call.name),
                    SpanKind::Internal,
                    tool_span_id(&state.run_id, step, &call.id),
                    started,
                )
                .attribute("gen_ai.operation.name", "execute_tool")
                .attribute("gen_ai.tool.name", call.name.as_str())
                .attribute("gen_ai.tool.call.id", call.id.as_str())
                .attribute("crossbar.step", step);
            let cost_usd = pricing::pico_to_usd(cost_pusd);
            if cost_pusd > 0 {
                span = span.attribute("crossbar.cost_usd", cost_usd);
            }
            state.spend(cost_pusd);
            if output.is_error {
                // The tool's message goes to the model, not to the trace: it may quote data.
                span.error = Some("the tool returned an error".to_owned());
                span = span.attribute("error.type", "tool_error");
            }
            self.emit(span);
            self.record(
                state,
                Entry::ToolResult {
                    step,
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: output.content.clone(),
                    is_error: output.is_error,
                    interrupted: false,
                    cost_usd,
                    cost_pusd,
                },
            )
            .await?;
            outputs.insert(call.id.clone(), output);
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten steps, and every other budget set: $1, 1000 tokens, 100 s.
    fn spec(remaining: f64) -> AgentSpec {
        let text = format!(
            "name = \"a\"\ninstructions = \"Help.\"\nmax_steps = 10\n[models]\ndefault = \"m\"\n\
             [budget]\nusd = 1.0\ntokens = 1000\nwall_time_s = 100\n\
             on_budget_low = {{ remaining = {remaining} }}\n"
        );
        AgentSpec::from_toml(&text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0))
    }

    const CENT: u64 = 10_000_000_000;

    const FRESH: Used = Used {
        pusd: 0,
        tokens: 0,
        steps: 0,
        elapsed_ms: 0,
    };

    #[test]
    fn nothing_is_low_at_the_start_or_at_exactly_the_share() {
        let spec = spec(0.25);
        assert!(low_budgets(&spec, 0.25, FRESH, CENT).is_empty());
        let at_the_share = Used {
            pusd: 750_000_000_000,
            tokens: 750,
            steps: 7,
            elapsed_ms: 75_000,
        };
        // 30% of the steps left, 25% of the rest: not below.
        assert!(low_budgets(&spec, 0.25, at_the_share, CENT).is_empty());
    }

    #[test]
    fn each_budget_is_low_on_its_own() {
        let spec = spec(0.25);
        let cases = [
            (
                Used {
                    pusd: 800_000_000_000,
                    ..FRESH
                },
                "USD: $0.200000 of $1 left",
            ),
            (
                Used {
                    tokens: 800,
                    ..FRESH
                },
                "tokens: 200 of 1000 left",
            ),
            (Used { steps: 8, ..FRESH }, "steps: 2 of max_steps 10 left"),
            (
                Used {
                    elapsed_ms: 80_000,
                    ..FRESH
                },
                "wall time: 20.0 s of 100 s left",
            ),
        ];
        for (used, expected) in cases {
            assert_eq!(low_budgets(&spec, 0.25, used, CENT), [expected], "{used:?}");
        }
        let all = Used {
            pusd: 900_000_000_000,
            tokens: 900,
            steps: 9,
            elapsed_ms: 90_000,
        };
        assert_eq!(low_budgets(&spec, 0.25, all, CENT).len(), 4);
    }

    #[test]
    fn usd_is_low_when_the_next_reservation_would_not_fit() {
        let spec = spec(0.25);
        let used = Used {
            pusd: 500_000_000_000,
            ..FRESH
        };
        assert!(low_budgets(&spec, 0.25, used, 400_000_000_000).is_empty());
        assert_eq!(
            low_budgets(&spec, 0.25, used, 600_000_000_000),
            ["USD: $0.500000 of $1 left, less than the $0.600000 the next call may cost"]
        );
    }

    #[test]
    fn unset_budgets_are_never_low() {
        let text = "name = \"a\"\ninstructions = \"Help.\"\nmax_steps = 4\n[models]\ndefault = \"m\"\n\
                    [budget]\non_budget_low = { remaining = 0.5 }\n";
        let spec = AgentSpec::from_toml(text, "agent.toml").unwrap_or_else(|e| panic!("{}", e.0));
        let used = Used {
            pusd: 100 * pricing::PICO_PER_USD,
            tokens: u64::MAX,
            steps: 1,
            elapsed_ms: u64::MAX,
        };
        assert!(low_budgets(&spec, 0.5, used, pricing::PICO_PER_USD).is_empty());
        assert_eq!(
            low_budgets(&spec, 0.5, Used { steps: 3, ..used }, pricing::PICO_PER_USD),
            ["steps: 1 of max_steps 4 left"]
        );
    }

    /// A journal written before entries kept picodollars replays from its dollars; a new one
    /// from its picodollars, whatever the dollars say.
    #[test]
    fn journaled_costs_are_read_in_picodollars() {
        let old = r#"{"kind":"tool_result","step":1,"call_id":"c","name":"t","content":"x",
            "is_error":false,"cost_usd":1.4e-7}"#;
        let Ok(Entry::ToolResult {
            cost_usd,
            cost_pusd,
            ..
        }) = serde_json::from_str::<Entry>(old)
        else {
            panic!("an old entry reads")
        };
        assert_eq!(cost_pusd, 0);
        assert_eq!(journaled_pico(cost_pusd, cost_usd), 140_000);
        assert_eq!(journaled_pico(140_001, 1.4e-7), 140_001);
        assert_eq!(journaled_pico(0, 0.0), 0);
        let new = Entry::ToolResult {
            step: 1,
            call_id: "c".into(),
            name: "t".into(),
            content: "x".into(),
            is_error: false,
            interrupted: false,
            cost_usd: pricing::pico_to_usd(1),
            cost_pusd: 1,
        };
        let text = serde_json::to_string(&new).unwrap_or_default();
        assert!(
            text.ends_with(r#""cost_usd":1e-12,"cost_pusd":1}"#),
            "{text}"
        );
    }

    #[test]
    fn a_steps_span_id_is_the_one_its_traceparent_carries() {
        let trace = trace_id("run_1");
        assert_eq!(trace, hex(&trace_id_bytes("run_1")));
        assert_eq!(
            traceparent("run_1", 3),
            format!("00-{trace}-{}-01", hex(&step_span_id("run_1", 3, 0)))
        );
        let ids = [
            run_span_id("run_1"),
            step_span_id("run_1", 3, 0),
            step_span_id("run_1", 3, 1),
            step_span_id("run_1", 4, 0),
            step_span_id("run_2", 3, 0),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert_ne!(*a, [0; 8]);
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
