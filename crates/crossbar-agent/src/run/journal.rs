//! The journal's format: one [`Entry`] per step, in the order the run took them, serialized
//! as JSON in the store. Replay ([`super::replay`]) rebuilds a run from these.

use crossbar_core::chat::{FinishReason, Message, Usage};
use crossbar_core::pricing;
use serde::{Deserialize, Serialize};

use super::RunStatus;

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
        /// Sent with the call (`Idempotency-Key`, MCP `_meta`): the same on every attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
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
pub(super) fn journaled_pico(cost_pusd: u64, cost_usd: f64) -> u64 {
    if cost_pusd == 0 {
        pricing::usd_to_pico(cost_usd)
    } else {
        cost_pusd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
