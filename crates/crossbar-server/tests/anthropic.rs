//! The Anthropic Messages API as ingress (error shapes, count_tokens) and Anthropic as an
//! upstream for OpenAI clients that use extended thinking with tools.

mod common;

use common::{sse_data, start, user, weather_tools};
use serde_json::{Value, json};

const CONFIG: &str = concat!(
    common::claude_behind_key!(),
    r#"
[[models]]
name = "claude"
deployments = [{ provider = "anthropic", target = "claude-sonnet-4-20250514" }]
"#
);

#[expect(clippy::unwrap_used, reason = "test helper")]
async fn messages(gw: &common::TestGateway, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn is_anthropic_error(body: &Value, kind: &str) -> bool {
    body["type"] == "error" && body["error"]["type"] == kind && body["error"]["message"].is_string()
}

#[tokio::test]
async fn messages_errors_are_anthropic_shaped() {
    let gw = start(CONFIG).await;
    let hello = json!({"model": "claude", "max_tokens": 10, "messages": [user("hi")]});
    let (status, body) = messages(&gw, None, &hello).await;
    assert!(
        status == 401 && is_anthropic_error(&body, "authentication_error"),
        "{body}"
    );
    let (status, body) = messages(
        &gw,
        Some("sk-gw"),
        &json!({"model": "nope", "max_tokens": 10, "messages": [user("hi")]}),
    )
    .await;
    assert!(
        status == 404 && is_anthropic_error(&body, "not_found_error"),
        "{body}"
    );
    let (status, body) = messages(
        &gw,
        Some("sk-gw"),
        &json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    assert!(
        status == 400 && is_anthropic_error(&body, "invalid_request_error"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    let (status, body) = messages(&gw, Some("sk-gw"), &hello).await;
    assert_eq!(status, 200, "{body}");
}

/// `count_tokens` answers the prompt estimate a budget reserves for the same request (on a
/// fresh gateway: answers calibrate the estimate), and a model nobody serves is a 404.
#[tokio::test]
async fn count_tokens_is_the_estimate_budgets_reserve() {
    let gw = start(CONFIG).await;
    let counted = gw
        .client()
        .post(format!("{}/v1/messages/count_tokens", gw.url))
        .header("x-api-key", "sk-gw")
        .json(&json!({"model": "claude", "messages": [user("count these words for me please")]}))
        .send()
        .await
        .unwrap();
    let counted: Value = counted.json().await.unwrap();
    // Exactly the prompt estimate a budget reserves for the same request.
    let request = crossbar_core::dialects::anthropic::decode_count_tokens(
        json!({"model": "claude", "messages": [user("count these words for me please")]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let expected = crossbar_core::router::Prompt::of_chat(&request)
        .tokens(crossbar_core::router::Tokenizer::Approximate)
        .ceil() as u64;
    assert_eq!(counted, json!({"input_tokens": expected}));
    // A model nobody serves is Anthropic's 404, as on /v1/messages.
    let missing = gw
        .client()
        .post(format!("{}/v1/messages/count_tokens", gw.url))
        .header("x-api-key", "sk-gw")
        .json(&json!({"model": "nope", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(is_anthropic_error(&body, "not_found_error"), "{body}");
}

/// With thinking on, Anthropic wants its signed thinking back before a tool_use in history;
/// OpenAI clients cannot carry it, so the gateway remembers it by tool-call id.
#[tokio::test]
async fn openai_clients_can_continue_thinking_with_tools_on_anthropic() {
    let gw = start(CONFIG).await;
    for stream in [false, true] {
        let first = json!({"model": "claude", "messages": [user("Use get_weather for Lima")], "tools": weather_tools(),
            "reasoning_effort": "low", "parallel_tool_calls": false, "stream": stream});
        let response = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-gw")
            .json(&first)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let call = if stream {
            let (frames, _) = sse_data(response).await;
            let chunks: Vec<Value> = frames
                .iter()
                .filter(|f| *f != "[DONE]")
                .map(|f| serde_json::from_str(f).unwrap())
                .collect();
            let mut call =
                json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}});
            for fragment in chunks
                .iter()
                .filter_map(|c| c["choices"].get(0)?["delta"]["tool_calls"].get(0))
            {
                if let Some(id) = fragment["id"].as_str() {
                    call["id"] = json!(id);
                    call["function"]["name"] = fragment["function"]["name"].clone();
                }
                let args = call["function"]["arguments"].as_str().unwrap().to_owned()
                    + fragment["function"]["arguments"].as_str().unwrap_or("");
                call["function"]["arguments"] = json!(args);
            }
            call
        } else {
            let body: Value = response.json().await.unwrap();
            body["choices"][0]["message"]["tool_calls"][0].clone()
        };
        let id = call["id"].as_str().unwrap().to_owned();
        let follow_up = |id: &str| {
            let mut call = call.clone();
            call["id"] = json!(id);
            json!({"model": "claude", "reasoning_effort": "low", "tools": weather_tools(), "messages": [
                user("Use get_weather for Lima"),
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "LIMA-19C"}]})
        };
        let response = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-gw")
            .json(&follow_up(&id))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "stream={stream}: {}",
            response.text().await.unwrap()
        );
        // A call the gateway never saw has no thinking to give back: Anthropic's own 400 says so.
        let response = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-gw")
            .json(&follow_up("toolu_unknown"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("thinking"),
            "{body}"
        );
    }
}

/// Claude ranks first, an OpenAI deployment second; `claude-only` has no other deployment.
const MIXED: &str = concat!(
    common::claude_and_openai!(),
    r#"
[[models]]
name = "mixed"
deployments = [
  { provider = "anthropic", target = "claude-sonnet-4-20250514" },
  { provider = "openai", target = "gpt-4o-2024-08-06" },
]

[[models]]
name = "claude-only"
deployments = [{ provider = "anthropic", target = "claude-sonnet-4-20250514" }]

[routes.default]
objective = "order"
"#
);

#[expect(clippy::unwrap_used, reason = "test helper")]
async fn chat(gw: &common::TestGateway, body: &Value) -> reqwest::Response {
    gw.client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("sk-gw")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A temperature Claude cannot take fails over to a deployment that can, without reaching
/// Claude; with no such deployment the client gets a 400 naming the field.
#[tokio::test]
async fn temperature_above_one_fails_over_from_claude() {
    let gw = start(MIXED).await;
    let hot = json!({"model": "mixed", "messages": [user("hi")], "temperature": 1.5});
    let response = chat(&gw, &hot).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-crossbar-provider"].to_str().unwrap(),
        "openai"
    );
    assert_eq!(gw.sim("anthropic").requests().len(), 0);
    assert_eq!(gw.sim("openai").requests().len(), 1);
    assert_eq!(
        gw.sim("openai").requests()[0].body.as_ref().unwrap()["temperature"],
        json!(1.5)
    );
    // A temperature Claude takes stays on Claude.
    let warm = json!({"model": "mixed", "messages": [user("hi")], "temperature": 0.7});
    let response = chat(&gw, &warm).await;
    assert_eq!(
        response.headers()["x-crossbar-provider"].to_str().unwrap(),
        "anthropic"
    );

    let only = json!({"model": "claude-only", "messages": [user("hi")], "temperature": 1.5});
    let response = chat(&gw, &only).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "temperature", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(
        body["error"]["message"],
        "Invalid 'temperature': 1.5. Claude accepts a temperature between 0 and 1.",
        "{body}"
    );
    assert_eq!(gw.sim("anthropic").requests().len(), 1, "only the 0.7 call");
}

/// Thinking with a forced tool choice, from an Anthropic client with only Claude behind the
/// model: the gateway's own 400 in Anthropic's shape, and Claude is never called.
#[tokio::test]
async fn thinking_with_a_forced_tool_is_refused_before_claude() {
    let gw = start(MIXED).await;
    let body = json!({"model": "claude-only", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [user("weather in Lima?")]});
    let (status, answer) = messages(&gw, Some("sk-gw"), &body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        is_anthropic_error(&answer, "invalid_request_error"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["message"],
        "Claude cannot think while `tool_choice` forces a tool call: with reasoning on, use a tool_choice of `auto` or `none`, or turn reasoning off.",
    );
    assert_eq!(gw.sim("anthropic").requests().len(), 0);
}

/// anthropic (Python) 2.16 sends its key as a bearer token with `anthropic-version: 2026-10-21`.
#[tokio::test]
async fn the_newest_sdks_bearer_key_and_version_are_accepted() {
    let gw = start(CONFIG).await;
    let response = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("authorization", "Bearer sk-gw")
        .header("anthropic-version", "2026-10-21")
        .json(&json!({"model": "claude", "max_tokens": 10, "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message", "{body}");
}
