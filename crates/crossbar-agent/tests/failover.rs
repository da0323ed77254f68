//! Provider portability mid-run: the provider serving a run fails after step 2 and the run
//! completes on another provider speaking another dialect, its canonical history (tool calls
//! and results made on the first) translated for the second.

mod common;

use std::sync::Arc;

use common::harness;
use crossbar_agent::{Entry, Event, Observer, RunStatus};
use crossbar_sim::SimConfig;

/// `smart` on two providers of two dialects; the OpenAI one is cheaper, so `cost` picks it
/// while it is up (no exploration, so nothing else does).
const CONFIG: &str = concat!(
    crossbar_testkit::sim_openai!(),
    crossbar_testkit::sim_anthropic!(),
    r#"
[[models]]
name = "smart"
deployments = [
  { provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0 } },
  { provider = "sim-anthropic", target = "claude-sonnet-4", price = { input = 3.0, output = 15.0 } },
]

[routes.default]
objective = "cost"
explore = 0.0

[store]
enabled = false
"#
);

const SPEC: &str = r#"
name = "steady"
instructions = "Work through the steps."
[models]
default = "smart"
[tools]
builtin = ["calculator"]
"#;

const TASK: &str = "Three sums.
sim-step 1: calculator {\"expression\": \"1 + 1\"}
sim-step 2: calculator {\"expression\": \"2 + 2\"}
sim-step 3: calculator {\"expression\": \"3 + 3\"}";

#[tokio::test]
async fn a_run_whose_provider_fails_after_step_2_completes_on_another_provider() {
    let h = Arc::new(harness(CONFIG).await);
    let (mut agent, events) = h.agent(h.spec(SPEC));
    let inner = agent.observer.take().unwrap();
    let outage = Arc::clone(&h);
    let observer: Observer = Arc::new(move |event: &Event| {
        if let Entry::ModelCall { step: 2, .. } = event.entry {
            outage.gateway.sims["sim-openai"].set_config(SimConfig {
                error_rate: 1.0,
                error_status: 503,
                ..SimConfig::default()
            });
        }
        inner(event);
    });
    agent.observer = Some(observer);
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    let providers: Vec<&str> = common::providers(&outcome);
    assert_eq!(
        providers,
        ["sim-openai", "sim-openai", "sim-anthropic", "sim-anthropic"]
    );
    assert_eq!(outcome.answer.as_deref(), Some("Based on calculator: 6."));

    // Each turn's provider is journaled with it.
    let journaled: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::ModelCall { provider, .. } => provider.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(journaled, providers);

    // The Anthropic provider got the whole history in its own dialect: the two OpenAI-made
    // tool calls as `tool_use` blocks answered by `tool_result` blocks with matching ids.
    let requests = h.gateway.sims["sim-anthropic"].requests();
    let body = requests
        .iter()
        .find_map(|r| r.body.clone())
        .unwrap_or_else(|| panic!("sim-anthropic got no request"));
    let messages = body["messages"].as_array().unwrap();
    let uses: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .flat_map(|m| m["content"].as_array().unwrap())
        .filter(|block| block["type"] == "tool_use")
        .collect();
    let results: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|block| block["type"] == "tool_result")
        .collect();
    assert_eq!(uses.len(), 2, "{body}");
    assert_eq!(results.len(), 2, "{body}");
    for (call, result) in uses.iter().zip(&results) {
        assert_eq!(call["id"], result["tool_use_id"]);
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
    }
    assert_eq!(uses[0]["input"], serde_json::json!({"expression": "1 + 1"}));
    assert_eq!(
        body["system"]
            .as_str()
            .unwrap_or_else(|| body["system"][0]["text"].as_str().unwrap()),
        "Work through the steps."
    );
    // The failed provider saw the attempt that failed over.
    assert!(h.gateway.sims["sim-openai"].requests().len() >= 3);
}
