//! The OpenAI dialect (Chat Completions, Embeddings, Models under `/v1`) and Azure OpenAI
//! (classic deployment URLs with `api-version`): routes, auth, and the glue between the wire
//! format and the neutral behaviour. Azure differs in path, auth header, reported model, the
//! empty first stream chunk, content-filter annotations and error shape.

mod embeddings;
mod error;
mod headers;
mod params;
mod request;
mod response;
pub(crate) mod responses;
mod tools;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

pub(crate) use self::error::render as render_error;
use crate::faults::{self, Fault, Pacing};
use crate::state::App;
use crate::{SimConfig, SimDialect, behaviour, http};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Chat,
    Embeddings,
}

/// Where a request was addressed, as far as the answer depends on it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub dialect: SimDialect,
    pub operation: Operation,
    /// Azure: the model version behind the deployment, reported instead of the body's model.
    pub deployment_model: Option<String>,
    pub api_version: Option<String>,
}

impl Target {
    pub fn openai(operation: Operation) -> Self {
        Self {
            dialect: SimDialect::OpenAi,
            operation,
            deployment_model: None,
            api_version: None,
        }
    }

    /// `None` without a non-empty `api-version`, which Azure answers with 404.
    fn azure(operation: Operation, deployment: &str, query: Option<&str>) -> Option<Self> {
        let api_version = query?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, value)| *key == "api-version" && !value.is_empty())
            .map(|(_, value)| value.to_owned())?;
        Some(Self {
            dialect: SimDialect::Azure,
            operation,
            // Azure reports the model version behind a deployment, never the deployment name.
            deployment_model: Some(format!("{}-2024-08-06", deployment.to_ascii_lowercase())),
            api_version: Some(api_version),
        })
    }

    fn reported_model(&self, requested: &str) -> String {
        self.deployment_model
            .clone()
            .unwrap_or_else(|| requested.to_owned())
    }
}

pub(crate) fn router(app: App) -> Router {
    let routes = match app.dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/v1/responses", post(openai_responses))
            .route("/v1/models", get(list_models)),
        SimDialect::Azure => Router::new()
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(azure_chat),
            )
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(azure_embeddings),
            )
            .route("/openai/v1/responses", post(azure_responses)),
    };
    routes
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            headers::decorate,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), http::observe))
        // `observe` already enforced the body limit while recording.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// OpenAI takes `Authorization: Bearer`; Azure takes `api-key` or a Bearer token.
async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(expected) = app.config().api_key else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let presented = match app.dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => bearer,
        SimDialect::Azure => headers
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .or(bearer),
    };
    match presented {
        Some(key) if key == expected => next.run(request).await,
        presented => render_error(
            app.dialect,
            &error::unauthorized(app.dialect, presented.is_none()),
        ),
    }
}

async fn not_found(State(app): State<App>, method: Method, uri: Uri) -> Response {
    let error = error::not_found(app.dialect, method.as_str(), uri.path());
    render_error(app.dialect, &error)
}

async fn list_models() -> Response {
    const MODELS: &[(&str, u64)] = &[
        ("gpt-4o", 1_715_367_049),
        ("gpt-4o-mini", 1_721_172_741),
        ("o3-mini", 1_737_146_383),
        ("text-embedding-3-small", 1_705_948_997),
        ("text-embedding-3-large", 1_705_953_180),
    ];
    let data: Vec<_> = MODELS
        .iter()
        .map(|(id, created)| json!({"id": id, "object": "model", "created": created, "owned_by": "system"}))
        .collect();
    http::json_body(
        StatusCode::OK,
        json!({"object": "list", "data": data}).to_string(),
    )
}

async fn openai_chat(State(app): State<App>, body: Bytes) -> Response {
    chat(&app, &Target::openai(Operation::Chat), &body).await
}

async fn azure_chat(
    State(app): State<App>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match Target::azure(Operation::Chat, &deployment, query.as_deref()) {
        Some(target) => chat(&app, &target, &body).await,
        None => resource_not_found(),
    }
}

async fn openai_responses(State(app): State<App>, body: Bytes) -> Response {
    responses::handle(&app, &Target::openai(Operation::Chat), &body).await
}

/// Azure's v1 API: no `api-version`, the deployment named by the body's `model`.
async fn azure_responses(State(app): State<App>, body: Bytes) -> Response {
    let target = Target {
        dialect: SimDialect::Azure,
        operation: Operation::Chat,
        deployment_model: None,
        api_version: None,
    };
    responses::handle(&app, &target, &body).await
}

async fn openai_embeddings(State(app): State<App>, body: Bytes) -> Response {
    embed(&app, &Target::openai(Operation::Embeddings), &body).await
}

async fn azure_embeddings(
    State(app): State<App>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match Target::azure(Operation::Embeddings, &deployment, query.as_deref()) {
        Some(target) => embed(&app, &target, &body).await,
        None => resource_not_found(),
    }
}

fn resource_not_found() -> Response {
    let error = error::not_found(SimDialect::Azure, "", "");
    render_error(SimDialect::Azure, &error)
}

/// Counts a model call against the simulated quota ([`SimConfig::quota_requests`]): once it
/// is spent, a 429 with `Retry-After` until the window ends; the response carries what is
/// left, which [`headers::decorate`] reports.
pub(crate) async fn metered(
    app: &App,
    target: &Target,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    let Some(quota) = app.take_quota(&app.config()) else {
        return answer.await;
    };
    let mut response = if quota.admitted {
        answer.await
    } else {
        render_error(
            target.dialect,
            &error::rate_limited(target, quota.retry_after_s()),
        )
    };
    response.extensions_mut().insert(quota);
    response
}

/// Answers one Chat Completions request addressed to `target` (also the clouds' OpenAI doors).
pub(crate) async fn chat(app: &App, target: &Target, body: &[u8]) -> Response {
    metered(app, target, answer_chat(app, target, body)).await
}

async fn answer_chat(app: &App, target: &Target, body: &[u8]) -> Response {
    let config = app.config();
    let fault = app.decide_fault(&config);
    if let Some(response) = early_fault(&config, fault, target).await {
        return response;
    }
    let request = match request::parse_chat(body, target) {
        Ok(request) => request,
        Err(error) => return render_error(target.dialect, &error),
    };
    let conversation = &request.conversation;
    let mut answer = behaviour::answer(conversation);
    answer.usage.cached_tokens = app.cached_tokens(&conversation.prompt_segments());
    let model = target.reported_model(&request.model);
    let render = response::Render::new(target.dialect, &request, model, app.next_sequence());
    let malformed = fault == Fault::Malformed;
    if request.stream {
        faults::stream_answer(&config, render.stream(&answer, malformed)).await
    } else {
        let pacing = Pacing::new(&config);
        tokio::time::sleep(pacing.total(answer.usage.completion_tokens)).await;
        faults::json_answer(render.completion(&answer), malformed)
    }
}

async fn embed(app: &App, target: &Target, body: &[u8]) -> Response {
    metered(app, target, answer_embed(app, target, body)).await
}

async fn answer_embed(app: &App, target: &Target, body: &[u8]) -> Response {
    let config = app.config();
    let fault = app.decide_fault(&config);
    if let Some(response) = early_fault(&config, fault, target).await {
        return response;
    }
    let request = match embeddings::parse(body, target) {
        Ok(request) => request,
        Err(error) => return render_error(target.dialect, &error),
    };
    tokio::time::sleep(Pacing::new(&config).ttft).await;
    let model = target.reported_model(&request.model);
    let body = request.respond(&model, config.embedding_dimensions);
    faults::json_answer(body, fault == Fault::Malformed)
}

/// Answers rate-limit and error faults, and never answers a hang; other requests proceed.
async fn early_fault(config: &SimConfig, fault: Fault, target: &Target) -> Option<Response> {
    let error = match fault {
        Fault::RateLimit => error::rate_limited(target, config.retry_after_s),
        Fault::Error => error::scripted(target, config.error_status, config.retry_after_s),
        Fault::Hang => return Some(std::future::pending().await),
        Fault::None | Fault::Malformed => return None,
    };
    Some(render_error(target.dialect, &error))
}
