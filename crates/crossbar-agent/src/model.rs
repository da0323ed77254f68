//! How an agent reaches models: through [`ModelClient`], either the router in this process or a
//! gateway elsewhere over HTTP, with the same code. [`AgentModel`] adds what a run journals and
//! budgets with — who answered, what it cost, what a call may cost — which the in-process
//! router knows directly and a gateway tells in its `x-crossbar-*` headers and
//! `/v1/crossbar/deployments`.

use std::sync::Arc;
use std::time::Duration;

use crossbar_core::chat::{ChatRequest, ChatResponse};
use crossbar_core::client::{ChatStream, ModelClient};
use crossbar_core::dialects::openai::{self, MaxTokensField, StreamDecoder};
use crossbar_core::embeddings::{EmbeddingRequest, EmbeddingResponse};
use crossbar_core::pricing;
use crossbar_core::router::{Routed, Router};
use crossbar_core::{Error, Result};
use futures::StreamExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::OnceCell;

tokio::task_local! {
    /// The W3C `traceparent` of the agent step making a call: a remote gateway continues it,
    /// so the gateway's spans for a run's calls sit in the run's trace.
    pub static TRACEPARENT: String;
    /// What the tool running in this task spent on models (e.g. `search_docs` embedding its
    /// query), so the run counts it in its cost and budget.
    pub static TOOL_SPEND: Arc<ToolSpend>;
}

/// Model spend of one tool call, in picodollars (atomic: a tool may embed concurrently).
#[derive(Debug, Default)]
pub struct ToolSpend(std::sync::atomic::AtomicU64);

impl ToolSpend {
    pub fn pico(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Charges `pusd` picodollars to the tool call running in this task; outside a run
/// (ingestion), a no-op.
pub fn charge_tool(pusd: u64) {
    let _ = TOOL_SPEND.try_with(|spend| {
        spend
            .0
            .fetch_add(pusd, std::sync::atomic::Ordering::Relaxed);
    });
}

/// A model's answer with what the journal keeps about it.
#[derive(Clone, Debug)]
pub struct ModelAnswer {
    pub response: ChatResponse,
    /// The provider that answered (`sim-openai`, `azure-eastus`), when known.
    pub provider: Option<String>,
    /// `model@provider`, when known.
    pub deployment: Option<String>,
    /// What the call cost in picodollars, every attempt included: the router's billed cost,
    /// or a gateway's `x-crossbar-cost-usd` read exactly.
    pub cost_pico: u64,
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenPrice {
    pub input: f64,
    pub output: f64,
}

/// [`ModelClient`] plus routing facts for journaling and budgets.
pub trait AgentModel: ModelClient {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ModelAnswer>>;

    /// The dearest price among the deployments that may serve `model` (a logical model or a
    /// route), so a reservation made with it is never short; `None` when unknown.
    fn price(&self, model: &str) -> BoxFuture<'_, Result<Option<TokenPrice>>>;

    /// Embeddings with what they cost, in picodollars.
    fn embed_priced(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, Result<(EmbeddingResponse, u64)>>;

    /// Where calls go, for messages: `in-process` or the gateway's URL.
    fn describe(&self) -> String;
}

/// The router in this process.
#[derive(Clone, Debug)]
pub struct InProcess {
    router: Arc<Router>,
}

impl InProcess {
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }
}

impl ModelClient for InProcess {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse>> {
        ModelClient::chat(self.router.as_ref(), request)
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatStream>> {
        ModelClient::chat_stream(self.router.as_ref(), request)
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingResponse>> {
        ModelClient::embed(self.router.as_ref(), request)
    }
}

impl AgentModel for InProcess {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ModelAnswer>> {
        Box::pin(async move {
            let routed = self.router.chat(&request).await?;
            Ok(ModelAnswer {
                provider: Some(routed.deployment.provider.name.clone()),
                deployment: Some(routed.deployment.id()),
                cost_pico: billed(&routed),
                response: routed.value,
            })
        })
    }

    fn price(&self, model: &str) -> BoxFuture<'_, Result<Option<TokenPrice>>> {
        let prices: Vec<TokenPrice> = self
            .router
            .deployments()
            .map(|d| {
                (
                    d.model.clone(),
                    TokenPrice {
                        input: d.price.input,
                        output: d.price.output,
                    },
                )
            })
            .filter(|(name, _)| name == model)
            .map(|(_, price)| price)
            .collect();
        let all: Vec<TokenPrice> = self
            .router
            .deployments()
            .map(|d| TokenPrice {
                input: d.price.input,
                output: d.price.output,
            })
            .collect();
        Box::pin(async move { Ok(dearest(if prices.is_empty() { &all } else { &prices })) })
    }

    fn embed_priced(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, Result<(EmbeddingResponse, u64)>> {
        Box::pin(async move {
            let routed = self.router.embed(&request).await?;
            let cost = billed(&routed);
            Ok((routed.value, cost))
        })
    }

    fn describe(&self) -> String {
        "in-process router".to_owned()
    }
}

/// What the router billed for a non-streamed call (always known), else its estimate.
fn billed<T>(routed: &Routed<T>) -> u64 {
    routed
        .cost_pico
        .unwrap_or_else(|| pricing::usd_to_pico(routed.estimated_cost_usd))
}

impl TokenPrice {
    /// `input_tokens` and `output_tokens` at this price, in picodollars, as the gateway
    /// prices them ([`pricing::pico_per_token`]).
    pub fn cost_pico(&self, input_tokens: u64, output_tokens: u64) -> u64 {
        input_tokens
            .saturating_mul(pricing::pico_per_token(self.input))
            .saturating_add(output_tokens.saturating_mul(pricing::pico_per_token(self.output)))
    }
}

fn dearest(prices: &[TokenPrice]) -> Option<TokenPrice> {
    prices.iter().copied().reduce(|a, b| TokenPrice {
        input: a.input.max(b.input),
        output: a.output.max(b.output),
    })
}

/// A Crossbar gateway (or any OpenAI Chat Completions endpoint) over HTTP with a Bearer key.
pub struct Remote {
    base: String,
    key: Option<SecretString>,
    http: reqwest::Client,
    prices: OnceCell<Vec<(String, TokenPrice)>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// `url` is the gateway's root, with or without `/v1`.
    pub fn new(url: &str, key: Option<SecretString>) -> Result<Self> {
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::invalid_request(format!(
                "The gateway URL must start with http:// or https://, not `{base}`."
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            base,
            key,
            http,
            prices: OnceCell::new(),
        })
    }

    fn post(&self, path: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        if let Ok(traceparent) = TRACEPARENT.try_with(Clone::clone) {
            builder = builder.header("traceparent", traceparent);
        }
        builder
    }

    async fn send(&self, path: &str, body: Vec<u8>) -> Result<reqwest::Response> {
        let response = self
            .post(path, body)
            .send()
            .await
            .map_err(|e| connect_error(&self.base, &e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.bytes().await.unwrap_or_default();
            return Err(openai::decode_error(status, &body));
        }
        Ok(response)
    }

    /// Posts `request` to the gateway's Chat Completions endpoint, as it asks to be streamed
    /// or not.
    async fn send_chat(&self, request: &ChatRequest) -> Result<reqwest::Response> {
        let body = openai::encode_chat_request(
            request,
            &request.model,
            MaxTokensField::MaxCompletionTokens,
        )?;
        self.send("/v1/chat/completions", body).await
    }
}

fn connect_error(base: &str, error: &reqwest::Error) -> Error {
    if error.is_timeout() {
        Error::upstream_timeout(format!("The gateway at {base} did not answer in time."))
    } else {
        Error::upstream_connect(format!(
            "Could not reach the gateway at {base}: {}",
            // The URL (with no secret in it) is already said; reqwest's repeat is noise.
            error.without_url_ref()
        ))
    }
}

/// `reqwest::Error::without_url` takes ownership; this prints the same without it.
trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(&format!(" ({url})"), "");
        }
        text
    }
}

/// A Crossbar gateway's `x-crossbar-cost-usd` as picodollars, read exactly (no float): the
/// same amount its usage record and the key's budget hold. `None` from another endpoint.
fn cost_header(response: &reqwest::Response) -> Option<u64> {
    header(response, "x-crossbar-cost-usd").and_then(|c| pricing::parse_usd(&c))
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[derive(Deserialize)]
struct DeploymentList {
    data: Vec<DeploymentEntry>,
}

#[derive(Deserialize)]
struct DeploymentEntry {
    model: String,
    price: PriceEntry,
}

#[derive(Deserialize)]
struct PriceEntry {
    input: f64,
    output: f64,
}

impl ModelClient for Remote {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse>> {
        Box::pin(async move { self.complete(request).await.map(|a| a.response) })
    }

    fn chat_stream(&self, mut request: ChatRequest) -> BoxFuture<'_, Result<ChatStream>> {
        Box::pin(async move {
            request.stream = true;
            let response = self.send_chat(&request).await?;
            // Byte-bounded framing: a gateway (or something posing as one) cannot make the
            // agent buffer an endless line.
            let mut events = crossbar_core::framing::sse_frames(
                response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(reqwest::Error::without_url)),
            );
            let stream = async_stream(move |tx| async move {
                let mut decoder = StreamDecoder::new();
                let mut out = Vec::new();
                while let Some(item) = events.next().await {
                    let event = match item {
                        Ok(event) => event,
                        Err(e) => {
                            let _ = tx.send(Err(Error::stream_interrupted(format!(
                                "The gateway's stream broke: {}",
                                e.message
                            ))));
                            return;
                        }
                    };
                    if event.data.trim() == "[DONE]" {
                        return;
                    }
                    if let Err(error) = decoder.decode(&event.data, &mut out) {
                        let _ = tx.send(Err(error));
                        return;
                    }
                    for decoded in out.drain(..) {
                        if tx.send(Ok(decoded)).is_err() {
                            return;
                        }
                    }
                }
                if let Err(error) = decoder.finish() {
                    let _ = tx.send(Err(error));
                }
            });
            Ok(stream)
        })
    }

    fn embed(&self, request: EmbeddingRequest) -> BoxFuture<'_, Result<EmbeddingResponse>> {
        Box::pin(async move { self.embed_priced(request).await.map(|(r, _)| r) })
    }
}

/// A stream fed by a task through a channel: simple, and it ends when the task does.
fn async_stream<F, Fut>(produce: F) -> ChatStream
where
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Result<crossbar_core::chat::StreamEvent>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(produce(tx));
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

impl AgentModel for Remote {
    fn complete(&self, mut request: ChatRequest) -> BoxFuture<'_, Result<ModelAnswer>> {
        Box::pin(async move {
            request.stream = false;
            let response = self.send_chat(&request).await?;
            let provider = header(&response, "x-crossbar-provider");
            let deployment = header(&response, "x-crossbar-deployment");
            let cost = cost_header(&response);
            let bytes = response
                .bytes()
                .await
                .map_err(|e| connect_error(&self.base, &e))?;
            let response = openai::decode_chat_response(&bytes)?;
            let cost_pico = match cost {
                Some(cost) => cost,
                // Not a Crossbar gateway: price the reported usage at the dearest known price.
                None => match (response.usage, self.price(&request.model).await?) {
                    (Some(usage), Some(price)) => {
                        price.cost_pico(usage.input_tokens, usage.output_tokens)
                    }
                    _ => 0,
                },
            };
            Ok(ModelAnswer {
                response,
                provider,
                deployment,
                cost_pico,
            })
        })
    }

    fn embed_priced(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, Result<(EmbeddingResponse, u64)>> {
        Box::pin(async move {
            let body = openai::encode_embedding_request(&request, &request.model)?;
            let response = self.send("/v1/embeddings", body).await?;
            let cost = cost_header(&response);
            let bytes = response
                .bytes()
                .await
                .map_err(|e| connect_error(&self.base, &e))?;
            let response = openai::decode_embedding_response(&bytes)?;
            let cost = match cost {
                Some(cost) => cost,
                // Not a Crossbar gateway: price the input at the dearest known price.
                None => self
                    .price(&request.model)
                    .await?
                    .map_or(0, |p| p.cost_pico(response.input_tokens, 0)),
            };
            Ok((response, cost))
        })
    }

    fn price(&self, model: &str) -> BoxFuture<'_, Result<Option<TokenPrice>>> {
        let model = model.to_owned();
        Box::pin(async move {
            let prices = self
                .prices
                .get_or_init(|| async {
                    let mut request = self
                        .http
                        .get(format!("{}/v1/crossbar/deployments", self.base));
                    if let Some(key) = &self.key {
                        request = request.bearer_auth(key.expose_secret());
                    }
                    let Ok(response) = request.send().await else {
                        return Vec::new();
                    };
                    if !response.status().is_success() {
                        return Vec::new();
                    }
                    response
                        .json::<DeploymentList>()
                        .await
                        .map(|list| {
                            list.data
                                .into_iter()
                                .map(|d| {
                                    (
                                        d.model,
                                        TokenPrice {
                                            input: d.price.input,
                                            output: d.price.output,
                                        },
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .await;
            let own: Vec<TokenPrice> = prices
                .iter()
                .filter(|(name, _)| *name == model)
                .map(|(_, p)| *p)
                .collect();
            let all: Vec<TokenPrice> = prices.iter().map(|(_, p)| *p).collect();
            Ok(dearest(if own.is_empty() { &all } else { &own }))
        })
    }

    fn describe(&self) -> String {
        format!("gateway {}", self.base)
    }
}
