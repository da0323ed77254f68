//! Scripted latency and faults over HTTP: auth, 429s, error statuses, cut, failing and
//! malformed streams, hangs with client cancellation, and mid-test reconfiguration.

mod common;

use std::time::{Duration, Instant};

use common::*;
use crossbar_sim::{SimConfig, SimDialect};
use futures::StreamExt;
use serde_json::{Value, json};

fn chat(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [user("one two three four five six")]})
}

async fn openai(config: SimConfig) -> crossbar_sim::SimServer {
    start(SimDialect::OpenAi, config).await
}

#[tokio::test]
async fn api_key_is_enforced_as_bearer() {
    let server = openai(SimConfig {
        api_key: Some("sk-sim".to_owned()),
        ..SimConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let missing = client
        .post(chat_url(&server))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = client
        .post(chat_url(&server))
        .bearer_auth("sk-other")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        !body.to_string().contains("sk-other"),
        "keys are never echoed"
    );
    let ok = client
        .post(chat_url(&server))
        .bearer_auth("sk-sim")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let server = openai(SimConfig {
        rate_limit_rate: 1.0,
        retry_after_s: 3,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &chat(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "3s");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn error_rate_answers_with_the_error_status() {
    let server = openai(SimConfig {
        error_rate: 1.0,
        error_status: 502,
        ..SimConfig::default()
    })
    .await;
    let (status, body) = post_json(&chat_url(&server), &chat(false)).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "server_error");
    let (status, _) = post_json(
        &embeddings_url(&server),
        &json!({"model": "e", "input": "x"}),
    )
    .await;
    assert_eq!(status, 502, "embeddings fail too");
}

#[tokio::test]
async fn cut_streams_end_in_an_incomplete_body() {
    let server = openai(SimConfig {
        cut_after_chunks: 3,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &chat(true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(item) = body.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with an error, not a clean end");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(text.matches("data: ").count(), 3);
    assert!(!text.contains("[DONE]"));
    assert!(eventually(|| server.stats().completed == 1).await);
}

#[tokio::test]
async fn stream_errors_arrive_in_band() {
    let server = openai(SimConfig {
        stream_error_after_chunks: 2,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &chat(true)).await;
    assert_eq!(response.status(), 200);
    let payloads = sse_payloads(&response.text().await.unwrap());
    assert_eq!(payloads.len(), 3);
    let error: Value = serde_json::from_str(&payloads[2]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["message"].is_string());
    assert!(!payloads.iter().any(|p| p == "[DONE]"));
}

#[tokio::test]
async fn malformed_responses_do_not_parse() {
    let server = openai(SimConfig {
        malformed_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &chat(false)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.starts_with("{\"id\":\"chatcmpl-"));
    assert!(serde_json::from_str::<Value>(&text).is_err());

    let response = post(&chat_url(&server), &chat(true)).await;
    let payloads = sse_payloads(&response.text().await.unwrap());
    let broken: Vec<&String> = payloads
        .iter()
        .filter(|p| *p != "[DONE]" && serde_json::from_str::<Value>(p).is_err())
        .collect();
    assert_eq!(broken.len(), 1, "exactly one malformed frame");
    assert_eq!(payloads.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn hung_requests_count_as_cancelled_when_the_client_leaves() {
    let server = openai(SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let result = client
        .post(chat_url(&server))
        .json(&chat(false))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    drop(client);
    assert!(
        eventually(|| server.stats().cancelled == 1).await,
        "{:?}",
        server.stats()
    );
    let stats = server.stats();
    assert_eq!(
        (stats.requests, stats.completed, stats.in_flight),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn dropped_streams_count_as_cancelled() {
    let server = openai(SimConfig {
        tokens_per_s: 5.0,
        ..SimConfig::default()
    })
    .await;
    let response = post(&chat_url(&server), &chat(true)).await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(
        eventually(|| server.stats().cancelled == 1).await,
        "{:?}",
        server.stats()
    );
}

#[tokio::test]
async fn set_config_scripts_an_outage_mid_test() {
    let server = openai(SimConfig::default()).await;
    let url = chat_url(&server);
    assert_eq!(post(&url, &chat(false)).await.status(), 200);
    let outage = SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    };
    server.set_config(outage.clone());
    assert_eq!(server.config(), outage);
    assert_eq!(post(&url, &chat(false)).await.status(), 503);
    server.set_config(SimConfig::default());
    assert_eq!(post(&url, &chat(false)).await.status(), 200);
}

#[tokio::test]
async fn seeded_fault_sequences_replay() {
    let config = |seed| SimConfig {
        error_rate: 0.5,
        seed,
        ..SimConfig::default()
    };
    async fn statuses(server: &crossbar_sim::SimServer) -> Vec<u16> {
        let mut statuses = Vec::new();
        for _ in 0..16 {
            statuses.push(
                post(&chat_url(server), &chat(false))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    }
    let first = statuses(&openai(config(7)).await).await;
    assert_eq!(first, statuses(&openai(config(7)).await).await);
    assert_ne!(first, statuses(&openai(config(8)).await).await);
    assert!(first.contains(&200) && first.contains(&503));
}

#[tokio::test]
async fn latency_delays_first_byte_and_paces_tokens() {
    let server = openai(SimConfig {
        ttft_ms: 200,
        tokens_per_s: 20.0,
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let response = post(&chat_url(&server), &chat(true)).await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    let first_byte = started.elapsed();
    assert!(first_byte >= Duration::from_millis(200), "{first_byte:?}");
    while let Some(item) = body.next().await {
        item.unwrap();
    }
    // 8 content words at 20/s: 7 gaps of 50 ms after the first token.
    let total = started.elapsed();
    assert!(total >= Duration::from_millis(200 + 350), "{total:?}");

    let started = Instant::now();
    assert_eq!(post(&chat_url(&server), &chat(false)).await.status(), 200);
    // 200 ms + 8 tokens / 20 per second.
    assert!(started.elapsed() >= Duration::from_millis(600));
}
