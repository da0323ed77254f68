//! Dialect units; golden files live in `crates/crossbar-core/tests/golden/anthropic/`.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::*;
use crate::chat::StreamEvent;
use crate::dialects::test_support;

fn golden(name: &str) -> String {
    test_support::golden("anthropic", name)
}

#[test]
fn decodes_a_client_request_with_tools_images_thinking_and_cache() {
    let ingress = decode_request(golden("request_full.json").as_bytes()).unwrap();
    let request = ingress.request;
    assert_eq!(request.model, "claude-sonnet");
    assert_eq!(request.max_tokens, Some(2048));
    assert_eq!(request.reasoning_budget, Some(1024));
    assert_eq!(request.sampling.temperature, Some(1.0));
    assert_eq!(request.sampling.top_p, Some(0.97));
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::User
        ]
    );
    assert!(request.messages[0].cache_breakpoint);
    assert!(
        matches!(&request.messages[1].content[1], ContentPart::Image { source: ImageSource::Base64 { media_type, .. }, .. } if media_type == "image/png")
    );
    let assistant = &request.messages[2];
    assert_eq!(assistant.tool_calls.len(), 2);
    assert_eq!(assistant.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(assistant.reasoning[0].family, Family::Anthropic);
    assert!(request.messages[4].tool_error);
    assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(request.parallel_tool_calls, Some(false));
}

#[test]
fn request_round_trips_to_an_anthropic_upstream() {
    let ingress = decode_request(golden("request_full.json").as_bytes()).unwrap();
    let egress = AnthropicEgress {
        vertex: None,
        foundry: false,
    };
    let encoded = test_support::chat_body(&egress, &ingress.request, "claude-sonnet-4-20250514");
    let expected: Value = serde_json::from_str(&golden("request_full.upstream.json")).unwrap();
    assert_eq!(encoded, expected);
}

#[test]
fn openai_history_becomes_valid_anthropic_messages() {
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather in Paris and Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call.1:a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call.1:a", "content": "21C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "9C"},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "parallel_tool_calls": false
    });
    let request = crate::dialects::openai::decode_chat_request(body.to_string().as_bytes())
        .unwrap()
        .request;
    let wire = serde_json::to_value(encode_request(&request).unwrap()).unwrap();
    assert_eq!(
        wire["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}])
    );
    let messages = wire["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        vec!["user", "assistant", "user"],
        "tool results and the next user turn merge"
    );
    let calls = messages[1]["content"].as_array().unwrap();
    assert!(
        calls.iter().all(|b| b["type"] == "tool_use"),
        "no empty text block beside tool calls"
    );
    let sanitized = calls[0]["id"].as_str().unwrap();
    assert!(
        sanitized
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_eq!(calls[1]["input"], json!({}));
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(
        results[0]["tool_use_id"], sanitized,
        "the same id on both sides"
    );
    assert_eq!(results[1]["tool_use_id"], "call_2");
    assert_eq!(results[2]["type"], "text");
    assert_eq!(
        wire["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(wire["max_tokens"], 4096);
}

#[test]
fn invalid_tool_arguments_in_history_are_a_clear_400() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}]});
    let request = crate::dialects::openai::decode_chat_request(body.to_string().as_bytes())
        .unwrap()
        .request;
    let err = encode_request(&request).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.param.as_deref(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
    let passthrough =
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true});
    let request = crate::dialects::openai::decode_chat_request(passthrough.to_string().as_bytes())
        .unwrap()
        .request;
    assert_eq!(
        encode_request(&request).unwrap_err().param.as_deref(),
        Some("logprobs")
    );
}

#[test]
fn client_errors_are_named() {
    for (body, param) in [
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "x": 1}),
            "messages",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "hi"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]}),
            "messages.0.content.0.type",
        ),
    ] {
        refused_at(&body, param);
    }
    let body = encode_error(&Error::invalid_field(
        "x",
        "x: Extra inputs are not permitted",
    ));
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        value,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "x: Extra inputs are not permitted"}})
    );
}

#[test]
fn decodes_responses_and_usage_including_cache() {
    let response = decode_response(golden("response_tool_use.json").as_bytes()).unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.message.text_content(), "Let me check.");
    assert_eq!(
        response.message.tool_calls[0].arguments,
        r#"{"city":"Paris"}"#
    );
    let usage = response.usage.unwrap();
    // input_tokens excludes cache traffic; canonical input includes it.
    assert_eq!(
        test_support::cache_counts(&usage),
        (100 + 2000 + 50, 2000, 50, 40)
    );
    let back: Value = serde_json::from_slice(&encode_response(&response).unwrap()).unwrap();
    assert_eq!(
        back["usage"],
        json!({"input_tokens": 100, "output_tokens": 40, "cache_creation_input_tokens": 50, "cache_read_input_tokens": 2000})
    );
    assert_eq!(back["stop_reason"], "tool_use");
    assert_eq!(back["content"][0]["type"], "thinking");
    assert_eq!(back["content"][2]["input"], json!({"city": "Paris"}));
}

#[test]
fn upstream_errors_classify_529_and_billing() {
    let err = decode_error(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert!(err.retryable);
    assert_eq!(err.status(), 529);
    assert_eq!(error_type(&err), "overloaded_error");
    let err = decode_error(
        400,
        br#"{"type":"error","error":{"type":"billing_error","message":"no credit"}}"#,
    );
    assert!(!err.retryable);
}

/// A client request the decoder refuses with a 400 naming `param`: the error.
fn refused_at(body: &Value, param: &str) -> Error {
    let err = decode_request(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(
        (err.status(), err.param.as_deref()),
        (400, Some(param)),
        "{body}: {}",
        err.message
    );
    err
}

fn decode_stream(name: &str) -> (Vec<StreamEvent>, Result<()>) {
    test_support::decode_sse(StreamDecoder::new(), &golden(name))
}

#[test]
fn decodes_a_stream_with_thinking_text_and_tools() {
    let events = test_support::clean_stream(
        StreamDecoder::new(),
        "anthropic",
        "stream_tool_use.sse",
        "msg_01",
    );
    assert_eq!(test_support::streamed_text(&events), "Okay, checking.");
    let starts: Vec<(u32, &str)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, name, .. } => Some((*index, name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        vec![(0, "get_weather"), (1, "get_time")],
        "tool indices count tool calls only"
    );
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(args, r#"{"city": "Paris"}"#);
    assert!(
        events.iter().any(
            |e| matches!(e, StreamEvent::ToolCallDelta { index: 1, arguments } if arguments == "{}")
        ),
        "argument-less tool gets {{}}"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
            ..
        }
    )));
    assert!(
        matches!(events.last(), Some(StreamEvent::Usage(u)) if u.output_tokens == 88 && u.input_tokens == 472)
    );
}

#[test]
fn a_midstream_error_or_missing_message_stop_breaks_the_stream() {
    let (events, end) = decode_stream("stream_overloaded.sse");
    let err = end.unwrap_err();
    assert!(
        err.retryable && err.message.contains("Overloaded"),
        "{err:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, StreamEvent::TextDelta(_)))
    );
    let (_, end) = decode_stream("stream_cut.sse");
    assert_eq!(end.unwrap_err().kind, ErrorKind::StreamInterrupted);
}

#[test]
fn encodes_anthropic_event_sequence_for_clients() {
    let (events, _) = decode_stream("stream_tool_use.sse");
    let mut encoder = StreamEncoder::new("claude-sonnet", 10);
    let mut out = BytesMut::new();
    for event in events {
        encoder.event(event, &mut out).unwrap();
    }
    encoder.end(&mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert_eq!(text, golden("stream_tool_use.expected.sse"));
}

#[test]
fn broken_client_stream_ends_with_error_event_not_message_stop() {
    let mut encoder = StreamEncoder::new("m", 1);
    let mut out = BytesMut::new();
    encoder
        .event(StreamEvent::TextDelta("hi".into()), &mut out)
        .unwrap();
    encoder.error(&Error::stream_interrupted("cut"), &mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(!text.contains("message_stop"));
    assert!(text.ends_with("event: error\ndata: {\"error\":{\"message\":\"cut\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"), "{text}");
}

#[test]
fn vertex_urls_and_bodies() {
    let egress = AnthropicEgress {
        vertex: Some(("proj".into(), "us-east5".into())),
        foundry: false,
    };
    assert_eq!(
        egress
            .url(
                "https://us-east5-aiplatform.googleapis.com/v1",
                "claude-sonnet-4@20250514",
                Operation::Chat { stream: true }
            )
            .unwrap(),
        "https://us-east5-aiplatform.googleapis.com/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"
    );
    let request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    let body = test_support::chat_body(&egress, &request, "claude");
    assert!(body.get("model").is_none());
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
}

#[test]
fn count_tokens_bodies_decode_without_max_tokens() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]});
    let request = decode_count_tokens(body.to_string().as_bytes()).unwrap();
    assert_eq!(request.messages[0].text_content(), "hello world");
    assert_eq!(encode_count(12), br#"{"input_tokens":12}"#);
}

fn openai_request(body: Value) -> ChatRequest {
    crate::dialects::openai::decode_chat_request(body.to_string().as_bytes())
        .unwrap()
        .request
}

/// A refusal that names the field and tells this deployment apart from others that may serve it.
fn refused(body: Value) -> (String, String) {
    let error = AnthropicEgress {
        vertex: None,
        foundry: false,
    }
    .chat_body(&openai_request(body), "claude-sonnet-4-20250514")
    .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(
        error.clone().unsupported_here().kind,
        ErrorKind::Unsupported
    );
    (
        error.param.clone().unwrap_or_default(),
        error.message.clone(),
    )
}

#[test]
fn temperature_above_one_is_refused_not_clamped() {
    let mut body =
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1.5});
    assert_eq!(
        refused(body.clone()),
        (
            "temperature".to_owned(),
            "Invalid 'temperature': 1.5. Claude accepts a temperature between 0 and 1.".to_owned()
        )
    );
    // Vertex-hosted Claude refuses it the same way.
    let vertex = AnthropicEgress {
        vertex: Some(("p".to_owned(), "us-east5".to_owned())),
        foundry: false,
    };
    let error = vertex
        .chat_body(&openai_request(body.clone()), "claude-sonnet-4@20250514")
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("temperature"));
    body["temperature"] = json!(1.0);
    let wire: Value = serde_json::from_slice(
        &AnthropicEgress {
            vertex: None,
            foundry: false,
        }
        .chat_body(&openai_request(body), "claude")
        .unwrap(),
    )
    .unwrap();
    assert_eq!(wire["temperature"], 1.0);
}

#[test]
fn thinking_refuses_a_forced_tool_choice() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "f"}}),
    ] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "tool_choice": choice, "reasoning_effort": "low"});
        assert_eq!(
            refused(body),
            (
                "tool_choice".to_owned(),
                "Claude cannot think while `tool_choice` forces a tool call: with reasoning on, use a tool_choice of `auto` or `none`, or turn reasoning off.".to_owned()
            )
        );
    }
    // `auto` is fine with thinking, and a forced choice is fine without it.
    for (choice, effort) in [
        (json!("auto"), json!("low")),
        (json!("required"), Value::Null),
    ] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": tools, "tool_choice": choice, "reasoning_effort": effort});
        assert!(encode_request(&openai_request(body)).is_ok());
    }
}

#[test]
fn thinking_refuses_non_default_sampling() {
    let with = |field: &str, value: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium"});
        body[field] = value;
        body
    };
    assert_eq!(
        refused(with("temperature", json!(0.2))),
        (
            "temperature".to_owned(),
            "Invalid 'temperature': 0.2. Claude takes no temperature other than 1 while reasoning is on; omit it or turn reasoning off.".to_owned()
        )
    );
    assert_eq!(
        refused(with("top_p", json!(0.5))),
        (
            "top_p".to_owned(),
            "Invalid 'top_p': 0.5. Claude takes a top_p of at least 0.95 while reasoning is on; omit it or turn reasoning off.".to_owned()
        )
    );
    // top_k only arrives from Anthropic-dialect clients.
    let mut request = openai_request(with("temperature", json!(1)));
    request.sampling.top_k = Some(5);
    let error = encode_request(&request).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("top_k"));
    assert_eq!(
        error.message,
        "Invalid 'top_k': 5. Claude takes no top_k while reasoning is on; omit it or turn reasoning off."
    );
    request.sampling.top_k = None;
    request.sampling.top_p = Some(0.95);
    let wire = serde_json::to_value(encode_request(&request).unwrap()).unwrap();
    assert_eq!(wire["temperature"], 1.0);
    assert_eq!(wire["top_p"], 0.95);
    assert_eq!(wire["thinking"]["type"], "enabled");
    // Without reasoning, the same sampling passes through unchanged.
    let wire = serde_json::to_value(
        encode_request(&openai_request(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.2, "top_p": 0.5}),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (wire["temperature"].clone(), wire["top_p"].clone()),
        (json!(0.2), json!(0.5))
    );
}

#[test]
fn images_claude_cannot_read_are_refused() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]});
    assert_eq!(
        refused(body),
        (
            "messages[0].content[1]".to_owned(),
            "Claude reads images of type image/jpeg, image/png, image/gif or image/webp, not 'image/bmp'.".to_owned()
        )
    );
}

#[test]
fn more_than_four_cache_breakpoints_are_refused() {
    let mut request = openai_request(json!({"model": "m", "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"}]}));
    for message in request.messages.iter_mut().take(4) {
        message.cache_breakpoint = true;
    }
    assert!(encode_request(&request).is_ok());
    request.messages[4].cache_breakpoint = true;
    let error = encode_request(&request).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("messages"));
    assert_eq!(
        error.message,
        "Claude takes at most 4 cache breakpoints in one request; this one marks 5."
    );
}

#[test]
fn tool_schemas_always_say_object() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [
        {"type": "function", "function": {"name": "a", "parameters": {}}},
        {"type": "function", "function": {"name": "b", "parameters": {"properties": {"q": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "c"}}]});
    let wire = serde_json::to_value(encode_request(&openai_request(body)).unwrap()).unwrap();
    assert_eq!(wire["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        wire["tools"][1]["input_schema"],
        json!({"type": "object", "properties": {"q": {"type": "string"}}})
    );
    assert_eq!(wire["tools"][2]["input_schema"], json!({"type": "object"}));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "string"}}}]});
    assert_eq!(
        refused(body),
        (
            "tools[0].function.parameters".to_owned(),
            "Claude takes tool parameters only as an object schema (\"type\": \"object\"), not \"string\".".to_owned()
        )
    );
}

/// Thinking shown from an unsigned stream comes back with an empty signature, which the API
/// refuses: it is left out of the replay, while signed thinking goes back as it came.
#[test]
fn thinking_without_a_signature_is_not_replayed() {
    use crate::chat::{Message, Role};
    let mut assistant = Message::text(Role::Assistant, "done");
    assistant.reasoning = vec![
        test_support::unsigned_thinking(),
        test_support::claude_reasoning(
            json!({"type": "thinking", "thinking": "signed", "signature": "sig-1"}),
        ),
    ];
    let request = ChatRequest::new(
        "m",
        vec![
            Message::text(Role::User, "hi"),
            assistant,
            Message::text(Role::User, "again"),
        ],
    );
    let wire = serde_json::to_value(encode_request(&request).unwrap()).unwrap();
    assert_eq!(
        wire["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "signed", "signature": "sig-1"},
            {"type": "text", "text": "done"}
        ])
    );
}

fn decoded(extra: Value) -> ChatRequest {
    let mut body =
        json!({"model": "m", "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}]});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    decode_request(body.to_string().as_bytes()).unwrap().request
}

/// Claude Code 2.1 sends adaptive thinking with an effort; before, `thinking.type` "adaptive"
/// was a 400 ("unknown variant").
#[test]
fn adaptive_thinking_becomes_the_effort_level() {
    let request = decoded(json!({
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_abc"},
    }));
    assert_eq!(request.reasoning_effort.as_deref(), Some("medium"));
    assert_eq!(request.reasoning_budget, None);
    assert_eq!(request.user.as_deref(), Some("user_abc"));
    assert_eq!(request.response_format, None);
    // To Claude it goes as thinking with the effort's budget.
    let wire = serde_json::to_value(encode_request(&request).unwrap()).unwrap();
    assert_eq!(
        wire["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(wire.get("context_management"), None);
    assert_eq!(wire.get("output_config"), None);

    for (effort, level) in [
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "high"),
        ("max", "high"),
    ] {
        let request = decoded(json!({
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": effort},
        }));
        assert_eq!(request.reasoning_effort.as_deref(), Some(level), "{effort}");
    }
    // Adaptive without an effort: medium.
    let request = decoded(json!({"thinking": {"type": "adaptive", "display": "summarized"}}));
    assert_eq!(request.reasoning_effort.as_deref(), Some("medium"));
    // An explicit budget still wins on budget-taking upstreams; the effort goes along.
    let request = decoded(json!({
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "low"},
    }));
    assert_eq!(
        (
            request.reasoning_budget,
            request.reasoning_effort.as_deref()
        ),
        (Some(2048), Some("low"))
    );
    // Without thinking, effort only tunes Claude's answer length: reasoning stays off.
    for thinking in [json!({"type": "disabled"}), Value::Null] {
        let mut extra = json!({"output_config": {"effort": "high"}});
        if !thinking.is_null() {
            extra["thinking"] = thinking;
        }
        let request = decoded(extra);
        assert_eq!(
            (request.reasoning_effort, request.reasoning_budget),
            (None, None)
        );
    }
}

#[test]
fn output_config_format_with_effort_is_a_json_schema() {
    let request = decoded(json!({
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}},
    }));
    assert_eq!(
        request.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "output".to_owned(),
            description: None,
            schema: Some(json!({"type": "object"})),
            strict: Some(true),
        })
    );
    assert_eq!(request.reasoning_effort.as_deref(), Some("high"));
}

#[test]
fn new_fields_with_bad_values_are_named() {
    for (extra, param, message) in [
        (
            json!({"thinking": {"type": "adaptive", "display": "full"}}),
            "thinking",
            "unknown variant `full`, expected `summarized` or `omitted`",
        ),
        (
            json!({"output_config": {"effort": "extreme"}}),
            "output_config.effort",
            "unknown variant `extreme`",
        ),
        (
            json!({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}),
            "context_management.edits.0.type",
            "context_management.edits.0.type: `clear_tool_uses_20250919` is not supported by this gateway; only `clear_thinking_*` edits are accepted.",
        ),
        (
            json!({"context_management": {"edits": {}}}),
            "context_management.edits",
            "context_management.edits: Input should be a valid list",
        ),
        (
            json!({"context_management": {"edit": []}}),
            "context_management.edit",
            "context_management.edit: Extra inputs are not permitted",
        ),
    ] {
        let mut body =
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let err = refused_at(&body, param);
        assert!(err.message.contains(message), "{}", err.message);
    }
}

/// What Claude Code sends (a mid-conversation system message, adaptive thinking with an
/// effort, context edits, a field we do not know, its betas): decoded for every dialect, and
/// handed verbatim to Anthropic's own API only.
fn claude_code_request() -> ChatRequest {
    let body = json!({
        "model": "claude-opus-5-5",
        "max_tokens": 32000,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "xhigh"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "u-1"},
        "speed": "fast"
    });
    let mut request = decode_request(body.to_string().as_bytes()).unwrap().request;
    pass_betas(
        &mut request,
        "claude-code-20250219,context-management-2025-06-27",
    );
    request
}

#[test]
fn claude_code_requests_decode_with_their_extras_kept_for_anthropic() {
    let request = claude_code_request();
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::System]);
    assert_eq!(request.messages[1].text_content(), "# Environment");
    assert_eq!(request.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(request.user.as_deref(), Some("u-1"));
    let passthrough = &request.passthrough;
    assert_eq!(passthrough.dialect, Some(WireDialect::Anthropic));
    assert_eq!(passthrough.required, ["speed"]);
    let mut keys: Vec<&str> = passthrough.fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["context_management", "output_config", "speed", "thinking"]
    );
    assert_eq!(
        passthrough.headers,
        [(
            "anthropic-beta".to_owned(),
            "claude-code-20250219,context-management-2025-06-27".to_owned()
        )]
    );
    let error = unknown_field_error("speed");
    assert_eq!(error.message, "speed: Extra inputs are not permitted");
}

#[test]
fn anthropic_gets_the_client_extras_and_the_thinking_its_model_takes() {
    let request = claude_code_request();
    let anthropic = AnthropicEgress {
        vertex: None,
        foundry: false,
    };
    // Opus 4.7 and later think only adaptively: the client's own thinking and effort go through.
    let body = test_support::chat_body(&anthropic, &request, "claude-opus-4-7");
    assert_eq!(
        body["thinking"],
        json!({"type": "adaptive", "display": "omitted"})
    );
    assert_eq!(body["output_config"], json!({"effort": "xhigh"}));
    assert_eq!(
        body["context_management"],
        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]})
    );
    assert_eq!(body["speed"], "fast");
    assert_eq!(body["system"][0]["text"], "# Environment");
    assert_eq!(
        anthropic.chat_headers(&request),
        [(
            "anthropic-beta".to_owned(),
            "claude-code-20250219,context-management-2025-06-27".to_owned()
        )]
    );
    // Claude Sonnet 4 takes only a budget: the effort becomes one.
    let body = test_support::chat_body(&anthropic, &request, "claude-sonnet-4-20250514");
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert!(body.get("output_config").is_none());
    // Vertex serves a subset of the API: an unknown field cannot go there, known extras stay
    // behind, and no beta header is sent.
    let vertex = AnthropicEgress {
        vertex: Some(("p".into(), "us-east5".into())),
        foundry: false,
    };
    let error = vertex
        .chat_body(&request, "claude-opus-4-7@20260101")
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("speed"));
    let mut known = request.clone();
    known.passthrough.fields.remove("speed");
    known.passthrough.required.clear();
    let body = test_support::chat_body(&vertex, &known, "claude-opus-4-7@20260101");
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(body["output_config"], json!({"effort": "high"}));
    assert!(body.get("context_management").is_none());
    assert!(vertex.chat_headers(&known).is_empty());
}

#[test]
fn openai_clients_reasoning_reaches_adaptive_claude_as_an_effort() {
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    request.reasoning_effort = Some("low".into());
    let wire =
        serde_json::to_value(encode_request_for(&request, "claude-sonnet-4-6", None).unwrap())
            .unwrap();
    assert_eq!(wire["thinking"], json!({"type": "adaptive"}));
    assert_eq!(wire["output_config"], json!({"effort": "low"}));
    // An explicit budget is kept where the model still takes one.
    request.reasoning_budget = Some(2000);
    let wire =
        serde_json::to_value(encode_request_for(&request, "claude-sonnet-4-6", None).unwrap())
            .unwrap();
    assert_eq!(
        wire["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );
    let wire = serde_json::to_value(
        encode_request_for(&request, "us.anthropic.claude-opus-4-7-v1:0", None).unwrap(),
    )
    .unwrap();
    assert_eq!(wire["thinking"], json!({"type": "adaptive"}));
    assert_eq!(wire["output_config"], json!({"effort": "low"}));
}

/// Server tools (a `type` of their own) are kept apart from the client's functions: no upstream
/// can serve them yet, so the request is refused by naming the tool, unless the route drops them.
#[test]
fn server_tools_are_refused_by_name_or_dropped() {
    let body = json!({
        "model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": "search"}],
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"name": "f", "input_schema": {"type": "object"}}
        ]
    });
    let mut request = decode_request(body.to_string().as_bytes()).unwrap().request;
    assert_eq!(request.tools.len(), 1);
    assert_eq!(request.tools[0].name, "f");
    assert_eq!(
        request.passthrough.hosted_tools,
        [(
            0,
            json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 5})
        )]
    );
    let anthropic = AnthropicEgress {
        vertex: None,
        foundry: false,
    };
    let error = anthropic
        .chat_body(&request, "claude-sonnet-4-20250514")
        .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools.0.type"));
    let error = crate::dialects::openai::encode_chat_request(
        &request,
        "gpt-4o",
        crate::dialects::openai::MaxTokensField::MaxCompletionTokens,
    )
    .unwrap_err();
    assert_eq!(error.param.as_deref(), Some("tools[0].type"));
    request.passthrough.drop_hosted_tools = true;
    let body = test_support::chat_body(&anthropic, &request, "claude-sonnet-4-20250514");
    assert_eq!(
        body["tools"],
        json!([{"name": "f", "input_schema": {"type": "object"}}])
    );
}
