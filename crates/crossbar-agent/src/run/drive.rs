//! The loop: before each step, summarize if `[context]` asks and admit the call against the
//! budget; call the model (traced, journaled); run the tool calls it asks for concurrently,
//! journaling each start and result; repeat until a final answer or a stop. A resume replays
//! the journal ([`super::replay`]), finishes the last turn's tools and enters the same loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbar_core::chat::{ChatRequest, Message, Role, ToolCall};
use crossbar_core::pricing;
use crossbar_store::{EventRecord, RunRecord, RunTotals, now_ms};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::budget::{self, Call, Low, Stop, estimate_prompt_tokens};
use super::journal::Entry;
use super::replay::{self, Last};
use super::trace::{self, step_span_id, trace_id, traceparent_at};
use super::{Agent, Event, RunError, RunOutcome, RunStatus, State, tool_message};
use crate::model::{TOOL_SPEND, TRACEPARENT, ToolSpend};
use crate::spec::{AgentSpec, DEFAULT_RESERVED_OUTPUT_TOKENS};
use crate::tools::{IDEMPOTENCY_KEY, ToolOutput, idempotency_key_for};

/// The role whose model makes `step`: `planner` for the first, when the spec has one.
fn role_for(spec: &AgentSpec, step: u32) -> &'static str {
    if step == 1 && spec.models.contains_key("planner") {
        "planner"
    } else {
        "default"
    }
}

enum Admission {
    Go { model: String, reserved_pusd: u64 },
    Stop(Stop),
}

impl Agent {
    /// Starts a new run of `task`.
    pub async fn run(&self, task: &str) -> Result<RunOutcome, RunError> {
        let run_id = crossbar_store::new_run_id();
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
        self.begin(run_id, task, now).await
    }

    /// Starts a run whose record exists with no step journaled (submitted to the runs API
    /// and claimed by a worker), or resumes it when it has steps.
    pub async fn start_or_resume(&self, run: &RunRecord) -> Result<RunOutcome, RunError> {
        if self.journal.events(&run.id).await?.is_empty() {
            self.begin(run.id.clone(), &run.task, run.created_ms).await
        } else {
            self.resume(&run.id).await
        }
    }

    async fn begin(&self, run_id: String, task: &str, now: i64) -> Result<RunOutcome, RunError> {
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
        let entries = replay::entries(run_id, &records)?;
        let replayed = replay::replay(&self.spec.instructions, &run.task, entries, |name| {
            self.tools.is_idempotent(name)
        });
        let mut state = State {
            run_id: run_id.to_owned(),
            seq: records.last().map_or(0, |r| r.seq + 1),
            messages: replayed.messages,
            steps: replayed.steps,
            tokens: replayed.tokens,
            cost_pusd: replayed.cost_pusd,
            elapsed_before_ms: run.totals.elapsed_ms,
            started: Instant::now(),
            task: run.task.clone(),
            summary: replayed.summary,
            created: SystemTime::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(run.created_ms).unwrap_or_default()),
            attempt: replayed.attempt,
            switched_to: replayed.switched_to,
            status: RunStatus::Running,
            providers: Vec::new(),
        };
        let after_step = state.steps;
        self.record(&mut state, Entry::Resumed { after_step })
            .await?;
        match replayed.last {
            Last::Nothing => {}
            Last::Answered(answer) => {
                // The final answer was journaled but not the end of the run.
                return self
                    .finish(
                        &mut state,
                        RunStatus::Completed,
                        Some(answer),
                        "final answer".into(),
                    )
                    .await;
            }
            Last::Tools(turn) => {
                for (call, output) in &turn.interrupted {
                    self.record(
                        &mut state,
                        Entry::ToolResult {
                            step: turn.step,
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
                }
                let ran = self
                    .run_tools(&mut state, turn.step, &turn.pending, &turn.started)
                    .await?;
                state.messages.extend(turn.tool_messages(&ran));
                if let Some((turns, summary)) = turn.summary {
                    state.compact(turns, summary);
                }
            }
        }
        self.drive(state).await
    }

    /// Appends an entry to the journal (waiting for the store) and tells the observer; a
    /// `Finished` entry ends the run with its answer in the same write.
    pub(super) async fn record(&self, state: &mut State, entry: Entry) -> Result<(), RunError> {
        let data = serde_json::to_string(&entry)
            .map_err(|e| RunError::Invalid(format!("journal entry: {e}")))?;
        let record = EventRecord {
            run_id: state.run_id.clone(),
            seq: state.seq,
            time_ms: now_ms(),
            kind: entry.kind().to_owned(),
            data,
        };
        let (status, totals) = (state.status.as_str(), state.store_totals());
        match &entry {
            Entry::Finished { answer, .. } => {
                self.journal
                    .finish_run(&record, status, totals, answer.as_deref())
                    .await?;
            }
            _ => self.journal.append_event(&record, status, totals).await?,
        }
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
        if let Some(stop) = budget::step_stop(spec, state.used()) {
            return Ok(Admission::Stop(stop));
        }
        let role = role_for(spec, state.steps + 1);
        let mut model = state
            .switched_to
            .clone()
            .unwrap_or_else(|| spec.model_for(role).to_owned());
        let output_tokens = u64::from(spec.max_tokens.unwrap_or(DEFAULT_RESERVED_OUTPUT_TOKENS));
        let prompt_tokens = estimate_prompt_tokens(request);
        let needed = prompt_tokens + output_tokens;
        if let Some(stop) = budget::token_stop(spec, state.tokens, needed, Call::Step) {
            return Ok(Admission::Stop(stop));
        }
        let mut reserved = self.reserve(&model, prompt_tokens, output_tokens).await;
        let switched = state.switched_to.is_some();
        match budget::on_budget_low(spec, &model, switched, state.used(), reserved) {
            Low::Go => {}
            Low::Switch { to, reason } => {
                state.switched_to = Some(to.clone());
                self.record(
                    state,
                    Entry::ModelSwitched {
                        step: state.steps + 1,
                        from: model.clone(),
                        to: to.clone(),
                        reason,
                    },
                )
                .await?;
                model = to;
                reserved = self.reserve(&model, prompt_tokens, output_tokens).await;
            }
            Low::Stop(stop) => return Ok(Admission::Stop(stop)),
        }
        if let Some(stop) = budget::usd_stop(spec, state.cost_pusd, reserved, Call::Step) {
            return Ok(Admission::Stop(stop));
        }
        request.model.clone_from(&model);
        Ok(Admission::Go {
            model,
            reserved_pusd: reserved,
        })
    }

    /// The most the next call may cost, in picodollars, at the dearest price of `model`.
    pub(super) async fn reserve(&self, model: &str, prompt_tokens: u64, output_tokens: u64) -> u64 {
        match self.model.price(model).await {
            Ok(Some(price)) => price.cost_pico(prompt_tokens, output_tokens),
            // Unknown price: nothing to reserve; spend is still counted from what calls cost.
            _ => 0,
        }
    }

    /// The next step's request: the transcript, the tools, the spec's sampling settings.
    pub(super) fn request(&self, state: &State) -> ChatRequest {
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
            if let Some(stop) = self.summarize_if_needed(&mut state).await? {
                return self
                    .finish(&mut state, stop.status, None, stop.reason)
                    .await;
            }
            let mut request = self.request(&state);
            let (model, reserved_pusd) = match self.admit(&mut state, &mut request).await? {
                Admission::Go {
                    model,
                    reserved_pusd,
                } => (model, reserved_pusd),
                Admission::Stop(stop) => {
                    return self
                        .finish(&mut state, stop.status, None, stop.reason)
                        .await;
                }
            };
            let step = state.steps + 1;
            let role = role_for(&self.spec, step);
            let traceparent = traceparent_at(&state.run_id, step, state.attempt);
            let call_started = SystemTime::now();
            let span = tracing::info_span!(
                "agent.step",
                run_id = %state.run_id,
                step,
                model = %model,
                traceparent = %traceparent
            );
            let answer = TRACEPARENT
                .scope(
                    traceparent,
                    tracing::Instrument::instrument(self.model.complete(request), span),
                )
                .await;
            let call_span = self.chat_span(
                &state,
                &model,
                step_span_id(&state.run_id, step, state.attempt),
                call_started,
                step,
                role,
            );
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    state.attempt += 1;
                    self.emit(trace::call_failed(call_span, &error));
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
            self.emit(trace::step_answered(call_span, &answer, reserved_pusd));
            let usage = answer.response.usage.unwrap_or_default();
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
                    idempotency_key: Some(idempotency_key_for(&state.run_id, step, &call.id)),
                },
            )
            .await?;
        }
        let mut running: FuturesUnordered<_> = calls
            .iter()
            .map(|call| {
                let tools = Arc::clone(&self.tools);
                let key = idempotency_key_for(&state.run_id, step, &call.id);
                async move {
                    let started = SystemTime::now();
                    let spend = Arc::new(ToolSpend::default());
                    let output = TOOL_SPEND
                        .scope(
                            Arc::clone(&spend),
                            IDEMPOTENCY_KEY.scope(key, tools.run(call)),
                        )
                        .await;
                    (call, output, started, spend.pico())
                }
            })
            .collect();
        let mut outputs = HashMap::new();
        while let Some((call, output, started, cost_pusd)) = running.next().await {
            let span = self.tool_span(state, step, call, started, &output, cost_pusd);
            state.spend(cost_pusd);
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
                    cost_usd: pricing::pico_to_usd(cost_pusd),
                    cost_pusd,
                },
            )
            .await?;
            outputs.insert(call.id.clone(), output);
        }
        Ok(outputs)
    }
}
