//! Embeddings: the Gemini API's `models/{m}:batchEmbedContents`, and Vertex AI's `:predict` on
//! the publisher model (`text-embedding-005`, `gemini-embedding-001`...), whose instances are
//! `{content}` and whose predictions carry each vector with its token count.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, Part,
};
use crate::embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

fn texts(request: &EmbeddingRequest) -> Result<&[String]> {
    match &request.input {
        EmbeddingInput::Texts(texts) => Ok(texts),
        EmbeddingInput::Tokens(_) => Err(Error::invalid_field(
            "input",
            "Gemini-dialect providers embed text only; token-id inputs are not supported.",
        )),
    }
}

/// Vertex AI's `:predict` body: one instance per text, `outputDimensionality` when asked.
pub(super) fn vertex_body(request: &EmbeddingRequest) -> Result<Vec<u8>> {
    let instances: Vec<_> = texts(request)?
        .iter()
        .map(|text| json!({"content": text}))
        .collect();
    let mut body = json!({"instances": instances});
    if let Some(dimensions) = request.dimensions {
        body["parameters"] = json!({"outputDimensionality": dimensions});
    }
    serde_json::to_vec(&body)
        .map_err(|e| Error::internal(format!("encoding a Vertex embeddings request: {e}")))
}

#[derive(Debug, Deserialize, Serialize)]
struct PredictResponse {
    predictions: Vec<Prediction>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Prediction {
    embeddings: PredictedEmbedding,
}

#[derive(Debug, Deserialize, Serialize)]
struct PredictedEmbedding {
    values: Vec<f32>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

/// Written by the model server in snake case.
#[derive(Debug, Deserialize, Serialize)]
struct Statistics {
    #[serde(default)]
    token_count: u64,
}

/// The predictions' vectors, in instance order, and their token counts summed.
pub(super) fn vertex_decode(body: &[u8]) -> Result<EmbeddingResponse> {
    let wire: PredictResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!("The upstream returned invalid embeddings: {e}"))
    })?;
    let input_tokens = wire
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref())
        .map(|s| s.token_count)
        .fold(0u64, u64::saturating_add);
    Ok(EmbeddingResponse {
        model: String::new(),
        vectors: wire
            .predictions
            .into_iter()
            .map(|p| p.embeddings.values)
            .collect(),
        input_tokens,
    })
}

/// Every request of the batch names the model, as `models/{m}`, the same as the URL's.
pub(super) fn body(request: &EmbeddingRequest, model_path: &str) -> Result<Vec<u8>> {
    let wire = BatchEmbedContentsRequest {
        requests: texts(request)?
            .iter()
            .map(|text| EmbedContentRequest {
                model: model_path.to_owned(),
                content: Content {
                    role: None,
                    parts: vec![Part::text(text.clone())],
                },
                output_dimensionality: request.dimensions,
            })
            .collect(),
    };
    serde_json::to_vec(&wire)
        .map_err(|e| Error::internal(format!("encoding a Gemini embeddings request: {e}")))
}

/// The answer carries vectors only: no model and no token count (`input_tokens` is 0).
pub(super) fn decode(body: &[u8]) -> Result<EmbeddingResponse> {
    let wire: BatchEmbedContentsResponse = serde_json::from_slice(body).map_err(|e| {
        Error::bad_upstream(format!("The upstream returned invalid embeddings: {e}"))
    })?;
    Ok(EmbeddingResponse {
        model: String::new(),
        vectors: wire.embeddings.into_iter().map(|e| e.values).collect(),
        input_tokens: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertex_predicts_one_instance_per_text_and_counts_their_tokens() {
        let request = EmbeddingRequest {
            model: "embed".into(),
            input: EmbeddingInput::Texts(vec!["a b".into(), "c".into()]),
            dimensions: Some(256),
            user: None,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&vertex_body(&request).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"instances": [{"content": "a b"}, {"content": "c"}],
                   "parameters": {"outputDimensionality": 256}})
        );
        let answer = vertex_decode(
            json!({"predictions": [
                {"embeddings": {"values": [0.5], "statistics": {"truncated": false, "token_count": 2}}},
                {"embeddings": {"values": [-1.0], "statistics": {"truncated": false, "token_count": 1}}}],
                "metadata": {"billableCharacterCount": 4}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(answer.vectors, vec![vec![0.5], vec![-1.0]]);
        assert_eq!(answer.input_tokens, 3);
    }
}
