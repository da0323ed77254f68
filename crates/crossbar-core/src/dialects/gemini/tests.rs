//! Dialect units and golden files (in `crates/crossbar-core/tests/golden/gemini/`).

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::*;
use crate::chat::{
    ContentPart, Family, FinishReason, Message, Reasoning, Role, StreamEvent, Tool, ToolCall,
    ToolChoice, Usage,
};
use crate::dialects::openai::{self, StreamEncoder};
use crate::error::ErrorKind;

const SIGNATURE: &str = "c2ltLXRob3VnaHQ6AQL+/yBzaWduYXR1cmUgYnl0ZXM=";

fn golden(name: &str) -> String {
    crate::dialects::test_support::golden("gemini", name)
}

fn gemini() -> GeminiEgress {
    GeminiEgress {
        api: GeminiApi::Gemini,
    }
}

fn vertex(location: &str) -> GeminiEgress {
    GeminiEgress {
        api: GeminiApi::Vertex {
            project: "my-proj".into(),
            location: location.into(),
        },
    }
}

fn openai_request(body: Value) -> ChatRequest {
    openai::decode_chat_request(body.to_string().as_bytes())
        .unwrap()
        .request
}

/// Decodes a golden SSE body fed in 7-byte pieces, so frames and CRLFs split across reads.
async fn decode_sse(body: &str) -> (Vec<StreamEvent>, Result<()>) {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut frames = futures::stream::iter(pieces).eventsource();
    let mut decoder = StreamDecoder::new();
    let mut events = Vec::new();
    while let Some(frame) = frames.next().await {
        let frame = frame.unwrap();
        if let Err(error) = decoder.decode(&frame.data, &mut events) {
            return (events, Err(error));
        }
    }
    let end = decoder.finish_stream();
    (events, end)
}

#[test]
fn urls_for_both_apis() {
    let chat = Operation::Chat { stream: false };
    let stream = Operation::Chat { stream: true };
    let base = DEFAULT_GEMINI_ENDPOINT;
    assert_eq!(
        gemini().url(base, "gemini-2.5-flash", chat).unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        gemini()
            .url(base, "models/gemini-2.5-flash", stream)
            .unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        gemini().url(base, "tunedModels/t-1", chat).unwrap(),
        format!("{base}/tunedModels/t-1:generateContent")
    );
    assert_eq!(
        gemini()
            .url(base, "text-embedding-004", Operation::Embeddings)
            .unwrap(),
        format!("{base}/models/text-embedding-004:batchEmbedContents")
    );
    let endpoint = crate::dialects::vertex_endpoint("europe-west4");
    assert_eq!(
        vertex("europe-west4")
            .url(&endpoint, "gemini-2.5-pro", stream)
            .unwrap(),
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        crate::dialects::vertex_endpoint("global"),
        "https://aiplatform.googleapis.com/v1"
    );
    // A model id cannot escape its path segment.
    assert!(
        gemini()
            .url(base, "a/b:c", chat)
            .unwrap()
            .ends_with("/models/a%2Fb%3Ac:generateContent")
    );
    assert_eq!(
        vertex("us-central1")
            .url(&endpoint, "m", Operation::Embeddings)
            .unwrap(),
        format!(
            "{endpoint}/projects/my-proj/locations/us-central1/publishers/google/models/m:predict"
        )
    );
}

#[test]
fn encodes_the_full_golden_request() {
    let body: Value = serde_json::from_str(&golden("request_full.json")).unwrap();
    let request = openai_request(body);
    let encoded = request::value(&request, false);
    let expected: Value = serde_json::from_str(&golden("request_full.upstream.json")).unwrap();
    assert_eq!(encoded, expected, "{encoded:#}");
}

#[test]
fn vertex_requests_never_carry_function_call_ids() {
    let body: Value = serde_json::from_str(&golden("request_full.json")).unwrap();
    let encoded = request::value(&openai_request(body), true).to_string();
    assert!(!encoded.contains("\"id\""), "{encoded}");
    assert!(encoded.contains(SIGNATURE), "signatures still go to Vertex");
}

#[test]
fn tool_results_are_grouped_and_named_from_their_calls() {
    let mut assistant = Message::new(Role::Assistant, Vec::new());
    assistant.tool_calls = vec![
        ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        ToolCall {
            id: "call_2".into(),
            name: "get_time".into(),
            arguments: "{}".into(),
        },
    ];
    let mut first = Message::text(Role::Tool, "[1, 2]");
    first.tool_call_id = Some("call_1".into());
    let mut second = Message::text(Role::Tool, "boom");
    second.tool_call_id = Some("call_2".into());
    second.tool_error = true;
    let request = ChatRequest::new(
        "m",
        vec![Message::text(Role::User, "hi"), assistant, first, second],
    );
    let encoded = request::value(&request, true);
    let turns = encoded["contents"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(
        turns[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "[1, 2]"}}},
            {"functionResponse": {"name": "get_time", "response": {"error": "boom"}}}
        ]})
    );
    // A result that answers no known call cannot be named: a 400 naming the message.
    let mut orphan = Message::text(Role::Tool, "x");
    orphan.tool_call_id = Some("nope".into());
    let err = request::encode(
        &ChatRequest::new("m", vec![Message::text(Role::User, "hi"), orphan]),
        false,
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));
}

#[test]
fn reasoning_blocks_are_replayed_to_gemini_only() {
    let mut assistant = Message::text(Role::Assistant, "Let me check.");
    assistant.tool_calls = vec![ToolCall {
        id: "fc_1".into(),
        name: "f".into(),
        arguments: "{}".into(),
    }];
    assistant.reasoning = vec![
        Reasoning {
            family: Family::Gemini,
            data: json!({"thoughtSignature": "c2lnLWNhbGw=", "part_index": 1, "tool_call_id": "fc_1"}),
        },
        Reasoning {
            family: Family::Gemini,
            data: json!({"thoughtSignature": "c2lnLXRleHQ=", "part_index": 0}),
        },
        Reasoning {
            family: Family::Gemini,
            data: json!({"thought": "secret musings", "part_index": 0}),
        },
        Reasoning {
            family: Family::Anthropic,
            data: json!({"signature": "anthropic-only"}),
        },
    ];
    let mut result = Message::text(Role::Tool, "{}");
    result.tool_call_id = Some("fc_1".into());
    let request = ChatRequest::new("m", vec![Message::text(Role::User, "q"), assistant, result]);
    let encoded = request::value(&request, false);
    assert_eq!(
        encoded["contents"][1]["parts"],
        json!([
            {"text": "Let me check.", "thoughtSignature": "c2lnLXRleHQ="},
            {"thoughtSignature": "c2lnLWNhbGw=", "functionCall": {"id": "fc_1", "name": "f", "args": {}}}
        ])
    );
    let text = encoded.to_string();
    assert!(!text.contains("anthropic-only") && !text.contains("secret musings"));
}

#[test]
fn request_options_map_and_unsupported_ones_fail_by_name() {
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    request.tools = vec![Tool {
        name: "f".into(),
        description: None,
        parameters: None,
        strict: None,
    }];
    for (choice, expected) in [
        (ToolChoice::Auto, json!({"mode": "AUTO"})),
        (ToolChoice::None, json!({"mode": "NONE"})),
        (ToolChoice::Required, json!({"mode": "ANY"})),
    ] {
        request.tool_choice = Some(choice);
        assert_eq!(
            request::value(&request, false)["toolConfig"]["functionCallingConfig"],
            expected
        );
    }
    request.reasoning_effort = Some("none".into());
    request.response_format = Some(crate::chat::ResponseFormat::JsonObject);
    let encoded = request::value(&request, false);
    assert_eq!(
        encoded["generationConfig"],
        json!({"responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 0}})
    );

    let image = openai_request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    );
    let err = request::encode(&image, false).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].content[0].image_url.url")
    );
    assert!(err.message.contains("base64"), "{}", err.message);

    let passthrough = openai_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": true}),
    );
    let err = request::encode(&passthrough, false).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("logprobs"));

    let mut seeded = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    seeded.sampling.seed = Some(1 << 40);
    assert_eq!(
        request::encode(&seeded, false)
            .unwrap_err()
            .param
            .as_deref(),
        Some("seed")
    );
    seeded.sampling.seed = None;
    seeded.stop = (0..6).map(|i| i.to_string()).collect();
    assert_eq!(
        request::encode(&seeded, false)
            .unwrap_err()
            .param
            .as_deref(),
        Some("stop")
    );
    let mut bad_args = Message::new(Role::Assistant, Vec::new());
    bad_args.tool_calls = vec![ToolCall {
        id: "c".into(),
        name: "f".into(),
        arguments: "[1]".into(),
    }];
    let err = request::encode(&ChatRequest::new("m", vec![bad_args]), false).unwrap_err();
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn decodes_a_golden_response_with_thoughts_and_parallel_calls() {
    let response = response::decode(golden("response_parallel_calls.json").as_bytes()).unwrap();
    assert_eq!(response.id, "mKq0aMnVBYmPxN8PqZu1oAs");
    assert_eq!(response.model, "gemini-2.5-flash");
    assert_eq!(response.created, 1_746_102_896);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("STOP"));
    assert_eq!(
        response.message.content,
        vec![ContentPart::text("Checking both.")]
    );
    let calls = &response.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(calls[1].arguments, r#"{"city":"Oslo"}"#);
    assert_ne!(calls[0].id, calls[1].id);
    // Ids are stable: the same response always maps to the same ids.
    let again = response::decode(golden("response_parallel_calls.json").as_bytes()).unwrap();
    assert_eq!(again.message.tool_calls, response.message.tool_calls);
    // Ids stay short (OpenAI takes at most 40 characters); the signature is a reasoning block
    // keyed by its call's id.
    assert!(calls.iter().all(|c| c.id.len() <= 40), "{calls:?}");
    assert_eq!(ids::split(&calls[0].id), (calls[0].id.as_str(), None));
    assert_eq!(
        response.message.reasoning,
        vec![
            Reasoning {
                family: Family::Gemini,
                data: json!({"thought": "The user wants weather for two cities.", "part_index": 0})
            },
            Reasoning {
                family: Family::Gemini,
                data: json!({"thoughtSignature": SIGNATURE, "part_index": 3, "tool_call_id": calls[0].id})
            },
        ]
    );
    assert_eq!(
        response.usage,
        Some(Usage {
            input_tokens: 132,
            cached_input_tokens: 64,
            cache_write_tokens: 0,
            output_tokens: 80,
            reasoning_tokens: 50,
        })
    );
}

#[test]
fn an_answer_replayed_as_history_returns_its_signature_on_its_call() {
    let response = response::decode(golden("response_parallel_calls.json").as_bytes()).unwrap();
    let replay = |assistant: Message| {
        let mut messages = vec![Message::text(Role::User, "weather?"), assistant];
        for call in &response.message.tool_calls {
            let mut result = Message::text(Role::Tool, "ok");
            result.tool_call_id = Some(call.id.clone());
            messages.push(result);
        }
        request::value(&ChatRequest::new("m", messages), false)
    };
    // With its reasoning (kept by the client, or given back by the reasoning memory).
    let encoded = replay(response.message.clone());
    let parts = &encoded["contents"][1]["parts"];
    assert_eq!(parts[1]["thoughtSignature"], SIGNATURE);
    assert_eq!(
        parts[1]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert!(parts[2].get("thoughtSignature").is_none());
    assert_eq!(encoded["contents"][2]["parts"].as_array().unwrap().len(), 2);
    // Without it: the step's first call carries Google's documented stand-in, the others none.
    let mut lost = response.message.clone();
    lost.reasoning.clear();
    let encoded = replay(lost);
    let parts = &encoded["contents"][1]["parts"];
    assert_eq!(
        parts[1]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
    assert!(parts[2].get("thoughtSignature").is_none());
}

#[test]
fn thinking_budgets_fit_the_gemini_2_5_model() {
    let cases = [
        // (target, asked, sent)
        ("gemini-2.5-pro", 0, 128),
        ("gemini-2.5-pro", 64, 128),
        ("gemini-2.5-pro", 50_000, 32_768),
        ("gemini-2.5-pro-preview-06-05", 1024, 1024),
        ("gemini-2.5-flash", 0, 0),
        ("gemini-2.5-flash", 32_768, 24_576),
        ("models/gemini-2.5-flash", 16_384, 16_384),
        ("gemini-2.5-flash-lite", 0, 0),
        ("gemini-2.5-flash-lite", 100, 512),
        ("gemini-2.5-flash-lite", 30_000, 24_576),
        ("gemini-3-pro-preview", 50_000, 50_000),
        ("tunedModels/mine", 0, 0),
    ];
    for (target, asked, sent) in cases {
        assert_eq!(request::fit_budget(asked, target), sent, "{target} {asked}");
    }
    let mut none = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    none.reasoning_effort = Some("none".into());
    let body = |target: &str| -> Value {
        serde_json::from_slice(&gemini().chat_body(&none, target).unwrap()).unwrap()
    };
    assert_eq!(
        body("gemini-2.5-pro")["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 128}),
        "2.5 Pro cannot stop thinking: its least budget"
    );
    assert_eq!(
        body("gemini-2.5-flash")["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
}

#[test]
fn a_blocked_prompt_is_a_content_filter_finish() {
    let body = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}, "responseId": "x"});
    let response = response::decode(body.to_string().as_bytes()).unwrap();
    assert_eq!(response.finish_reason, FinishReason::ContentFilter);
    assert_eq!(response.raw_finish_reason.as_deref(), Some("SAFETY"));
    assert!(response.message.content.is_empty());
    let err = response::decode(b"{\"candidates\": []}").unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadUpstreamResponse);
    let err = response::decode(b"{\"candidates\": [").unwrap_err();
    assert_eq!(err.status(), 502);
}

#[tokio::test]
async fn text_stream_filters_empty_parts_and_keeps_the_last_usage() {
    let (events, end) = decode_sse(&golden("stream_text.sse")).await;
    end.unwrap();
    assert!(
        matches!(&events[0], StreamEvent::Start { id, model, .. } if id == "r1" && model == "gemini-2.5-flash")
    );
    let text: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, ["Hello", " there, ", "friend."]);
    assert!(events.contains(&StreamEvent::ReasoningDelta(Reasoning {
        family: Family::Gemini,
        data: json!({"thoughtSignature": "c2ln", "part_index": 4}),
    })));
    let tail = &events[events.len() - 2..];
    assert_eq!(
        tail,
        [
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                raw: Some("STOP".into())
            },
            StreamEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 20,
                reasoning_tokens: 16,
                ..Usage::default()
            })
        ]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Usage(_)))
            .count(),
        1,
        "running snapshots are never emitted (or summed) one by one"
    );
}

#[tokio::test]
async fn tool_call_stream_translates_to_the_golden_openai_stream() {
    let (events, end) = decode_sse(&golden("stream_tool_calls.sse")).await;
    end.unwrap();
    let starts: Vec<(u32, String, String)> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallStart { index, id, name } => {
                Some((*index, id.clone(), name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!((starts[0].0, starts[1].0), (0, 1));
    assert!(starts.iter().all(|s| s.1.len() <= 40), "{starts:?}");
    assert!(events.contains(&StreamEvent::ReasoningDelta(Reasoning {
        family: Family::Gemini,
        data: json!({"thoughtSignature": "c2ln", "part_index": 0, "tool_call_id": starts[0].1}),
    })));
    let mut encoder = StreamEncoder::new(true);
    let mut out = BytesMut::new();
    for event in events {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let actual = String::from_utf8(out.to_vec()).unwrap();
    assert_eq!(actual, golden("stream_tool_calls.expected.sse"));
}

#[tokio::test]
async fn blocked_error_and_cut_streams() {
    let (events, end) = decode_sse(&golden("stream_blocked.sse")).await;
    end.unwrap();
    assert_eq!(
        &events[1..],
        [
            StreamEvent::Finish {
                reason: FinishReason::ContentFilter,
                raw: Some("PROHIBITED_CONTENT".into())
            },
            StreamEvent::Usage(Usage {
                input_tokens: 7,
                ..Usage::default()
            })
        ]
    );

    let (events, end) = decode_sse(&golden("stream_midstream_error.sse")).await;
    assert_eq!(events[1], StreamEvent::TextDelta("Partial".into()));
    let err = end.unwrap_err();
    assert_eq!(err.kind, ErrorKind::StreamInterrupted);
    assert_eq!(err.code.as_deref(), Some("INTERNAL"));
    assert!(err.message.contains("internal error"), "{}", err.message);

    let (events, end) = decode_sse(&golden("stream_cut.sse")).await;
    assert_eq!(events.len(), 2);
    let err = end.unwrap_err();
    assert_eq!(err.kind, ErrorKind::StreamInterrupted);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, StreamEvent::Finish { .. }))
    );
}

#[test]
fn errors_carry_retry_info_and_quota_kind() {
    let egress = gemini();
    let headers = reqwest::header::HeaderMap::new();
    let err = egress.error(429, &headers, golden("error_429_retry.json").as_bytes());
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(37)));
    assert_eq!(err.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    assert_eq!(err.status(), 429);

    let err = egress.error(429, &headers, golden("error_429_per_day.json").as_bytes());
    assert_eq!(err.kind, ErrorKind::QuotaExceeded);
    assert!(!err.retryable);
    assert_eq!(
        err.retry_after,
        Some(std::time::Duration::from_millis(2500))
    );

    let err = egress.error(400, &headers, golden("error_key_invalid.json").as_bytes());
    assert_eq!(err.kind, ErrorKind::Authentication);
    assert_eq!(
        err.status(),
        502,
        "our key was refused: not the client's fault"
    );

    for (status, kind) in [
        (400, ErrorKind::UpstreamRejected),
        (403, ErrorKind::PermissionDenied),
        (404, ErrorKind::UpstreamRejected),
        (500, ErrorKind::UpstreamUnavailable),
        (503, ErrorKind::UpstreamUnavailable),
        (504, ErrorKind::UpstreamUnavailable),
    ] {
        let body = json!({"error": {"code": status, "message": "m", "status": "X"}});
        let err = egress.error(status, &headers, body.to_string().as_bytes());
        assert_eq!((err.kind, err.message.as_str()), (kind, "m"), "{status}");
    }
    let err = egress.error(502, &headers, b"<html>bad gateway</html>");
    assert_eq!(err.status(), 502);
}

#[test]
fn embeddings_batch_text_inputs() {
    let request = crate::embeddings::EmbeddingRequest {
        model: "e".into(),
        input: crate::embeddings::EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
        dimensions: Some(8),
        user: None,
    };
    let body: Value = serde_json::from_slice(
        &gemini()
            .embedding_body(&request, "text-embedding-004")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8}
        ]})
    );
    let decoded = gemini()
        .embedding_response(br#"{"embeddings": [{"values": [0.5, -1]}, {"values": [1]}]}"#)
        .unwrap();
    assert_eq!(decoded.vectors, vec![vec![0.5, -1.0], vec![1.0]]);
    let tokens = crate::embeddings::EmbeddingRequest {
        input: crate::embeddings::EmbeddingInput::Tokens(vec![vec![1]]),
        ..request.clone()
    };
    assert_eq!(
        gemini()
            .embedding_body(&tokens, "e")
            .unwrap_err()
            .param
            .as_deref(),
        Some("input")
    );
    // Vertex AI embeds through `:predict` on the publisher model.
    assert_eq!(
        vertex("global")
            .url(
                "https://aiplatform.googleapis.com/v1",
                "text-embedding-005",
                Operation::Embeddings
            )
            .unwrap(),
        "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/google/models/text-embedding-005:predict"
    );
    let body: Value =
        serde_json::from_slice(&vertex("global").embedding_body(&request, "e").unwrap()).unwrap();
    assert_eq!(body["instances"][0], json!({"content": "a"}));
}

/// A tool whose parameters are `schema`, in an OpenAI request.
fn with_tool_parameters(schema: &Value) -> ChatRequest {
    openai_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "function", "function": {"name": "plain", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "f", "parameters": schema}}
        ]}),
    )
}

#[test]
fn many_references_to_a_large_definition_are_refused_fast() {
    // ~400 KB: 10,000 references to one 100 KB definition. Serializing the target for every
    // reference took minutes of CPU; expanding them would make a 1 GB upstream body.
    let properties: Map<String, Value> = (0..10_000)
        .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/Big"})))
        .collect();
    let schema = json!({
        "type": "object",
        "$defs": {"Big": {"type": "object", "description": "x".repeat(100_000), "properties": {"a": {"type": "string"}}}},
        "properties": properties
    });
    let request = with_tool_parameters(&schema);
    let started = std::time::Instant::now();
    let err = request::encode(&request, false).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.status(), 400);
    assert_eq!(err.param.as_deref(), Some("tools[1].function.parameters"));
    assert_eq!(
        err.message,
        "Tool parameter schemas expand beyond 524288 bytes once their `$ref`s are inlined, which Gemini requires."
    );
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn exponentially_expanding_references_are_refused_fast() {
    // Each definition refers to the next six times: 6^8 (1.7 million) copies down to the
    // depth where recursion is cut off, from 1 KB of schema.
    let mut defs = Map::new();
    for i in 0..10 {
        let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
        let properties: Map<String, Value> =
            (0..6).map(|p| (format!("p{p}"), next.clone())).collect();
        defs.insert(
            format!("D{i}"),
            json!({"type": "object", "properties": properties}),
        );
    }
    defs.insert("D10".into(), json!({"type": "string"}));
    let schema =
        json!({"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/D0"}}});
    let started = std::time::Instant::now();
    let err = request::encode(&with_tool_parameters(&schema), false).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.param.as_deref(), Some("tools[1].function.parameters"));
    assert_eq!(
        err.message,
        "Tool parameter schemas expand beyond 524288 bytes once their `$ref`s are inlined, which Gemini requires."
    );
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn the_expansion_bound_counts_every_tool_of_the_request() {
    // Each tool inlines about 150 KB: three fit, the fourth passes the bound and is named.
    let properties: Map<String, Value> = (0..1_000)
        .map(|i| (format!("p{i}"), json!({"$ref": "#/$defs/Mid"})))
        .collect();
    let schema = json!({
        "type": "object",
        "$defs": {"Mid": {"type": "string", "description": "y".repeat(100)}},
        "properties": properties
    });
    let tool =
        |name: &str| json!({"type": "function", "function": {"name": name, "parameters": schema}});
    let one = openai_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [tool("a")]}),
    );
    assert!(request::encode(&one, false).is_ok());
    let tools: Vec<Value> = (0..8).map(|i| tool(&format!("t{i}"))).collect();
    let many = openai_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": tools}),
    );
    let err = request::encode(&many, false).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("tools[3].function.parameters"));
}

#[test]
fn a_large_schema_with_many_small_references_resolves_whole_and_quickly() {
    // ~250 KB of schema, 5,000 references to 50 small definitions: all of them are inlined.
    let mut defs = Map::new();
    for d in 0..50 {
        defs.insert(
            format!("Def{d}"),
            json!({"type": "string", "description": format!("definition {d}")}),
        );
    }
    let properties: Map<String, Value> = (0..5_000)
        .map(|i| {
            (
                format!("field_number_{i}_with_a_longer_name"),
                json!({"$ref": format!("#/$defs/Def{}", i % 50), "title": "t"}),
            )
        })
        .collect();
    let schema = json!({"type": "object", "$defs": defs, "properties": properties});
    assert!(schema.to_string().len() > 200_000);
    let started = std::time::Instant::now();
    let encoded = request::value(&with_tool_parameters(&schema), false);
    let elapsed = started.elapsed();
    let parameters = &encoded["tools"][0]["functionDeclarations"][1]["parameters"]["properties"];
    assert_eq!(parameters.as_object().unwrap().len(), 5_000);
    assert_eq!(
        parameters["field_number_4999_with_a_longer_name"],
        json!({"type": "string", "description": "definition 49", "title": "t"})
    );
    assert!(!encoded.to_string().contains("$ref"));
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}
