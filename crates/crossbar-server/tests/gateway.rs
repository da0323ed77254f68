//! Black-box tests: the gateway on port 0 in front of simulated OpenAI and Azure providers.

mod common;

use std::time::Duration;

use common::{
    TWO_CLOUDS, chunks, error_of, eventually, sse_data, start, streamed_text, user, weather_tools,
};
use serde_json::{Value, json};

#[tokio::test]
async fn chat_on_each_dialect_answers_from_the_prompt() {
    let gw = start(TWO_CLOUDS).await;
    for model in ["chat", "chat-azure"] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": model, "messages": [user("Tell me about otters")]}),
            )
            .await;
        assert_eq!(response.status(), 200, "{model}");
        assert!(response.headers().contains_key("x-request-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.contains("otters"), "{model}: {content}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
    // Azure got its deployment URL, api-version and api-key; the key never went to OpenAI.
    let azure = gw.sim("sim-azure").requests();
    assert_eq!(azure.len(), 1);
    assert_eq!(
        azure[0].path,
        "/openai/deployments/gpt4o-prod/chat/completions"
    );
    assert!(azure[0].query.as_deref().unwrap().contains("api-version="));
    assert_eq!(azure[0].header("api-key"), Some("azure-secret-key"));
    let openai = gw.sim("sim-openai").requests();
    assert_eq!(
        openai[0].body.as_ref().unwrap()["model"],
        "gpt-4o-2024-08-06"
    );
    assert!(openai[0].header("api-key").is_none());
}

#[tokio::test]
async fn streams_openai_framing_with_and_without_usage() {
    let gw = start(TWO_CLOUDS).await;
    for model in ["chat", "chat-azure"] {
        for include_usage in [true, false] {
            let mut body =
                json!({"model": model, "messages": [user("Stream about rivers")], "stream": true});
            if include_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
            let response = gw.post("/v1/chat/completions", &body).await;
            assert_eq!(response.status(), 200);
            crossbar_testkit::http::assert_content_type(&response, "text/event-stream");
            let (frames, end) = sse_data(response).await;
            end.unwrap();
            assert_eq!(frames.last().unwrap(), "[DONE]", "{model}");
            let chunks = chunks(&frames);
            // Azure's empty first chunk is not passed on: the role chunk comes first.
            assert_eq!(
                chunks[0]["choices"][0]["delta"]["role"], "assistant",
                "{model}"
            );
            assert!(
                chunks
                    .iter()
                    .all(|c| c["object"] == "chat.completion.chunk")
            );
            assert!(streamed_text(&chunks).contains("rivers"));
            let usage_chunks: Vec<_> = chunks
                .iter()
                .filter(|c| c["choices"] == json!([]))
                .collect();
            if include_usage {
                assert_eq!(usage_chunks.len(), 1);
                assert!(
                    usage_chunks[0]["usage"]["completion_tokens"]
                        .as_u64()
                        .unwrap()
                        > 0
                );
                assert!(chunks.iter().all(|c| c.get("usage").is_some()));
            } else {
                assert!(usage_chunks.is_empty());
                assert!(chunks.iter().all(|c| c.get("usage").is_none()));
            }
            let finish: Vec<_> = chunks
                .iter()
                .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
                .collect();
            assert_eq!(finish, vec!["stop"]);
        }
    }
    // Upstream always gets include_usage so metering sees tokens.
    for request in gw.sim("sim-openai").requests() {
        assert_eq!(
            request.body.unwrap()["stream_options"]["include_usage"],
            true
        );
    }
}

#[tokio::test]
async fn parallel_tool_calls_round_trip() {
    let gw = start(TWO_CLOUDS).await;
    for model in ["chat", "chat-azure"] {
        let messages = json!([user("Use get_weather and get_time for Paris")]);
        let body =
            json!({"model": model, "messages": messages, "tools": weather_tools(), "stream": true});
        let (frames, end) = sse_data(gw.post("/v1/chat/completions", &body).await).await;
        end.unwrap();
        let chunks = chunks(&frames);
        let first = &chunks[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert_eq!(first["content"], Value::Null);
        assert!(
            first.get("content").is_some(),
            "content: null must be present"
        );
        // Reassembled by index; id/type/name only in each call's first fragment.
        let calls = common::streamed_calls(&chunks);
        let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(names, vec!["get_weather", "get_time"], "{model}");
        let weather: Value = serde_json::from_str(&calls[0].2).unwrap();
        assert!(
            weather["city"].is_string() && ["c", "f"].contains(&weather["unit"].as_str().unwrap())
        );
        let finish: Vec<_> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
            .collect();
        assert_eq!(finish, vec!["tool_calls"]);

        // Send the results back: the answer cites them.
        let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()});
        let mut history = vec![user("Use get_weather and get_time for Paris"), assistant];
        history.push(
            json!({"role": "tool", "tool_call_id": calls[0].0, "content": "{\"temp_c\": 21}"}),
        );
        history.push(json!({"role": "tool", "tool_call_id": calls[1].0, "content": "14:05"}));
        let body = json!({"model": model, "messages": history, "tools": weather_tools()});
        let response: Value = common::chat_answer(&gw, &body).await;
        let content = response["choices"][0]["message"]["content"]
            .as_str()
            .unwrap();
        assert!(
            content.contains("temp_c") && content.contains("14:05"),
            "{content}"
        );
    }
}

#[tokio::test]
async fn json_schema_output_and_image_input() {
    let gw = start(TWO_CLOUDS).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"], "additionalProperties": false});
    let body = json!({"model": "chat-azure", "messages": [user("Extract the person")],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}});
    let response: Value = common::chat_answer(&gw, &body).await;
    let content: Value = common::content_json(&response);
    assert!(
        content["name"].is_string() && content["age"].as_i64().unwrap() >= 0,
        "{content}"
    );

    let image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}}]}]});
    assert_eq!(gw.post("/v1/chat/completions", &body).await.status(), 200);
    let sent = gw.sim("sim-openai").requests().pop().unwrap().body.unwrap();
    assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], image);
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let gw = start(TWO_CLOUDS).await;
    let floats: Value = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": ["red apple", "green apple"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(floats["object"], "list");
    let vectors: Vec<Vec<f64>> = floats["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vectors.len(), 2);
    let norm: f64 = vectors[0].iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let b64: Value = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": "red apple", "encoding_format": "base64"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(b64["data"][0]["embedding"].is_string());
    assert!(b64["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn models_and_health() {
    let gw = start(TWO_CLOUDS).await;
    let list: Value = gw.get("/v1/models").await.json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["chat", "chat-azure", "embed"]);
    let one = gw.get("/v1/models/chat").await;
    assert_eq!(one.status(), 200);
    let missing = gw.get("/v1/models/nope").await;
    assert_eq!(missing.status(), 404);
    let health = gw.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn client_errors_have_precise_statuses_and_openai_bodies() {
    let gw = start(&format!("{TWO_CLOUDS}\n[server]\nmax_body_bytes = 4096\n")).await;
    let client = gw.client();
    let url = format!("{}/v1/chat/completions", gw.url);
    let (status, body) = error_of(
        client
            .post(&url)
            .body("{\"model\": ")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, body) = error_of(
        gw.post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [user("x")], "temprature": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("temprature"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temprature")
    );

    let (status, body) = error_of(
        gw.post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [user("x")], "temperature": "hot"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("temperature"))
    );

    let (status, body) = error_of(common::chat(&gw, "gpt-nine", "x").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    let big = "x".repeat(8192);
    let (status, body) = error_of(common::chat(&gw, "chat", &big).await).await;
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("4096"));

    let (status, _) = error_of(gw.get("/v1/nothing").await).await;
    assert_eq!(status, 404);
    // Nothing reached a provider.
    assert!(gw.sim("sim-openai").requests().is_empty());
}

#[tokio::test]
async fn gateway_keys_are_enforced_without_echoing_them() {
    let gw = start(&format!(
        "{TWO_CLOUDS}\n[server]\napi_keys = [\"sk-gateway-1\"]\n"
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = json!({"model": "chat", "messages": [user("hi")]});
    let client = gw.client();
    let (status, _) = error_of(client.post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, error) = error_of(
        client
            .post(&url)
            .bearer_auth("sk-wrong-key")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(!error.to_string().contains("sk-wrong-key"));
    let ok = client
        .post(&url)
        .bearer_auth("sk-gateway-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let health = gw.get("/healthz").await;
    assert_eq!(health.status(), 200);
    // Readiness needs no key either, and says what it checked.
    let ready = gw.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["shared_state"], "off", "no [redis]");
    assert_eq!(ready["spooled_usage_records"], 0);
    assert!(ready["deployments"].as_u64().unwrap() >= 1, "{ready}");
}

/// [`common::flaky`] on OpenAI's dialect.
fn single(sim: &str, extra: &str) -> String {
    common::flaky("openai", "gpt-4o", sim, extra)
}

#[tokio::test]
async fn upstream_failures_map_to_precise_statuses() {
    // 429 with Retry-After passed through.
    let gw = start(&single("rate_limit_rate = 1.0, retry_after_s = 7", "")).await;
    common::rate_limited_for_7s(&gw).await;

    let gw = start(&single("error_rate = 1.0, error_status = 503", "")).await;
    let (status, _) = error_of(common::chat(&gw, "m", "x").await).await;
    assert_eq!(status, 503);

    let gw = start(&single("malformed_rate = 1.0", "")).await;
    let (status, body) = error_of(common::chat(&gw, "m", "x").await).await;
    assert_eq!(status, 502);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("flaky"),
        "{body}"
    );

    let gw = start(&single(
        "hang_rate = 1.0",
        "timeouts = { first_byte_ms = 300 }",
    ))
    .await;
    let (status, _) = error_of(common::chat(&gw, "m", "x").await).await;
    assert_eq!(status, 504);
}

const FAILOVER: &str = r#"
[[providers]]
name = "down"
kind = "openai-compatible"
endpoint = "http://127.0.0.1:9/v1"

[[providers]]
name = "busy"
kind = "sim"
dialect = "azure"
sim = { rate_limit_rate = 1.0 }

[[providers]]
name = "broken"
kind = "sim"
dialect = "openai"
sim = { cut_after_chunks = 0, error_rate = 1.0, error_status = 500 }

[[providers]]
name = "good"
kind = "sim"
dialect = "openai"

[[models]]
name = "m"
deployments = [
  { provider = "down", target = "x" },
  { provider = "busy", target = "x" },
  { provider = "broken", target = "x" },
  { provider = "good", target = "gpt-4o" },
]

[[models]]
name = "good-first"
deployments = [{ provider = "good", target = "gpt-4o" }, { provider = "busy", target = "x" }]

[routes.default]
objective = "order"
"#;

#[tokio::test]
async fn fails_over_in_config_order_on_connect_error_429_and_5xx() {
    let gw = start(FAILOVER).await;
    for stream in [false, true] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "m", "messages": [user("x")], "stream": stream}),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-crossbar-provider"], "good");
    }
    // Retry-After honoured: the second request skips `busy` instead of asking it again.
    assert_eq!(gw.sim("busy").requests().len(), 1);
    assert_eq!(gw.sim("broken").requests().len(), 2);
    // A client error is not retried elsewhere.
    let bad = json!({"model": "good-first", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
    let before = gw.sim("good").requests().len();
    let response = gw.post("/v1/chat/completions", &bad).await;
    assert_eq!(response.status(), 400);
    assert_eq!(gw.sim("good").requests().len(), before + 1);
    assert_eq!(
        gw.sim("busy").requests().len(),
        1,
        "a 400 is not retried on the next deployment"
    );
}

#[tokio::test]
async fn a_stream_cut_after_the_first_byte_ends_with_an_error_event() {
    let gw = start(&single("cut_after_chunks = 3", "")).await;
    let response = gw.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("a long answer please about many things")], "stream": true})).await;
    assert_eq!(response.status(), 200);
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    assert_ne!(frames.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(frames.len() >= 2, "some content arrived before the cut");

    let gw = start(&single("stream_error_after_chunks = 2", "")).await;
    let response = gw.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("another long answer about things")], "stream": true})).await;
    let (frames, _) = sse_data(response).await;
    assert!(!frames.contains(&"[DONE]".to_owned()));
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert!(last["error"].is_object());
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    // Streaming: read one chunk, then drop the connection.
    let gw = start(&single("tokens_per_s = 5.0", "")).await;
    let mut response = gw.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("write a long essay about the sea and the sky")], "stream": true})).await;
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    eventually("upstream stream cancelled", || {
        gw.sim("flaky").stats().cancelled == 1
    })
    .await;

    // Not streaming: the upstream hangs and the client gives up.
    let gw = start(&single("hang_rate = 1.0", "")).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&json!({"model": "m", "messages": [user("x")]}))
        .send()
        .await;
    assert!(sent.is_err());
    eventually("upstream request cancelled", || {
        gw.sim("flaky").stats().cancelled == 1
    })
    .await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams() {
    let mut gw = start(&single("tokens_per_s = 40.0", "")).await;
    let response = gw.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("count some words for me slowly please")], "stream": true})).await;
    assert_eq!(response.status(), 200);
    gw.shutdown();
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    assert_eq!(
        frames.last().unwrap(),
        "[DONE]",
        "the in-flight stream finished"
    );
    let result = tokio::time::timeout(Duration::from_secs(10), &mut gw.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
}

#[tokio::test]
async fn a_stream_that_stalls_mid_way_ends_with_a_timeout_error_event() {
    let gw = start(&single(
        "tokens_per_s = 2.0",
        "timeouts = { idle_ms = 150 }",
    ))
    .await;
    let response = gw.post("/v1/chat/completions", &json!({"model": "m", "messages": [user("several words to stream slowly")], "stream": true})).await;
    assert_eq!(response.status(), 200);
    let (frames, _) = sse_data(response).await;
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "timeout_error", "{last}");
}

/// A request one deployment's dialect cannot express goes to one that can; when none can, the
/// client gets the 400 naming the field.
#[tokio::test]
async fn a_request_bedrock_cannot_express_is_served_by_another_deployment() {
    let config = r#"
[[providers]]
name = "bedrock"
kind = "sim"
dialect = "bedrock"
region = "us-east-1"

[[providers]]
name = "openai"
kind = "sim"
dialect = "openai"

[[models]]
name = "m"
deployments = [{ provider = "bedrock", target = "amazon.nova-pro-v1:0" }, { provider = "openai", target = "gpt-4o" }]

[[models]]
name = "bedrock-only"
deployments = [{ provider = "bedrock", target = "amazon.nova-pro-v1:0" }]

[routes.default]
objective = "order"
"#;
    let gw = start(config).await;
    let body = json!({"model": "m", "messages": [user("x")], "logprobs": true});
    let response = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-crossbar-provider"], "openai");
    assert!(
        gw.sim("bedrock").requests().is_empty(),
        "nothing untranslatable was sent to Bedrock"
    );
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "bedrock-only", "messages": [user("x")], "logprobs": true}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "logprobs");
}
