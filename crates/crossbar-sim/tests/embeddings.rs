//! OpenAI embeddings over HTTP: shapes, determinism, normalization, base64, validation.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use crossbar_sim::{SimConfig, SimDialect};
use serde_json::{Value, json};

#[expect(
    clippy::unwrap_used,
    reason = "fails the calling test on a malformed vector"
)]
fn vector(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_normalized_and_deterministic() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let request = json!({"model": "text-embedding-3-small",
        "input": ["rust async runtime", "the tokio async runtime", "banana bread recipe"]});
    let (status, body) = post_json(&embeddings_url(&server), &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vectors: Vec<Vec<f64>> = data.iter().map(vector).collect();
    for (index, (item, v)) in data.iter().zip(&vectors).enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], index);
        assert_eq!(v.len(), 1536);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.2);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        body["usage"]["prompt_tokens"],
        body["usage"]["total_tokens"]
    );
    let (_, again) = post_json(&embeddings_url(&server), &request).await;
    assert_eq!(again["data"], body["data"]);
}

#[tokio::test]
async fn dimensions_and_base64_encoding() {
    let server = start(
        SimDialect::OpenAi,
        SimConfig {
            embedding_dimensions: 32,
            ..SimConfig::default()
        },
    )
    .await;
    let url = embeddings_url(&server);
    let (_, default) = post_json(&url, &json!({"model": "e", "input": "hello"})).await;
    assert_eq!(vector(&default["data"][0]).len(), 32);
    let (_, floats) = post_json(
        &url,
        &json!({"model": "e", "input": "hello", "dimensions": 64}),
    )
    .await;
    let (_, encoded) = post_json(
        &url,
        &json!({"model": "e", "input": "hello", "dimensions": 64, "encoding_format": "base64"}),
    )
    .await;
    let bytes = STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    let expected = vector(&floats["data"][0]);
    assert_eq!(decoded.len(), 64);
    for (a, b) in decoded.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[tokio::test]
async fn token_inputs_are_accepted_and_bad_inputs_rejected() {
    let server = start(SimDialect::OpenAi, SimConfig::default()).await;
    let url = embeddings_url(&server);
    let (status, body) = post_json(&url, &json!({"model": "e", "input": [[1, 2, 3], [4]]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    let (status, _) = post_json(&url, &json!({"model": "e", "input": [5, 6]})).await;
    assert_eq!(status, 200);
    for bad in [
        json!({"model": "e", "input": ""}),
        json!({"model": "e", "input": []}),
        json!({"model": "e", "input": [[]]}),
        json!({"model": "e", "input": ["ok", 1]}),
        json!({"model": "e"}),
        json!({"model": "e", "input": "x", "dimensions": 0}),
        json!({"model": "e", "input": "x", "encoding_format": "hex"}),
        json!({"model": "e", "input": "x", "extra": 1}),
        json!({"input": "x"}),
    ] {
        let (status, body) = post_json(&url, &bad).await;
        assert_eq!(status, 400, "{bad} was accepted");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
