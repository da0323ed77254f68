//! The one interface through which the server and agents reach models, so an agent can call the
//! router in-process or a remote gateway over HTTP with the same code.

use std::pin::Pin;

use futures::Stream;
use futures::future::BoxFuture;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::Result;

/// A streamed answer in canonical events; an `Err` item means the stream broke.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send>>;

pub trait ModelClient: Send + Sync {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse>>;
    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream>>;
    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingResponse>>;
}
