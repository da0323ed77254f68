//! Embeddings on the clouds' own APIs over real HTTP: Bedrock's InvokeModel for Titan Text
//! Embeddings v2 and Cohere Embed (their bodies, the JSON-schema refusals, the token-count
//! header) and Vertex AI's `:predict` on a publisher text-embedding model.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{post_json, start};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use crossbar_testkit::providers::post_signed;
use serde_json::{Value, json};

/// Status, the token-count header, and the body (or the error's message).
async fn invoke(server: &SimServer, model: &str, body: &Value) -> (u16, Option<u64>, Value) {
    let url = format!("{}/model/{model}/invoke", server.base_url());
    let response = post_signed(&url, body).await;
    let status = response.status().as_u16();
    let tokens = response
        .headers()
        .get("x-amzn-bedrock-input-token-count")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, tokens, response.json().await.unwrap())
}

fn norm(vector: &Value) -> f64 {
    vector
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt()
}

#[tokio::test]
async fn titan_embeds_one_text_at_its_dimensions() {
    let server = start(SimDialect::Bedrock, SimConfig::default()).await;
    let model = "amazon.titan-embed-text-v2%3A0";
    let (status, tokens, body) = invoke(
        &server,
        model,
        &json!({"inputText": "hello world", "dimensions": 256}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["embedding"].as_array().unwrap().len(), 256);
    assert!((norm(&body["embedding"]) - 1.0).abs() < 1e-4);
    assert_eq!(body["embeddingsByType"]["float"], body["embedding"]);
    assert_eq!(Some(body["inputTextTokenCount"].as_u64().unwrap()), tokens);
    for (request, message) in [
        (
            json!({"texts": ["a"]}),
            "Malformed input request: #: extraneous key [texts] is not permitted, please \
             reformat your input and try again.",
        ),
        (
            json!({"dimensions": 256}),
            "Malformed input request: #: required key [inputText] not found, please reformat \
             your input and try again.",
        ),
        (
            json!({"inputText": "a", "dimensions": 100}),
            "Malformed input request: #/dimensions: 100 is not a valid enum value, please \
             reformat your input and try again.",
        ),
    ] {
        let (status, _, body) = invoke(&server, model, &request).await;
        assert_eq!((status, body["message"].as_str().unwrap()), (400, message));
    }
}

#[tokio::test]
async fn cohere_embeds_texts_of_an_input_type() {
    let server = start(SimDialect::Bedrock, SimConfig::default()).await;
    let model = "cohere.embed-english-v3";
    let (status, tokens, body) = invoke(
        &server,
        model,
        &json!({"texts": ["a b", "c"], "input_type": "search_document"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response_type"], "embeddings_floats");
    assert_eq!(body["texts"], json!(["a b", "c"]));
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(body["embeddings"][0].as_array().unwrap().len(), 1024);
    assert!(tokens.unwrap() > 0);
    let (status, _, body) = invoke(&server, model, &json!({"texts": ["a"]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Malformed input request: #: required key [input_type] not found, please reformat your \
         input and try again."
    );
}

#[tokio::test]
async fn vertex_predicts_text_embeddings() {
    let server = start(SimDialect::Vertex, SimConfig::default()).await;
    let url = format!(
        "{}/projects/p1/locations/us-central1/publishers/google/models/text-embedding-005:predict",
        server.base_url()
    );
    let (status, body) = post_json(
        &url,
        &json!({"instances": [{"content": "hello world"}, {"content": "x"}],
                "parameters": {"outputDimensionality": 8}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    assert_eq!(
        predictions[0]["embeddings"]["values"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(
        predictions[0]["embeddings"]["statistics"]["truncated"],
        false
    );
    assert_eq!(body["metadata"]["billableCharacterCount"], 11);
    let (status, body) = post_json(&url, &json!({"instances": []})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
}
