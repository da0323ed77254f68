//! Azure OpenAI over HTTP: deployment URLs, api-version, api-key auth, the empty first stream
//! chunk, content-filter annotations and the string-code error shape.

mod common;

use common::*;
use crossbar_sim::{SimConfig, SimDialect};
use serde_json::{Value, json};

async fn azure(config: SimConfig) -> crossbar_sim::SimServer {
    start(SimDialect::Azure, config).await
}

#[tokio::test]
async fn deployment_url_answers_with_the_underlying_model() {
    let server = azure(SimConfig::default()).await;
    assert_eq!(server.base_url(), format!("http://{}", server.addr()));
    let response = post(&chat_url(&server), &json!({"messages": [user("hi azure")]})).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("apim-request-id"));
    assert!(response.headers().contains_key("x-ms-region"));
    assert!(
        response
            .headers()
            .contains_key("x-ratelimit-remaining-tokens")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "gpt4o-prod-2024-08-06");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: hi azure"
    );
    assert_eq!(
        body["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"],
        false
    );
    assert_eq!(
        body["choices"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
    assert!(body.get("service_tier").is_none());
}

#[tokio::test]
async fn api_version_is_required() {
    let server = azure(SimConfig::default()).await;
    let url = format!(
        "{}/openai/deployments/gpt4o-prod/chat/completions",
        server.base_url()
    );
    let (status, body) = post_json(&url, &json!({"messages": [user("x")]})).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );
    let (status, _) = post_json(
        &format!("{}/v1/chat/completions", server.base_url()),
        &json!({"messages": [user("x")]}),
    )
    .await;
    assert_eq!(status, 404, "no OpenAI paths on an Azure resource");
}

#[tokio::test]
async fn stream_starts_with_an_empty_filter_chunk() {
    let server = azure(SimConfig::default()).await;
    let chunks = stream_chunks(
        &chat_url(&server),
        &json!({"stream": true, "messages": [user("hello")], "stream_options": {"include_usage": true}}),
    )
    .await;
    let first = &chunks[0];
    assert_eq!(first["choices"], json!([]));
    assert_eq!(
        (
            &first["id"],
            &first["model"],
            &first["created"],
            &first["object"]
        ),
        (&json!(""), &json!(""), &json!(0), &json!(""))
    );
    assert!(first["prompt_filter_results"].is_array());
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(chunks[1]["model"], "gpt4o-prod-2024-08-06");
    assert!(chunks.iter().all(|c| c.get("obfuscation").is_none()));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn api_key_header_or_bearer_authenticates() {
    let server = azure(SimConfig {
        api_key: Some("azure-key".to_owned()),
        ..SimConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let body = json!({"messages": [user("x")]});
    let send = |header: Option<(&'static str, &'static str)>| {
        let mut request = client.post(chat_url(&server)).json(&body);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send()
    };
    let denied = send(None).await.unwrap();
    assert_eq!(denied.status(), 401);
    let error: Value = denied.json().await.unwrap();
    assert_eq!(error["error"]["code"], "401");
    assert!(error["error"].get("type").is_none());
    assert_eq!(
        send(Some(("api-key", "wrong"))).await.unwrap().status(),
        401
    );
    assert_eq!(
        send(Some(("api-key", "azure-key"))).await.unwrap().status(),
        200
    );
    let bearer = send(Some(("authorization", "Bearer azure-key")))
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
}

#[tokio::test]
async fn rate_limits_carry_retry_after_ms_and_string_codes() {
    let server = azure(SimConfig {
        rate_limit_rate: 1.0,
        retry_after_s: 2,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &json!({"messages": [user("x")]})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["retry-after-ms"], "2000");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "429");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("ChatCompletions_Create") && message.contains("2024-10-21"));
}

#[tokio::test]
async fn validation_errors_keep_the_azure_shape() {
    let server = azure(SimConfig::default()).await;
    let (status, body) = post_json(&chat_url(&server), &json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "empty_array");
    assert_eq!(body["error"]["param"], "messages");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn embeddings_use_the_deployment() {
    let server = azure(SimConfig::default()).await;
    let (status, body) = post_json(
        &embeddings_url(&server),
        &json!({"input": "hello", "dimensions": 8}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "embed-2024-08-06");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 8);
}
