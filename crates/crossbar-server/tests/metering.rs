//! Black-box metering: every API request through the real gateway yields one usage record in
//! the store, with its deployment, attempts, tokens and exact cost; `/metrics` counts them.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::time::Duration;

use common::{TestGateway, sse_data, start, user};
use serde_json::{Value, json};

/// A fresh SQLite file per gateway.
fn store_section() -> String {
    let path = common::temp_db("metering");
    format!("[store]\nurl = \"{}\"\n", path.display())
}

/// Prices chosen so every token kind has a distinct rate: $2.50 in, $10 out per million.
const PROVIDERS: &str = concat!(
    crossbar_testkit::sim_openai!(),
    crossbar_testkit::sim_azure!(),
    crossbar_testkit::broken_openai!(),
    r#"
[[providers]]
name = "cutting"
kind = "sim"
dialect = "openai"
cloud = "gcp"
region = "europe-west4"
sim = { stream_error_after_chunks = 2 }

[[providers]]
name = "slow"
kind = "sim"
dialect = "openai"
sim = { ttft_ms = 300 }

[[models]]
name = "slow"
deployments = [{ provider = "slow", target = "gpt-4o", price = { input = 2.5, output = 10.0 } }]

[[models]]
name = "chat"
deployments = [
  { provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0, cached_input = 1.25 } },
]

[[models]]
name = "failover"
deployments = [
  { provider = "broken", target = "gpt-4o", price = { input = 1.0, output = 1.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 3.0, output = 12.0 } },
]

[[models]]
name = "down"
deployments = [{ provider = "broken", target = "gpt-4o", price = { input = 1.0, output = 1.0 } }]

[[models]]
name = "cut"
deployments = [{ provider = "cutting", target = "gpt-4o", price = { input = 2.5, output = 10.0 } }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-openai", target = "text-embedding-3-small", price = { input = 0.02 } }]
"#
);

async fn gateway() -> TestGateway {
    start(&format!("{}{PROVIDERS}", store_section())).await
}

/// Sends `text` to `model`, which must answer: the request id and the prompt and completion
/// tokens of the answer.
async fn answered(gw: &TestGateway, model: &str, text: &str) -> (String, u64, u64) {
    let response = common::chat(gw, model, text).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let (prompt, completion) = common::chat_tokens(&body);
    (request_id, prompt, completion)
}

/// Picodollars for `tokens` at `usd_per_million`, computed here independently.
fn pico(tokens: u64, usd_per_million: u64) -> u64 {
    tokens * usd_per_million * 1_000_000
}

#[tokio::test]
async fn a_chat_call_is_recorded_with_its_deployment_tokens_and_exact_cost() {
    let gw = gateway().await;
    let (request_id, prompt, completion) = answered(&gw, "chat", "Tell me about otters").await;
    assert!(prompt > 0 && completion > 0);

    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(record.request_id, request_id);
    assert_eq!(record.api, "chat");
    assert_eq!(record.model, "chat");
    assert_eq!(record.route.as_deref(), Some("default"));
    assert_eq!(record.deployment.as_deref(), Some("chat@sim-openai"));
    assert_eq!(record.provider.as_deref(), Some("sim-openai"));
    assert_eq!(record.cloud.as_deref(), Some("openai"));
    assert_eq!(record.region.as_deref(), Some("us"));
    assert_eq!(record.status, 200);
    assert!(!record.stream);
    assert_eq!(record.key_id, None);
    assert_eq!(record.input_tokens, prompt);
    assert_eq!(record.output_tokens, completion);
    // $2.50 per million in, $10 out: 2,500,000 and 10,000,000 picodollars per token.
    let cost = prompt * 2_500_000 + completion * 10_000_000;
    assert_eq!(record.cost_pusd, cost);
    assert_eq!(
        record.cost_pusd,
        pico(prompt, 2) + prompt * 500_000 + pico(completion, 10)
    );
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, "ok");
    assert_eq!(record.attempts[0].cost_pusd, cost);
    assert!(record.ttft_ms.is_some_and(|t| t <= record.latency_ms));
    assert!(record.overhead_ms <= record.latency_ms);
}

#[tokio::test]
async fn a_stream_is_recorded_with_the_usage_that_arrived_inside_it() {
    let gw = gateway().await;
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
                    "messages": [user("Stream about rivers")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    let usage = frames
        .iter()
        .filter(|f| f.as_str() != "[DONE]")
        .map(|f| serde_json::from_str::<Value>(f).unwrap())
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk")["usage"]
        .clone();
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    let completion = usage["completion_tokens"].as_u64().unwrap();

    let record = common::usage_records(&gw, 1).await.remove(0);
    assert!(record.stream);
    assert_eq!(record.status, 200);
    assert_eq!(record.error, None, "the stream ended normally");
    assert_eq!(record.input_tokens, prompt);
    assert_eq!(record.output_tokens, completion);
    assert_eq!(
        record.cost_pusd,
        prompt * 2_500_000 + completion * 10_000_000
    );
    assert!(record.ttft_ms.is_some());

    // A client that did not ask for usage is metered all the same.
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "stream": true, "messages": [user("Stream about rivers")]}),
        )
        .await;
    let (frames, _) = sse_data(response).await;
    assert!(
        frames.iter().all(|f| !f.contains("\"usage\":{")),
        "not sent to the client"
    );
    let quiet = common::usage_records(&gw, 2).await.remove(1);
    assert_eq!(
        (quiet.input_tokens, quiet.output_tokens),
        (prompt, completion)
    );
    assert_eq!(quiet.cost_pusd, record.cost_pusd);
}

#[tokio::test]
async fn failover_records_every_attempt_and_bills_only_the_answer() {
    let gw = gateway().await;
    let response = common::chat(&gw, "failover", "hello").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let (prompt, completion) = common::chat_tokens(&body);

    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(record.deployment.as_deref(), Some("failover@sim-azure"));
    assert_eq!(record.cloud.as_deref(), Some("azure"));
    let outcomes: Vec<_> = record
        .attempts
        .iter()
        .map(|a| (a.deployment.as_str(), a.outcome.as_str(), a.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("failover@broken", "error", Some(503)),
            ("failover@sim-azure", "ok", None),
        ]
    );
    assert!(record.attempts[0].reason.is_some());
    assert_eq!(record.attempts[0].cost_pusd, 0);
    // Billed at the answering deployment's $3 / $12, not the first one's.
    assert_eq!(record.cost_pusd, pico(prompt, 3) + pico(completion, 12));
}

#[tokio::test]
async fn a_stream_broken_midway_is_recorded_with_its_error() {
    let gw = gateway().await;
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "cut", "stream": true, "messages": [user("a long story please")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await;
    let record = common::usage_records(&gw, 1).await.remove(0);
    assert!(record.stream);
    assert_eq!(record.deployment.as_deref(), Some("cut@cutting"));
    assert!(record.error.is_some(), "{record:?}");
}

#[tokio::test]
async fn embeddings_and_failures_are_recorded_too() {
    let gw = gateway().await;
    let response = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": ["one two three", "four"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    let missing = common::chat(&gw, "no-such-model", "x").await;
    assert_eq!(missing.status(), 404);
    let _ = missing.text().await;

    let mut found = common::usage_records(&gw, 2).await;
    found.sort_by_key(|r| r.status);
    let (embed, failed) = (&found[0], &found[1]);
    assert_eq!(embed.api, "embeddings");
    assert_eq!(embed.input_tokens, tokens);
    // $0.02 per million: 20,000 picodollars a token.
    assert_eq!(embed.cost_pusd, tokens * 20_000);
    assert_eq!(failed.status, 404);
    assert_eq!(failed.model, "no-such-model");
    assert_eq!(failed.deployment, None);
    assert_eq!(failed.cost_pusd, 0);
}

#[tokio::test]
async fn the_messages_api_is_recorded_as_messages() {
    let gw = gateway().await;
    let response = gw
        .post(
            "/v1/messages",
            &json!({"model": "chat", "max_tokens": 50, "messages": [user("hi there")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let record = common::usage_records(&gw, 1).await.remove(0);
    assert_eq!(record.api, "messages");
    assert_eq!(record.deployment.as_deref(), Some("chat@sim-openai"));
    assert_eq!(
        record.output_tokens,
        body["usage"]["output_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn shutdown_flushes_every_queued_record() {
    let mut gw = gateway().await;
    for i in 0..12 {
        let response = common::chat(&gw, "chat", &format!("message {i}")).await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
    }
    gw.shutdown();
    (&mut gw.task).await.unwrap().unwrap();
    gw.gateway.flush().await;
    let store = gw.gateway.store.clone().unwrap();
    assert_eq!(store.usage_since(0, 100).await.unwrap().len(), 12);
}

#[tokio::test]
async fn metrics_count_requests_tokens_cost_and_the_store_queue() {
    let gw = gateway().await;
    let response = common::chat(&gw, "chat", "count me").await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    // A made-up model name must not become a label value.
    let unknown = common::chat(&gw, "made-up-model-123", "x").await;
    assert_eq!(unknown.status(), 404);
    let _ = unknown.bytes().await;
    common::usage_records(&gw, 2).await;
    let metrics = gw.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for expected in [
        "crossbar_requests_total{",
        "model=\"chat\"",
        "deployment=\"chat@sim-openai\"",
        "crossbar_request_duration_seconds_bucket{",
        "crossbar_ttft_seconds_bucket{",
        "crossbar_gateway_overhead_seconds_bucket{",
        "crossbar_tokens_total{",
        "crossbar_cost_picousd_total{",
        "crossbar_attempts_total{",
        "crossbar_breaker_state{deployment=\"failover@broken\"}",
        "crossbar_store_queue_depth",
        "crossbar_store_dropped_total",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(!text.contains("made-up-model-123"), "{text}");
    assert!(text.contains("model=\"other\""), "{text}");
}

/// The same path on PostgreSQL, when the test script started one (records are told apart by
/// request id, as the database is shared with other runs).
#[tokio::test]
async fn the_gateway_records_to_postgresql_when_configured() {
    let Ok(url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
        eprintln!("CROSSBAR_TEST_POSTGRES_URL not set: skipping the PostgreSQL run");
        return;
    };
    let gw = start(&format!("[store]\nurl = \"{url}\"\n{PROVIDERS}")).await;
    let (request_id, prompt, completion) = answered(&gw, "failover", "to postgres").await;
    let store = gw.gateway.store.clone().unwrap();
    assert_eq!(store.backend(), "postgres");
    let mut mine = Vec::new();
    for _ in 0..400 {
        mine = store.usage_since(0, 100_000).await.unwrap();
        mine.retain(|r| r.request_id == request_id);
        if !mine.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].attempts.len(), 2);
    assert_eq!(mine[0].cost_pusd, pico(prompt, 3) + pico(completion, 12));
}

/// Prompt caching end to end: the simulated Anthropic provider writes a cache on the first call
/// (a breakpoint on a long prompt) and reads it on the second; each kind of token is billed at
/// its own price: $3 in, $3.75 cache write, $0.30 cache read, $15 out per million.
#[tokio::test]
async fn prompt_cache_writes_and_reads_are_billed_at_their_own_prices() {
    let config = format!(
        "{}{}",
        store_section(),
        r#"
[[providers]]
name = "sim-anthropic"
kind = "sim"
dialect = "anthropic"
cloud = "anthropic"
region = "global"
api_key = "sk-ant-simulated"

[[models]]
name = "claude"
deployments = [
  { provider = "sim-anthropic", target = "claude-sonnet-4-5", price = { input = 3.0, output = 15.0, cached_input = 0.30, cache_write = 3.75 } },
]
"#
    );
    let gw = start(&config).await;
    let long = "The river runs past the old mill and under the stone bridge. ".repeat(150);
    let request = json!({
        "model": "claude", "max_tokens": 50,
        "system": [{"type": "text", "text": long, "cache_control": {"type": "ephemeral"}}],
        "messages": [user("Where does the river run?")],
    });
    let mut usages = Vec::new();
    for _ in 0..2 {
        let response = gw.post("/v1/messages", &request).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        usages.push(body["usage"].clone());
    }
    let found = common::usage_records(&gw, 2).await;
    let n = |u: &Value, field: &str| u[field].as_u64().unwrap_or(0);
    let written = n(&usages[0], "cache_creation_input_tokens");
    let read = n(&usages[1], "cache_read_input_tokens");
    assert!(
        written >= 1024,
        "the first call wrote the cache: {}",
        usages[0]
    );
    assert!(read > 0, "the second call read it: {}", usages[1]);
    for (record, usage) in found.iter().zip(&usages) {
        let fresh = n(usage, "input_tokens");
        let write = n(usage, "cache_creation_input_tokens");
        let cached = n(usage, "cache_read_input_tokens");
        let output = n(usage, "output_tokens");
        assert_eq!(record.input_tokens, fresh + write + cached);
        assert_eq!(record.cache_write_tokens, write);
        assert_eq!(record.cached_input_tokens, cached);
        assert_eq!(
            record.cost_pusd,
            fresh * 3_000_000 + write * 3_750_000 + cached * 300_000 + output * 15_000_000
        );
    }
}

/// Traces: with `telemetry.otlp_endpoint` set, each request becomes a server span continuing
/// the client's `traceparent`, with one client span per attempt, sent as OTLP/HTTP JSON to an
/// in-process collector.
#[tokio::test]
async fn traces_reach_the_collector_with_genai_attributes_and_the_clients_trace() {
    let (endpoint, received) = crossbar_testkit::otlp::collector().await;

    let config = format!(
        "{}[telemetry]\notlp_endpoint = \"{endpoint}\"\n{PROVIDERS}",
        store_section()
    );
    let gw = start(&config).await;
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({"model": "failover", "messages": [user("trace me")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    common::usage_records(&gw, 1).await;
    gw.gateway.flush().await;

    let batches = received.lock().unwrap().clone();
    assert_eq!(
        batches[0]["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "crossbar"
    );
    let spans: Vec<Value> = batches
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let attrs = |span: &Value| -> std::collections::HashMap<String, Value> {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let value = a["value"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .clone();
                (a["key"].as_str().unwrap().to_owned(), value)
            })
            .collect()
    };
    let server: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    assert_eq!(server.len(), 1);
    let request = server[0];
    assert_eq!(request["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(request["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(request["name"], "chat failover");
    let a = attrs(request);
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.system"], "crossbar.sim");
    assert_eq!(a["gen_ai.request.model"], "failover");
    assert_eq!(a["gen_ai.response.model"], "gpt4o-prod");
    assert_eq!(
        a["gen_ai.usage.input_tokens"],
        body["usage"]["prompt_tokens"].as_u64().unwrap().to_string()
    );
    assert_eq!(a["crossbar.deployment"], "failover@sim-azure");
    let attempts: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt["traceId"], request["traceId"]);
        assert_eq!(attempt["parentSpanId"], request["spanId"]);
    }
    let outcomes: Vec<Value> = attempts
        .iter()
        .map(|s| attrs(s)["crossbar.outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("error"), json!("ok")]);
    assert_eq!(attempts[0]["status"]["code"], 2);
    assert_eq!(attrs(attempts[0])["error.type"], "503");
}

#[tokio::test]
async fn answers_say_what_the_gateway_added_without_the_upstreams_time() {
    let gw = gateway().await;
    for stream in [false, true] {
        let started = std::time::Instant::now();
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "slow", "stream": stream, "messages": [user("hi")]}),
            )
            .await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200);
        let overhead: f64 = response.headers()["x-crossbar-overhead-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The upstream took 300 ms of the whole; the header counts only the rest.
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(
            (0.0..100.0).contains(&overhead),
            "stream={stream}: overhead {overhead} ms of {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_request_whose_every_attempt_failed_is_recorded_with_them() {
    let gw = gateway().await;
    for stream in [false, true] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "down", "stream": stream, "messages": [user("hello")]}),
            )
            .await;
        assert_eq!(response.status(), 503);
    }
    let records = common::usage_records(&gw, 2).await;
    for record in &records {
        assert_eq!(record.status, 503);
        assert_eq!(record.cost_pusd, 0);
        assert!(!record.attempts.is_empty(), "{record:?}");
        for attempt in &record.attempts {
            assert_eq!(
                (
                    attempt.deployment.as_str(),
                    attempt.outcome.as_str(),
                    attempt.status
                ),
                ("down@broken", "error", Some(503))
            );
            assert!(attempt.reason.is_some());
        }
    }
}
