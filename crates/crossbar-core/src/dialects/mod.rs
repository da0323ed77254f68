//! Wire dialects. Each one is a module with its wire types and its conversions both ways; the
//! rest of the gateway sees only canonical types and the [`Egress`] trait.

pub mod openai;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};

/// One framed message of an upstream stream: an SSE event, or (later) an AWS event-stream frame
/// with its `:event-type` header as `event`.
#[derive(Debug)]
pub struct Frame<'a> {
    pub event: &'a str,
    pub data: &'a str,
}

/// Turns an upstream's stream frames into canonical events.
pub trait StreamDecode: Send {
    fn decode(&mut self, frame: &Frame<'_>, out: &mut Vec<StreamEvent>) -> Result<()>;
    /// Called when the upstream body ends: an error if the stream was not complete.
    fn finish(&mut self) -> Result<()>;
}

/// What a provider needs from the dialect it speaks upstream.
pub trait Egress: Send + Sync {
    fn chat_body(&self, request: &ChatRequest, target: &str) -> Result<Vec<u8>>;
    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse>;
    fn stream_decoder(&self) -> Box<dyn StreamDecode>;
    fn embedding_body(&self, request: &EmbeddingRequest, target: &str) -> Result<Vec<u8>>;
    fn embedding_response(&self, body: &[u8]) -> Result<EmbeddingResponse>;
    /// Classifies an HTTP error answer from its status and body.
    fn error(&self, status: u16, body: &[u8]) -> Error;
}

/// The OpenAI dialect as an upstream (OpenAI, Azure OpenAI and OpenAI-compatible servers).
#[derive(Debug, Default)]
pub struct OpenAiEgress {
    pub max_tokens_field: openai::MaxTokensField,
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

    fn error(&self, status: u16, body: &[u8]) -> Error {
        openai::decode_error(status, body)
    }
}
