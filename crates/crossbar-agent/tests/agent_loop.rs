//! The agent loop against simulated providers through the in-process router: several rounds of
//! concurrent tool calls scripted by `sim-step` lines, argument validation, unknown tools,
//! timeouts, limits and budgets, and what the journal keeps.

mod common;

use std::time::Duration;

use common::{CONFIG, harness, harness_with_store};
use crossbar_agent::{Entry, RunStatus};
use crossbar_store::JournalStore;

const SPEC: &str = r#"
name = "filer"
instructions = "You compute and keep notes."
max_steps = 6

[models]
default = "smart"

[tools]
builtin = ["calculator", "read_file", "write_file", "now"]
workspace = "ws"
"#;

const TASK: &str = "Compute and file the result.
sim-step 1: calculator {\"expression\": \"2 + 3 * 4\"}
sim-step 1: write_file {\"path\": \"notes/a.txt\", \"content\": \"hello\"}
sim-step 2: read_file {\"path\": \"notes/a.txt\"}
sim-step 2: calculator {\"expression\": 5}
sim-step 2: shell {\"cmd\": \"ls\"}
sim-step 2: read_file {\"path\": \"../journal.db\"}";

fn tool_results(entries: &[Entry], step: u32) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::ToolResult {
                step: s,
                name,
                content,
                is_error,
                ..
            } if *s == step => Some((name.clone(), content.clone(), *is_error)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn tool_rounds_run_until_a_final_answer_and_every_step_is_journaled() {
    let h = harness(CONFIG).await;
    let (agent, events) = h.agent(h.spec(SPEC));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    assert_eq!(outcome.totals.steps, 3);
    assert_eq!(
        outcome.providers,
        vec![Some("sim-openai".to_owned()); 3],
        "one deployment serves `smart`"
    );
    assert_eq!(
        std::fs::read_to_string(h.path("ws/notes/a.txt")).unwrap(),
        "hello"
    );
    let entries = common::entries(&events);
    assert_eq!(
        tool_results(&entries, 1),
        vec![
            ("calculator".to_owned(), "14".to_owned(), false),
            (
                "write_file".to_owned(),
                "wrote 5 bytes to notes/a.txt".to_owned(),
                false
            ),
        ]
    );
    let second = tool_results(&entries, 2);
    assert_eq!(second.len(), 4, "{second:?}");
    assert_eq!(
        second[0],
        (
            "calculator".to_owned(),
            "Invalid arguments for `calculator`: /expression: 5 is not of type \"string\""
                .to_owned(),
            true
        )
    );
    assert_eq!(second[1].0, "read_file");
    assert!(
        second[1].2,
        "a path out of the workspace is refused: {second:?}"
    );
    assert!(second[1].1.contains("without `..`"), "{second:?}");
    assert_eq!(
        second[2],
        ("read_file".to_owned(), "hello".to_owned(), false)
    );
    assert_eq!(second[3].0, "shell");
    assert!(second[3].1.starts_with(
        "Unknown tool `shell`. Available tools: calculator, now, read_file, write_file."
    ));
    let answer = outcome.answer.unwrap();
    assert!(answer.starts_with("Based on read_file: hello;"), "{answer}");
    assert!(answer.contains("shell: Unknown tool"), "{answer}");

    // The journal holds what the observer saw, in order, and the run's totals.
    let records = h.store.events(&outcome.run_id).await.unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "model_call").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "tool_started").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "tool_result").count(), 6);
    // Every result is journaled after its start.
    for (i, record) in records.iter().enumerate() {
        if record.kind == "tool_result" {
            let entry: Entry = serde_json::from_str(&record.data).unwrap();
            let Entry::ToolResult { call_id, .. } = entry else {
                panic!()
            };
            assert!(
                records[..i]
                    .iter()
                    .any(|r| r.kind == "tool_started" && r.data.contains(&call_id))
            );
        }
    }
    let journaled: Vec<Entry> = records
        .iter()
        .map(|r| serde_json::from_str(&r.data).unwrap())
        .collect();
    assert_eq!(journaled, entries);
    let run = h.store.run(&outcome.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(run.answer.as_deref(), Some(answer.as_str()));
    assert_eq!(run.totals.steps, 3);
    // The run's cost is its calls' picodollar costs summed, to the picodollar, in the outcome
    // and in the store; each call's dollars are its picodollars.
    let costs: u64 = journaled
        .iter()
        .map(|e| match e {
            Entry::ModelCall {
                cost_usd,
                cost_pusd,
                usage,
                ..
            } => {
                assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
                assert_eq!(*cost_usd, crossbar_core::pricing::pico_to_usd(*cost_pusd));
                *cost_pusd
            }
            _ => 0,
        })
        .sum();
    assert!(costs > 0);
    assert_eq!(outcome.totals.cost_pusd, costs);
    assert_eq!(run.totals.cost_pusd, costs);
    assert!(run.totals.tokens > 0);
    assert_eq!(run.spec, h.spec(SPEC).source);
}

#[tokio::test]
async fn max_steps_stops_a_run_that_keeps_calling_tools() {
    let h = harness(CONFIG).await;
    let spec = SPEC.replace("max_steps = 6", "max_steps = 2");
    let (agent, _) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::MaxSteps);
    assert_eq!(outcome.totals.steps, 2);
    assert_eq!(outcome.reason, "reached max_steps (2)");
    assert_eq!(outcome.answer, None);
    let run = h.store.run(&outcome.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "max_steps");
}

#[tokio::test]
async fn a_budget_too_small_for_the_next_call_stops_before_it() {
    let h = harness(CONFIG).await;
    let spec = format!("{SPEC}\n[budget]\nusd = 0.000001\n");
    let (agent, events) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::BudgetExhausted);
    assert_eq!(outcome.totals.steps, 0, "no call was made");
    assert!(
        outcome.reason.starts_with("USD budget: $0.000000 spent"),
        "{}",
        outcome.reason
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| !matches!(e.entry, Entry::ModelCall { .. }))
    );

    let spec = format!("{SPEC}\n[budget]\ntokens = 100\n");
    let (agent, _) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::BudgetExhausted);
    assert!(
        outcome.reason.starts_with("token budget"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn on_budget_low_switches_to_a_cheaper_route_mid_run() {
    let h = harness(CONFIG).await;
    // A call on `smart` reserves about $0.00175 (its prompt, and 100 output tokens at $10/M)
    // and costs about $0.001: the first call starts with all of the $0.004 left, the second
    // with well under 90% of it.
    let spec = format!(
        "{}\n[budget]\nusd = 0.004\non_budget_low = {{ remaining = 0.9, switch_to = \"cheap\" }}\n",
        SPEC.replace("max_steps = 6", "max_steps = 6\nmax_tokens = 100")
    );
    let (agent, events) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    let providers: Vec<&str> = common::providers(&outcome);
    assert_eq!(providers[0], "sim-openai");
    assert!(
        providers[1..].iter().all(|p| *p == "sim-anthropic"),
        "{providers:?}"
    );
    let switched: Vec<Entry> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.entry, Entry::ModelSwitched { .. }))
        .map(|e| e.entry.clone())
        .collect();
    assert_eq!(switched.len(), 1);
    let Entry::ModelSwitched { step, from, to, .. } = &switched[0] else {
        panic!()
    };
    assert_eq!((*step, from.as_str(), to.as_str()), (2, "smart", "cheap"));
    // The Anthropic-dialect provider continued the OpenAI-dialect transcript: tool ids and
    // results carried over, the answer cites the second round.
    assert!(
        outcome
            .answer
            .unwrap()
            .starts_with("Based on read_file: hello;")
    );
    assert!(outcome.totals.cost_pusd <= 4_000_000_000);

    let spec = spec.replace(", switch_to = \"cheap\"", "");
    let (agent, _) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::BudgetLow);
    assert_eq!(outcome.totals.steps, 1);
}

/// `on_budget_low` watches every budget, `max_steps` included, and says which one ran low.
#[tokio::test]
async fn on_budget_low_switches_when_the_steps_run_low() {
    let h = harness(CONFIG).await;
    let spec = format!(
        "{}\n[budget]\non_budget_low = {{ remaining = 0.6, switch_to = \"cheap\" }}\n",
        SPEC.replace("max_steps = 6", "max_steps = 4")
    );
    let (agent, events) = h.agent(h.spec(&spec));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed, "{outcome:?}");
    let providers: Vec<&str> = common::providers(&outcome);
    // Steps 1 and 2 start with 4 and 3 of 4 steps left; step 3 with 2 (50%, below 60%).
    assert_eq!(providers, ["sim-openai", "sim-openai", "sim-anthropic"]);
    let reasons: Vec<(u32, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::ModelSwitched { step, reason, .. } => Some((*step, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [(
            3,
            "steps: 2 of max_steps 4 left (below 60% left)".to_owned()
        )]
    );
}

#[tokio::test]
async fn slow_and_private_http_tools_come_back_as_tool_errors() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/weather/{city}",
            axum::routing::get(
                |axum::extract::Path(city): axum::extract::Path<String>| async move {
                    format!("sunny in {city}")
                },
            ),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let h = harness(CONFIG).await;
    let spec = format!(
        r#"{}
[tools.http_fetch]
allow = ["127.0.0.1"]
allow_private = true

[[tools.http]]
name = "slow"
url = "http://{addr}/slow"
timeout_s = 1
allow_private = true

[[tools.http]]
name = "weather"
url = "http://{addr}/weather/{{city}}"
parameters = {{ type = "object", properties = {{ city = {{ type = "string" }} }}, required = ["city"] }}
allow_private = true

[[tools.http]]
name = "internal"
url = "http://{addr}/weather/x"
"#,
        SPEC.replace("\"now\"]", "\"now\", \"http_fetch\"]")
    );
    let task = "Check.\nsim-step 1: slow\nsim-step 1: weather {\"city\": \"São Paulo\"}\nsim-step 1: internal";
    let task = format!(
        "{task}\nsim-step 1: http_fetch {{\"url\": \"http://{addr}/weather/Oslo\"}}\nsim-step 1: http_fetch {{\"url\": \"http://example.com/\"}}"
    );
    let (agent, events) = h.agent(h.spec(&spec));
    let outcome = agent.run(&task).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed);
    let entries: Vec<Entry> = common::entries(&events);
    let results = tool_results(&entries, 1);
    assert_eq!(
        results,
        vec![
            (
                "http_fetch".to_owned(),
                "HTTP 200\nsunny in Oslo".to_owned(),
                false
            ),
            (
                "http_fetch".to_owned(),
                "example.com is not on this agent's allowlist".to_owned(),
                true
            ),
            (
                "internal".to_owned(),
                "127.0.0.1 is a private, loopback or link-local address, which this agent may not reach".to_owned(),
                true
            ),
            ("slow".to_owned(), "Tool `slow` timed out after 1 s.".to_owned(), true),
            ("weather".to_owned(), "sunny in São Paulo".to_owned(), false),
        ]
    );
}

#[tokio::test]
async fn runs_are_journaled_to_postgres_too() {
    let Ok(url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
        eprintln!("CROSSBAR_TEST_POSTGRES_URL not set: skipping the PostgreSQL journal run");
        return;
    };
    let h = harness_with_store(CONFIG, Some(&url)).await;
    let (agent, events) = h.agent(h.spec(SPEC));
    let outcome = agent.run(TASK).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Completed);
    let records = h.store.events(&outcome.run_id).await.unwrap();
    let journaled: Vec<Entry> = records
        .iter()
        .map(|r| serde_json::from_str(&r.data).unwrap())
        .collect();
    let seen: Vec<Entry> = common::entries(&events);
    assert_eq!(journaled, seen);
    let run = h.store.run(&outcome.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "completed");
    assert_eq!(run.answer, outcome.answer);
    assert_eq!(run.totals.steps, 3);
    let listed = h.store.list_runs(1000).await.unwrap();
    assert!(listed.iter().any(|r| r.id == outcome.run_id));
}

#[tokio::test]
async fn what_one_run_remembers_a_later_run_recalls() {
    let h = harness(CONFIG).await;
    let spec_text = format!("{SPEC}\n[memory]\nenabled = true\n");
    let remember = "Note these.\nsim-step 1: remember {\"text\": \"The client prefers aisle seats\"}\nsim-step 1: remember {\"text\": \"Budget is 500 EUR\"}\nsim-step 2: remember {\"text\": \"Budget is 500 EUR\"}";
    let recall = "What seat?\nsim-step 1: recall {\"query\": \"which seat does the client prefer\"}\nsim-step 1: recall {\"query\": \"hotel\"}";
    let mut answers = Vec::new();
    for task in [remember, recall] {
        let spec = h.spec(&spec_text);
        let (tools, _) = crossbar_agent::tools_for(&spec, &h.tool_context())
            .await
            .unwrap();
        let (mut agent, _) = h.agent(spec);
        agent.tools = std::sync::Arc::new(tools);
        let outcome = agent.run(task).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Completed);
        answers.push(outcome.answer.unwrap());
    }
    let memories = h.store.memories("filer", 10).await.unwrap();
    assert_eq!(
        memories.len(),
        2,
        "the same fact is kept once: {memories:?}"
    );
    assert_eq!(
        answers[1],
        "Based on recall: - The client prefers aisle seats; recall: No memories match.."
    );
}

#[tokio::test]
async fn a_run_failed_by_its_provider_resumes_when_the_provider_is_back() {
    let h = harness(CONFIG).await;
    let sim = &h.gateway.sims["sim-openai"];
    let healthy = sim.config();
    let (agent, _) = h.agent(h.spec(SPEC));
    let outcome = agent
        .run("Hello.\nsim-step 1: calculator {\"expression\": \"1 + 1\"}")
        .await;
    let first = outcome.unwrap();
    assert_eq!(first.status, RunStatus::Completed);

    sim.set_config(crossbar_sim::SimConfig {
        error_rate: 1.0,
        error_status: 400,
        ..healthy.clone()
    });
    let failed = agent
        .run("Again.\nsim-step 1: calculator {\"expression\": \"2 + 2\"}")
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(
        failed.reason.starts_with("the model call failed:"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.totals.steps, 0);
    let run = h.store.run(&failed.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "failed");

    sim.set_config(healthy);
    let resumed = agent.resume(&failed.run_id).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    assert_eq!(resumed.totals.steps, 2);
    assert_eq!(resumed.answer.as_deref(), Some("Based on calculator: 4."));
    let kinds: Vec<String> = h
        .store
        .events(&failed.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "model_failed",
            "finished",
            "resumed",
            "model_call",
            "tool_started",
            "tool_result",
            "model_call",
            "finished"
        ]
    );
    let error = agent.resume(&failed.run_id).await.unwrap_err();
    assert!(
        error.to_string().contains("already ended (completed)"),
        "{error}"
    );
}

#[tokio::test]
async fn the_wall_time_budget_stops_the_run_before_the_next_call() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            "late"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let h = harness(CONFIG).await;
    let spec = format!(
        "{SPEC}\n[budget]\nwall_time_s = 1\n\n[[tools.http]]\nname = \"slow\"\nurl = \"http://{addr}/slow\"\nallow_private = true\n"
    );
    let (agent, _) = h.agent(h.spec(&spec));
    let outcome = agent.run("Wait.\nsim-step 1: slow").await.unwrap();
    assert_eq!(outcome.status, RunStatus::BudgetExhausted);
    assert_eq!(outcome.reason, "wall-time budget of 1 s used up");
    assert_eq!(outcome.totals.steps, 1);
    let run = h.store.run(&outcome.run_id).await.unwrap().unwrap();
    assert!(run.totals.elapsed_ms >= 1000, "{:?}", run.totals);
}
