//! The Gemini API (`/v1beta/models/{m}:method`, key in `x-goog-api-key` or `?key=`) and
//! Vertex AI (`/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{m}:method`,
//! `Authorization: Bearer`), which also hosts Claude under `publishers/anthropic` (`:rawPredict`
//! and `:streamRawPredict`, answered by the Anthropic module after the Vertex auth check), OpenAI's
//! models under `publishers/openai/v1/responses` and the OpenAI-compatible Chat Completions under
//! `endpoints/openapi/chat/completions` (both answered by the OpenAI module after that check).
//!
//! `{model}:{method}` is one path segment, split at its last colon here. Rate limits: the
//! Gemini API answers 429 with `RetryInfo.retryDelay = retry_after_s` and a per-minute
//! `QuotaFailure`; Vertex answers the shared-capacity 429 with no delay, as the real one does.
//! Neither sends `Retry-After`.

mod embeddings;
mod error;
mod proto;
mod request;
mod response;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::Stream;

use self::error::GoogleError;
use self::response::{Framing, Render};
use crate::faults::{self, Fault, Pacing, StreamBreaks};
use crate::state::App;
use crate::{SimDialect, behaviour, http};

pub(crate) fn router(app: App) -> Router {
    let routes = match app.dialect {
        SimDialect::Vertex => Router::new()
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{call}",
                post(vertex),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/{publisher}/v1/responses",
                post(vertex_openai_responses),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/endpoints/{endpoint}/chat/completions",
                post(vertex_openai_chat),
            ),
        _ => Router::new()
            .route("/v1beta/models/{call}", post(gemini))
            .route("/v1/models/{call}", post(gemini)),
    };
    crate::served(routes, &app, app.clone(), not_found)
}

async fn not_found(uri: Uri) -> Response {
    error::not_found(uri.path()).render()
}

/// `gemini-2.5-flash:generateContent` → (`gemini-2.5-flash`, `generateContent`).
fn split_call(call: &str) -> Option<(&str, &str)> {
    call.rsplit_once(':')
        .filter(|(model, method)| !model.is_empty() && !method.is_empty())
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn framing(query: Option<&str>) -> Framing {
    if query_param(query, "alt") == Some("sse") {
        Framing::Sse
    } else {
        Framing::JsonArray
    }
}

/// Checks the configured key: Gemini's `x-goog-api-key` header or `key` query parameter,
/// Vertex's bearer token.
fn authenticate(app: &App, headers: &HeaderMap, query: Option<&str>) -> Option<GoogleError> {
    let expected = app.config().api_key?;
    let presented = match app.dialect {
        SimDialect::Vertex => headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        _ => headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .or_else(|| query_param(query, "key")),
    };
    match presented {
        Some(key) if key == expected => None,
        presented => Some(error::unauthorized(app.dialect, presented.is_none())),
    }
}

async fn gemini(
    State(app): State<App>,
    Path(call): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.as_deref();
    let Some((model, method)) = split_call(&call) else {
        return error::not_found(&call).render();
    };
    if let Some(error) = authenticate(&app, &headers, query) {
        return error.render();
    }
    match method {
        "generateContent" => generate(&app, model, None, &body).await,
        "streamGenerateContent" => generate(&app, model, Some(framing(query)), &body).await,
        "embedContent" | "batchEmbedContents" => embed(&app, model, method, &body).await,
        _ => error::not_found(&call).render(),
    }
}

async fn vertex(
    State(app): State<App>,
    Path((_project, _location, publisher, call)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.as_deref();
    let Some((model, method)) = split_call(&call) else {
        return error::not_found(&call).render();
    };
    if let Some(error) = authenticate(&app, &headers, query) {
        return error.render();
    }
    match (publisher.as_str(), method) {
        ("google", "generateContent") => generate(&app, model, None, &body).await,
        ("google", "streamGenerateContent") => {
            generate(&app, model, Some(framing(query)), &body).await
        }
        ("google", "predict") => embed(&app, model, method, &body).await,
        ("anthropic", "rawPredict" | "streamRawPredict") => {
            let stream = method == "streamRawPredict";
            crate::anthropic::vertex_raw_predict(app.clone(), model.to_owned(), stream, body).await
        }
        _ => error::not_found(&call).render(),
    }
}

/// The OpenAI dialects' target on Vertex: OpenAI-shaped answers and errors, no OpenAI headers.
fn vertex_openai_target() -> crate::openai::Target {
    crate::openai::Target {
        dialect: SimDialect::Vertex,
        operation: crate::openai::Operation::Chat,
        deployment_model: None,
        api_version: None,
    }
}

/// `publishers/openai/v1/responses`: OpenAI's models through the Responses API, behind
/// Vertex's bearer token. Only the `openai` publisher has it; a model named for another
/// publisher (`google/...`) is not served here.
async fn vertex_openai_responses(
    State(app): State<App>,
    Path((_project, _location, publisher)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if publisher != "openai" {
        return error::not_found(uri.path()).render();
    }
    if let Some(error) = authenticate(&app, &headers, None) {
        return error.render();
    }
    if let Some(model) = crate::mantle::body_model(&body)
        && model
            .split_once('/')
            .is_some_and(|(owner, _)| owner != "openai")
    {
        return error::not_found(&format!("publishers/openai/models/{model}")).render();
    }
    crate::openai::responses::handle(&app, &vertex_openai_target(), &body).await
}

/// `endpoints/openapi/chat/completions`: Vertex's OpenAI-compatible Chat Completions, whose
/// models are named `publisher/model` (`google/gemini-2.5-flash`, `meta/llama-4-...`). Other
/// endpoint ids are self-deployed models, which no simulator hosts.
async fn vertex_openai_chat(
    State(app): State<App>,
    Path((_project, _location, endpoint)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if endpoint != "openapi" {
        return error::not_found(uri.path()).render();
    }
    if let Some(error) = authenticate(&app, &headers, None) {
        return error.render();
    }
    if let Some(model) = crate::mantle::body_model(&body)
        && !model
            .split_once('/')
            .is_some_and(|(publisher, name)| !publisher.is_empty() && !name.is_empty())
    {
        return GoogleError::invalid(format!(
            "Invalid model `{model}`: expected `publisher/model`, e.g. `google/gemini-2.5-flash`."
        ))
        .render();
    }
    crate::openai::chat(&app, &vertex_openai_target(), &body).await
}

/// Answers rate-limit and error faults, and never answers a hang; other requests proceed.
async fn early_fault(app: &App, fault: Fault, model: &str) -> Option<Response> {
    let config = app.config();
    let error = match fault {
        Fault::RateLimit => error::rate_limited(app.dialect, model, config.retry_after_s),
        Fault::Error => error::scripted(
            app.dialect,
            model,
            config.error_status,
            config.retry_after_s,
        ),
        Fault::Hang => return Some(std::future::pending().await),
        Fault::None | Fault::Malformed => return None,
    };
    Some(error.render())
}

/// `generateContent` (`stream = None`) and `streamGenerateContent`.
async fn generate(app: &App, model: &str, stream: Option<Framing>, body: &[u8]) -> Response {
    let config = app.config();
    let fault = app.decide_fault(&config);
    if let Some(response) = early_fault(app, fault, model).await {
        return response;
    }
    let request = match request::parse(body, app.dialect, model) {
        Ok(request) => request,
        Err(error) => return error.render(),
    };
    let conversation = &request.conversation;
    let mut answer = behaviour::answer(conversation);
    answer.usage.cached_tokens = app.cached_tokens(&conversation.prompt_segments());
    let render = Render::new(app.dialect, model, &request, app.next_sequence());
    let pacing = Pacing::new(&config);
    let malformed = fault == Fault::Malformed;
    match stream {
        Some(framing) => {
            tokio::time::sleep(pacing.ttft).await;
            let script = render.stream(&answer, malformed, framing);
            let frames = faults::play(script, StreamBreaks::new(&config), pacing.per_token);
            match framing {
                Framing::Sse => http::event_stream(frames),
                Framing::JsonArray => json_stream(frames),
            }
        }
        None => {
            tokio::time::sleep(pacing.total(answer.usage.completion_tokens)).await;
            faults::json_answer(render.completion(&answer), malformed)
        }
    }
}

async fn embed(app: &App, model: &str, method: &str, body: &[u8]) -> Response {
    let config = app.config();
    let fault = app.decide_fault(&config);
    if let Some(response) = early_fault(app, fault, model).await {
        return response;
    }
    let dimensions = config.embedding_dimensions;
    let answer = match method {
        "embedContent" => embeddings::embed_content(body, dimensions),
        "predict" => embeddings::predict(body, dimensions),
        _ => embeddings::batch_embed_contents(body, model, dimensions),
    };
    match answer {
        Ok(body) => {
            tokio::time::sleep(Pacing::new(&config).ttft).await;
            faults::json_answer(body, fault == Fault::Malformed)
        }
        Err(error) => error.render(),
    }
}

/// `streamGenerateContent` without `alt=sse`: one JSON array, sent as it is produced.
fn json_stream(frames: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static) -> Response {
    let mut response = Body::from_stream(frames).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response.extensions_mut().insert(http::Streamed);
    response
}
