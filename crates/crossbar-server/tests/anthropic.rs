//! The Anthropic Messages API as ingress (error shapes, count_tokens) and Anthropic as an
//! upstream for OpenAI clients that use extended thinking with tools.

mod common;

use common::{sse_data, start, user, weather_tools};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[server]
api_keys = ["sk-gw"]

[[providers]]
name = "anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[models]]
name = "claude"
deployments = [{ provider = "anthropic", target = "claude-sonnet-4-20250514" }]
"#;

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
    let counted = gw
        .client()
        .post(format!("{}/v1/messages/count_tokens", gw.url))
        .header("x-api-key", "sk-gw")
        .json(&json!({"model": "claude", "messages": [user("count these words for me please")]}))
        .send()
        .await
        .unwrap();
    let counted: Value = counted.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
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
