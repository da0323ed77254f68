//! Client dialects of the chat operation, as one trait: how a body decodes into the canonical
//! request, how an answer, a stream and an error are written back. The server has one generic
//! handler over it (`routes::chat_like`), the bench drives the same encoders, so adding an
//! ingress dialect is a module implementing [`ChatIngress`] and the line that mounts it.

use bytes::BytesMut;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::dialects::{anthropic, openai, responses};
use crate::error::{Error, Result};

/// Writes canonical stream events as one client dialect's frames.
pub trait StreamEncode: Send + 'static {
    /// Encodes one event; an error means the stream cannot go on (then [`Self::error`]).
    fn event(&mut self, event: StreamEvent, out: &mut BytesMut) -> Result<()>;
    /// Closes a stream that ended well.
    fn end(&mut self, out: &mut BytesMut);
    /// Closes a stream that broke, with the dialect's error event.
    fn error(&mut self, error: &Error, out: &mut BytesMut);
}

/// One client dialect of the chat operation.
pub trait ChatIngress: Send + Sync + 'static {
    /// What decoding a body gives: the canonical request and what the answer must echo.
    type Decoded: Send + 'static;
    type Encoder: StreamEncode;

    /// The API's name in usage records and metrics.
    const API: &'static str;

    fn decode(body: &[u8]) -> Result<Self::Decoded>;
    fn request(decoded: &Self::Decoded) -> &ChatRequest;
    fn request_mut(decoded: &mut Self::Decoded) -> &mut ChatRequest;
    /// Takes what the dialect carries in request headers (Anthropic's betas).
    fn headers(_decoded: &mut Self::Decoded, _headers: &reqwest::header::HeaderMap) {}
    /// The dialect's refusal of a field the gateway does not know.
    fn unknown_field_error(key: &str) -> Error;
    fn encode_response(decoded: &Self::Decoded, response: &ChatResponse) -> Result<Vec<u8>>;
    fn stream_encoder(decoded: &Self::Decoded) -> Self::Encoder;
    fn encode_error(error: &Error) -> Vec<u8>;
}

impl StreamEncode for openai::StreamEncoder {
    fn event(&mut self, event: StreamEvent, out: &mut BytesMut) -> Result<()> {
        openai::StreamEncoder::event(self, event, out);
        Ok(())
    }

    fn end(&mut self, out: &mut BytesMut) {
        openai::StreamEncoder::end(self, out);
    }

    fn error(&mut self, error: &Error, out: &mut BytesMut) {
        openai::StreamEncoder::error(self, error, out);
    }
}

impl StreamEncode for anthropic::StreamEncoder {
    fn event(&mut self, event: StreamEvent, out: &mut BytesMut) -> Result<()> {
        anthropic::StreamEncoder::event(self, event, out)
    }

    fn end(&mut self, out: &mut BytesMut) {
        anthropic::StreamEncoder::end(self, out);
    }

    fn error(&mut self, error: &Error, out: &mut BytesMut) {
        anthropic::StreamEncoder::error(self, error, out);
    }
}

impl StreamEncode for responses::StreamEncoder {
    fn event(&mut self, event: StreamEvent, out: &mut BytesMut) -> Result<()> {
        responses::StreamEncoder::event(self, event, out);
        Ok(())
    }

    fn end(&mut self, out: &mut BytesMut) {
        responses::StreamEncoder::end(self, out);
    }

    fn error(&mut self, error: &Error, out: &mut BytesMut) {
        responses::StreamEncoder::error(self, error, out);
    }
}

/// OpenAI Chat Completions: `POST /v1/chat/completions`.
pub struct OpenAiChat;

impl ChatIngress for OpenAiChat {
    type Decoded = openai::IngressChat;
    type Encoder = openai::StreamEncoder;

    const API: &'static str = "chat";

    fn decode(body: &[u8]) -> Result<Self::Decoded> {
        openai::decode_chat_request(body)
    }

    fn request(decoded: &Self::Decoded) -> &ChatRequest {
        &decoded.request
    }

    fn request_mut(decoded: &mut Self::Decoded) -> &mut ChatRequest {
        &mut decoded.request
    }

    fn unknown_field_error(key: &str) -> Error {
        responses::unknown_field_error(key)
    }

    fn encode_response(_decoded: &Self::Decoded, response: &ChatResponse) -> Result<Vec<u8>> {
        openai::encode_chat_response(response)
    }

    fn stream_encoder(decoded: &Self::Decoded) -> Self::Encoder {
        openai::StreamEncoder::new(decoded.include_usage)
    }

    fn encode_error(error: &Error) -> Vec<u8> {
        openai::encode_error(error)
    }
}

/// Anthropic Messages: `POST /v1/messages`.
pub struct AnthropicMessages;

impl ChatIngress for AnthropicMessages {
    type Decoded = anthropic::IngressMessages;
    type Encoder = anthropic::StreamEncoder;

    const API: &'static str = "messages";

    fn decode(body: &[u8]) -> Result<Self::Decoded> {
        anthropic::decode_request(body)
    }

    fn request(decoded: &Self::Decoded) -> &ChatRequest {
        &decoded.request
    }

    fn request_mut(decoded: &mut Self::Decoded) -> &mut ChatRequest {
        &mut decoded.request
    }

    fn headers(decoded: &mut Self::Decoded, headers: &reqwest::header::HeaderMap) {
        if let Some(betas) = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
            anthropic::pass_betas(&mut decoded.request, betas);
        }
    }

    fn unknown_field_error(key: &str) -> Error {
        anthropic::unknown_field_error(key)
    }

    fn encode_response(_decoded: &Self::Decoded, response: &ChatResponse) -> Result<Vec<u8>> {
        anthropic::encode_response(response)
    }

    /// `message_start` announces input tokens before the upstream reports them: the estimate.
    fn stream_encoder(decoded: &Self::Decoded) -> Self::Encoder {
        let estimate = crate::dialects::rules::estimate_tokens(&decoded.request);
        anthropic::StreamEncoder::new(&decoded.request.model, estimate)
    }

    fn encode_error(error: &Error) -> Vec<u8> {
        anthropic::encode_error(error)
    }
}
