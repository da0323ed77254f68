//! `[context]` and the `summarizer` role: when the transcript grows past `max_tokens`, the turns
//! before the last `keep_turns` are replaced by a summary the summarizer model writes, journaled
//! with its cost (counted in the budget, not as a step), and replayed on resume without asking
//! again.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::sync::{Arc, Mutex};

use common::{CONFIG, harness};
use crossbar_agent::{Entry, RunStatus};
use crossbar_core::trace::{AttributeValue, SpanRecord, SpanSink};
use crossbar_store::{EventRecord, JournalStore};

const SPEC: &str = r#"
name = "reader"
instructions = "Read what you are asked to, then compute."
max_steps = 8

[models]
default = "smart"
summarizer = "cheap"

[tools]
builtin = ["calculator", "read_file"]
workspace = "ws"

[context]
max_tokens = 800
keep_turns = 1
summary_max_tokens = 60
"#;

/// Round 1 reads a file of about 1,500 tokens; round 2 computes.
const TASK: &str = "Read big.txt, then add.
sim-step 1: read_file {\"path\": \"big.txt\"}
sim-step 2: calculator {\"expression\": \"1 + 1\"}";

#[derive(Default)]
struct Recorder(Mutex<Vec<SpanRecord>>);

impl SpanSink for Recorder {
    fn record(&self, spans: Vec<SpanRecord>) {
        self.0.lock().unwrap().extend(spans);
    }
}

fn model_calls(entries: &[Entry]) -> Vec<(u32, u64, u64)> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::ModelCall {
                step,
                usage,
                cost_pusd,
                ..
            } => Some((*step, usage.input_tokens, *cost_pusd)),
            _ => None,
        })
        .collect()
}

fn journal(events: &[EventRecord]) -> Vec<Entry> {
    events
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

#[tokio::test]
async fn older_turns_are_summarized_by_the_summarizer_and_resume_replays_the_summary() {
    let h = harness(CONFIG).await;
    std::fs::create_dir_all(h.path("ws")).unwrap();
    let big: String = (0..600).map(|i| format!("line{i:04} ")).collect();
    std::fs::write(h.path("ws/big.txt"), &big).unwrap();
    let (mut agent, events) = h.agent(h.spec(SPEC));
    let recorder = Arc::new(Recorder::default());
    agent.spans = Some(Arc::clone(&recorder) as Arc<dyn SpanSink>);
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    let entries: Vec<Entry> = common::entries(&events);

    // Before step 2 the only turn is the one to keep; before step 3 the file's turn is older.
    let summaries: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e, Entry::Summarized { .. }))
        .collect();
    assert_eq!(summaries.len(), 1, "{entries:#?}");
    let Entry::Summarized {
        step,
        model,
        provider,
        turns,
        summary,
        usage,
        cost_pusd: summary_cost,
        ..
    } = summaries[0]
    else {
        unreachable!()
    };
    assert_eq!((*step, model.as_str(), *turns), (3, "cheap", 1));
    assert_eq!(
        provider.as_deref(),
        Some("sim-anthropic"),
        "the summarizer role"
    );
    assert!(!summary.is_empty());
    assert!(usage.output_tokens <= 60, "{usage:?}");
    assert!(
        usage.input_tokens > 1000,
        "the file went to the summarizer: {usage:?}"
    );
    assert!(*summary_cost > 0);
    let spans = recorder.0.lock().unwrap().clone();
    let summarizer: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.get("crossbar.agent.role") == Some(&AttributeValue::from("summarizer")))
        .collect();
    assert_eq!(summarizer.len(), 1);
    assert_eq!(summarizer[0].name, "chat cheap");
    assert_eq!(
        summarizer[0].get("gen_ai.usage.output_tokens"),
        Some(&AttributeValue::from(usage.output_tokens))
    );

    // The simulator counts rounds by the tool-call turns it is shown: with turn 1 folded into
    // the summary it plays round 2 again at step 3, then answers at step 4.
    let calls = model_calls(&entries);
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(outcome.totals.steps, 4, "the summary is not a step");
    let (step2_input, step3_input) = (calls[1].1, calls[2].1);
    assert!(
        step2_input > 1500 && step3_input * 3 < step2_input,
        "step 2 saw the file ({step2_input} tokens), step 3 only the summary ({step3_input})"
    );
    let spent: u64 = calls.iter().map(|c| c.2).sum::<u64>() + summary_cost;
    assert_eq!(outcome.totals.cost_pusd, spent);
    assert_eq!(outcome.answer.as_deref(), Some("Based on calculator: 2."));

    // A copy of the journal cut right after the summary, as if the process died there: the
    // resume rebuilds the summarized transcript from the journal and never asks again.
    let original = h.store.events(&outcome.run_id).await.unwrap();
    let copy = h.copy_run_until(&outcome.run_id, "summarized").await;
    let resumed = agent.resume(&copy).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    assert_eq!(resumed.answer, outcome.answer);
    let replayed = journal(&h.store.events(&copy).await.unwrap());
    assert_eq!(
        replayed
            .iter()
            .filter(|e| matches!(e, Entry::Summarized { .. }))
            .count(),
        1,
        "not summarized again"
    );
    // Same requests, so the same answers and usage as the uninterrupted run.
    let after = |entries: &[Entry]| -> Vec<Entry> {
        entries
            .iter()
            .filter(|e| {
                matches!(e, Entry::ModelCall { step, .. } | Entry::ToolResult { step, .. } if *step >= 3)
            })
            .cloned()
            .collect()
    };
    assert_eq!(after(&replayed), after(&journal(&original)));
    assert_eq!(resumed.totals.cost_pusd, outcome.totals.cost_pusd);
    assert_eq!(resumed.totals.tokens, outcome.totals.tokens);
}
