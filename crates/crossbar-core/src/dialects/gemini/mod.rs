//! The Google Gemini API and Vertex AI `generateContent` dialect, as an upstream.
//!
//! Choices the wire formats leave open (see also `ids`, `schema` and `request`):
//! - URLs: `{endpoint}/models/{m}:generateContent` (Gemini API) or
//!   `{endpoint}/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`
//!   (Vertex); streams always use `:streamGenerateContent?alt=sse`, since without `alt=sse` the
//!   answer is one incrementally streamed JSON array, not SSE.
//! - Auth: Gemini API `x-goog-api-key`; Vertex an OAuth token from `auth::google` (service
//!   account in `google_credentials`, else application-default credentials), or `api_key` sent
//!   as a static bearer token when configured (tests and simulators authenticate this way).
//! - System and developer messages, wherever they are, become `systemInstruction` parts in
//!   order; tool results become `functionResponse` parts, all results of one parallel call in
//!   one user turn, with the function name looked up from the assistant call they answer; a
//!   string result is wrapped as `{"output": ...}` (`{"error": ...}` for a failed tool).
//! - Reasoning: `reasoning_effort` / an explicit budget becomes `thinkingConfig.thinkingBudget`,
//!   fitted to the range a Gemini 2.5 model accepts (`request::fit_budget`: Pro cannot turn
//!   thinking off, so `none` is its least budget, 128).
//!   `thought` parts and `thoughtSignature`s come back as `Reasoning { family: Gemini, data }`
//!   with `data = {"thoughtSignature"?, "thought"?, "part_index", "tool_call_id"?}`. Tool-call
//!   ids stay short (at most 40 characters, OpenAI's limit): clients without reasoning blocks
//!   get their signatures back from `reasoning_memory`, keyed by the call id (see `ids`). On
//!   the way back, signatures go on the part they came with, a lost one on a step's first call
//!   becomes Google's documented dummy; thought text is not replayed, and reasoning of other
//!   families is dropped.
//! - Images must be inline (base64): remote URLs are a 400, since the gateway does not fetch.
//! - Usage: input = prompt + tool-use prompt tokens, output = candidates + thoughts.

mod embeddings;
mod error;
mod ids;
mod request;
mod response;
mod schema;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use stream::StreamDecoder;

use super::Parts;
use crate::chat::{ChatRequest, ChatResponse};
use crate::config::VertexSettings;
use crate::dialects::{Egress, Operation, StreamDecode, encode_path_segment, vertex_endpoint};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

pub const DEFAULT_GEMINI_ENDPOINT: &str = "https://generativelanguage.googleapis.com/v1beta";

/// Which of the two APIs speaking this dialect a provider calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeminiApi {
    Gemini,
    Vertex { project: String, location: String },
}

/// The Gemini dialect as an upstream.
#[derive(Debug)]
pub struct GeminiEgress {
    pub api: GeminiApi,
}

impl GeminiEgress {
    fn vertex(&self) -> bool {
        matches!(self.api, GeminiApi::Vertex { .. })
    }

    /// The model's resource path below the endpoint.
    fn model_path(&self, target: &str) -> String {
        match &self.api {
            GeminiApi::Gemini => match target.strip_prefix("tunedModels/") {
                Some(tuned) => format!("tunedModels/{}", encode_path_segment(tuned)),
                None => format!(
                    "models/{}",
                    encode_path_segment(target.strip_prefix("models/").unwrap_or(target))
                ),
            },
            GeminiApi::Vertex { project, location } => format!(
                "projects/{}/locations/{}/publishers/google/models/{}",
                encode_path_segment(project),
                encode_path_segment(location),
                encode_path_segment(target)
            ),
        }
    }
}

impl Egress for GeminiEgress {
    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        let method = match operation {
            Operation::Chat { stream: false } => "generateContent",
            Operation::Chat { stream: true } => "streamGenerateContent?alt=sse",
            Operation::Embeddings if self.vertex() => "predict",
            Operation::Embeddings => "batchEmbedContents",
        };
        Ok(format!("{endpoint}/{}:{method}", self.model_path(target)))
    }

    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
        request::body(request, self.vertex(), target)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse> {
        response::decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecode> {
        Box::new(StreamDecoder::new())
    }

    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
        if self.vertex() {
            return embeddings::vertex_body(request);
        }
        embeddings::body(request, &self.model_path(target))
    }

    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        if self.vertex() {
            return embeddings::vertex_decode(body);
        }
        embeddings::decode(body)
    }

    fn error(&self, status: u16, _headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
        error::decode_error(status, body)
    }
}

/// This dialect's rows of the provider table: the Gemini API (`vertex = None`) or Vertex AI.
pub(crate) fn provider_parts(
    vertex: Option<&VertexSettings>,
    endpoint: Option<String>,
) -> Result<Parts, String> {
    let Some(vertex) = vertex else {
        let endpoint = endpoint.unwrap_or_else(|| DEFAULT_GEMINI_ENDPOINT.to_owned());
        let egress = GeminiEgress {
            api: GeminiApi::Gemini,
        };
        return Ok(Parts::new(egress, endpoint, Some("x-goog-api-key")));
    };
    let endpoint = endpoint.unwrap_or_else(|| vertex_endpoint(&vertex.location));
    let egress = GeminiEgress {
        api: GeminiApi::Vertex {
            project: vertex.project.clone(),
            location: vertex.location.clone(),
        },
    };
    // `api_key`, if any, is a bearer token; else Google's.
    let mut parts = Parts::new(egress, endpoint, Some("authorization"));
    parts.authorizer = vertex.authorizer()?;
    Ok(parts)
}
