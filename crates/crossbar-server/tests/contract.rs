//! Contract test: every request the gateway sends to an OpenAI-dialect upstream, and every
//! response, stream chunk and error it returns to a client, validates against the matching
//! schema of OpenAI's published OpenAPI spec (`specs/openai.openapi.yaml`).

mod common;

use common::{TWO_CLOUDS, sse_data, start, user, weather_tools};
use crossbar_testkit::http::json_of;
use crossbar_testkit::openapi::check;
use serde_json::{Value, json};

#[tokio::test]
async fn gateway_traffic_matches_the_openai_spec() {
    let gw = start(TWO_CLOUDS).await;
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"], "additionalProperties": false});
    let image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let requests = [
        json!({"model": "chat", "messages": [{"role": "system", "content": "Be terse."}, user("hello there")], "temperature": 0.3, "max_tokens": 50, "stop": ["\n\n"], "seed": 3, "user": "u1"}),
        json!({"model": "chat", "messages": [user("Use get_weather and get_time for Rome")], "tools": weather_tools(), "tool_choice": "auto", "parallel_tool_calls": true}),
        json!({"model": "chat-azure", "messages": [user("Use get_weather for Rome")], "tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        json!({"model": "chat", "messages": [
            user("weather in Rome?"),
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\",\"unit\":\"c\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 25}"}], "tools": weather_tools()}),
        json!({"model": "chat-azure", "messages": [user("Make a title")], "response_format": {"type": "json_schema", "json_schema": {"name": "doc", "schema": schema, "strict": true}}}),
        json!({"model": "chat", "messages": [user("Answer in JSON")], "response_format": {"type": "json_object"}, "logprobs": false}),
        json!({"model": "chat", "messages": [{"role": "user", "content": [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": image}}]}]}),
    ];
    let mut chunks_checked = 0;
    for request in &requests {
        for stream in [false, true] {
            let mut body = request.clone();
            if stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            check("CreateChatCompletionRequest", &body);
            let response = gw.post("/v1/chat/completions", &body).await;
            assert_eq!(response.status(), 200, "{body}");
            if stream {
                let (frames, end) = sse_data(response).await;
                end.unwrap();
                assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
                for frame in &frames[..frames.len() - 1] {
                    check(
                        "CreateChatCompletionStreamResponse",
                        &serde_json::from_str(frame).unwrap(),
                    );
                    chunks_checked += 1;
                }
            } else {
                check(
                    "CreateChatCompletionResponse",
                    &response.json().await.unwrap(),
                );
            }
        }
    }
    assert!(chunks_checked > 50, "{chunks_checked}");

    for input in [json!("one text"), json!(["a", "b"]), json!([1, 2, 3])] {
        for format in ["float", "base64"] {
            let body = json!({"model": "embed", "input": input, "encoding_format": format});
            check("CreateEmbeddingRequest", &body);
            let response = gw.post("/v1/embeddings", &body).await;
            assert_eq!(response.status(), 200);
            let value: Value = response.json().await.unwrap();
            if format == "float" {
                check("CreateEmbeddingResponse", &value);
            }
        }
    }
    let models = json_of(gw.client().get(format!("{}/v1/models", gw.url))).await;
    check("ListModelsResponse", &models);

    for bad in [
        json!({"model": "nope", "messages": [user("x")]}),
        json!({"model": "chat", "messages": [], "x": 1}),
        json!({"model": "chat", "messages": []}),
    ] {
        let response = gw.post("/v1/chat/completions", &bad).await;
        assert!(response.status().is_client_error());
        check("ErrorResponse", &response.json().await.unwrap());
    }

    // Everything the gateway sent upstream, to both dialects, is a valid OpenAI request.
    let mut sent = 0;
    for sim in ["sim-openai", "sim-azure"] {
        for recorded in gw.sim(sim).requests() {
            let body = recorded.body.unwrap();
            let schema = if recorded.path.ends_with("/embeddings") {
                "CreateEmbeddingRequest"
            } else {
                "CreateChatCompletionRequest"
            };
            check(schema, &body);
            sent += 1;
        }
    }
    assert_eq!(sent, requests.len() * 2 + 6);
}
