//! Shadow traffic through the gateway: with a shadow share of 1.0 every request also reaches
//! the shadow's simulator, the client gets the primary's answer exactly, the shadow's figures
//! count every copy and its tokens beside the primary's, and a failing shadow never fails the
//! client.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

mod common;

use std::time::Duration;

use common::{start, user, weather_tools};
use crossbar_sim::SimConfig;
use serde_json::{Value, json};

/// `m` served by the OpenAI-dialect simulator `primary`; every request copied to model
/// `other`, served by the Anthropic-dialect simulator `shade` (so answers tell them apart).
const CONFIG: &str = r#"
[[providers]]
name = "primary"
kind = "sim"
dialect = "openai"

[[providers]]
name = "shade"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant-simulated"

[[models]]
name = "m"
deployments = [{ provider = "primary", target = "gpt-4o", price = { input = 2.5, output = 10.0 } }]

[[models]]
name = "other"
deployments = [{ provider = "shade", target = "claude-sonnet-4", price = { input = 3.0, output = 15.0 } }]

[routes.m]
shadow = { model = "other", share = 1.0 }
"#;

async fn figures(gw: &common::TestGateway) -> Value {
    let body: Value = gw.get("/v1/crossbar/shadow").await.json().await.unwrap();
    assert_eq!(body["object"], "list");
    body["data"][0].clone()
}

/// Waits until the shadow answered `n` copies.
async fn answered(gw: &common::TestGateway, n: u64) -> Value {
    for _ in 0..200 {
        let pair = figures(gw).await;
        if pair["shadow_figures"]["requests"] == n && pair["in_flight"] == 0 {
            return pair;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the shadow did not answer {n} copies: {}",
        figures(gw).await
    );
}

#[tokio::test]
async fn every_request_is_copied_to_the_shadow_and_only_the_primary_answers() {
    let gw = start(CONFIG).await;
    let n = 12;
    for i in 0..n {
        let mut body =
            json!({"model": "m", "messages": [user(&format!("What is the weather in city {i}?"))]});
        if i % 3 == 0 {
            body["tools"] = weather_tools();
        }
        let response = gw.post("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-crossbar-deployment"], "m@primary");
        let answer: Value = response.json().await.unwrap();
        // Exactly what the primary's simulator said (its id and message), never the shadow's.
        let sent = gw.requests("primary");
        let said: Value = serde_json::from_slice(sent[i].response.as_deref().unwrap()).unwrap();
        assert_eq!(answer["id"], said["id"]);
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            said["choices"][0]["message"]["content"]
        );
        assert_eq!(
            answer["choices"][0]["message"]["tool_calls"],
            said["choices"][0]["message"]["tool_calls"]
        );
    }
    let pair = answered(&gw, n as u64).await;
    assert_eq!(gw.requests("shade").len(), n);
    assert_eq!(pair["route"], "m");
    assert_eq!(pair["primary"], "m@primary");
    assert_eq!(pair["shadow"], "other@shade");
    assert_eq!(pair["dropped"], 0);
    // The shadow's tokens are what its simulator reported.
    let (mut input, mut output) = (0, 0);
    for request in gw.requests("shade") {
        let said: Value = serde_json::from_slice(request.response.as_deref().unwrap()).unwrap();
        input += said["usage"]["input_tokens"]
            .as_u64()
            .unwrap_or_else(|| panic!("{said}"));
        output += said["usage"]["output_tokens"].as_u64().unwrap();
    }
    let shadow = &pair["shadow_figures"];
    assert_eq!(shadow["requests"], n as u64);
    assert_eq!(shadow["errors"], 0);
    assert_eq!(
        (
            shadow["input_tokens"].as_u64().unwrap(),
            shadow["output_tokens"].as_u64().unwrap()
        ),
        (input, output)
    );
    assert!(input > 0 && output > 0);
    let primary = &pair["primary_figures"];
    assert_eq!(primary["requests"], n as u64);
    assert_eq!(primary["tool_calls"], shadow["tool_calls"], "{pair}");
    assert!(primary["tool_calls"].as_u64().unwrap() >= 4, "{pair}");
    assert_eq!(shadow["tool_calls_invalid_json"], 0);
    assert!(shadow["cost_usd"].as_f64().unwrap() > 0.0);
    eprintln!("shadow figures after {n} requests: {pair}");

    // A shadow failing every call: the client never notices, the shadow's errors are counted.
    gw.sim("shade").set_config(SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    });
    for i in 0..4 {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [user(&format!("again {i}"))]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let pair = answered(&gw, n as u64 + 4).await;
    assert_eq!(pair["shadow_figures"]["errors"], 4);
    assert_eq!(pair["primary_figures"]["errors"], 0);
    assert_eq!(pair["primary_figures"]["requests"], n as u64 + 4);

    // Streams are copied too, once the primary's stream ended.
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "m", "stream": true, "messages": [user("stream it")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    answered(&gw, n as u64 + 5).await;

    // And in /metrics, when metrics are on.
    let metrics = gw.get("/metrics").await;
    if metrics.status() == 200 {
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains("crossbar_shadow_requests{route=\"m\",primary=\"m@primary\",shadow=\"other@shade\",side=\"shadow\"} 17"),
            "{}",
            text.lines().filter(|l| l.contains("shadow")).collect::<Vec<_>>().join("\n")
        );
    }
}

/// Each copy's answer is a usage record flagged `api = "shadow"`: the shadow's deployment,
/// tokens and cost, no key; a failed copy's record carries its error.
#[tokio::test]
async fn shadow_answers_are_recorded_with_the_flag() {
    let store = common::temp_db("shadow");
    let gw = start(&format!(
        "{CONFIG}\n[store]\nurl = \"{}\"\n",
        store.display()
    ))
    .await;
    for i in 0..5 {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [user(&format!("record {i}"))]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    answered(&gw, 5).await;
    gw.sim("shade").set_config(SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    });
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "m", "messages": [user("one more")]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    answered(&gw, 6).await;
    let records = common::usage_records(&gw, 12).await;
    let (shadow, client): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.api == "shadow");
    assert_eq!((shadow.len(), client.len()), (6, 6));
    assert!(
        client
            .iter()
            .all(|r| r.api == "chat" && r.deployment.as_deref() == Some("m@primary"))
    );
    for record in &shadow {
        assert_eq!(record.deployment.as_deref(), Some("other@shade"));
        assert_eq!(record.model, "other");
        assert_eq!(record.route.as_deref(), Some("m"));
        assert_eq!(record.key_id, None);
    }
    let answered_ok: Vec<_> = shadow.iter().filter(|r| r.status == 200).collect();
    assert_eq!(answered_ok.len(), 5);
    assert!(
        answered_ok
            .iter()
            .all(|r| r.input_tokens > 0 && r.output_tokens > 0 && r.cost_pusd > 0)
    );
    let failed: Vec<_> = shadow.iter().filter(|r| r.status != 200).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].error.is_some());
    assert_eq!(failed[0].cost_pusd, 0);
    let _ = std::fs::remove_file(store);
}
