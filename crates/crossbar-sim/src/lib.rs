//! Simulated LLM providers that speak the providers' real wire formats on loopback.
//!
//! Tests start a [`SimServer`] for one [`SimDialect`] on an ephemeral port and point a client
//! at [`SimServer::base_url`]; the standalone `crossbar sim` command does the same on a fixed
//! port. What the simulated model answers is decided from a dialect-neutral view of the request
//! (text, tool calls or JSON, all deterministic and never keyed on model names), so every dialect
//! answers one conversation the same way and each dialect module only owns its wire format.
//! Latency and faults (429 + Retry-After, 5xx, hangs, cut, failing or malformed streams) come
//! from [`SimConfig`] through a seeded RNG, so a failing sequence replays exactly. The wire types
//! are written from the providers' specs and share no code with `crossbar-core`, so a
//! translation mistake cannot hide by being made the same way on both sides of a test.

mod anthropic;
mod bedrock;
mod behaviour;
mod embeddings;
mod error;
mod faults;
mod gemini;
mod http;
mod ids;
mod mantle;
mod media;
mod openai;
mod schema;
mod state;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::state::Shared;

/// The wire protocol a [`SimServer`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimDialect {
    /// OpenAI Chat Completions / Embeddings under `/v1`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI, classic deployment-scoped URLs with `api-version`.
    Azure,
    /// Anthropic Messages under `/v1/messages`.
    Anthropic,
    /// AWS Bedrock Converse / ConverseStream under `/model/{id}/...`.
    Bedrock,
    /// Gemini API `generateContent` under `/v1beta/models/{m}:...`.
    Gemini,
    /// Vertex AI: Gemini under `/v1/projects/{p}/locations/{l}/publishers/google/...`,
    /// Vertex-hosted Claude under `.../publishers/anthropic/...:rawPredict`, OpenAI's models
    /// under `.../publishers/openai/v1/responses` and the OpenAI-compatible Chat Completions
    /// under `.../endpoints/openapi/chat/completions`.
    Vertex,
    /// Amazon Bedrock Mantle: OpenAI Responses under `/openai/v1` (OpenAI's own models), OpenAI
    /// Chat Completions and Responses under `/v1` (open-weight models) and Anthropic Messages
    /// under `/anthropic/v1`; a Bedrock API key or SigV4 for `bedrock-mantle`.
    #[serde(rename = "bedrock-mantle")]
    BedrockMantle,
}

impl SimDialect {
    /// The name used in configuration files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::Vertex => "vertex",
            Self::BedrockMantle => "bedrock-mantle",
        }
    }
}

impl fmt::Display for SimDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dialect name that [`SimDialect::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDialect(pub String);

impl fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown simulator dialect {:?} (expected openai, azure, anthropic, bedrock, gemini, vertex or bedrock-mantle)",
            self.0
        )
    }
}

impl std::error::Error for UnknownDialect {}

impl FromStr for SimDialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Self::OpenAi),
            "azure" => Ok(Self::Azure),
            "anthropic" => Ok(Self::Anthropic),
            "bedrock" => Ok(Self::Bedrock),
            "gemini" => Ok(Self::Gemini),
            "vertex" => Ok(Self::Vertex),
            "bedrock-mantle" => Ok(Self::BedrockMantle),
            other => Err(UnknownDialect(other.to_owned())),
        }
    }
}

/// Latency and fault script of a simulated provider. Rates are shares in `[0, 1]`; values
/// outside act as "never" (≤ 0) or "always" (≥ 1).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Delay before the response starts (stream) or added to the total (non-stream).
    pub ttft_ms: u64,
    /// Output pacing, one streamed piece (word, JSON fragment) per token; 0 = unlimited.
    pub tokens_per_s: f64,
    /// Share of model calls answered with `error_status`.
    pub error_rate: f64,
    /// Status used for `error_rate` faults (429 gets the rate-limit shape).
    pub error_status: u16,
    /// Share of model calls answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// `Retry-After` seconds on 429s.
    pub retry_after_s: u64,
    /// Share of model calls that never answer (until the client goes away).
    pub hang_rate: f64,
    /// 0 = never; else streams abort the connection after this many chunks (no `[DONE]`).
    pub cut_after_chunks: u32,
    /// 0 = never; else streams send an in-band error after this many chunks and end.
    pub stream_error_after_chunks: u32,
    /// Share of responses with a truncated JSON body or SSE frame.
    pub malformed_rate: f64,
    /// Seeds the fault RNG so that a sequence of requests meets the same faults every run.
    pub seed: u64,
    /// When set, requests must carry this key in the dialect's auth header, else 401.
    pub api_key: Option<String>,
    /// Embedding size when the request gives no `dimensions`.
    pub embedding_dimensions: usize,
    /// Model calls allowed per `quota_window_ms` (0: a large account's quota, never spent).
    /// Each answer reports what is left (`x-ratelimit-*`, `anthropic-ratelimit-*`) and, once
    /// spent, calls are answered 429 until the window ends, as the real services do.
    pub quota_requests: u64,
    /// The quota's window, from its first call (default 60,000: a minute).
    pub quota_window_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            ttft_ms: 0,
            tokens_per_s: 0.0,
            error_rate: 0.0,
            error_status: 503,
            rate_limit_rate: 0.0,
            retry_after_s: 1,
            hang_rate: 0.0,
            cut_after_chunks: 0,
            stream_error_after_chunks: 0,
            malformed_rate: 0.0,
            seed: 0,
            api_key: None,
            embedding_dimensions: 1536,
            quota_requests: 0,
            quota_window_ms: 60_000,
        }
    }
}

/// One request as the simulator received it, for assertions on what a client sent.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lowercase; values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The body when it was JSON.
    pub body: Option<serde_json::Value>,
    /// The response body as sent so far (a stream's bytes as they went out), so tests can hold
    /// the gateway's answer to exactly what the simulator said.
    pub response: Option<Vec<u8>>,
}

impl RecordedRequest {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Request counters. A response that the server ends on purpose (including a scripted cut)
/// counts as completed; `cancelled` counts requests whose handler or response stream was
/// dropped before finishing because the client went away.
/// A dialect's `routes` as served: unknown paths and methods get the dialect's `not_found`, and
/// every request is recorded by [`http::observe`], which also enforces the body limit (so axum's
/// own limit is off).
fn served<S, H, T>(
    routes: axum::Router<S>,
    app: &state::App,
    state: S,
    not_found: H,
) -> axum::Router
where
    S: Clone + Send + Sync + 'static,
    H: axum::handler::Handler<T, S>,
    T: 'static,
{
    routes
        .fallback(not_found.clone())
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::observe,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub requests: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub in_flight: u64,
}

/// A running simulated provider. Dropping it stops accepting connections.
pub struct SimServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimServer {
    /// Serves on an already-bound listener (tests bind 127.0.0.1:0).
    pub async fn start(
        listener: tokio::net::TcpListener,
        dialect: SimDialect,
        config: SimConfig,
    ) -> std::io::Result<SimServer> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(dialect, config));
        let router = match dialect {
            SimDialect::OpenAi | SimDialect::Azure => openai::router(Arc::clone(&shared)),
            SimDialect::Anthropic => anthropic::router(Arc::clone(&shared)),
            SimDialect::Bedrock => bedrock::router(Arc::clone(&shared)),
            SimDialect::Gemini | SimDialect::Vertex => gemini::router(Arc::clone(&shared)),
            SimDialect::BedrockMantle => mantle::router(Arc::clone(&shared)),
        };
        // Streamed frames are small writes: without TCP_NODELAY they can wait on delayed ACKs.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move { axum::serve(listener, router).await });
        tracing::debug!(%addr, %dialect, "simulated provider listening");
        Ok(SimServer {
            addr,
            shared,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dialect(&self) -> SimDialect {
        self.shared.dialect
    }

    /// Base URL a client configures, as the provider's public one would be: `http://ADDR/v1`
    /// for openai, `http://ADDR/v1beta` for gemini, `http://ADDR/v1` for vertex (below which
    /// `projects/...` follows), and `http://ADDR` (the resource or service endpoint) for azure,
    /// anthropic, bedrock and bedrock-mantle.
    pub fn base_url(&self) -> String {
        match self.shared.dialect {
            SimDialect::OpenAi | SimDialect::Vertex => format!("http://{}/v1", self.addr),
            SimDialect::Gemini => format!("http://{}/v1beta", self.addr),
            SimDialect::Azure
            | SimDialect::Anthropic
            | SimDialect::Bedrock
            | SimDialect::BedrockMantle => format!("http://{}", self.addr),
        }
    }

    /// Replaces the script; requests already being answered keep the old one. Changing the
    /// seed restarts the fault sequence.
    pub fn set_config(&self, config: SimConfig) {
        self.shared.set_config(config);
    }

    pub fn config(&self) -> SimConfig {
        self.shared.config()
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Runs until the server task ends (used by the standalone CLI).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "simulated provider stopped"),
                Err(error) => tracing::error!(%error, "simulated provider task failed"),
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_names_round_trip() {
        for dialect in [
            SimDialect::OpenAi,
            SimDialect::Azure,
            SimDialect::BedrockMantle,
        ] {
            assert_eq!(dialect.to_string().parse::<SimDialect>(), Ok(dialect));
            let json = serde_json::to_string(&dialect).unwrap();
            assert_eq!(json, format!("\"{dialect}\""));
            assert_eq!(serde_json::from_str::<SimDialect>(&json).unwrap(), dialect);
        }
        assert!("bedrocks".parse::<SimDialect>().is_err());
    }

    #[test]
    fn config_defaults_and_rejects_unknown_keys() {
        let config: SimConfig = serde_json::from_str(r#"{"ttft_ms": 5}"#).unwrap();
        assert_eq!(config.ttft_ms, 5);
        assert_eq!(config.error_status, 503);
        assert_eq!(config.embedding_dimensions, 1536);
        assert!(serde_json::from_str::<SimConfig>(r#"{"ttft": 5}"#).is_err());
    }
}
