//! Dialect units and golden files (in `crates/crossbar-core/tests/golden/openai/`).

use bytes::BytesMut;
use serde_json::{Value, json};

use super::*;
use crate::chat::StreamEvent;
use crate::dialects::test_support;
use crate::error::ErrorKind;

fn golden(name: &str) -> String {
    test_support::golden("openai", name)
}

fn decode(body: Value) -> Result<IngressChat> {
    decode_chat_request(body.to_string().as_bytes())
}

#[test]
fn decodes_a_full_request() {
    let body: Value = serde_json::from_str(&golden("request_full.json")).unwrap();
    let IngressChat {
        request,
        include_usage,
    } = decode(body).unwrap();
    assert!(include_usage && request.stream);
    assert_eq!(request.model, "gpt-4o");
    assert_eq!(request.messages.len(), 5);
    assert_eq!(request.messages[0].role, Role::Developer);
    assert!(matches!(
        &request.messages[1].content[1],
        ContentPart::Image { source: ImageSource::Base64 { media_type, .. }, detail: Some(d) }
            if media_type == "image/png" && d == "low"
    ));
    assert_eq!(request.messages[2].tool_calls[0].name, "get_weather");
    assert_eq!(
        request.messages[3].tool_call_id.as_deref(),
        Some("call_abc")
    );
    assert_eq!(request.tools[0].name, "get_weather");
    assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(request.parallel_tool_calls, Some(true));
    assert_eq!(request.max_tokens, Some(256));
    assert_eq!(request.stop, vec!["END".to_owned()]);
    assert_eq!(request.sampling.seed, Some(7));
    assert!(matches!(
        request.response_format,
        Some(ResponseFormat::Text)
    ));
    assert_eq!(
        request.openai_passthrough.get("logprobs"),
        Some(&json!(false))
    );
}

#[test]
fn round_trips_to_an_openai_upstream_with_passthrough() {
    let body: Value = serde_json::from_str(&golden("request_full.json")).unwrap();
    let ingress = decode(body).unwrap();
    let encoded: Value = serde_json::from_slice(
        &encode_chat_request(
            &ingress.request,
            "gpt-4o-2024-08-06",
            MaxTokensField::MaxCompletionTokens,
        )
        .unwrap(),
    )
    .unwrap();
    let expected: Value = serde_json::from_str(&golden("request_full.upstream.json")).unwrap();
    assert_eq!(encoded, expected);
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let err = decode(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "bogus_field": 1}),
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.param.as_deref(), Some("bogus_field"));
    assert!(err.message.contains("bogus_field"));
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,AA"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            "n",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}),
            "stream_options",
        ),
    ];
    for (body, param) in cases {
        let err = decode(body.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{body}");
        assert_eq!(err.param.as_deref(), Some(param), "{body}: {}", err.message);
    }
    let err = decode_chat_request(b"{not json").unwrap_err();
    assert_eq!((err.status(), err.param), (400, None));
}

#[test]
fn decodes_upstream_response_with_tool_calls_and_usage() {
    let response = decode_chat_response(golden("response_tool_calls.json").as_bytes()).unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.message.tool_calls.len(), 2);
    assert_eq!(
        response.message.tool_calls[1].arguments,
        r#"{"city":"Oslo"}"#
    );
    assert!(response.message.content.is_empty());
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens
        ),
        (100, 64, 30, 12)
    );
    // And back out to a client, byte-for-byte the shape OpenAI sends.
    let encoded: Value = serde_json::from_slice(&encode_chat_response(&response).unwrap()).unwrap();
    assert_eq!(encoded["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(encoded["choices"][0]["message"]["refusal"], Value::Null);
    assert_eq!(encoded["choices"][0]["logprobs"], Value::Null);
    assert_eq!(
        encoded["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(encoded["usage"]["total_tokens"], 130);
}

#[test]
fn garbage_from_upstream_is_a_bad_upstream_error() {
    for body in ["", "{", "{\"choices\": []}", "[1,2]"] {
        let err = decode_chat_response(body.as_bytes()).unwrap_err();
        assert_eq!(
            (err.kind, err.status()),
            (ErrorKind::BadUpstreamResponse, 502),
            "{body}"
        );
    }
}

#[test]
fn upstream_errors_keep_retryability() {
    let err = decode_error(429, br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#);
    assert!(err.retryable);
    assert_eq!(err.status(), 429);
    let err = decode_error(429, br#"{"error":{"message":"pay up","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#);
    assert!(!err.retryable);
    assert_eq!(err.kind, ErrorKind::QuotaExceeded);
    let err = decode_error(429, br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation ... retry after 2 seconds"}}"#);
    assert_eq!((err.retryable, err.code.as_deref()), (true, Some("429")));
    let err = decode_error(503, b"<html>oops</html>");
    assert_eq!((err.retryable, err.status()), (true, 503));
}

fn decode_stream(name: &str) -> (Vec<StreamEvent>, Result<()>) {
    test_support::decode_sse(StreamDecoder::new(), &golden(name))
}

#[test]
fn decodes_an_azure_stream_with_empty_first_chunk() {
    let events = test_support::clean_stream(
        StreamDecoder::new(),
        "openai",
        "stream_azure_text.sse",
        "chatcmpl-az1",
    );
    assert_eq!(test_support::streamed_text(&events), "Hello there");
    assert!(events.iter().any(|e| matches!(
        e,
        StreamEvent::Finish {
            reason: FinishReason::Stop,
            ..
        }
    )));
    assert!(matches!(events.last(), Some(StreamEvent::Usage(u)) if u.output_tokens == 2));
}

#[test]
fn a_stream_without_done_or_with_an_error_is_broken() {
    let (_, end) = decode_stream("stream_cut.sse");
    assert_eq!(end.unwrap_err().kind, ErrorKind::StreamInterrupted);
    let (events, end) = decode_stream("stream_midstream_error.sse");
    let err = end.unwrap_err();
    assert_eq!(err.kind, ErrorKind::StreamInterrupted);
    assert!(err.message.contains("overloaded"), "{}", err.message);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, StreamEvent::TextDelta(_)))
    );
    let mut decoder = StreamDecoder::new();
    let err = decoder
        .decode("{\"id\": \"x\", \"choices\": [", &mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadUpstreamResponse);
}

/// Decoding OpenAI's own tool-call stream and re-encoding it gives OpenAI's framing back.
#[test]
fn tool_call_stream_round_trips_to_openai_framing() {
    let (events, end) = decode_stream("stream_tool_calls.sse");
    end.unwrap();
    let mut encoder = StreamEncoder::new(true);
    let mut out = BytesMut::new();
    for event in events {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert_eq!(text, golden("stream_tool_calls.expected.sse"));
}

#[test]
fn text_stream_starts_with_role_and_ends_with_usage_then_done() {
    let mut encoder = StreamEncoder::new(true);
    let mut out = BytesMut::new();
    for event in [
        StreamEvent::Start {
            id: "chatcmpl-1".into(),
            model: "m".into(),
            created: 1,
        },
        StreamEvent::TextDelta("Hi".into()),
        StreamEvent::Finish {
            reason: FinishReason::Stop,
            raw: None,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 3,
            output_tokens: 1,
            ..Default::default()
        }),
    ] {
        encoder.event(event, &mut out);
    }
    encoder.end(&mut out);
    let frames: Vec<&str> = std::str::from_utf8(&out)
        .unwrap()
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .collect();
    assert_eq!(frames.len(), 5);
    let chunk = |i: usize| {
        serde_json::from_str::<Value>(frames[i].strip_prefix("data: ").unwrap()).unwrap()
    };
    assert_eq!(
        chunk(0)["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(chunk(0)["usage"], Value::Null);
    assert_eq!(chunk(1)["choices"][0]["delta"], json!({"content": "Hi"}));
    assert_eq!(chunk(2)["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunk(3)["choices"], json!([]));
    assert_eq!(chunk(3)["usage"]["total_tokens"], 4);
    assert_eq!(frames[4], "data: [DONE]");
}

#[test]
fn without_include_usage_there_is_no_usage_key_or_chunk() {
    let mut encoder = StreamEncoder::new(false);
    let mut out = BytesMut::new();
    encoder.event(StreamEvent::TextDelta("x".into()), &mut out);
    encoder.event(StreamEvent::Usage(Usage::default()), &mut out);
    encoder.end(&mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(!text.contains("usage"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn broken_stream_ends_with_error_event_not_done() {
    let mut encoder = StreamEncoder::new(false);
    let mut out = BytesMut::new();
    encoder.event(StreamEvent::TextDelta("x".into()), &mut out);
    encoder.error(&Error::stream_interrupted("cut"), &mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(!text.contains("[DONE]"));
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let value: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(value["error"]["message"], "cut");
}

#[test]
fn embeddings_both_directions() {
    let ingress = decode_embedding_request(
        br#"{"model":"e","input":["a","b"],"encoding_format":"base64","dimensions":3}"#,
    )
    .unwrap();
    assert!(ingress.base64);
    assert_eq!(
        ingress.request.input,
        EmbeddingInput::Texts(vec!["a".into(), "b".into()])
    );
    let tokens = decode_embedding_request(br#"{"model":"e","input":[[1,2],[3]]}"#).unwrap();
    assert_eq!(
        tokens.request.input,
        EmbeddingInput::Tokens(vec![vec![1, 2], vec![3]])
    );
    for bad in [
        r#"{"model":"e","input":""}"#,
        r#"{"model":"e","input":[]}"#,
        r#"{"model":"e","input":[1,"a"]}"#,
        r#"{"model":"e","input":"a","encoding_format":"hex"}"#,
        r#"{"model":"e","input":"a","x":1}"#,
    ] {
        assert_eq!(
            decode_embedding_request(bad.as_bytes())
                .unwrap_err()
                .status(),
            400,
            "{bad}"
        );
    }
    let upstream: Value =
        serde_json::from_slice(&encode_embedding_request(&ingress.request, "t").unwrap()).unwrap();
    assert_eq!(
        upstream,
        json!({"model": "t", "input": ["a", "b"], "dimensions": 3, "encoding_format": "base64"})
    );
    // base64 vectors from upstream decode to the same floats as arrays.
    let response = EmbeddingResponse {
        model: "t".into(),
        vectors: vec![vec![0.5, -0.25, 1.0]],
        input_tokens: 2,
    };
    let as_b64 = encode_embedding_response(&response, true).unwrap();
    assert_eq!(decode_embedding_response(&as_b64).unwrap(), response);
    let as_floats = encode_embedding_response(&response, false).unwrap();
    assert_eq!(decode_embedding_response(&as_floats).unwrap(), response);
}

#[test]
fn long_foreign_tool_ids_are_shortened_consistently() {
    let long = format!("call_gemini_{}__ts_{}", "a".repeat(20), "b".repeat(200));
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": long, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": long, "content": "r"}]});
    let request = decode(body).unwrap().request;
    let sent: Value = serde_json::from_slice(
        &encode_chat_request(&request, "t", MaxTokensField::MaxCompletionTokens).unwrap(),
    )
    .unwrap();
    let call_id = sent["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(call_id.len() <= 40);
    assert_eq!(sent["messages"][2]["tool_call_id"], call_id);
}

/// OpenAI's reasoning models answer 400 to sampling parameters, and a 400 is not failed over:
/// such a request is unsupported on that deployment instead, so the router tries another.
#[test]
fn reasoning_models_refuse_sampling_as_unsupported_here() {
    let mut request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")]);
    request.sampling.temperature = Some(0.2);
    let error =
        encode_chat_request(&request, "o3-mini", MaxTokensField::MaxCompletionTokens).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unsupported);
    assert_eq!(error.param.as_deref(), Some("temperature"));
    assert_eq!(
        error.message,
        "Invalid 'temperature': 0.2. OpenAI reasoning models (`o3-mini`) take no temperature other than 1."
    );
    // Non-reasoning models, chat snapshots, and gpt-5.x without reasoning take it.
    for target in ["gpt-4o", "gpt-5-chat-latest", "gpt-5.1"] {
        assert!(
            encode_chat_request(&request, target, MaxTokensField::MaxCompletionTokens).is_ok(),
            "{target}"
        );
    }
    request.reasoning_effort = Some("low".into());
    assert!(encode_chat_request(&request, "gpt-5.1", MaxTokensField::MaxCompletionTokens).is_err());
    request.reasoning_effort = None;
    request.sampling.temperature = Some(1.0);
    request.sampling.top_p = Some(0.9);
    let error =
        encode_chat_request(&request, "gpt-5", MaxTokensField::MaxCompletionTokens).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("top_p"));
    assert_eq!(
        error.message,
        "OpenAI reasoning models (`gpt-5`) do not take 'top_p'."
    );
    // An OpenAI-compatible server (max_tokens) is not OpenAI: its model names mean nothing here.
    assert!(encode_chat_request(&request, "o3", MaxTokensField::MaxTokens).is_ok());
}
