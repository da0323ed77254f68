//! Journal replay: a run rebuilt from its journal's entries, so a resume — in this process or
//! on any host sharing the store — continues where the run stopped. Pure: what is left to do
//! (tools to run, results to journal, an answer to finish with) is returned to the loop.
//!
//! A tool whose result was journaled is never run again; one that started but never finished
//! is re-run only when idempotent — otherwise the model is told it was interrupted.

use std::collections::{HashMap, HashSet};

use crossbar_core::chat::{Message, Role, ToolCall};
use crossbar_store::EventRecord;

use super::journal::{Entry, journaled_pico};
use super::summarize::compact;
use super::{RunError, tool_message};
use crate::tools::ToolOutput;

/// A run as its journal left it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Replayed {
    /// The transcript: system prompt, task (with the latest summary), the turns journaled.
    pub messages: Vec<Message>,
    /// The latest summary of the older turns (`[context]`).
    pub summary: Option<String>,
    /// Model calls made.
    pub steps: u32,
    pub tokens: u64,
    /// Picodollars spent: model calls, summaries and tools.
    pub cost_pusd: u64,
    /// The model every role uses after `on_budget_low` switched.
    pub switched_to: Option<String>,
    /// Failed calls of the next step (`steps + 1`).
    pub attempt: u32,
    /// What is left of the last turn.
    pub last: Last,
}

/// What the last journaled turn leaves to do.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Last {
    /// No turn was journaled: the loop asks the model for the first step.
    Nothing,
    /// The last turn is a final answer, journaled before the run's end: the run completes
    /// with this answer.
    Answered(String),
    /// The last turn asked for tools (its assistant message is the last of `messages`).
    Tools(Unfinished),
}

/// The last turn's tool calls: which results the journal has, which calls to report as
/// interrupted, which to run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Unfinished {
    pub step: u32,
    /// The turn's calls, in the model's order.
    pub calls: Vec<ToolCall>,
    /// Journaled results, by call id.
    pub known: HashMap<String, ToolOutput>,
    /// Started but not finished, not idempotent: journaled as interrupted, not run again.
    pub interrupted: Vec<(ToolCall, ToolOutput)>,
    /// To run: not started, or started and idempotent.
    pub pending: Vec<ToolCall>,
    /// Every call journaled as started (a re-run is not journaled as started twice).
    pub started: HashSet<String>,
    /// A summary journaled after this turn's results: (turns replaced, summary).
    pub summary: Option<(u32, String)>,
}

impl Unfinished {
    /// The turn's tool messages, in the calls' order, from the journaled, interrupted and
    /// `ran` results (a call with none is left out).
    pub fn tool_messages(&self, ran: &HashMap<String, ToolOutput>) -> Vec<Message> {
        let mut outputs = self.known.clone();
        outputs.extend(
            self.interrupted
                .iter()
                .map(|(call, output)| (call.id.clone(), output.clone())),
        );
        outputs.extend(ran.iter().map(|(id, output)| (id.clone(), output.clone())));
        self.calls
            .iter()
            .filter_map(|call| {
                outputs
                    .get(&call.id)
                    .map(|output| tool_message(&call.id, &call.name, output))
            })
            .collect()
    }
}

/// The journal's records as entries; an unreadable one is an error naming its place.
pub(super) fn entries(run_id: &str, records: &[EventRecord]) -> Result<Vec<Entry>, RunError> {
    records
        .iter()
        .map(|record| {
            serde_json::from_str(&record.data).map_err(|e| {
                RunError::Invalid(format!(
                    "run `{run_id}` step {}: unreadable journal entry: {e}",
                    record.seq
                ))
            })
        })
        .collect()
}

/// What an interrupted, non-idempotent call is reported to the model as.
fn interrupted(name: &str) -> ToolOutput {
    ToolOutput::error(format!(
        "The run was interrupted while `{name}` was running, and it is not marked idempotent, so it was not run again: its effect is unknown."
    ))
}

/// Rebuilds a run of `task` under `instructions` from its journal's `entries`; `idempotent`
/// says whether a tool may be run again.
pub(super) fn replay(
    instructions: &str,
    task: &str,
    entries: Vec<Entry>,
    idempotent: impl Fn(&str) -> bool,
) -> Replayed {
    let mut steps = 0;
    let mut tokens = 0u64;
    let mut cost_pusd = 0u64;
    let mut switched_to = None;
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
                cost_pusd: pusd,
                ..
            } => {
                steps = u32::max(steps, step);
                tokens += usage.total_tokens();
                cost_pusd = cost_pusd.saturating_add(journaled_pico(pusd, cost_usd));
                turns.push((step, *message));
            }
            Entry::ModelSwitched { to, .. } => switched_to = Some(to),
            Entry::ToolStarted { call_id, .. } => {
                started.insert(call_id);
            }
            Entry::ToolResult {
                call_id,
                content,
                is_error,
                cost_usd,
                cost_pusd: pusd,
                ..
            } => {
                cost_pusd = cost_pusd.saturating_add(journaled_pico(pusd, cost_usd));
                results.insert(call_id, ToolOutput { content, is_error });
            }
            Entry::ModelFailed { step, .. } => failed.push(step),
            Entry::Summarized {
                step,
                turns,
                summary,
                usage,
                cost_usd,
                cost_pusd: pusd,
                ..
            } => {
                tokens += usage.total_tokens();
                cost_pusd = cost_pusd.saturating_add(journaled_pico(pusd, cost_usd));
                summaries.insert(step, (turns, summary));
            }
            Entry::Started { .. } | Entry::Resumed { .. } | Entry::Finished { .. } => {}
        }
    }
    let attempt =
        u32::try_from(failed.iter().filter(|s| **s == steps + 1).count()).unwrap_or(u32::MAX);
    let mut messages = vec![
        Message::text(Role::System, instructions.to_owned()),
        Message::text(Role::User, task.to_owned()),
    ];
    let mut summary = None;
    let mut last = Last::Nothing;
    let count = turns.len();
    for (index, (step, message)) in turns.into_iter().enumerate() {
        let calls = message.tool_calls.clone();
        messages.push(message);
        if index + 1 < count {
            for call in &calls {
                // A journal always has earlier turns' results; keep the transcript valid anyway.
                let output = results
                    .get(&call.id)
                    .cloned()
                    .unwrap_or_else(|| ToolOutput::error("No result was recorded."));
                messages.push(tool_message(&call.id, &call.name, &output));
            }
            if let Some((turns, text)) = summaries.remove(&(step + 1)) {
                compact(&mut messages, task, turns, &text);
                summary = Some(text);
            }
            continue;
        }
        if calls.is_empty() {
            last = Last::Answered(
                messages
                    .last()
                    .map(Message::text_content)
                    .unwrap_or_default(),
            );
            continue;
        }
        let mut known = HashMap::new();
        let mut stopped = Vec::new();
        let mut pending = Vec::new();
        for call in &calls {
            if let Some(output) = results.get(&call.id) {
                known.insert(call.id.clone(), output.clone());
            } else if started.contains(&call.id) && !idempotent(&call.name) {
                stopped.push((call.clone(), interrupted(&call.name)));
            } else {
                pending.push(call.clone());
            }
        }
        last = Last::Tools(Unfinished {
            step,
            calls,
            known,
            interrupted: stopped,
            pending,
            started: std::mem::take(&mut started),
            summary: summaries.remove(&(step + 1)),
        });
    }
    Replayed {
        messages,
        summary,
        steps,
        tokens,
        cost_pusd,
        switched_to,
        attempt,
        last,
    }
}

#[cfg(test)]
mod tests {
    use crossbar_core::chat::{FinishReason, Usage};
    use crossbar_core::pricing;

    use super::*;
    use crate::run::RunStatus;

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        }
    }

    fn assistant(text: &str, calls: &[ToolCall]) -> Message {
        let mut message = Message::text(Role::Assistant, text);
        message.tool_calls = calls.to_vec();
        message
    }

    /// Step `step`'s model call: `input` + `output` tokens, `cost_pusd` picodollars.
    fn model_call(step: u32, message: Message, input: u64, output: u64, cost_pusd: u64) -> Entry {
        Entry::ModelCall {
            step,
            role: "default".into(),
            model: "m".into(),
            provider: Some("sim-openai".into()),
            deployment: None,
            message: Box::new(message),
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                ..Usage::default()
            },
            cost_usd: pricing::pico_to_usd(cost_pusd),
            cost_pusd,
            reserved_usd: 0.0,
            finish_reason: FinishReason::ToolCalls,
        }
    }

    fn started(step: u32, call: &ToolCall) -> Entry {
        Entry::ToolStarted {
            step,
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            idempotency_key: None,
        }
    }

    fn result(step: u32, call: &ToolCall, content: &str, cost_pusd: u64) -> Entry {
        Entry::ToolResult {
            step,
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: content.into(),
            is_error: false,
            interrupted: false,
            cost_usd: pricing::pico_to_usd(cost_pusd),
            cost_pusd,
        }
    }

    fn tool(call: &ToolCall, content: &str, is_error: bool) -> Message {
        tool_message(
            &call.id,
            &call.name,
            &ToolOutput {
                content: content.into(),
                is_error,
            },
        )
    }

    fn begin() -> Entry {
        Entry::Started {
            task: "Add.".into(),
            agent: "a".into(),
            trace_id: None,
        }
    }

    fn system_and_task() -> Vec<Message> {
        vec![
            Message::text(Role::System, "Help."),
            Message::text(Role::User, "Add."),
        ]
    }

    /// Only `now` may run twice.
    fn idempotent(name: &str) -> bool {
        name == "now"
    }

    #[test]
    fn a_journal_with_no_step_replays_to_the_task() {
        let replayed = replay("Help.", "Add.", vec![begin()], idempotent);
        assert_eq!(
            replayed,
            Replayed {
                messages: system_and_task(),
                summary: None,
                steps: 0,
                tokens: 0,
                cost_pusd: 0,
                switched_to: None,
                attempt: 0,
                last: Last::Nothing,
            }
        );
    }

    /// Every turn's message and results in order; tokens and picodollars of model calls and
    /// tools summed, an old entry's dollars read as picodollars; the switch kept.
    #[test]
    fn finished_steps_rebuild_the_transcript_and_the_totals() {
        let add = call("c1", "calculator");
        let clock = call("c2", "now");
        let entries = vec![
            begin(),
            model_call(1, assistant("", std::slice::from_ref(&add)), 100, 20, 5_000),
            started(1, &add),
            result(1, &add, "4", 0),
            Entry::ModelSwitched {
                step: 2,
                from: "m".into(),
                to: "cheap".into(),
                reason: "steps: 1 of max_steps 2 left (below 60% left)".into(),
            },
            model_call(
                2,
                assistant("Checking.", std::slice::from_ref(&clock)),
                130,
                10,
                0,
            ),
            started(2, &clock),
            // Journaled before picodollars were kept: $0.0000007 is 700_000 picodollars.
            Entry::ToolResult {
                step: 2,
                call_id: "c2".into(),
                name: "now".into(),
                content: "noon".into(),
                is_error: false,
                interrupted: false,
                cost_usd: 7e-7,
                cost_pusd: 0,
            },
        ];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        let mut messages = system_and_task();
        messages.extend([
            assistant("", std::slice::from_ref(&add)),
            tool(&add, "4", false),
            assistant("Checking.", std::slice::from_ref(&clock)),
        ]);
        assert_eq!(replayed.messages, messages);
        assert_eq!(replayed.steps, 2);
        assert_eq!(replayed.tokens, 260);
        assert_eq!(replayed.cost_pusd, 705_000);
        assert_eq!(replayed.switched_to.as_deref(), Some("cheap"));
        assert_eq!(replayed.attempt, 0);
        let Last::Tools(turn) = replayed.last else {
            panic!("the last turn asked for a tool: {:?}", replayed.last)
        };
        assert_eq!(turn.step, 2);
        assert_eq!(turn.calls, std::slice::from_ref(&clock));
        assert!(turn.pending.is_empty());
        assert!(turn.interrupted.is_empty());
        assert_eq!(turn.summary, None);
        assert_eq!(
            turn.tool_messages(&HashMap::new()),
            [tool(&clock, "noon", false)]
        );
    }

    /// The last step's calls: a result journaled is kept, a call never started is run, a
    /// started idempotent one is run again (not journaled as started twice), a started
    /// non-idempotent one is reported interrupted. An earlier step missing a result gets an
    /// error result, so the transcript stays valid.
    #[test]
    fn a_step_journaled_without_its_tool_results() {
        let lost = call("c0", "calculator");
        let done = call("c1", "calculator");
        let fresh = call("c2", "calculator");
        let again = call("c3", "now");
        let unsure = call("c4", "write_file");
        let calls = [done.clone(), fresh.clone(), again.clone(), unsure.clone()];
        let entries = vec![
            begin(),
            model_call(1, assistant("", std::slice::from_ref(&lost)), 10, 1, 0),
            started(1, &lost),
            model_call(2, assistant("", &calls), 10, 1, 0),
            started(2, &done),
            started(2, &again),
            started(2, &unsure),
            result(2, &done, "4", 0),
        ];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        let mut messages = system_and_task();
        messages.extend([
            assistant("", std::slice::from_ref(&lost)),
            tool(&lost, "No result was recorded.", true),
            assistant("", &calls),
        ]);
        assert_eq!(replayed.messages, messages);
        let Last::Tools(turn) = replayed.last else {
            panic!("the last turn asked for tools: {:?}", replayed.last)
        };
        let stopped = "The run was interrupted while `write_file` was running, and it is not \
                       marked idempotent, so it was not run again: its effect is unknown.";
        assert_eq!(turn.step, 2);
        assert_eq!(turn.pending, [fresh.clone(), again.clone()]);
        assert_eq!(
            turn.interrupted,
            [(unsure.clone(), ToolOutput::error(stopped))]
        );
        assert_eq!(
            turn.known,
            HashMap::from([(
                "c1".to_owned(),
                ToolOutput {
                    content: "4".into(),
                    is_error: false
                }
            )])
        );
        let mut ids: Vec<_> = turn.started.iter().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["c0", "c1", "c3", "c4"]);
        let ran = HashMap::from([
            (
                "c2".to_owned(),
                ToolOutput {
                    content: "5".into(),
                    is_error: false,
                },
            ),
            (
                "c3".to_owned(),
                ToolOutput {
                    content: "noon".into(),
                    is_error: false,
                },
            ),
        ]);
        assert_eq!(
            turn.tool_messages(&ran),
            [
                tool(&done, "4", false),
                tool(&fresh, "5", false),
                tool(&again, "noon", false),
                tool(&unsure, stopped, true),
            ]
        );
    }

    /// A call journaled twice (started twice, two results): the later result is the one the
    /// model sees, and both results' costs count, as both ran.
    #[test]
    fn a_tool_call_journaled_twice() {
        let fetch = call("c1", "http_fetch");
        let entries = vec![
            begin(),
            model_call(1, assistant("", std::slice::from_ref(&fetch)), 10, 1, 0),
            started(1, &fetch),
            result(1, &fetch, "first", 100),
            started(1, &fetch),
            result(1, &fetch, "second", 200),
            model_call(2, assistant("Done.", &[]), 10, 1, 0),
        ];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        let mut messages = system_and_task();
        messages.extend([
            assistant("", std::slice::from_ref(&fetch)),
            tool(&fetch, "second", false),
            assistant("Done.", &[]),
        ]);
        assert_eq!(replayed.messages, messages);
        assert_eq!(replayed.cost_pusd, 300);
        assert_eq!(replayed.tokens, 22);
        assert_eq!(replayed.last, Last::Answered("Done.".into()));
        // Started twice and never finished, not idempotent: reported interrupted once.
        let entries = vec![
            begin(),
            model_call(1, assistant("", std::slice::from_ref(&fetch)), 10, 1, 0),
            started(1, &fetch),
            started(1, &fetch),
        ];
        let Last::Tools(turn) = replay("Help.", "Add.", entries, idempotent).last else {
            panic!("the last turn asked for a tool")
        };
        assert_eq!(turn.interrupted.len(), 1);
        assert!(turn.pending.is_empty());
    }

    /// A run that failed and was resumed before: `Finished` and `Resumed` change nothing, and
    /// only the failures of the next step count as its attempts.
    #[test]
    fn a_run_that_ended_failed_replays_its_attempts() {
        let add = call("c1", "calculator");
        let failed = |step| Entry::ModelFailed {
            step,
            model: "m".into(),
            error: "upstream down".into(),
        };
        let finished = Entry::Finished {
            status: RunStatus::Failed,
            answer: None,
            reason: "the model call failed: upstream down".into(),
        };
        let entries = vec![
            begin(),
            failed(1),
            finished.clone(),
            Entry::Resumed { after_step: 0 },
            model_call(1, assistant("", std::slice::from_ref(&add)), 10, 1, 0),
            started(1, &add),
            result(1, &add, "4", 0),
            failed(2),
            finished.clone(),
            Entry::Resumed { after_step: 1 },
            failed(2),
            finished,
        ];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        assert_eq!(replayed.steps, 1);
        assert_eq!(replayed.attempt, 2);
        let Last::Tools(turn) = replayed.last else {
            panic!("the last turn asked for a tool")
        };
        assert!(turn.pending.is_empty() && turn.interrupted.is_empty());
        assert_eq!(
            turn.tool_messages(&HashMap::new()),
            [tool(&add, "4", false)]
        );
    }

    /// A final answer journaled without the run's end: the run completes with it.
    #[test]
    fn a_final_answer_journaled_before_the_end_completes_the_run() {
        let entries = vec![begin(), model_call(1, assistant("It is 4.", &[]), 10, 3, 0)];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        assert_eq!(replayed.last, Last::Answered("It is 4.".into()));
        assert_eq!(replayed.steps, 1);
        assert_eq!(replayed.tokens, 13);
    }

    /// A summary replaces the turns it summarized, in the task message, at the step it came
    /// before; one journaled after the last turn's results is left for the loop to apply.
    #[test]
    fn summaries_replace_the_older_turns_on_replay() {
        let one = call("c1", "calculator");
        let two = call("c2", "calculator");
        let three = call("c3", "calculator");
        let summarized = |step, turns, summary: &str| Entry::Summarized {
            step,
            model: "small".into(),
            provider: None,
            deployment: None,
            turns,
            summary: summary.into(),
            usage: Usage {
                input_tokens: 50,
                output_tokens: 5,
                ..Usage::default()
            },
            cost_usd: 0.0,
            cost_pusd: 9,
        };
        let entries = vec![
            begin(),
            model_call(1, assistant("", std::slice::from_ref(&one)), 10, 1, 0),
            started(1, &one),
            result(1, &one, "1", 0),
            model_call(2, assistant("", std::slice::from_ref(&two)), 10, 1, 0),
            started(2, &two),
            result(2, &two, "2", 0),
            summarized(3, 1, "Step one gave 1."),
            model_call(3, assistant("", std::slice::from_ref(&three)), 10, 1, 0),
            started(3, &three),
            result(3, &three, "3", 0),
            summarized(4, 2, "Steps gave 1, 2 and 3."),
        ];
        let replayed = replay("Help.", "Add.", entries, idempotent);
        assert_eq!(
            replayed.messages,
            [
                Message::text(Role::System, "Help."),
                Message::text(
                    Role::User,
                    "Add.\n\n[Summary of this run's earlier steps]\nStep one gave 1."
                ),
                assistant("", std::slice::from_ref(&two)),
                tool(&two, "2", false),
                assistant("", std::slice::from_ref(&three)),
            ]
        );
        assert_eq!(replayed.summary.as_deref(), Some("Step one gave 1."));
        assert_eq!(replayed.tokens, 143);
        assert_eq!(replayed.cost_pusd, 18);
        let Last::Tools(turn) = replayed.last else {
            panic!("the last turn asked for a tool")
        };
        assert_eq!(turn.summary, Some((2, "Steps gave 1, 2 and 3.".to_owned())));
    }

    #[test]
    fn an_unreadable_entry_names_its_run_and_place() {
        let record = |seq, data: &str| EventRecord {
            run_id: "run_1".into(),
            seq,
            time_ms: 0,
            kind: "started".into(),
            data: data.into(),
        };
        let good = serde_json::to_string(&begin()).unwrap_or_default();
        let read = entries("run_1", &[record(0, &good)]).map_err(|e| e.to_string());
        assert_eq!(read.ok(), Some(vec![begin()]));
        let Err(error) = entries(
            "run_1",
            &[record(0, &good), record(1, r#"{"kind":"nope"}"#)],
        ) else {
            panic!("an unknown kind does not read")
        };
        assert_eq!(
            error.to_string(),
            "run `run_1` step 1: unreadable journal entry: unknown variant `nope`, expected one of \
             `started`, `resumed`, `model_call`, `model_failed`, `model_switched`, `summarized`, \
             `tool_started`, `tool_result`, `finished` at line 1 column 14"
        );
    }
}
