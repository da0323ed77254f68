//! The AWS Bedrock Converse / ConverseStream dialect, as an upstream: `POST
//! {endpoint}/model/{modelId}/converse` and `/converse-stream` (binary AWS event stream), signed
//! with SigV4 for the `bedrock` service, or sent with a Bedrock API key as a bearer token.
//!
//! Request rules live in [`request`], answers and errors in [`response`], stream events in
//! [`stream`]; providers.md §5 is the reference. Embeddings (Titan and Cohere through InvokeModel,
//! `/model/{modelId}/invoke`) are in [`embeddings`].

mod embeddings;
mod request;
mod response;
mod stream;
pub mod wire;

pub use stream::StreamDecoder;

use super::Parts;
use crate::auth::sigv4::BEDROCK;
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::BedrockSettings;
use crate::dialects::{Egress, Framing, Operation, StreamDecode, encode_path_segment};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

pub use request::{document_name, tool_use_id};

/// Bedrock Converse as an upstream dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct BedrockEgress;

/// This dialect's row of the provider table: the regional endpoint unless one is configured,
/// and a Bedrock API key or SigV4 (`BedrockSettings::authorize`).
pub(crate) fn provider_parts(
    settings: &BedrockSettings,
    endpoint: Option<String>,
) -> Result<Parts, String> {
    let endpoint = endpoint
        .unwrap_or_else(|| format!("https://bedrock-runtime.{}.amazonaws.com", settings.region));
    let (key_header, authorizer) = settings.authorize(BEDROCK)?;
    let mut parts = Parts::new(BedrockEgress, endpoint, key_header);
    parts.authorizer = authorizer;
    Ok(parts)
}

/// Encodes a canonical request as a Converse body.
pub fn encode_chat_request(request: &ChatRequest) -> Result<Vec<u8>> {
    super::rules::refuse_foreign_passthrough(request, None, "bedrock")?;
    let wire = request::encode(request)?;
    serde_json::to_vec(&wire)
        .map_err(|e| Error::internal(format!("encoding a Converse request: {e}")))
}

/// Decodes a `ConverseResponse`.
pub fn decode_chat_response(body: &[u8]) -> Result<ChatResponse> {
    response::decode(body)
}

/// Classifies a Bedrock HTTP error answer (providers.md §5.7).
pub fn decode_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
    response::decode_error(status, headers, body)
}

impl Egress for BedrockEgress {
    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        let action = match operation {
            Operation::Chat { stream: false } => "converse",
            Operation::Chat { stream: true } => "converse-stream",
            Operation::Embeddings => "invoke",
        };
        Ok(format!(
            "{endpoint}/model/{}/{action}",
            encode_path_segment(target)
        ))
    }

    fn framing(&self) -> Framing {
        Framing::AwsEventStream
    }

    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
        let wire = request::encode_for(request, target)?;
        serde_json::to_vec(&wire)
            .map_err(|e| Error::internal(format!("encoding a Converse request: {e}")))
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse> {
        decode_chat_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecode> {
        Box::new(StreamDecoder::new())
    }

    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
        embeddings::body(request, target)
    }

    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        embeddings::decode(body)
    }

    fn error(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
        decode_error(status, headers, body)
    }
}

#[cfg(test)]
mod tests;
