//! The agent's own spans, end to end with the real binary: a gateway process and an agent run
//! through it (`--otlp-endpoint`) both export to one in-process OTLP/HTTP collector, and the
//! spans form one trace: the run's `invoke_agent` span, a `chat` span per model call whose id
//! is the `traceparent` the gateway continued (so the gateway's server span is its child), and
//! an `execute_tool` span per tool call under the run span.

#![expect(clippy::unwrap_used, reason = "test code: a failure fails the test")]

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{CONFIG, SPEC, Setup, TASK, command, serve};
use crossbar_testkit::otlp::collector;
use serde_json::Value;

/// A span as received, with its service and its attributes as plain JSON values.
#[derive(Debug)]
struct Span {
    service: String,
    raw: Value,
    attributes: HashMap<String, Value>,
}

impl Span {
    fn id(&self) -> &str {
        self.raw["spanId"].as_str().unwrap()
    }

    fn parent(&self) -> &str {
        self.raw["parentSpanId"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.raw["name"].as_str().unwrap()
    }

    /// OTLP JSON sends integers as strings.
    fn int(&self, key: &str) -> u64 {
        let value = &self.attributes[key];
        value
            .as_str()
            .map_or_else(|| value.as_u64().unwrap(), |s| s.parse().unwrap())
    }

    fn text(&self, key: &str) -> &str {
        self.attributes[key].as_str().unwrap()
    }

    fn failed(&self) -> bool {
        self.raw["status"]["code"] == 2
    }
}

fn spans(batches: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for batch in batches {
        for resource in batch["resourceSpans"].as_array().unwrap() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
                .unwrap();
            for scope in resource["scopeSpans"].as_array().unwrap() {
                for span in scope["spans"].as_array().unwrap() {
                    let attributes = span["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| {
                            let value = a["value"].as_object().unwrap().values().next().unwrap();
                            (a["key"].as_str().unwrap().to_owned(), value.clone())
                        })
                        .collect();
                    out.push(Span {
                        service: service.clone(),
                        raw: span.clone(),
                        attributes,
                    });
                }
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_agents_spans_and_the_gateways_form_one_trace() {
    let (otlp, received) = collector().await;
    let setup = Setup::with_config(
        &format!("[telemetry]\notlp_endpoint = \"{otlp}\"\n{CONFIG}"),
        SPEC,
    );
    let dir = &setup.dir;
    let (mut gateway, url) = serve(dir.path()).await;
    let store = setup.store("journal.db");
    let out = command(dir.path())
        .args([
            "agent",
            "run",
            "agent.toml",
            TASK,
            "--gateway",
            &url,
            "--key",
            "sk-agent-test-key",
            "--store",
            &store,
            "--json",
        ])
        // The standard variable, as a deployment would set it.
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = events.last().unwrap();
    assert_eq!(summary["status"], "completed", "{stdout}");
    let run_id = summary["run_id"].as_str().unwrap();

    // The agent flushed before exiting: its spans are all here already.
    let agent_spans: Vec<Span> = spans(&received.lock().unwrap())
        .into_iter()
        .filter(|s| s.service == "crossbar-agent")
        .collect();
    assert_eq!(agent_spans.len(), 1 + 3 + 3, "{agent_spans:#?}");

    // The gateway sends the rest when it stops (SIGTERM drains and flushes).
    gateway.terminate();
    tokio::time::timeout(Duration::from_secs(20), gateway.wait())
        .await
        .unwrap();
    let all = spans(&received.lock().unwrap());

    let trace = crossbar_agent::run::trace_id(run_id);
    for span in &all {
        assert_eq!(span.raw["traceId"], trace.as_str(), "one trace: {span:#?}");
    }

    let runs: Vec<&Span> = all
        .iter()
        .filter(|s| s.name() == "invoke_agent gatherer")
        .collect();
    assert_eq!(runs.len(), 1);
    let run = runs[0];
    assert_eq!(run.service, "crossbar-agent");
    assert_eq!(run.id(), hex(&crossbar_agent::run::run_span_id(run_id)));
    assert_eq!(run.parent(), "", "the run span is the root");
    assert_eq!(run.text("gen_ai.operation.name"), "invoke_agent");
    assert_eq!(run.text("gen_ai.agent.name"), "gatherer");
    assert_eq!(run.text("crossbar.run.id"), run_id);
    assert_eq!(run.text("crossbar.run.status"), "completed");
    assert_eq!(run.int("crossbar.steps"), 3);
    assert!(!run.failed());

    // One chat span per model call, with the journal's usage, under the run span.
    let calls: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "model_call")
        .collect();
    assert_eq!(calls.len(), 3);
    let server: Vec<&Span> = all
        .iter()
        .filter(|s| s.service == "crossbar" && s.raw["kind"] == 2)
        .collect();
    assert_eq!(server.len(), 3, "one server span per model call");
    for call in &calls {
        let step = u32::try_from(call["step"].as_u64().unwrap()).unwrap();
        let id = hex(&crossbar_agent::run::step_span_id(run_id, step, 0));
        let span = all
            .iter()
            .find(|s| s.id() == id)
            .unwrap_or_else(|| panic!("no span for step {step}"));
        assert_eq!(span.service, "crossbar-agent");
        assert_eq!(span.name(), "chat smart");
        assert_eq!(span.raw["kind"], 3, "a client span");
        assert_eq!(span.parent(), run.id());
        assert_eq!(span.text("gen_ai.operation.name"), "chat");
        assert_eq!(span.text("gen_ai.request.model"), "smart");
        assert_eq!(span.text("crossbar.provider"), "sim-openai");
        assert_eq!(span.text("crossbar.agent.role"), "default");
        assert_eq!(span.int("crossbar.step"), u64::from(step));
        let input = call["usage"]["input_tokens"].as_u64().unwrap();
        let output = call["usage"]["output_tokens"].as_u64().unwrap();
        assert!(input > 0 && output > 0);
        assert_eq!(span.int("gen_ai.usage.input_tokens"), input);
        assert_eq!(span.int("gen_ai.usage.output_tokens"), output);
        let cost = span.attributes["crossbar.cost_usd"].as_f64().unwrap();
        assert!((cost - call["cost_usd"].as_f64().unwrap()).abs() < 1e-12);
        assert!(!span.failed());
        // The gateway continued the traceparent sent with this call: its server span is the
        // step span's child, and counts the same tokens.
        let children: Vec<&&Span> = server.iter().filter(|s| s.parent() == id).collect();
        assert_eq!(children.len(), 1, "step {step}: {server:#?}");
        assert_eq!(children[0].int("gen_ai.usage.input_tokens"), input);
        assert_eq!(children[0].int("gen_ai.usage.output_tokens"), output);
    }

    // One execute_tool span per tool call, under the run span, failed when the tool failed.
    let results: HashMap<&str, bool> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .map(|e| {
            (
                e["call_id"].as_str().unwrap(),
                e["is_error"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results.values().filter(|e| **e).count(), 1, "{results:?}");
    let tools: Vec<&Span> = all
        .iter()
        .filter(|s| s.name() == "execute_tool calculator")
        .collect();
    assert_eq!(tools.len(), 3);
    for tool in tools {
        assert_eq!(tool.parent(), run.id());
        assert_eq!(tool.text("gen_ai.operation.name"), "execute_tool");
        assert_eq!(tool.text("gen_ai.tool.name"), "calculator");
        let call_id = tool.text("gen_ai.tool.call.id");
        assert_eq!(tool.failed(), results[call_id], "{tool:#?}");
    }
}

/// In-process, the configuration's `telemetry.otlp_endpoint` is where the agent's spans go.
#[tokio::test]
async fn in_process_the_configurations_collector_gets_the_agents_spans() {
    let (otlp, received) = collector().await;
    let setup = Setup::with_config(
        &format!("[telemetry]\notlp_endpoint = \"{otlp}\"\n{CONFIG}"),
        SPEC,
    );
    let dir = &setup.dir;
    let store = setup.store("journal.db");
    let out = command(dir.path())
        .args([
            "agent",
            "run",
            "agent.toml",
            TASK,
            "--config",
            "crossbar.toml",
            "--store",
            &store,
            "--json",
        ])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let run_id = summary["run_id"].as_str().unwrap();
    let spans: Vec<Span> = spans(&received.lock().unwrap())
        .into_iter()
        .filter(|s| s.service == "crossbar-agent")
        .collect();
    let mut names: Vec<&str> = spans.iter().map(Span::name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "chat smart",
            "chat smart",
            "chat smart",
            "execute_tool calculator",
            "execute_tool calculator",
            "execute_tool calculator",
            "invoke_agent gatherer"
        ]
    );
    let trace = crossbar_agent::run::trace_id(run_id);
    assert!(spans.iter().all(|s| s.raw["traceId"] == trace.as_str()));
}
