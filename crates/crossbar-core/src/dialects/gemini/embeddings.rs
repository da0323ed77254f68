//! Gemini API `models/{m}:batchEmbedContents`. Vertex AI serves embeddings through a different
//! method (`:predict` with instances), which this dialect does not translate.

use super::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, Part,
};
use crate::embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

pub(super) fn vertex_unsupported() -> Error {
    Error::invalid_field(
        "model",
        "This model is served by a Vertex AI (Gemini dialect) provider, for which the gateway \
         does not translate embeddings yet.",
    )
}

/// Every request of the batch names the model, as `models/{m}`, the same as the URL's.
pub(super) fn body(request: &EmbeddingRequest, model_path: &str) -> Result<Vec<u8>> {
    let EmbeddingInput::Texts(texts) = &request.input else {
        return Err(Error::invalid_field(
            "input",
            "Gemini-dialect providers embed text only; token-id inputs are not supported.",
        ));
    };
    let wire = BatchEmbedContentsRequest {
        requests: texts
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
