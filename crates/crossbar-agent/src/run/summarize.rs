//! `[context]`: a transcript grown past its token limit has its older turns replaced by a
//! summary the `summarizer` role writes, journaled like a step so a resume replays it
//! ([`compact`] is what both the summarizer step and replay apply).

use std::time::SystemTime;

use crossbar_core::chat::{ChatRequest, Message, Role};
use crossbar_core::pricing;

use super::budget::{self, Call, Stop, estimate_prompt_tokens};
use super::journal::Entry;
use super::trace::{self, summary_span_id, traceparent_of};
use super::{Agent, RunError, RunStatus, State};
use crate::model::TRACEPARENT;

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

/// Replaces the first `turns` assistant turns (each with its tool results) of `messages` by
/// `summary`, appended to `task` in the first user message: the system prompt and the later
/// turns stay as they are.
pub(super) fn compact(messages: &mut Vec<Message>, task: &str, turns: u32, summary: &str) {
    let starts = turn_starts(messages);
    let end = usize::try_from(turns)
        .ok()
        .and_then(|t| starts.get(t).copied())
        .unwrap_or(messages.len());
    if end > 2 {
        messages.drain(2..end);
    }
    if let Some(first) = messages.get_mut(1) {
        *first = Message::text(
            Role::User,
            format!("{task}\n\n[Summary of this run's earlier steps]\n{summary}"),
        );
    }
}

impl Agent {
    /// When the next request would be over `[context]`'s `max_tokens` (estimated), has the
    /// `summarizer` role (else `default`) summarize the turns before the last `keep_turns`, and
    /// journals the summary; the call's cost counts in the budget, not as a step. Returns why
    /// the run must stop instead, if it must.
    pub(super) async fn summarize_if_needed(
        &self,
        state: &mut State,
    ) -> Result<Option<Stop>, RunError> {
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
        let needed = prompt_tokens + output_tokens;
        if let Some(stop) = budget::token_stop(&self.spec, state.tokens, needed, Call::Summary)
            .or_else(|| budget::usd_stop(&self.spec, state.cost_pusd, reserved, Call::Summary))
        {
            return Ok(Some(stop));
        }
        let span_id = summary_span_id(&state.run_id, step, state.attempt);
        let started = SystemTime::now();
        let answer = TRACEPARENT
            .scope(
                traceparent_of(&state.run_id, span_id),
                self.model.complete(request),
            )
            .await;
        let span = self.chat_span(state, &model, span_id, started, step, "summarizer");
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                self.emit(trace::call_failed(span, &error));
                self.record(
                    state,
                    Entry::ModelFailed {
                        step,
                        model,
                        error: error.message.clone(),
                    },
                )
                .await?;
                return Ok(Some(Stop {
                    status: RunStatus::Failed,
                    reason: format!("the summarizer call failed: {}", error.message),
                }));
            }
        };
        self.emit(trace::summary_answered(span, &answer));
        let usage = answer.response.usage.unwrap_or_default();
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
            return Ok(Some(Stop {
                status: RunStatus::Failed,
                reason: error,
            }));
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
}
