//! Wire dialects. Each one is a module with its wire types and its conversions both ways; the
//! rest of the gateway sees only canonical types and the [`Egress`] trait.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod rules;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How an upstream frames its streamed answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/vnd.amazon.eventstream` binary frames.
    AwsEventStream,
}

/// What a frame is: AWS event streams carry modeled exceptions and unmodeled errors as frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Event,
    Exception,
    Error,
}

/// One framed message of an upstream stream: an SSE event (its `event:` name, empty when absent,
/// and its `data`), or an AWS event-stream frame (`:event-type` / `:exception-type` /
/// `:error-code` as `event`, the payload as `data`).
#[derive(Debug)]
pub struct Frame<'a> {
    pub kind: FrameKind,
    pub event: &'a str,
    pub data: &'a str,
}

/// How an upstream stream's end is judged: complete once `done`, else cut short (`missing`
/// says what it still owed).
pub(crate) fn stream_end(done: bool, missing: &str) -> Result<()> {
    if done {
        Ok(())
    } else {
        Err(Error::stream_interrupted(missing))
    }
}

/// What is being called, which decides the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Chat { stream: bool },
    Embeddings,
}

/// Turns an upstream's stream frames into canonical events.
pub trait StreamDecode: Send {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()>;
    /// Called when the upstream body ends: an error if the stream was not complete.
    fn finish(&mut self) -> Result<()>;
}

/// What a provider needs from the dialect it speaks upstream.
pub trait Egress: Send + Sync {
    /// The URL of `operation` on `target`, below the provider's endpoint (no trailing slash).
    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String>;
    fn framing(&self) -> Framing {
        Framing::Sse
    }
    /// Whether the provider fetches image URLs itself; if not, the gateway inlines them first.
    fn accepts_image_urls(&self) -> bool {
        false
    }
    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>>;
    /// Request headers this call adds for `request` (a client's own betas, say), as lowercase
    /// names and values; invalid ones are left out.
    fn chat_headers(&self, _request: &ChatRequest) -> Vec<(String, String)> {
        Vec::new()
    }
    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse>;
    fn stream_decoder(&self) -> Box<dyn StreamDecode>;
    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>>;
    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse>;
    /// Classifies an HTTP error answer from its status, headers and body.
    fn error(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error;
}

/// The OpenAI dialect as an upstream (OpenAI, Azure OpenAI and OpenAI-compatible servers).
#[derive(Debug, Default)]
pub struct OpenAiEgress {
    pub max_tokens_field: openai::MaxTokensField,
    /// `Some(api_version)` for Azure's deployment-scoped URLs.
    pub azure_api_version: Option<String>,
}

impl StreamDecode for openai::StreamDecoder {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()> {
        openai::StreamDecoder::decode(self, frame.data, out)
    }

    fn finish(&mut self) -> Result<()> {
        openai::StreamDecoder::finish(self)
    }
}

impl Egress for OpenAiEgress {
    fn accepts_image_urls(&self) -> bool {
        true
    }

    fn url(&self, endpoint: &str, target: &str, operation: Operation) -> Result<String> {
        let operation = match operation {
            Operation::Chat { .. } => "chat/completions",
            Operation::Embeddings => "embeddings",
        };
        Ok(match &self.azure_api_version {
            None => format!("{endpoint}/{operation}"),
            Some(version) => format!(
                "{endpoint}/openai/deployments/{}/{operation}?api-version={version}",
                encode_path_segment(target)
            ),
        })
    }

    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>> {
        openai::encode_chat_request(request, target, self.max_tokens_field)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse> {
        openai::decode_chat_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecode> {
        Box::new(openai::StreamDecoder::new())
    }

    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>> {
        openai::encode_embedding_request(request, target)
    }

    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse> {
        openai::decode_embedding_response(body)
    }

    fn error(&self, status: u16, _headers: &reqwest::header::HeaderMap, body: &[u8]) -> Error {
        openai::decode_error(status, body)
    }
}

/// What a provider kind's row of the provider table ([`crate::kinds`]) builds: each dialect
/// module builds its own.
pub(crate) struct Parts {
    pub(crate) egress: Box<dyn Egress>,
    /// Base URL; the configured or simulator endpoint, else the provider's public one.
    pub(crate) endpoint: String,
    /// Which header carries `api_key` (`"authorization"` means `Bearer <key>`), if any.
    pub(crate) key_header: Option<&'static str>,
    /// Headers the dialect always sends (e.g. `anthropic-version`).
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) authorizer: Option<std::sync::Arc<dyn crate::auth::Authorize>>,
}

impl Parts {
    pub(crate) fn new(
        egress: impl Egress + 'static,
        endpoint: String,
        key_header: Option<&'static str>,
    ) -> Self {
        Self {
            egress: Box::new(egress),
            endpoint,
            key_header,
            headers: reqwest::header::HeaderMap::new(),
            authorizer: None,
        }
    }
}

/// Parses a streamed chunk as `T` in one pass. A chunk that may carry an error (its text has
/// an `"error"` key or value), or that does not parse as `T`, goes the long way, `slow`,
/// which reads it as a `Value` first: errors are rare and chunks are many, and a `Value` per
/// chunk was a third of a streamed request's CPU.
pub(crate) fn stream_chunk<T: serde::de::DeserializeOwned>(
    data: &str,
    slow: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    if !data.contains("\"error\"")
        && let Ok(chunk) = serde_json::from_str(data)
    {
        return Ok(chunk);
    }
    slow(data)
}

/// Parses a client body that must be a JSON object.
pub(crate) fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_request(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// Deserializes a typed value, naming the offending field path in the error.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let mut path = e.path().to_string();
        if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            path = if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
        }
        let param = match (prefix.is_empty(), path.as_str()) {
            (true, _) => path.clone(),
            (false, ".") => prefix.to_owned(),
            (false, _) => format!("{prefix}.{path}"),
        };
        Error::invalid_field(
            param.clone(),
            format!("Invalid value for '{param}': {inner}"),
        )
    })
}

/// Vertex AI's regional endpoint; `global` has no region prefix.
pub(crate) fn vertex_endpoint(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com/v1".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com/v1")
    }
}

/// Percent-encodes everything but unreserved characters, so a model id (`:` in Bedrock ids,
/// `/` in ARNs) stays one path segment.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_and_azure_urls() {
        let openai = OpenAiEgress::default();
        let chat = Operation::Chat { stream: true };
        assert_eq!(
            openai.url("http://h/v1", "m", chat).unwrap(),
            "http://h/v1/chat/completions"
        );
        let azure = OpenAiEgress {
            azure_api_version: Some("2024-10-21".into()),
            ..Default::default()
        };
        assert_eq!(
            azure
                .url(
                    "https://r.openai.azure.com",
                    "gpt4o prod",
                    Operation::Embeddings
                )
                .unwrap(),
            "https://r.openai.azure.com/openai/deployments/gpt4o%20prod/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            encode_path_segment("us.anthropic.claude-3:0/x"),
            "us.anthropic.claude-3%3A0%2Fx"
        );
    }
}

#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod test_support;
