//! OpenAI Chat Completions over HTTP: non-stream and stream shapes, tools, structured output,
//! usage, validation and recording.

mod common;

use std::collections::BTreeMap;

use common::*;
use crossbar_sim::{SimConfig, SimDialect};
use serde_json::{Value, json};

async fn openai() -> crossbar_sim::SimServer {
    start(SimDialect::OpenAi, SimConfig::default()).await
}

#[tokio::test]
async fn text_completion_has_openai_shape_and_headers() {
    let server = openai().await;
    let response = post(
        &chat_url(&server),
        &json!({"model": "gpt-4o", "messages": [{"role": "system", "content": "Be nice."}, user("hello there")]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    for name in [
        "x-request-id",
        "openai-processing-ms",
        "openai-version",
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(headers.contains_key(name), "missing header {name}");
    }
    assert_eq!(headers["x-ratelimit-reset-requests"], "6ms");
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert!(
        body["system_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("fp_")
    );
    assert_eq!(body["service_tier"], "default");
    let choice = &body["choices"][0];
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "You said: hello there", "refusal": null, "annotations": []})
    );
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 4);
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 4)
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn text_stream_is_framed_like_openai() {
    let server = openai().await;
    let chunks = stream_chunks(
        &chat_url(&server),
        &json!({"model": "gpt-4o", "stream": true, "messages": [user("stream these words")]}),
    )
    .await;
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let words: Vec<&str> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["You", " said:", " stream", " these", " words"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let id = &chunks[0]["id"];
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id);
        assert!(chunk.get("usage").is_none(), "usage without include_usage");
        assert!(
            chunk["obfuscation"].is_string(),
            "obfuscation on by default"
        );
    }
    for chunk in &chunks[..chunks.len() - 1] {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
    }
}

#[tokio::test]
async fn usage_chunk_only_with_include_usage() {
    let server = openai().await;
    let chunks = stream_chunks(
        &chat_url(&server),
        &json!({"model": "m", "stream": true, "messages": [user("count me")],
            "stream_options": {"include_usage": true, "include_obfuscation": false}}),
    )
    .await;
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
    assert!(usage_chunk["usage"]["prompt_tokens_details"].is_object());
    for chunk in rest {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk.get("usage").is_some());
        assert!(chunk.get("obfuscation").is_none());
    }
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

/// Reassembles streamed tool calls per index, asserting the fragment rules.
#[expect(
    clippy::unwrap_used,
    reason = "fails the calling test on malformed fragments"
)]
fn accumulate_tool_calls(chunks: &[Value]) -> BTreeMap<u64, (String, String, String)> {
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for chunk in chunks {
        let Some(fragments) = chunk["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for fragment in fragments {
            let index = fragment["index"].as_u64().unwrap();
            let arguments = fragment["function"]["arguments"].as_str().unwrap();
            match calls.get_mut(&index) {
                None => {
                    assert_eq!(fragment["type"], "function");
                    assert_eq!(arguments, "", "opening fragment carries no arguments");
                    let id = fragment["id"].as_str().unwrap().to_owned();
                    let name = fragment["function"]["name"].as_str().unwrap().to_owned();
                    calls.insert(index, (id, name, String::new()));
                }
                Some(call) => {
                    assert!(fragment.get("id").is_none() && fragment.get("type").is_none());
                    assert!(fragment["function"].get("name").is_none());
                    call.2.push_str(arguments);
                }
            }
        }
    }
    calls
}

#[tokio::test]
async fn parallel_tool_calls_stream_by_index() {
    let server = openai().await;
    let body = json!({"model": "m", "stream": true, "tools": weather_tools(),
        "messages": [user("call get_weather and get_time for Lisbon")]});
    let chunks = stream_chunks(&chat_url(&server), &body).await;
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["content"], Value::Null);
    assert_eq!(first["tool_calls"][0]["index"], 0);
    let calls = accumulate_tool_calls(&chunks);
    assert_eq!(calls.len(), 2);
    let (id, name, arguments) = &calls[&0];
    assert!(id.starts_with("call_") && id.len() == 29);
    assert_eq!(name, "get_weather");
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(arguments, json!({"city": "Lisbon", "unit": "c"}));
    assert_eq!(calls[&1].1, "get_time");
    assert!(serde_json::from_str::<Value>(&calls[&1].2).is_ok());
    assert_ne!(calls[&0].0, calls[&1].0);
    let argument_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]
                .get("id")
                .is_none()
        })
        .count();
    assert!(argument_chunks > 4, "arguments are split in pieces");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let (status, body) = post_json(
        &chat_url(&server),
        &json!({"model": "m", "tools": weather_tools(), "parallel_tool_calls": false,
            "messages": [user("call get_weather and get_time for Lisbon")]}),
    )
    .await;
    assert_eq!(status, 200);
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn named_tool_choice_and_none() {
    let server = openai().await;
    let request = |choice: Value| json!({"model": "m", "tools": weather_tools(), "tool_choice": choice, "messages": [user("what's the weather?")]});
    let (_, named) = post_json(
        &chat_url(&server),
        &request(json!({"type": "function", "function": {"name": "get_time"}})),
    )
    .await;
    assert_eq!(
        named["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    let (_, none) = post_json(&chat_url(&server), &request(json!("none"))).await;
    assert_eq!(none["choices"][0]["finish_reason"], "stop");
    assert!(none["choices"][0]["message"].get("tool_calls").is_none());
}

#[tokio::test]
async fn tool_results_are_answered_with_text_citing_them() {
    let server = openai().await;
    let (status, body) = post_json(
        &chat_url(&server),
        &json!({"model": "m", "tools": weather_tools(), "messages": [
            user("weather in Lisbon?"),
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\",\"unit\":\"c\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{\"zone\":\"WET\"}"}}]},
            {"role": "tool", "tool_call_id": "call_b", "content": "09:00"},
            {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "{\"temp\":21}"}]}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        r#"Based on get_time: 09:00; get_weather: {"temp":21}."#
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

fn person_schema() -> Value {
    json!({
        "$defs": {"Pet": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat", "dog"]}, "age": {"type": "integer", "minimum": 1}},
            "required": ["kind", "age"], "additionalProperties": false}},
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "born": {"type": "string", "format": "date"},
            "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "minItems": 2},
            "nickname": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]}
        },
        "required": ["name", "born", "pets", "nickname"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn json_schema_output_validates_streamed_or_not() {
    let server = openai().await;
    let schema = person_schema();
    let mut request = json!({"model": "m", "messages": [user("Describe Marie and her pets")],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": schema}}});
    let (status, body) = post_json(&chat_url(&server), &request).await;
    assert_eq!(status, 200, "{body}");
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(jsonschema::is_valid(&schema, &content), "{content}");
    assert_eq!(content["name"], "Marie");

    request["stream"] = json!(true);
    let chunks = stream_chunks(&chat_url(&server), &request).await;
    let fragments: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(fragments.len() > 10, "JSON is streamed in fragments");
    let streamed: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(streamed, content);

    let (_, object) = post_json(
        &chat_url(&server),
        &json!({"model": "m", "messages": [user("answer in JSON")], "response_format": {"type": "json_object"}}),
    )
    .await;
    let content: Value =
        serde_json::from_str(object["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"answer": "You said: answer in JSON"}));
}

#[tokio::test]
async fn max_tokens_stop_and_reasoning_shape_the_answer() {
    let server = openai().await;
    let url = chat_url(&server);
    let (_, limited) = post_json(
        &url,
        &json!({"model": "m", "max_completion_tokens": 2, "messages": [user("a b c d")]}),
    )
    .await;
    assert_eq!(limited["choices"][0]["message"]["content"], "You said:");
    assert_eq!(limited["choices"][0]["finish_reason"], "length");
    let (_, stopped) = post_json(
        &url,
        &json!({"model": "m", "stop": ["c"], "messages": [user("a b c d")]}),
    )
    .await;
    assert_eq!(
        stopped["choices"][0]["message"]["content"],
        "You said: a b "
    );
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    let (_, reasoned) = post_json(
        &url,
        &json!({"model": "m", "reasoning_effort": "high", "messages": [user("think")]}),
    )
    .await;
    let usage = &reasoned["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 256);
    assert_eq!(usage["completion_tokens"], 256 + 3);
}

#[tokio::test]
async fn shared_prompt_prefixes_report_cached_tokens() {
    let server = openai().await;
    let system = json!({"role": "system", "content": "lorem ipsum ".repeat(500)});
    let ask = |question: &str| json!({"model": "m", "messages": [system.clone(), user(question)]});
    let (_, first) = post_json(&chat_url(&server), &ask("first question")).await;
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let (_, second) = post_json(&chat_url(&server), &ask("second question")).await;
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= 1024 && cached % 128 == 0, "cached {cached}");
    assert!(cached <= second["usage"]["prompt_tokens"].as_u64().unwrap());
}

#[tokio::test]
async fn validation_errors_have_openai_shape() {
    let server = openai().await;
    let url = chat_url(&server);
    let (status, body) = post_json(
        &url,
        &json!({"model": "m", "messages": [user("x")], "foo": true}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"message": "Unrecognized request argument supplied: foo", "type": "invalid_request_error", "param": null, "code": null}})
    );
    let (status, body) = post_json(&url, &json!({"model": "m", "messages": []})).await;
    assert_eq!((status, &body["error"]["param"]), (400, &json!("messages")));
    let (status, body) = post_json(
        &url,
        &json!({"model": "m", "messages": [user("x"), {"role": "tool", "tool_call_id": "call_x", "content": "1"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
    );
    let (status, body) = post_unparsable(&url).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post_json(&format!("{}/nope", server.base_url()), &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Invalid URL (POST /v1/nope)");
}

#[tokio::test]
async fn models_are_listed() {
    let server = openai().await;
    let body: Value = reqwest::get(format!("{}/models", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let first = &body["data"][0];
    assert_eq!(first["object"], "model");
    assert!(first["id"].is_string() && first["created"].is_u64() && first["owned_by"].is_string());
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let server = openai().await;
    let answered = reqwest::Client::new()
        .post(chat_url(&server))
        .header("Authorization", "Bearer sk-test")
        .json(&json!({"model": "m", "messages": [user("one")]}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    reqwest::get(format!("{}/models?limit=1", server.base_url()))
        .await
        .unwrap();
    let streamed = stream_chunks(
        &chat_url(&server),
        &json!({"model": "m", "stream": true, "messages": [user("two")]}),
    )
    .await;
    let requests = server.requests();
    // Each response is recorded as sent, streams included.
    assert_eq!(requests[0].response.as_deref(), Some(&answered[..]));
    let recorded = String::from_utf8(requests[2].response.clone().unwrap()).unwrap();
    let recorded: Vec<Value> = sse_payloads(&recorded)
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(recorded, streamed);
    let requests = &requests[..2];
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(
        requests[0].body.as_ref().unwrap()["messages"][0]["content"],
        "one"
    );
    assert_eq!(requests[1].query.as_deref(), Some("limit=1"));
    assert_eq!(requests[1].body, None);
    let stats = server.stats();
    assert_eq!(
        (stats.requests, stats.completed, stats.in_flight),
        (3, 3, 0)
    );
}

/// The exact 400 body OpenAI sends for an invalid request.
fn openai_error(message: &str, param: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

#[tokio::test]
async fn attachment_parts_need_their_payload() {
    let server = openai().await;
    let url = chat_url(&server);
    let with_part = |part: Value| json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]});
    let missing = |param: &str| {
        openai_error(
            &format!("Missing required parameter: '{param}'."),
            param,
            "missing_required_parameter",
        )
    };
    let cases = [
        (
            json!({"type": "image_url"}),
            missing("messages[0].content[1].image_url"),
        ),
        (
            json!({"type": "image_url", "image_url": {"detail": "low"}}),
            missing("messages[0].content[1].image_url.url"),
        ),
        (
            json!({"type": "input_audio"}),
            missing("messages[0].content[1].input_audio"),
        ),
        (
            json!({"type": "input_audio", "input_audio": {"format": "wav"}}),
            missing("messages[0].content[1].input_audio.data"),
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
            missing("messages[0].content[1].input_audio.format"),
        ),
        (
            json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}),
            openai_error(
                "Invalid value: 'ogg'. Supported values are: 'wav' and 'mp3'.",
                "messages[0].content[1].input_audio.format",
                "invalid_value",
            ),
        ),
        (
            json!({"type": "file"}),
            missing("messages[0].content[1].file"),
        ),
        (
            json!({"type": "file", "file": {"filename": "a.pdf"}}),
            missing("messages[0].content[1].file.file_id"),
        ),
        (
            json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}),
            missing("messages[0].content[1].file.file_id"),
        ),
    ];
    for (part, expected) in cases {
        let (status, body) = post_json(&url, &with_part(part.clone())).await;
        assert_eq!((status, body), (400, expected), "part {part}");
    }
    for part in [
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}),
        json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}}),
        json!({"type": "file", "file": {"file_id": "file-abc"}}),
        json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"}}),
    ] {
        let (status, body) = post_json(&url, &with_part(part.clone())).await;
        assert_eq!(status, 200, "part {part}: {body}");
    }
}

#[tokio::test]
async fn reasoning_models_refuse_max_tokens_and_sampling() {
    let server = openai().await;
    let url = chat_url(&server);
    let ask = |model: &str, extra: Value| {
        let mut body = json!({"model": model, "messages": [user("think")]});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let unsupported = |param: &str| {
        openai_error(
            &format!("Unsupported parameter: '{param}' is not supported with this model."),
            param,
            "unsupported_parameter",
        )
    };
    let max_tokens = openai_error(
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use \
         'max_completion_tokens' instead.",
        "max_tokens",
        "unsupported_parameter",
    );
    let cases = [
        ("o1", json!({"max_tokens": 10}), max_tokens.clone()),
        ("o3-mini", json!({"max_tokens": 10}), max_tokens.clone()),
        (
            "o4-mini-2025-04-16",
            json!({"max_tokens": 10}),
            max_tokens.clone(),
        ),
        ("gpt-5", json!({"max_tokens": 10}), max_tokens.clone()),
        ("gpt-5.2", json!({"max_tokens": 10}), max_tokens),
        (
            "o3",
            json!({"temperature": 0.2}),
            openai_error(
                "Unsupported value: 'temperature' does not support 0.2 with this model. Only \
                 the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            ),
        ),
        ("gpt-5-mini", json!({"top_p": 0.9}), unsupported("top_p")),
        (
            "o3",
            json!({"presence_penalty": 0.5}),
            unsupported("presence_penalty"),
        ),
        (
            "o1",
            json!({"frequency_penalty": 0.5}),
            unsupported("frequency_penalty"),
        ),
        (
            "o4-mini",
            json!({"logprobs": true}),
            unsupported("logprobs"),
        ),
        (
            "gpt-5.1",
            json!({"reasoning_effort": "low", "top_p": 0.5}),
            unsupported("top_p"),
        ),
    ];
    for (model, extra, expected) in cases {
        let (status, body) = post_json(&url, &ask(model, extra.clone())).await;
        assert_eq!((status, body), (400, expected), "{model} {extra}");
    }
    // What the newest SDKs and Crossbar send: max_completion_tokens, the default temperature,
    // effort; and other models keep every sampling parameter.
    let accepted = [
        (
            "o3",
            json!({"max_completion_tokens": 100, "temperature": 1, "reasoning_effort": "high"}),
        ),
        (
            "gpt-5",
            json!({"max_completion_tokens": 100, "logprobs": false}),
        ),
        ("gpt-5.1", json!({"temperature": 0.2, "top_p": 0.5})),
        (
            "gpt-5-chat-latest",
            json!({"max_tokens": 10, "temperature": 0.2}),
        ),
        (
            "gpt-4o",
            json!({"max_tokens": 10, "temperature": 0.2, "top_p": 0.9, "logprobs": true}),
        ),
        ("gpt-4.1", json!({"max_tokens": 10, "temperature": 0.2})),
    ];
    for (model, extra) in accepted {
        let (status, body) = post_json(&url, &ask(model, extra.clone())).await;
        assert_eq!(status, 200, "{model} {extra}: {body}");
    }
}
