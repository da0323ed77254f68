//! The call the router makes for each attempt, behind a trait: the gateway calls providers
//! over HTTP, while tests and `crossbar simulate` drive the same selection, retry and hedging
//! code against scripted latencies and outages.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::chat::{ChatRequest, ChatResponse};
use crate::client::ChatStream;
use crate::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crate::error::Result;
use crate::router::Deployment;

/// One upstream call on one deployment. Dropping a returned future (or stream) must cancel the
/// call: that is how a hedge's loser is stopped.
pub trait Upstream: Send + Sync {
    fn chat<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse>>;

    fn chat_stream<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream>>;

    fn embed<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a EmbeddingRequest,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>>;
}

/// The real thing: each deployment's provider over HTTP.
#[derive(Debug, Default)]
pub struct HttpUpstream;

impl Upstream for HttpUpstream {
    fn chat<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(async move {
            let quota = |q| deployment.observe_quota(q);
            deployment
                .provider
                .chat_reporting(request, &deployment.target, Some(&quota))
                .await
        })
    }

    fn chat_stream<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatStream>> {
        Box::pin(async move {
            let quota = |q| deployment.observe_quota(q);
            deployment
                .provider
                .chat_stream_reporting(request, &deployment.target, Some(&quota))
                .await
        })
    }

    fn embed<'a>(
        &'a self,
        deployment: Arc<Deployment>,
        request: &'a EmbeddingRequest,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>> {
        Box::pin(async move {
            let quota = |q| deployment.observe_quota(q);
            deployment
                .provider
                .embed_reporting(request, &deployment.target, Some(&quota))
                .await
        })
    }
}
