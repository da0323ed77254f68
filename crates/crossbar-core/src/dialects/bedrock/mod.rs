//! The AWS Bedrock Converse / ConverseStream dialect, as an upstream: `POST
//! {endpoint}/model/{modelId}/converse` and `/converse-stream` (binary AWS event stream), signed
//! with SigV4 for the `bedrock` service, or sent with a Bedrock API key as a bearer token.
//!
//! Request rules live in [`request`], answers and errors in [`response`], stream events in
//! [`stream`]; providers.md §5 is the reference. Embeddings (Titan / Cohere through InvokeModel)
//! are not part of this dialect.

mod request;
mod response;
mod stream;
pub mod wire;

use std::sync::Arc;

use aws_credential_types::Credentials;

pub use stream::StreamDecoder;

use super::Parts;
use crate::auth::sigv4::SigV4;
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::{ProviderConfig, ProviderKind};
use crate::dialects::{Egress, Framing, Operation, StreamDecode, encode_path_segment};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

pub use request::{document_name, tool_use_id};

/// Region of a simulated Bedrock provider that names none.
const SIM_REGION: &str = "us-east-1";

/// Bedrock Converse as an upstream dialect.
#[derive(Clone, Copy, Debug, Default)]
pub struct BedrockEgress;

/// This dialect's row of the provider table: the regional endpoint unless one is configured,
/// and either a Bedrock API key (`api_key`, sent as `Authorization: Bearer`) or SigV4 with the
/// `aws` keys, or the standard AWS credential chain. A simulated provider with neither signs
/// with fixed placeholder keys: no simulator needs real ones, and looking for them (IMDS) would
/// stall a test machine.
pub(crate) fn provider_parts(
    config: &ProviderConfig,
    endpoint: Option<String>,
) -> Result<Parts, String> {
    let sim = config.kind == ProviderKind::Sim;
    let region = match config.region.as_deref().filter(|r| !r.is_empty()) {
        Some(region) => Some(region),
        None if sim => Some(SIM_REGION),
        None => None,
    };
    if let Some(region) = region
        && !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("region `{region}` is not an AWS region name"));
    }
    let endpoint = match (endpoint, region) {
        (Some(endpoint), _) => endpoint,
        (None, Some(region)) => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        (None, None) => return Err("a region (or an endpoint) is required".to_owned()),
    };
    if config.api_key.is_some() {
        if config.aws.is_some() {
            return Err(
                "give either api_key (a Bedrock API key) or aws credentials, not both".to_owned(),
            );
        }
        return Ok(Parts::new(BedrockEgress, endpoint, Some("authorization")));
    }
    let region = region.ok_or_else(|| {
        "a region is required to sign requests with SigV4 (or set api_key to a Bedrock API key)"
            .to_owned()
    })?;
    let signer = if sim && config.aws.is_none() {
        SigV4::with_credentials(
            Credentials::new(
                "AKIDSIMULATED",
                "simulated-secret-access-key",
                None,
                None,
                "crossbar-sim",
            ),
            region,
        )
    } else {
        SigV4::from_config(config.aws.as_ref(), region)?
    };
    let mut parts = Parts::new(BedrockEgress, endpoint, None);
    parts.authorizer = Some(Arc::new(signer));
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

fn embeddings_unsupported() -> Error {
    Error::invalid_request(
        "Embeddings are not supported by the bedrock dialect; use an embeddings deployment on \
         another provider.",
    )
    .with_code("unsupported_operation")
}

impl Egress for BedrockEgress {
    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        let action = match operation {
            Operation::Chat { stream: false } => "converse",
            Operation::Chat { stream: true } => "converse-stream",
            Operation::Embeddings => return Err(embeddings_unsupported()),
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

    fn embedding_body(&self, _request: &EmbeddingRequest, _target: &str) -> Result<Vec<u8>> {
        Err(embeddings_unsupported())
    }

    fn embedding_response(&self, _body: &[u8]) -> Result<EmbeddingResponse> {
        Err(embeddings_unsupported())
    }

    fn error(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
        decode_error(status, headers, body)
    }
}

#[cfg(test)]
mod tests;
