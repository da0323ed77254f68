//! Dialect units and golden files (in `crates/crossbar-core/tests/golden/bedrock/`). The binary
//! `.eventstream` fixtures are written by `make_eventstream.py` there, an encoder independent of
//! the one this code uses, from the readable `.frames.json` beside them.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::*;
use crate::chat::{
    ContentPart, Family, FinishReason, ImageSource, Message, Reasoning, ResponseFormat, Role,
    StreamEvent, Tool, ToolCall, ToolChoice,
};
use crate::dialects::openai::{self, StreamEncoder};
use crate::dialects::test_support;
use crate::dialects::{Frame, FrameKind};
use crate::error::ErrorKind;
use crate::framing::{OwnedFrame, aws_event_stream};

fn golden_path(name: &str) -> String {
    format!("{}/tests/golden/bedrock/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn golden(name: &str) -> String {
    crate::dialects::test_support::golden("bedrock", name)
}

fn golden_bytes(name: &str) -> Vec<u8> {
    let path = golden_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn encode(request: &ChatRequest) -> Result<Value> {
    encode_chat_request(request).map(|body| serde_json::from_slice(&body).unwrap())
}

fn user(text: &str) -> Message {
    Message::text(Role::User, text)
}

fn assistant_calls(ids: &[&str]) -> Message {
    let mut message = Message::new(Role::Assistant, Vec::new());
    message.tool_calls = ids
        .iter()
        .map(|id| ToolCall {
            id: (*id).to_owned(),
            name: "get_weather".to_owned(),
            arguments: r#"{"city":"Paris"}"#.to_owned(),
        })
        .collect();
    message
}

fn tool_result(id: &str, text: &str) -> Message {
    let mut message = Message::text(Role::Tool, text);
    message.tool_call_id = Some(id.to_owned());
    message
}

fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".to_owned(),
        description: None,
        parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        strict: None,
    }
}

#[test]
fn encodes_a_multi_turn_tool_conversation() {
    let mut request = openai::decode_chat_request(golden("request_tools.json").as_bytes())
        .unwrap()
        .request;
    // Cache breakpoints have no OpenAI spelling; other ingress dialects set them.
    request.messages[1].cache_breakpoint = true;
    request.messages[7].cache_breakpoint = true;
    let encoded = encode(&request).unwrap();
    let expected: Value = serde_json::from_str(&golden("request_tools.upstream.json")).unwrap();
    assert_eq!(encoded, expected, "{encoded:#}");
}

#[test]
fn tool_use_ids_are_sanitized_stably() {
    for valid in ["call_abc", "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "a.b:c-d"] {
        assert_eq!(tool_use_id(valid), valid);
    }
    let odd = tool_use_id("call|tokyo/1");
    assert_eq!(odd, tool_use_id("call|tokyo/1"), "deterministic");
    assert!(odd.starts_with("call_tokyo_1_"), "{odd}");
    // Differing only in forbidden characters must not collide.
    assert_ne!(odd, tool_use_id("call/tokyo|1"));
    for id in ["", "ü", &"x".repeat(65), &"é".repeat(80)] {
        let clean = tool_use_id(id);
        assert!(!clean.is_empty() && clean.len() <= 64, "{clean}");
        assert!(
            clean
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)),
            "{clean}"
        );
    }
}

#[test]
fn tool_config_follows_tools_choice_and_history() {
    let mut request = ChatRequest::new("m", vec![user("hi")]);
    request.tools = vec![weather_tool()];
    let config = |request: &ChatRequest| encode(request).unwrap().get("toolConfig").cloned();
    assert_eq!(config(&request).unwrap().get("toolChoice"), None);
    for (choice, wire) in [
        (ToolChoice::Auto, json!({"auto": {}})),
        (ToolChoice::Required, json!({"any": {}})),
        (
            ToolChoice::Function("get_weather".into()),
            json!({"tool": {"name": "get_weather"}}),
        ),
    ] {
        request.tool_choice = Some(choice);
        assert_eq!(config(&request).unwrap()["toolChoice"], wire);
    }
    // `none` without tool history: the tools are withheld, which is exactly "none".
    request.tool_choice = Some(ToolChoice::None);
    assert_eq!(config(&request), None);
    // With tool history Bedrock needs a toolConfig anyway: tools, but no toolChoice.
    request.messages = vec![
        user("hi"),
        assistant_calls(&["call_1"]),
        tool_result("call_1", "sunny"),
    ];
    let with_history = config(&request).unwrap();
    assert_eq!(with_history["tools"][0]["toolSpec"]["name"], "get_weather");
    assert!(with_history.get("toolChoice").is_none());
    // No tools offered at all: minimal specs for the names in the history.
    request.tools.clear();
    request.tool_choice = None;
    assert_eq!(
        config(&request).unwrap(),
        json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]})
    );
}

#[test]
fn turns_alternate_start_with_user_and_have_no_blank_text() {
    let mut greeting = Message::text(Role::Assistant, "Hi! How can I help?");
    greeting.cache_breakpoint = true;
    let mut calls = assistant_calls(&["call_1", "call_2"]);
    calls.content = vec![ContentPart::text("  ")];
    let request = ChatRequest::new(
        "m",
        vec![
            Message::text(Role::System, "sys"),
            greeting,
            user("one"),
            user(" "),
            user("two"),
            calls,
            tool_result("call_1", "a"),
            user("and"),
            tool_result("call_2", ""),
        ],
    );
    let body = encode(&request).unwrap();
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"text": "(continue)"}])
    );
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"text": "Hi! How can I help?"}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        body["messages"][2]["content"],
        json!([{"text": "one"}, {"text": "two"}])
    );
    // The blank text beside the calls is gone.
    assert_eq!(body["messages"][3]["content"].as_array().unwrap().len(), 2);
    // Both results first, then the user's text; the empty result has empty content.
    assert_eq!(
        body["messages"][4]["content"],
        json!([
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "a"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": []}},
            {"text": "and"}
        ])
    );
    // Only system messages still make a valid conversation.
    let only_system = encode(&ChatRequest::new(
        "m",
        vec![Message::text(Role::Developer, "be terse")],
    ))
    .unwrap();
    assert_eq!(only_system["system"], json!([{"text": "be terse"}]));
    assert_eq!(only_system["messages"][0]["role"], "user");
}

#[test]
fn failed_tool_results_carry_error_status() {
    let mut failed = tool_result("call_1", "timeout");
    failed.tool_error = true;
    let request = ChatRequest::new("m", vec![user("x"), assistant_calls(&["call_1"]), failed]);
    let body = encode(&request).unwrap();
    assert_eq!(
        body["messages"][2]["content"][0]["toolResult"]["status"],
        "error"
    );
}

#[test]
fn untranslatable_requests_are_400s_naming_the_field() {
    let base = || ChatRequest::new("m", vec![user("hi")]);
    let param = |request: ChatRequest| {
        let error = encode(&request).unwrap_err();
        assert_eq!(error.status(), 400, "{}", error.message);
        assert!(!error.retryable);
        error.param.unwrap_or_default()
    };
    let mut bad_args = base();
    bad_args.messages.push(assistant_calls(&["c"]));
    bad_args.messages[1].tool_calls[0].arguments = "{\"city\": ".to_owned();
    assert_eq!(
        param(bad_args),
        "messages[1].tool_calls[0].function.arguments"
    );
    let mut array_args = base();
    array_args.messages.push(assistant_calls(&["c"]));
    array_args.messages[1].tool_calls[0].arguments = "[1]".to_owned();
    assert_eq!(
        param(array_args),
        "messages[1].tool_calls[0].function.arguments"
    );
    let mut url_image = base();
    url_image.messages[0].content.push(ContentPart::Image {
        source: ImageSource::Url("https://example.com/cat.png".into()),
        detail: None,
    });
    let error = encode(&url_image).unwrap_err();
    assert!(error.message.contains("inline images"), "{}", error.message);
    assert_eq!(
        error.param.as_deref(),
        Some("messages[0].content[1].image_url.url")
    );
    let mut bmp = base();
    bmp.messages[0].content.push(ContentPart::Image {
        source: ImageSource::Base64 {
            media_type: "image/bmp".into(),
            data: "Qk0=".into(),
        },
        detail: None,
    });
    assert_eq!(param(bmp), "messages[0].content[1].image_url.url");
    let mut passthrough = base();
    passthrough
        .openai_passthrough
        .insert("logprobs".into(), json!(true));
    assert_eq!(param(passthrough), "logprobs");
    let mut penalty = base();
    penalty.sampling.presence_penalty = Some(0.5);
    assert_eq!(param(penalty), "presence_penalty");
    let mut hot = base();
    hot.sampling.temperature = Some(1.5);
    assert_eq!(param(hot), "temperature");
    let mut small = base();
    small.reasoning_effort = Some("high".into());
    small.max_tokens = Some(1500);
    assert_eq!(param(small), "reasoning_effort");
    // Harmless fields are dropped, not refused.
    let mut harmless = base();
    harmless.sampling.seed = Some(1);
    harmless.sampling.presence_penalty = Some(0.0);
    harmless.user = Some("u".into());
    harmless.parallel_tool_calls = Some(false);
    let body = encode(&harmless).unwrap();
    assert_eq!(
        body,
        json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    );
}

#[test]
fn reasoning_goes_to_claude_thinking_and_replays_as_reasoning_content() {
    let mut request = ChatRequest::new("m", vec![user("think")]);
    request.reasoning_effort = Some("medium".into());
    let body = encode(&request).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 4096}})
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 4096 + 4096);
    request.reasoning_effort = None;
    request.reasoning_budget = Some(2000);
    request.max_tokens = Some(10_000);
    let body = encode(&request).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2000}})
    );
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 10_000}));

    let mut answer = Message::text(Role::Assistant, "42");
    answer.reasoning = vec![
        Reasoning {
            family: Family::Bedrock,
            data: json!({"reasoningText": {"text": "hmm", "signature": "sig"}}),
        },
        test_support::claude_reasoning(
            json!({"type": "thinking", "thinking": "other", "signature": "x"}),
        ),
    ];
    let history = ChatRequest::new("m", vec![user("q"), answer, user("again")]);
    let body = encode(&history).unwrap();
    // Claude's thinking from any platform replays: the signature is the same token.
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
            {"reasoningContent": {"reasoningText": {"text": "other", "signature": "x"}}},
            {"text": "42"}
        ])
    );
}

#[test]
fn unsigned_thinking_is_dropped_for_claude_and_sent_without_signature_to_others() {
    let mut answer = Message::text(Role::Assistant, "42");
    answer.reasoning = vec![
        test_support::unsigned_thinking(),
        test_support::claude_reasoning(json!({"type": "redacted_thinking", "data": "b3BhcXVl"})),
        Reasoning {
            family: Family::Gemini,
            data: json!({"thought": "x"}),
        },
    ];
    let history = ChatRequest::new("m", vec![user("q"), answer, user("again")]);
    let egress = BedrockEgress;
    let claude = test_support::chat_body(
        &egress,
        &history,
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    );
    assert_eq!(
        claude["messages"][1]["content"],
        json!([{"reasoningContent": {"redactedContent": "b3BhcXVl"}}, {"text": "42"}])
    );
    let nova = test_support::chat_body(&egress, &history, "amazon.nova-pro-v1:0");
    assert_eq!(
        nova["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "unsigned"}}},
            {"reasoningContent": {"redactedContent": "b3BhcXVl"}},
            {"text": "42"}
        ])
    );
}

#[test]
fn streamed_reasoning_becomes_anthropic_thinking_fragments() {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    for data in [
        json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Two "}}}),
        json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "lookups."}}}),
        json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "c2ln"}}}),
        json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "cmVk"}}}),
    ] {
        let data = data.to_string();
        let frame = Frame {
            kind: FrameKind::Event,
            event: "contentBlockDelta",
            data: &data,
        };
        decoder.decode(&frame, &mut out).unwrap();
    }
    let reasoning: Vec<Reasoning> = out
        .into_iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta(r) => Some(r),
            _ => None,
        })
        .collect();
    let anthropic = |data: Value| Reasoning {
        family: Family::Anthropic,
        data,
    };
    assert_eq!(
        reasoning,
        vec![
            anthropic(json!({"thinking": "Two "})),
            anthropic(json!({"thinking": "lookups."})),
            anthropic(json!({"signature": "c2ln"})),
            anthropic(json!({"type": "redacted_thinking", "data": "cmVk"})),
        ]
    );
}

#[test]
fn json_mode_and_schema_become_output_config_strings() {
    let mut request = ChatRequest::new("m", vec![user("json please")]);
    request.response_format = Some(ResponseFormat::JsonObject);
    let body = encode(&request).unwrap();
    assert_eq!(
        body["outputConfig"],
        json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{\"type\":\"object\"}"}}}})
    );
    request.response_format = Some(ResponseFormat::Text);
    assert!(encode(&request).unwrap().get("outputConfig").is_none());
}

#[test]
fn decodes_a_converse_response() {
    let response = decode_chat_response(golden("response_tool_calls.json").as_bytes()).unwrap();
    assert!(response.id.starts_with("chatcmpl-bdrk-"));
    assert_eq!(
        response.model, "",
        "Bedrock names no model; the provider fills it"
    );
    assert_eq!(response.message.text_content(), "Let me check both.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("tool_use"));
    let calls = &response.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(calls[1].arguments, "{}");
    assert_eq!(
        response.message.reasoning,
        vec![test_support::claude_reasoning(
            json!({"type": "thinking", "thinking": "Two lookups.", "signature": "c2lnbmF0dXJl"})
        )]
    );
    let usage = response.usage.unwrap();
    assert_eq!(
        test_support::cache_counts(&usage),
        (412 + 2048, 2048, 0, 87)
    );
    assert_eq!(usage.total_tokens(), 2547);
    let garbage = decode_chat_response(b"{\"output\": 5}").unwrap_err();
    assert_eq!(garbage.kind, ErrorKind::BadUpstreamResponse);
}

#[test]
fn stop_reasons_keep_their_raw_value() {
    for (raw, reason) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("tool_use", FinishReason::ToolCalls),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("guardrail_intervened", FinishReason::ContentFilter),
        ("content_filtered", FinishReason::ContentFilter),
        ("malformed_tool_use", FinishReason::Other),
        ("malformed_model_output", FinishReason::Other),
        ("something_new", FinishReason::Other),
    ] {
        let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
            "stopReason": raw, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}});
        let response = decode_chat_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.finish_reason, reason, "{raw}");
        assert_eq!(response.raw_finish_reason.as_deref(), Some(raw));
    }
}

#[test]
fn http_errors_map_per_exception() {
    let error = |status: u16, kind: &str, body: Value| {
        let mut headers = HeaderMap::new();
        if !kind.is_empty() {
            headers.insert(
                "x-amzn-errortype",
                HeaderValue::from_str(&format!(
                    "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                ))
                .unwrap(),
            );
        }
        decode_error(status, &headers, body.to_string().as_bytes())
    };
    let message = |text: &str| json!({"message": text});
    let validation = error(400, "ValidationException", message("bad role"));
    assert_eq!((validation.status(), validation.retryable), (400, false));
    assert_eq!(validation.message, "bad role");
    assert_eq!(validation.code.as_deref(), Some("ValidationException"));
    let quota = error(400, "ServiceQuotaExceededException", message("quota"));
    assert_eq!(quota.kind, ErrorKind::QuotaExceeded);
    assert!(!quota.retryable);
    let throttled = error(429, "ThrottlingException", message("Too many requests"));
    assert_eq!(
        (throttled.kind, throttled.retryable),
        (ErrorKind::RateLimited, true)
    );
    assert_eq!(throttled.status(), 429);
    let not_ready = error(429, "ModelNotReadyException", message("warming"));
    assert_eq!((not_ready.status(), not_ready.retryable), (429, true));
    let denied = error(403, "AccessDeniedException", message("no access"));
    assert_eq!(
        (denied.kind, denied.status()),
        (ErrorKind::PermissionDenied, 502)
    );
    let signature = error(403, "InvalidSignatureException", message("mismatch"));
    assert_eq!(
        (signature.kind, signature.status()),
        (ErrorKind::Authentication, 502)
    );
    let timeout = error(408, "ModelTimeoutException", message("slow"));
    assert_eq!((timeout.status(), timeout.retryable), (504, true));
    let model_overloaded = error(
        424,
        "ModelErrorException",
        json!({"message": "overloaded", "originalStatusCode": 529}),
    );
    assert!(model_overloaded.retryable);
    let model_refused = error(
        424,
        "ModelErrorException",
        json!({"message": "bad", "originalStatusCode": 400}),
    );
    assert_eq!(
        (model_refused.status(), model_refused.retryable),
        (424, false)
    );
    for (status, kind) in [
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ] {
        let unavailable = error(status, kind, message("down"));
        assert_eq!(
            (unavailable.status(), unavailable.retryable),
            (status, true)
        );
    }
    // The name may come in the body instead, and bodies may be empty.
    let in_body = error(
        400,
        "",
        json!({"__type": "com.amazon.coral.service#ServiceQuotaExceededException", "Message": "q"}),
    );
    assert_eq!(
        (in_body.kind, in_body.message.as_str()),
        (ErrorKind::QuotaExceeded, "q")
    );
    let bare = decode_error(502, &HeaderMap::new(), b"");
    assert_eq!((bare.status(), bare.retryable), (502, true));
}

/// Runs a byte stream, cut into `chunk`-sized reads, through the event-stream framer.
async fn frames_of(bytes: Vec<u8>, chunk: usize) -> Vec<Result<OwnedFrame>> {
    let chunks: Vec<std::result::Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    aws_event_stream(futures::stream::iter(chunks))
        .collect()
        .await
}

/// Decodes frames until the first error, then calls `finish` if none happened.
fn decode_frames(frames: Vec<Result<OwnedFrame>>) -> (Vec<StreamEvent>, Result<()>) {
    let mut decoder = StreamDecoder::new();
    let mut events = Vec::new();
    for frame in frames {
        let decoded = frame.and_then(|f| decoder.decode(&f.as_frame(), &mut events));
        if let Err(error) = decoded {
            return (events, Err(error));
        }
    }
    let end = decoder.finish();
    (events, end)
}

#[tokio::test]
async fn stream_golden_round_trips_to_openai_framing() {
    let bytes = golden_bytes("stream_tool_calls.eventstream");
    // Every read size must give the same frames: 1 byte splits every header and CRC.
    let mut reference = None;
    for chunk in [1, 7, 64, bytes.len()] {
        let frames = frames_of(bytes.clone(), chunk).await;
        let summary: Vec<(String, String)> = frames
            .iter()
            .map(|f| {
                let f = f.as_ref().unwrap();
                (f.event.clone(), f.data.clone())
            })
            .collect();
        assert_eq!(summary.len(), 14);
        assert_eq!(
            *reference.get_or_insert(summary.clone()),
            summary,
            "chunk {chunk}"
        );
    }
    let (events, end) = decode_frames(frames_of(bytes, 7).await);
    end.unwrap();
    let mut sse = BytesMut::new();
    let mut encoder = StreamEncoder::new(true);
    for event in events {
        // What the provider does for Bedrock: the deployment's target as the model.
        let event = match event {
            StreamEvent::Start { id, .. } => {
                assert!(id.starts_with("chatcmpl-bdrk-"));
                StreamEvent::Start {
                    id: "chatcmpl-t".into(),
                    model: "anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
                    created: 1_710_000_000,
                }
            }
            other => other,
        };
        encoder.event(event, &mut sse);
    }
    encoder.end(&mut sse);
    let text = String::from_utf8(sse.to_vec()).unwrap();
    assert_eq!(text, golden("stream_tool_calls.expected.sse"));
}

#[tokio::test]
async fn exception_frames_become_errors_of_their_kind() {
    let (events, end) =
        decode_frames(frames_of(golden_bytes("stream_throttled.eventstream"), 5).await);
    assert!(
        matches!(&events[..], [StreamEvent::Start { .. }, StreamEvent::TextDelta(t)] if t == "Partial")
    );
    let error = end.unwrap_err();
    assert_eq!(
        (error.kind, error.retryable),
        (ErrorKind::RateLimited, true)
    );
    assert_eq!(
        error.message,
        "Too many tokens, please wait before trying again."
    );
    assert_eq!(error.code.as_deref(), Some("throttlingException"));
    for (name, kind, retryable) in [
        (
            "serviceUnavailableException",
            ErrorKind::UpstreamUnavailable,
            true,
        ),
        (
            "internalServerException",
            ErrorKind::UpstreamUnavailable,
            true,
        ),
        (
            "modelStreamErrorException",
            ErrorKind::StreamInterrupted,
            true,
        ),
        ("validationException", ErrorKind::UpstreamRejected, false),
    ] {
        let frame = Frame {
            kind: FrameKind::Exception,
            event: name,
            data: r#"{"message":"m"}"#,
        };
        let error = StreamDecoder::new()
            .decode(&frame, &mut Vec::new())
            .unwrap_err();
        assert_eq!((error.kind, error.retryable), (kind, retryable), "{name}");
    }
}

#[tokio::test]
async fn cut_or_corrupt_streams_are_errors_not_clean_ends() {
    let bytes = golden_bytes("stream_tool_calls.eventstream");
    // Cut inside a frame: the framer reports the leftover bytes.
    let (_, end) = decode_frames(frames_of(bytes[..bytes.len() - 10].to_vec(), 64).await);
    assert_eq!(end.unwrap_err().kind, ErrorKind::StreamInterrupted);
    // Cut between frames, before messageStop: the decoder notices.
    let frame_ends = frame_boundaries(&bytes);
    let before_stop = frame_ends[frame_ends.len() - 3];
    let (events, end) = decode_frames(frames_of(bytes[..before_stop].to_vec(), 64).await);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, StreamEvent::Finish { .. }))
    );
    assert_eq!(end.unwrap_err().kind, ErrorKind::StreamInterrupted);
    // messageStop but no metadata: still incomplete.
    let before_metadata = frame_ends[frame_ends.len() - 2];
    let (_, end) = decode_frames(frames_of(bytes[..before_metadata].to_vec(), 64).await);
    assert!(end.unwrap_err().message.contains("metadata"));
    // A flipped payload byte fails the message CRC.
    let mut corrupt = bytes.clone();
    corrupt[frame_ends[0] + 40] ^= 0x20;
    let (_, end) = decode_frames(frames_of(corrupt, 64).await);
    let error = end.unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::BadUpstreamResponse,
        "{}",
        error.message
    );
    // A length field no frame can have is refused before anything is buffered.
    let (_, end) = decode_frames(frames_of(vec![0xff, 0xff, 0xff, 0xff, 0, 0], 64).await);
    assert_eq!(end.unwrap_err().kind, ErrorKind::BadUpstreamResponse);
}

/// Offsets just past each frame, from the frames' own length fields.
fn frame_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        at += len as usize;
        ends.push(at);
    }
    ends
}

#[test]
fn urls_encode_the_model_id_as_one_segment() {
    let egress = BedrockEgress;
    assert_eq!(
        egress
            .url(
                "https://bedrock-runtime.us-east-1.amazonaws.com",
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
                Operation::Chat { stream: true }
            )
            .unwrap(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Famazon.nova-pro-v1%3A0/converse-stream"
    );
    assert!(
        egress
            .url("http://h", "m", Operation::Chat { stream: false })
            .unwrap()
            .ends_with("/model/m/converse")
    );
    assert_eq!(egress.framing(), Framing::AwsEventStream);
    // Embeddings go through InvokeModel.
    assert_eq!(
        egress
            .url(
                "http://h",
                "amazon.titan-embed-text-v2:0",
                Operation::Embeddings
            )
            .unwrap(),
        "http://h/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
}

#[test]
fn provider_table_picks_endpoint_and_auth() {
    let parts = |provider: &str| {
        let source = format!("[[providers]]\nname = \"b\"\n{provider}\n");
        let config = crate::config::Config::from_toml(&source, "t.toml").map_err(|e| e.0)?;
        crate::kinds::parts(&config.providers[0], None)
    };
    let sigv4 = parts("kind = \"bedrock\"\nregion = \"eu-west-3\"\naws = { access_key_id = \"A\", secret_access_key = \"s\" }").unwrap();
    assert_eq!(
        sigv4.endpoint,
        "https://bedrock-runtime.eu-west-3.amazonaws.com"
    );
    assert!(sigv4.authorizer.is_some() && sigv4.key_header.is_none());
    let bearer =
        parts("kind = \"bedrock\"\nregion = \"us-west-2\"\napi_key = \"bedrock-key\"").unwrap();
    assert!(bearer.authorizer.is_none());
    assert_eq!(bearer.key_header, Some("authorization"));
    assert!(
        parts(
            "kind = \"bedrock\"\nregion = \"us-west-2\"\napi_key = \"k\"\naws = { profile = \"p\" }"
        )
        .is_err()
    );
    assert!(parts("kind = \"bedrock\"\nregion = \"us-west-2/../x\"").is_err());
    let sim = parts("kind = \"sim\"\ndialect = \"bedrock\"").unwrap();
    assert!(sim.authorizer.is_some());
}

#[test]
fn claude_reasoning_from_bedrock_reaches_anthropic_clients() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "c2ln"}}},
            {"reasoningContent": {"redactedContent": "cmVk"}},
            {"text": "Done."}
        ]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    });
    let response = decode_chat_response(body.to_string().as_bytes()).unwrap();
    let encoded: Value =
        serde_json::from_slice(&crate::dialects::anthropic::encode_response(&response).unwrap())
            .unwrap();
    assert_eq!(
        encoded["content"],
        json!([
            {"type": "thinking", "thinking": "Think.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "cmVk"},
            {"type": "text", "text": "Done."}
        ])
    );

    // Streamed: each signature closes its thinking block, as Anthropic streams them.
    let mut encoder = crate::dialects::anthropic::StreamEncoder::new("m", 3);
    let mut out = BytesMut::new();
    let fragment = |data: Value| {
        StreamEvent::ReasoningDelta(Reasoning {
            family: Family::Anthropic,
            data,
        })
    };
    for event in [
        fragment(json!({"thinking": "A"})),
        fragment(json!({"signature": "s1"})),
        fragment(json!({"thinking": "B"})),
        fragment(json!({"signature": "s2"})),
        StreamEvent::TextDelta("Done.".into()),
    ] {
        encoder.event(event, &mut out).unwrap();
    }
    let text = String::from_utf8(out.to_vec()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .filter(|e: &Value| e["type"] != "message_start" && e["type"] != "ping")
        .collect();
    assert_eq!(
        events,
        vec![
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "A"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s1"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "B"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "signature_delta", "signature": "s2"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Done."}}),
        ]
    );
}

#[test]
fn more_than_four_cache_points_are_refused() {
    let marked = |text: &str| {
        let mut message = user(text);
        message.cache_breakpoint = true;
        message
    };
    let mut system = Message::text(Role::System, "Be brief.");
    system.cache_breakpoint = true;
    let mut request = ChatRequest::new("m", vec![system, marked("a"), marked("b"), marked("c")]);
    let body = encode(&request).unwrap();
    assert_eq!(
        body["system"][1],
        json!({"cachePoint": {"type": "default"}})
    );
    request.messages.push(marked("d"));
    let error = encode(&request).unwrap_err();
    assert_eq!(
        (error.kind, error.param.as_deref(), error.message.as_str()),
        (
            ErrorKind::InvalidRequest,
            Some("messages"),
            "Bedrock takes at most 4 cache points in one request; this one marks 5."
        )
    );
}

#[test]
fn images_over_bedrocks_size_are_refused() {
    let with_image = |len: usize| {
        let mut message = user("describe");
        message.content.push(ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "A".repeat(len),
            },
            detail: None,
        });
        ChatRequest::new("m", vec![message])
    };
    assert!(encode(&with_image(5 * 1024 * 1024)).is_ok());
    let error = encode(&with_image(5 * 1024 * 1024 + 4)).unwrap_err();
    assert_eq!(
        (error.param.as_deref(), error.message.as_str()),
        (
            Some("messages[0].content[1].image_url.url"),
            "Bedrock takes images of at most 3.75 MB (5242880 bytes as base64); this one is \
             5242884 bytes as base64."
        )
    );
}

#[test]
fn unsigned_reasoning_from_other_models_stays_bedrocks() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "R1 thinks."}}},
            {"text": "Done."}
        ]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    });
    let response = decode_chat_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        response.message.reasoning,
        vec![Reasoning {
            family: Family::Bedrock,
            data: json!({"reasoningText": {"text": "R1 thinks."}}),
        }]
    );
    let encoded: Value =
        serde_json::from_slice(&crate::dialects::anthropic::encode_response(&response).unwrap())
            .unwrap();
    assert_eq!(
        encoded["content"],
        json!([{"type": "text", "text": "Done."}])
    );
}

/// Claude on Bedrock has Claude's thinking rules: a forced tool or non-default sampling with
/// thinking is refused here (so the router fails over) rather than sent to a certain 400.
#[test]
fn claude_thinking_rules_hold_on_bedrock() {
    let mut request = ChatRequest::new("m", vec![user("think")]);
    request.reasoning_effort = Some("medium".into());
    request.sampling.temperature = Some(0.5);
    let error = encode(&request).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("temperature"));
    request.sampling.temperature = None;
    request.sampling.top_k = Some(5);
    assert_eq!(
        encode(&request).unwrap_err().param.as_deref(),
        Some("top_k")
    );
    request.sampling.top_k = None;
    request.sampling.temperature = Some(1.0);
    assert!(encode(&request).is_ok());
}
