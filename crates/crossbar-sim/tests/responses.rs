//! OpenAI Responses API over HTTP: the tool-call pairing rules of the real API.

mod common;

use common::*;
use crossbar_sim::{SimConfig, SimDialect};
use serde_json::{Value, json};

fn responses_url(server: &crossbar_sim::SimServer) -> String {
    format!("{}/responses", server.base_url())
}

fn call(id: &str) -> Value {
    json!({"type": "function_call", "call_id": id, "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"})
}

fn output(id: &str) -> Value {
    json!({"type": "function_call_output", "call_id": id, "output": "{\"temp_c\": 25}"})
}

fn request(input: Vec<Value>) -> Value {
    json!({"model": "gpt-4o", "store": false, "input": input,
           "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]})
}

/// OpenAI's body for both pairing errors: `param` "input" and no code.
fn input_error(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": "input", "code": null}})
}

#[tokio::test]
async fn function_call_output_needs_its_call() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = responses_url(&server);
    let question = json!({"role": "user", "content": "weather in Rome?"});
    let (status, body) = post_json(&url, &request(vec![question.clone(), output("call_9")])).await;
    assert_eq!(
        (status, body),
        (
            400,
            input_error("No tool call found for function call output with call_id call_9.")
        )
    );
    // An output that names a call of the history, but comes before it, has no call either.
    let (status, body) = post_json(
        &url,
        &request(vec![question.clone(), output("call_1"), call("call_1")]),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            input_error("No tool call found for function call output with call_id call_1.")
        )
    );
    let (status, body) = post_json(
        &url,
        &request(vec![question, call("call_1"), output("call_1")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_function_call_needs_its_output() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = responses_url(&server);
    let question = json!({"role": "user", "content": "weather in Rome and Paris?"});
    let follow_up = json!({"role": "user", "content": "and now?"});
    let (status, body) = post_json(
        &url,
        &request(vec![
            question.clone(),
            call("call_1"),
            call("call_2"),
            output("call_2"),
            follow_up.clone(),
        ]),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            input_error("No tool output found for function call call_1.")
        )
    );
    let (status, body) = post_json(&url, &request(vec![question.clone(), call("call_1")])).await;
    assert_eq!(
        (status, body),
        (
            400,
            input_error("No tool output found for function call call_1.")
        )
    );
    let (status, body) = post_json(
        &url,
        &request(vec![
            question,
            call("call_1"),
            call("call_2"),
            output("call_2"),
            output("call_1"),
            follow_up,
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn max_output_tokens_has_a_floor_of_16() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = responses_url(&server);
    let ask = |max: u64| json!({"model": "gpt-4o", "store": false, "input": "a long story please", "max_output_tokens": max});
    let (status, body) = post_json(&url, &ask(15)).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": {"message": "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 15 instead.",
                "type": "invalid_request_error", "param": "max_output_tokens", "code": "integer_below_min_value"}})
        )
    );
    let (status, body) = post_json(&url, &ask(16)).await;
    assert_eq!(status, 200, "{body}");
}

/// Reasoning models refuse sampling through the Responses API as on Chat (the real body, as
/// o3 answers it: `unsupported_parameter` naming the field); gpt-4o takes it.
#[tokio::test]
async fn reasoning_models_refuse_sampling() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = responses_url(&server);
    let ask = |model: &str, extra: Value| {
        let mut body = json!({"model": model, "store": false, "input": "hi"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (status, body) = post_json(&url, &ask("o3", json!({"temperature": 0.2}))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.",
                "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}})
        )
    );
    let (status, body) = post_json(&url, &ask("gpt-5", json!({"top_p": 0.5}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "top_p");
    for (model, extra) in [
        ("o3", json!({"temperature": 1})),
        ("gpt-4o", json!({"temperature": 0.2, "top_p": 0.5})),
        ("gpt-5.1", json!({"temperature": 0.2})),
    ] {
        let (status, body) = post_json(&url, &ask(model, extra)).await;
        assert_eq!(status, 200, "{model}: {body}");
    }
}
