//! Claude in Microsoft Foundry (`kind = "foundry-anthropic"`): the Messages API under the
//! resource's `/anthropic`, keyed with the resource's key as `x-api-key`, serving Chat
//! Completions and Messages clients. A Messages client's betas and extra fields stay with the
//! gateway there (only Anthropic's own API takes them).

mod common;

use common::{start, user};
use crossbar_testkit::http::json_of;
use serde_json::json;

const CONFIG: &str = r#"
[[providers]]
name = "foundry-eastus2"
kind = "sim"
dialect = "foundry-anthropic"
cloud = "azure"
region = "eastus2"
api_key = "foundry-resource-key"

[[models]]
name = "claude"
deployments = [{ provider = "foundry-eastus2", target = "claude-opus-4-7" }]
"#;

#[tokio::test]
async fn foundry_serves_claude_to_chat_and_messages_clients() {
    let gw = start(CONFIG).await;
    let chat = json_of(
        gw.client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(
                &json!({"model": "claude", "messages": [user("Hello Foundry")],
                      "reasoning_effort": "low"}),
            ),
    )
    .await;
    assert_eq!(chat["model"], "claude-opus-4-7", "{chat}");
    assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
    let messages = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .json(
            &json!({"model": "claude", "max_tokens": 200, "messages": [user("Hi")],
                      "thinking": {"type": "adaptive", "display": "omitted"},
                      "output_config": {"effort": "high"},
                      "context_management": {"edits": [{"type": "clear_thinking_20251015"}]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 200);
    let requests = gw.sim("foundry-eastus2").requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.path, "/anthropic/v1/messages");
        assert_eq!(request.header("x-api-key"), Some("foundry-resource-key"));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("anthropic-beta"), None);
    }
    // Opus 4.7 thinks only adaptively: an OpenAI client's effort arrives as one.
    let first = requests[0].body.as_ref().unwrap();
    assert_eq!(first["model"], "claude-opus-4-7");
    assert_eq!(first["thinking"], json!({"type": "adaptive"}));
    assert_eq!(first["output_config"], json!({"effort": "low"}));
    let second = requests[1].body.as_ref().unwrap();
    assert_eq!(second["thinking"], json!({"type": "adaptive"}));
    assert_eq!(second["output_config"], json!({"effort": "high"}));
    assert!(second.get("context_management").is_none(), "{second}");
}
