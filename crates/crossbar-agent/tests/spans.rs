//! The spans a run records: a failed run resumed later stays in its trace and under its run
//! span, and the retried model call gets a span of its own beside the failed one.

mod common;

use std::sync::{Arc, Mutex};

use common::{CONFIG, harness};
use crossbar_agent::RunStatus;
use crossbar_agent::run::{run_span_id, step_span_id, trace_id_bytes};
use crossbar_core::trace::{AttributeValue, SpanKind, SpanRecord, SpanSink};

#[derive(Default)]
struct Recorder(Mutex<Vec<SpanRecord>>);

impl SpanSink for Recorder {
    fn record(&self, spans: Vec<SpanRecord>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(spans);
    }
}

const SPEC: &str = r#"
name = "adder"
instructions = "Add."
max_steps = 4

[models]
default = "smart"

[tools]
builtin = ["calculator"]
"#;

fn text(span: &SpanRecord, key: &str) -> String {
    match span.get(key) {
        Some(AttributeValue::String(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_resumed_run_stays_in_its_trace_and_a_retried_call_has_its_own_span() {
    let h = harness(CONFIG).await;
    let sim = &h.gateway.sims["sim-openai"];
    let healthy = sim.config();
    let (mut agent, _) = h.agent(h.spec(SPEC));
    let recorder = Arc::new(Recorder::default());
    agent.spans = Some(Arc::clone(&recorder) as Arc<dyn SpanSink>);

    sim.set_config(crossbar_sim::SimConfig {
        error_rate: 1.0,
        error_status: 400,
        ..healthy.clone()
    });
    let failed = agent
        .run("Add.\nsim-step 1: calculator {\"expression\": \"2 + 2\"}")
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let run_id = failed.run_id.clone();
    let first: Vec<SpanRecord> = recorder.0.lock().unwrap().drain(..).collect();
    assert_eq!(first.len(), 2, "{first:#?}");
    let call = &first[0];
    assert_eq!(call.name, "chat smart");
    assert_eq!(call.kind, SpanKind::Client);
    assert_eq!(call.span_id, step_span_id(&run_id, 1, 0));
    assert_eq!(call.parent_span_id, Some(run_span_id(&run_id)));
    assert!(call.error.is_some());
    let run = &first[1];
    assert_eq!(run.name, "invoke_agent adder");
    assert_eq!(run.span_id, run_span_id(&run_id));
    assert_eq!(run.parent_span_id, None);
    assert_eq!(text(run, "crossbar.run.status"), "failed");
    assert!(run.error.is_some());

    sim.set_config(healthy);
    let resumed = agent.resume(&run_id).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    let second: Vec<SpanRecord> = recorder.0.lock().unwrap().drain(..).collect();
    let names: Vec<&str> = second.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "chat smart",
            "execute_tool calculator",
            "chat smart",
            "invoke_agent adder"
        ]
    );
    for span in first.iter().chain(&second) {
        assert_eq!(span.trace_id, trace_id_bytes(&run_id), "{span:#?}");
        assert!(span.start <= span.end);
    }
    // Step 1 again, with a span of its own; step 2 as usual.
    assert_eq!(second[0].span_id, step_span_id(&run_id, 1, 1));
    assert_ne!(second[0].span_id, call.span_id);
    assert_eq!(second[0].error, None);
    assert_eq!(second[2].span_id, step_span_id(&run_id, 2, 0));
    let tool = &second[1];
    assert_eq!(tool.parent_span_id, Some(run_span_id(&run_id)));
    assert_eq!(text(tool, "gen_ai.tool.name"), "calculator");
    assert_eq!(tool.error, None);
    // The run span again: same id, from the run's creation, now completed.
    let run_again = &second[3];
    assert_eq!(run_again.span_id, run.span_id);
    assert_eq!(run_again.start, run.start);
    assert!(run_again.end >= run.end);
    assert_eq!(text(run_again, "crossbar.run.status"), "completed");
    assert_eq!(run_again.error, None);
}
