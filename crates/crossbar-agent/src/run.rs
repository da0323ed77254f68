//! The loop: call the model, run the tool calls it asks for (concurrently), append the results,
//! repeat until a final answer, `max_steps` or the budget. Every step is journaled to the store
//! before the run moves on, so a killed run resumes where it stopped, on any host sharing the
//! store: a tool whose result was journaled is never run again, and one that started but never
//! finished is re-run only when idempotent — otherwise the model is told it was interrupted.
//!
//! The transcript is kept in canonical form with the provider of each turn, so a run continues
//! on another provider (after a failover, a resume elsewhere or a budget switch) with the
//! history translated by the dialects' cross-provider rules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crossbar_core::chat::{ChatRequest, FinishReason, Message, Role, ToolCall, Usage};
use crossbar_store::{EventRecord, JournalStore, RunRecord, RunTotals, now_ms};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use crate::model::AgentModel;
use crate::spec::{AgentSpec, DEFAULT_RESERVED_OUTPUT_TOKENS};
use crate::tools::{ToolOutput, Toolbox};

/// Picodollars per USD: the store's money unit.
const PUSD: f64 = 1e12;

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
        cost_usd: f64,
        /// What was reserved from the budget before the call.
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
}

/// A run in progress.
struct State {
    run_id: String,
    seq: u64,
    messages: Vec<Message>,
    /// Model calls made.
    steps: u32,
    tokens: u64,
    cost_usd: f64,
    /// Wall time of earlier processes on this run.
    elapsed_before_ms: u64,
    started: Instant,
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
            cost_usd: self.cost_usd,
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
            cost_pusd: (self.cost_usd * PUSD).round().max(0.0) as u64,
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

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The run's W3C trace id: derived from the run id, so a resumed run stays in its trace.
pub fn trace_id(run_id: &str) -> String {
    format!(
        "{:016x}{:016x}",
        fnv(run_id),
        fnv(&format!("{run_id}/trace"))
    )
}

/// `traceparent` for a step's model call: the run's trace, a span id per step.
pub fn traceparent(run_id: &str, step: u32) -> String {
    let span = fnv(&format!("{run_id}/step/{step}")).max(1);
    format!("00-{}-{span:016x}-01", trace_id(run_id))
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

enum Admission {
    Go { model: String, reserved_usd: f64 },
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
            cost_usd: 0.0,
            elapsed_before_ms: 0,
            started: Instant::now(),
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
            cost_usd: 0.0,
            elapsed_before_ms: run.totals.elapsed_ms,
            started: Instant::now(),
            switched_to: None,
            status: RunStatus::Running,
            providers: Vec::new(),
        };
        let mut results: HashMap<String, ToolOutput> = HashMap::new();
        let mut started: HashSet<String> = HashSet::new();
        let mut turns: Vec<(u32, Message)> = Vec::new();
        for entry in entries {
            match entry {
                Entry::ModelCall {
                    step,
                    message,
                    usage,
                    cost_usd,
                    ..
                } => {
                    state.steps = state.steps.max(step);
                    state.tokens += usage.total_tokens();
                    state.cost_usd += cost_usd;
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
                    ..
                } => {
                    results.insert(call_id, ToolOutput { content, is_error });
                }
                Entry::Started { .. }
                | Entry::Resumed { .. }
                | Entry::ModelFailed { .. }
                | Entry::Finished { .. } => {}
            }
        }
        let after_step = state.steps;
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
        if let Some(usd) = budget.usd {
            let left = usd - state.cost_usd;
            let low = budget
                .on_budget_low
                .as_ref()
                .filter(|rule| left / usd < rule.remaining || left < reserved);
            if let Some(rule) = low
                && state.switched_to.is_none()
            {
                match &rule.switch_to {
                    Some(cheaper) if *cheaper != model => {
                        let reason = format!(
                            "${left:.6} of ${usd} left (below {:.0}%, or less than the ${reserved:.6} the next call may cost)",
                            rule.remaining * 100.0
                        );
                        state.switched_to = Some(cheaper.clone());
                        self.record(
                            state,
                            Entry::ModelSwitched {
                                step: state.steps + 1,
                                from: model.clone(),
                                to: cheaper.clone(),
                                reason,
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
                            reason: format!(
                                "on_budget_low: ${left:.6} of ${usd} left, below {:.0}%",
                                rule.remaining * 100.0
                            ),
                        });
                    }
                }
            }
            if state.cost_usd + reserved > usd {
                return Ok(Admission::Stop {
                    status: RunStatus::BudgetExhausted,
                    reason: format!(
                        "USD budget: ${:.6} spent, the next call may cost ${reserved:.6} of the ${usd} allowed",
                        state.cost_usd
                    ),
                });
            }
        }
        request.model.clone_from(&model);
        Ok(Admission::Go {
            model,
            reserved_usd: reserved,
        })
    }

    async fn reserve(&self, model: &str, prompt_tokens: u64, output_tokens: u64) -> f64 {
        match self.model.price(model).await {
            Ok(Some(price)) => {
                (prompt_tokens as f64 * price.input + output_tokens as f64 * price.output) / 1e6
            }
            // Unknown price: nothing to reserve; spend is still counted from what calls cost.
            _ => 0.0,
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

    async fn drive(&self, mut state: State) -> Result<RunOutcome, RunError> {
        loop {
            let mut request = self.request(&state);
            let (model, reserved_usd) = match self.admit(&mut state, &mut request).await? {
                Admission::Go {
                    model,
                    reserved_usd,
                } => (model, reserved_usd),
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
            let traceparent = traceparent(&state.run_id, step);
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
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
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
            state.steps = step;
            state.tokens += usage.total_tokens();
            state.cost_usd += answer.cost_usd;
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
                    cost_usd: answer.cost_usd,
                    reserved_usd,
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
                async move { (call, tools.run(call).await) }
            })
            .collect();
        let mut outputs = HashMap::new();
        while let Some((call, output)) = running.next().await {
            self.record(
                state,
                Entry::ToolResult {
                    step,
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: output.content.clone(),
                    is_error: output.is_error,
                    interrupted: false,
                },
            )
            .await?;
            outputs.insert(call.id.clone(), output);
        }
        Ok(outputs)
    }
}
