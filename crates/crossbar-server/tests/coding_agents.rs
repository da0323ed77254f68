//! Coding agents through the gateway: requests shaped exactly as Claude Code 2.1 sends them
//! (`/v1/messages?beta=true`, adaptive thinking, `output_config.effort`, `context_management`,
//! `anthropic-beta`), served by Claude and by GPT. Before the Messages ingress knew these
//! fields, each was a 400 `invalid_request_error`.

mod common;

use common::{sse_data, start};
use serde_json::{Value, json};

const CONFIG: &str = concat!(
    common::claude_and_openai!(),
    r#"api_key = "sk-oai"
# As OpenAI itself: gpt-5 refuses `max_tokens`.
max_tokens_field = "max_completion_tokens"

[[models]]
name = "claude-opus-5-5"
deployments = [{ provider = "anthropic", target = "claude-opus-5-5" }]

[[models]]
name = "gpt-5"
deployments = [{ provider = "openai", target = "gpt-5" }]
"#
);

/// The betas Claude Code 2.1 lists in `anthropic-beta`.
const BETAS: &str = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,context-management-2025-06-27,prompt-caching-scope-2026-01-05,effort-2025-11-24,advanced-tool-use-2025-11-20";

/// A Claude Code 2.1 request body, trimmed to three of its tools.
fn claude_code_body(model: &str) -> Value {
    let tool = |name: &str, description: &str, property: &str| {
        json!({
            "name": name,
            "description": description,
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {property: {"type": "string"}},
                "required": [property],
                "additionalProperties": false,
            },
        })
    };
    json!({
        "model": model,
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Working directory: /tmp/project", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}},
        ]}],
        "tools": [
            tool("Bash", "Executes a bash command", "command"),
            tool("Read", "Reads a file from the local filesystem", "file_path"),
            tool("Glob", "Finds files by pattern", "pattern"),
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_1f2e_account_9a8b_session_42"},
    })
}

/// Posts as Claude Code does and returns the status and the stream's event types.
#[expect(clippy::unwrap_used, reason = "test helper")]
async fn post_as_claude_code(gw: &common::TestGateway, model: &str) -> (u16, Vec<String>) {
    let response = gw
        .client()
        .post(format!("{}/v1/messages?beta=true", gw.url))
        .header("x-api-key", "sk-gw")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETAS)
        .json(&claude_code_body(model))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return (status, vec![response.text().await.unwrap()]);
    }
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    let types = frames
        .iter()
        .map(|frame| {
            let event: Value = serde_json::from_str(frame).unwrap();
            event["type"].as_str().unwrap().to_owned()
        })
        .collect();
    (status, types)
}

/// A well-formed Messages stream: `message_start`, content, `message_delta`, `message_stop`.
fn assert_well_formed(types: &[String]) {
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    assert_eq!(types.last().map(String::as_str), Some("message_stop"));
    assert!(
        types.iter().any(|t| t == "content_block_delta"),
        "{types:?}"
    );
    assert!(types.iter().any(|t| t == "message_delta"), "{types:?}");
    assert!(!types.iter().any(|t| t == "error"), "{types:?}");
}

/// Claude on Anthropic's own API serves it as sent: Claude Opus 5.5 thinks only adaptively, so
/// the client's `thinking` and `output_config` go through unchanged, as do `context_management`
/// and the `anthropic-beta` header; the user id stays `metadata.user_id`.
#[tokio::test]
async fn claude_code_request_is_served_by_claude() {
    let gw = start(CONFIG).await;
    let (status, types) = post_as_claude_code(&gw, "claude-opus-5-5").await;
    assert_eq!(status, 200, "{types:?}");
    assert_well_formed(&types);
    let requests = gw.sim("anthropic").requests();
    assert_eq!(requests.len(), 1);
    let upstream = &requests[0];
    assert_eq!(upstream.path, "/v1/messages");
    assert_eq!(upstream.query, None);
    assert_eq!(upstream.header("anthropic-beta"), Some(BETAS));
    let body = upstream.body.as_ref().unwrap();
    assert_eq!(body["model"], "claude-opus-5-5");
    assert_eq!(
        body["thinking"],
        json!({"type": "adaptive", "display": "omitted"})
    );
    assert_eq!(body["output_config"], json!({"effort": "medium"}));
    assert_eq!(body["max_tokens"], 32000);
    assert_eq!(
        body["metadata"],
        json!({"user_id": "user_1f2e_account_9a8b_session_42"})
    );
    assert_eq!(
        body["context_management"],
        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]})
    );
    assert_eq!(body["tools"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["system"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

/// GPT serves it: adaptive thinking at medium effort becomes `reasoning_effort: "medium"`, the
/// user id `user`, and nothing Anthropic-only reaches OpenAI.
#[tokio::test]
async fn claude_code_request_is_served_by_gpt() {
    let gw = start(CONFIG).await;
    let (status, types) = post_as_claude_code(&gw, "gpt-5").await;
    assert_eq!(status, 200, "{types:?}");
    assert_well_formed(&types);
    let requests = gw.sim("openai").requests();
    assert_eq!(requests.len(), 1);
    let upstream = &requests[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(upstream.header("anthropic-beta"), None);
    let body = upstream.body.as_ref().unwrap();
    assert_eq!(body["model"], "gpt-5");
    assert_eq!(body["reasoning_effort"], "medium");
    assert_eq!(body["user"], "user_1f2e_account_9a8b_session_42");
    assert_eq!(body["max_completion_tokens"], 32000);
    for field in [
        "thinking",
        "output_config",
        "context_management",
        "metadata",
        "system",
        "max_tokens",
        "top_k",
    ] {
        assert_eq!(body.get(field), None, "{field}");
    }
    assert_eq!(body["tools"].as_array().unwrap().len(), 3);
}

/// An edit that would change what the model sees is refused by name, not silently dropped.
#[tokio::test]
async fn context_edits_other_than_clear_thinking_are_refused_by_name() {
    let gw = start(CONFIG).await;
    let mut body = claude_code_body("gpt-5");
    body["context_management"] = json!({"edits": [{"type": "clear_tool_uses_20250919"}]});
    let response = gw
        .client()
        .post(format!("{}/v1/messages?beta=true", gw.url))
        .header("x-api-key", "sk-gw")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "context_management.edits.0.type: `clear_tool_uses_20250919` is not supported by this gateway; only `clear_thinking_*` edits are accepted."}})
    );
    assert_eq!(gw.sim("openai").requests().len(), 0);
}

/// Claude Code counts tokens with the same body (no `max_tokens`, no `stream`).
#[tokio::test]
async fn claude_code_count_tokens_accepts_the_same_fields() {
    let gw = start(CONFIG).await;
    let mut body = claude_code_body("claude-opus-5-5");
    let object = body.as_object_mut().unwrap();
    object.remove("max_tokens");
    object.remove("stream");
    let response = gw
        .client()
        .post(format!("{}/v1/messages/count_tokens?beta=true", gw.url))
        .header("x-api-key", "sk-gw")
        .header("anthropic-beta", BETAS)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let counted: Value = response.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    assert_eq!(gw.sim("anthropic").requests().len(), 0);
}
