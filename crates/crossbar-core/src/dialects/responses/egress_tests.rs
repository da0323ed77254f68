//! The Responses API as an upstream: request encoding, answer and stream decoding.

use serde_json::{Value, json};

use super::*;
use crate::chat::Tool;
use crate::dialects::FrameKind;

fn reasoning_item() -> Value {
    json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"})
}

#[test]
fn encodes_calls_after_their_reasoning_and_results_by_call_id() {
    let mut assistant = Message::new(Role::Assistant, Vec::new());
    assistant.reasoning = vec![
        Reasoning {
            family: Family::OpenAi,
            data: reasoning_item(),
        },
        Reasoning {
            family: Family::Anthropic,
            data: json!({"type": "thinking", "thinking": "x", "signature": "s"}),
        },
    ];
    assistant.tool_calls.push(ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: "{\"city\":\"Rome\"}".into(),
    });
    let mut result = Message::text(Role::Tool, "25 C");
    result.tool_call_id = Some("call_1".into());
    let mut request = ChatRequest::new(
        "m",
        vec![
            Message::text(Role::System, "Be brief."),
            Message::text(Role::User, "weather?"),
            assistant,
            result,
        ],
    );
    request.tools.push(Tool {
        name: "get_weather".into(),
        description: None,
        parameters: Some(json!({"type": "object"})),
        strict: None,
    });
    request.reasoning_effort = Some("high".into());
    request.max_tokens = Some(100);
    let body: Value = serde_json::from_slice(&encode_request(&request, "o3").unwrap()).unwrap();
    assert_eq!(body["model"], "o3");
    assert_eq!(body["store"], false);
    assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(body["reasoning"]["effort"], "high");
    assert_eq!(body["max_output_tokens"], 100);
    assert_eq!(body["tools"][0]["name"], "get_weather");
    let kinds: Vec<&str> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "reasoning",
            "function_call",
            "function_call_output"
        ],
        "only OpenAI reasoning, right before its call"
    );
    assert_eq!(body["input"][2], reasoning_item());
    assert_eq!(body["input"][4]["call_id"], "call_1");

    request.stop = vec!["END".into()];
    let error = encode_request(&request, "o3").unwrap_err();
    assert_eq!(error.kind, crate::error::ErrorKind::Unsupported);
}

#[test]
fn decodes_an_answer_keeping_reasoning_items() {
    let body = json!({
        "id": "resp_1", "object": "response", "created_at": 1700000000, "status": "completed",
        "model": "o3-2025-04-16",
        "output": [
            reasoning_item(),
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "f",
             "arguments": "{}", "status": "completed"}
        ],
        "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 5},
                  "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 24},
                  "total_tokens": 50}
    });
    let response = decode_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.message.tool_calls[0].id, "call_9");
    assert_eq!(response.message.reasoning[0].family, Family::OpenAi);
    assert_eq!(response.message.reasoning[0].data, reasoning_item());
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.reasoning_tokens
        ),
        (20, 5, 24)
    );
    let incomplete = json!({"id": "r", "status": "incomplete", "output": [],
                            "incomplete_details": {"reason": "max_output_tokens"}});
    let response = decode_response(incomplete.to_string().as_bytes()).unwrap();
    assert_eq!(response.finish_reason, FinishReason::Length);
}

fn decode_stream(events: &[Value]) -> (Vec<StreamEvent>, Result<()>) {
    let mut decoder = ResponsesStreamDecoder::default();
    let mut out = Vec::new();
    for event in events {
        let data = event.to_string();
        let frame = Frame {
            kind: FrameKind::Event,
            event: event["type"].as_str().unwrap(),
            data: &data,
        };
        if let Err(error) = decoder.decode(&frame, &mut out) {
            return (out, Err(error));
        }
    }
    let end = decoder.finish();
    (out, end)
}

#[test]
fn decodes_a_stream_by_item_id() {
    let response = json!({"id": "resp_1", "model": "o3", "created_at": 1, "status": "in_progress", "output": []});
    let events = [
        json!({"type": "response.created", "response": response}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item()}),
        json!({"type": "response.output_item.added", "output_index": 1,
               "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"a\":"}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "1}"}),
        json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
               "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}),
    ];
    let (out, end) = decode_stream(&events);
    end.unwrap();
    assert!(matches!(&out[0], StreamEvent::Start { id, .. } if id == "resp_1"));
    assert!(
        matches!(&out[1], StreamEvent::ReasoningDelta(r) if r.family == Family::OpenAi && r.data == reasoning_item())
    );
    assert!(
        matches!(&out[2], StreamEvent::ToolCallStart { index: 0, id, name } if id == "call_1" && name == "f")
    );
    assert!(
        matches!(&out[4], StreamEvent::ToolCallDelta { index: 0, arguments } if arguments == "1}")
    );
    assert!(matches!(
        &out[5],
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            ..
        }
    ));
    assert!(matches!(&out[6], StreamEvent::Usage(u) if u.output_tokens == 4));

    // A stream that stops before its terminal event, or fails, is broken.
    let (_, end) = decode_stream(&events[..3]);
    assert!(end.is_err());
    let failed = [
        events[0].clone(),
        json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}}),
    ];
    let (_, end) = decode_stream(&failed);
    assert_eq!(end.unwrap_err().message, "boom");
}

/// The Responses API refuses `max_output_tokens` below 16: a smaller cap is another
/// deployment's to serve (never raised, which would change what the client asked for).
#[test]
fn fewer_than_sixteen_output_tokens_are_unsupported_here() {
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    request.max_tokens = Some(15);
    let error = encode_request(&request, "gpt-4o").unwrap_err();
    assert_eq!(error.kind, crate::error::ErrorKind::Unsupported);
    assert_eq!(error.param.as_deref(), Some("max_tokens"));
    assert_eq!(
        error.message,
        "Responses API deployments take at least 16 output tokens; this request allows 15."
    );
    request.max_tokens = Some(16);
    let body: Value = serde_json::from_slice(&encode_request(&request, "gpt-4o").unwrap()).unwrap();
    assert_eq!(body["max_output_tokens"], 16);
}

/// Reasoning models refuse sampling through the Responses API too: unsupported on that
/// deployment, so the router tries another.
#[test]
fn reasoning_models_refuse_sampling_here_too() {
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    request.sampling.temperature = Some(0.3);
    let error = encode_request(&request, "o3").unwrap_err();
    assert_eq!(error.kind, crate::error::ErrorKind::Unsupported);
    assert_eq!(error.param.as_deref(), Some("temperature"));
    assert!(encode_request(&request, "gpt-4o").is_ok());
}
