//! A run's trace (OpenTelemetry GenAI conventions): an `invoke_agent` span for the run, a
//! `chat MODEL` client span per model call — its id is the one the call's `traceparent`
//! carried, so a gateway's server span is its child — and an `execute_tool NAME` span per tool
//! call. Tool spans are children of the run span, not of the step that asked for them: a
//! step's span ends when the model has answered, before its tools run. Every id is derived
//! from the run id, so a resumed run's spans join the same trace and the same run span.

use std::time::SystemTime;

use crossbar_core::chat::ToolCall;
use crossbar_core::pricing;
use crossbar_core::trace::{SpanKind, SpanRecord};

use super::{Agent, RunStatus, State};
use crate::model::ModelAnswer;
use crate::tools::ToolOutput;

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
pub(super) fn summary_span_id(run_id: &str, step: u32, attempt: u32) -> [u8; 8] {
    span_id(&format!("{run_id}/summary/{step}/{attempt}"))
}

fn tool_span_id(run_id: &str, step: u32, call_id: &str) -> [u8; 8] {
    span_id(&format!("{run_id}/step/{step}/tool/{call_id}"))
}

/// `traceparent` for a step's (first) model call: the run's trace, the step's span.
pub fn traceparent(run_id: &str, step: u32) -> String {
    traceparent_at(run_id, step, 0)
}

pub(super) fn traceparent_at(run_id: &str, step: u32, attempt: u32) -> String {
    traceparent_of(run_id, step_span_id(run_id, step, attempt))
}

pub(super) fn traceparent_of(run_id: &str, span: [u8; 8]) -> String {
    format!("00-{}-{}-01", trace_id(run_id), hex(&span))
}

/// A failed model call's span: the error kind as `error.type`, its message as the status.
pub(super) fn call_failed(span: SpanRecord, error: &crossbar_core::Error) -> SpanRecord {
    let mut span = span.attribute("error.type", format!("{:?}", error.kind));
    span.error = Some(error.message.clone());
    span
}

/// A step's `chat` span once the model answered: what answered, its usage, cost and reservation.
pub(super) fn step_answered(
    span: SpanRecord,
    answer: &ModelAnswer,
    reserved_pusd: u64,
) -> SpanRecord {
    let usage = answer.response.usage.unwrap_or_default();
    let mut span = span
        .attribute("gen_ai.response.model", answer.response.model.as_str())
        .attribute("gen_ai.response.id", answer.response.id.as_str())
        .attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        .attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        .attribute("crossbar.cost_usd", pricing::pico_to_usd(answer.cost_pico))
        .attribute("crossbar.reserved_usd", pricing::pico_to_usd(reserved_pusd));
    if let Some(provider) = &answer.provider {
        span = span.attribute("crossbar.provider", provider.as_str());
    }
    if let Some(deployment) = &answer.deployment {
        span = span.attribute("crossbar.deployment", deployment.as_str());
    }
    span
}

/// The summarizer's `chat` span once it answered.
pub(super) fn summary_answered(span: SpanRecord, answer: &ModelAnswer) -> SpanRecord {
    let usage = answer.response.usage.unwrap_or_default();
    span.attribute("gen_ai.response.model", answer.response.model.as_str())
        .attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        .attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        .attribute("crossbar.cost_usd", pricing::pico_to_usd(answer.cost_pico))
        .attribute(
            "crossbar.provider",
            answer.provider.as_deref().unwrap_or_default(),
        )
}

impl Agent {
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

    pub(super) fn emit(&self, span: SpanRecord) {
        if let Some(sink) = &self.spans {
            sink.record(vec![span]);
        }
    }

    /// The `chat MODEL` span of a model call (a step's or the summarizer's), ending now.
    pub(super) fn chat_span(
        &self,
        state: &State,
        model: &str,
        id: [u8; 8],
        started: SystemTime,
        step: u32,
        role: &str,
    ) -> SpanRecord {
        self.span(
            state,
            format!("chat {model}"),
            SpanKind::Client,
            id,
            started,
        )
        .attribute("gen_ai.operation.name", "chat")
        .attribute("gen_ai.request.model", model)
        .attribute("crossbar.step", step)
        .attribute("crossbar.agent.role", role)
    }

    /// The `execute_tool NAME` span of a tool call that returned `output`, ending now.
    pub(super) fn tool_span(
        &self,
        state: &State,
        step: u32,
        call: &ToolCall,
        started: SystemTime,
        output: &ToolOutput,
        cost_pusd: u64,
    ) -> SpanRecord {
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
        if cost_pusd > 0 {
            span = span.attribute("crossbar.cost_usd", pricing::pico_to_usd(cost_pusd));
        }
        if output.is_error {
            // The tool's message goes to the model, not to the trace: it may quote data.
            span.error = Some("the tool returned an error".to_owned());
            span = span.attribute("error.type", "tool_error");
        }
        span
    }

    /// The run's span, from its creation to now. Each process that ends its part of the run
    /// records it (same id, later end): a failed run resumed later is recorded again, and the
    /// last record covers the whole run.
    pub(super) fn trace_run(&self, state: &State, reason: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
