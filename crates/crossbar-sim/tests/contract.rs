//! Contract test: every response body, stream chunk and error the OpenAI dialect produces
//! validates against the matching schema of OpenAI's published spec
//! (`specs/openai.openapi.yaml`).

mod common;

use common::*;
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use crossbar_testkit::openapi::check;
use serde_json::{Value, json};

fn requests() -> Vec<Value> {
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"], "additionalProperties": false});
    vec![
        json!({"model": "m", "messages": [{"role": "system", "content": "Be terse."}, user("hello there")], "max_tokens": 3}),
        json!({"model": "m", "messages": [user("use get_weather and get_time for Rome")], "tools": weather_tools()}),
        json!({"model": "m", "tools": weather_tools(), "messages": [
            user("weather in Rome?"),
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\",\"unit\":\"c\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 25}"}]}),
        json!({"model": "m", "messages": [user("Make a title")], "reasoning_effort": "medium",
            "response_format": {"type": "json_schema", "json_schema": {"name": "doc", "schema": schema, "strict": true}}}),
        json!({"model": "m", "messages": [user("Answer in JSON")], "response_format": {"type": "json_object"}}),
    ]
}

#[tokio::test]
async fn completions_and_chunks_match_the_spec() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = chat_url(&server);
    for request in requests() {
        let (status, body) = post_json(&url, &request).await;
        assert_eq!(status, 200, "{body}");
        check("CreateChatCompletionResponse", &body);
        for options in [
            json!({"include_usage": true}),
            json!({"include_obfuscation": false}),
        ] {
            let mut streamed = request.clone();
            streamed["stream"] = json!(true);
            streamed["stream_options"] = options;
            for chunk in stream_chunks(&url, &streamed).await {
                check("CreateChatCompletionStreamResponse", &chunk);
            }
        }
    }
}

#[tokio::test]
async fn embeddings_and_models_match_the_spec() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    // Base64 responses are left out: the spec only models float vectors.
    for request in [
        json!({"model": "e", "input": ["one", "two"], "dimensions": 16}),
        json!({"model": "e", "input": [[1, 2], [3]]}),
    ] {
        let (status, body) = post_json(&embeddings_url(&server), &request).await;
        assert_eq!(status, 200);
        check("CreateEmbeddingResponse", &body);
    }
    let models: Value = reqwest::get(format!("{}/models", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    check("ListModelsResponse", &models);
}

async fn error_body(server: &SimServer, request: &Value) -> Value {
    let (status, body) = post_json(&chat_url(server), request).await;
    assert!(status >= 400, "{body}");
    body
}

#[tokio::test]
async fn errors_match_the_spec() {
    let ok = json!({"model": "m", "messages": [user("x")]});
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    check(
        "ErrorResponse",
        &error_body(&server, &json!({"model": "m", "messages": []})).await,
    );
    let (_, not_found) = post_json(&format!("{}/nope", server.base_url()), &ok).await;
    check("ErrorResponse", &not_found);
    // The request rules added for issue 14: payload-less parts, reasoning-model parameters,
    // and the Responses API's call/output pairing.
    for request in [
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
        json!({"model": "o3", "messages": [user("x")], "max_tokens": 5}),
        json!({"model": "o3", "messages": [user("x")], "temperature": 0.5}),
    ] {
        check("ErrorResponse", &error_body(&server, &request).await);
    }
    let (status, pairing) = post_json(
        &format!("{}/responses", server.base_url()),
        &json!({"model": "m", "store": false, "input": [
            {"type": "function_call_output", "call_id": "call_1", "output": "x"}]}),
    )
    .await;
    assert_eq!(status, 400);
    check("ErrorResponse", &pairing);
    for config in [
        SimConfig {
            api_key: Some("k".to_owned()),
            ..SimConfig::default()
        },
        SimConfig {
            rate_limit_rate: 1.0,
            ..SimConfig::default()
        },
        SimConfig {
            error_rate: 1.0,
            ..SimConfig::default()
        },
    ] {
        server.set_config(config);
        check("ErrorResponse", &error_body(&server, &ok).await);
    }
    server.set_config(SimConfig {
        stream_error_after_chunks: 1,
        ..SimConfig::default()
    });
    let response = post(
        &chat_url(&server),
        &json!({"model": "m", "stream": true, "messages": [user("x")]}),
    )
    .await;
    let payloads = sse_payloads(&response.text().await.unwrap());
    check(
        "ErrorResponse",
        &serde_json::from_str(&payloads[1]).unwrap(),
    );
}
