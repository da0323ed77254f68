//! The AWS Bedrock Converse / ConverseStream dialect: `POST /model/{modelId}/converse` and
//! `/converse-stream`, authenticated by a SigV4 `Authorization` header (its shape and credential
//! scope are checked, not its signature) or a Bedrock API key as a bearer token.
//!
//! Bedrock caches prompts only where the request puts `cachePoint` blocks: the prefix up to the
//! last one is written on first sight and read afterwards (when it reaches 1024 tokens), and
//! `inputTokens` then excludes both, as on the real service.

mod error;
mod invoke;
mod request;
mod response;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use self::error::BedrockError;
use self::response::Tokens;
use crate::behaviour::{self, Segment};
use crate::faults::{self, Fault, Pacing, StreamBreaks};
use crate::state::App;
use crate::{SimConfig, http, ids};

const SALT_REQUEST_ID: u64 = 0x7271_6964;
/// Smallest prefix a cache point caches (Claude's minimum on Bedrock).
const MIN_CACHE_TOKENS: u64 = 1024;
const CACHE_CAPACITY: usize = 1024;

#[derive(Clone)]
struct Sim {
    app: App,
    cache: Arc<Mutex<PrefixCache>>,
}

/// Prefixes written by earlier requests' cache points, oldest first.
#[derive(Default)]
struct PrefixCache {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl PrefixCache {
    /// True when `key` was cached before; remembers it either way.
    fn read_or_write(&mut self, key: u64) -> bool {
        if self.seen.contains(&key) {
            return true;
        }
        if self.order.len() >= CACHE_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(key);
        self.order.push_back(key);
        false
    }
}

pub(crate) fn router(app: App) -> Router {
    let sim = Sim {
        app: app.clone(),
        cache: Arc::default(),
    };
    let routes = Router::new()
        .route("/model/{model_id}/converse", post(converse))
        .route("/model/{model_id}/converse-stream", post(converse_stream))
        .route("/model/{model_id}/invoke", post(invoke_model))
        // The OpenAI-compatible Chat Completions beside Converse, behind the same auth.
        .route("/openai/v1/chat/completions", post(openai_chat))
        .route_layer(middleware::from_fn_with_state(sim.clone(), authenticate));
    crate::served(routes, &app, sim, unknown_operation)
}

fn request_id(app: &App) -> String {
    ids::uuid(&mut ids::rng(app.next_sequence(), SALT_REQUEST_ID))
}

async fn unknown_operation(State(sim): State<Sim>) -> Response {
    BedrockError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "UnknownOperationException",
    )
    .render(&request_id(&sim.app))
}

/// AWS authenticates before Bedrock sees the request: `Bearer <API key>`, or SigV4 whose
/// credential scope must be `<key id>/<yyyymmdd>/<region>/bedrock/aws4_request`.
async fn authenticate(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    match check_auth(
        request.headers(),
        sim.app.config().api_key.as_deref(),
        RUNTIME_SERVICES,
    ) {
        Ok(()) => next.run(request).await,
        Err(error) => error.render(&request_id(&sim.app)),
    }
}

/// The service Bedrock Runtime's SigV4 scope must name.
const RUNTIME_SERVICES: &[&str] = &["bedrock"];

/// AWS's request authentication of a Bedrock endpoint: `Bearer <API key>`, or a SigV4
/// `Authorization` whose credential scope names one of `services` (the first is the one named
/// in the refusal). Shared with Bedrock Mantle, which renders the refusal its own way.
pub(crate) fn check_auth(
    headers: &HeaderMap,
    expected_key: Option<&str>,
    services: &[&str],
) -> Result<(), BedrockError> {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(BedrockError::auth(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match expected_key {
            Some(key) if key != token => Err(BedrockError::auth(
                "AccessDeniedException",
                "Authentication failed: the API key is invalid.",
            )),
            _ if token.trim().is_empty() => Err(BedrockError::auth(
                "AccessDeniedException",
                "Authentication failed: the API key is invalid.",
            )),
            _ => Ok(()),
        };
    }
    let Some(parameters) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(BedrockError::auth(
            "IncompleteSignatureException",
            format!("Authorization header requires 'Credential' parameter. Authorization={value}"),
        ));
    };
    let parameter = |name: &str| {
        parameters
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, v)| v)
    };
    let (Some(credential), Some(signed), Some(signature)) = (
        parameter("Credential"),
        parameter("SignedHeaders"),
        parameter("Signature"),
    ) else {
        return Err(BedrockError::auth(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters.",
        ));
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if amz_date.len() != 16 {
        return Err(BedrockError::auth(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope[..] else {
        return Err(BedrockError::auth(
            "IncompleteSignatureException",
            format!("Credential should have 5 slash-separated parts, not {credential}."),
        ));
    };
    if terminator != "aws4_request" {
        return Err(BedrockError::auth(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            ),
        ));
    }
    if !services.contains(&service) {
        return Err(BedrockError::auth(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: '{}'. ",
                services.first().copied().unwrap_or_default()
            ),
        ));
    }
    if region.is_empty() || !amz_date.starts_with(date) || date.len() != 8 {
        return Err(BedrockError::auth(
            "InvalidSignatureException",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or_default()
            ),
        ));
    }
    if !signed.split(';').any(|h| h == "host") || !signed.split(';').any(|h| h == "x-amz-date") {
        return Err(BedrockError::auth(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided: \
             'host' and 'x-amz-date' must be signed.",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BedrockError::auth(
            "IncompleteSignatureException",
            "The Signature must be 64 hexadecimal characters.",
        ));
    }
    match expected_key {
        Some(key) if key != key_id => Err(BedrockError::auth(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )),
        _ => Ok(()),
    }
}

/// `POST /openai/v1/chat/completions`: Chat Completions for the Bedrock models that have it,
/// named by their Bedrock id (`openai.gpt-oss-120b-1:0`: a provider, a dot, the model).
async fn openai_chat(State(sim): State<Sim>, body: Bytes) -> Response {
    let target = crate::openai::Target {
        dialect: crate::SimDialect::Bedrock,
        operation: crate::openai::Operation::Chat,
        deployment_model: None,
        api_version: None,
    };
    if let Some(model) = crate::mantle::body_model(&body)
        && !crate::mantle::bedrock_model_id(&model)
    {
        return crate::mantle::model_not_found(crate::SimDialect::Bedrock, &model);
    }
    crate::openai::chat(&sim.app, &target, &body).await
}

async fn converse(State(sim): State<Sim>, Path(model): Path<String>, body: Bytes) -> Response {
    answer(&sim, &model, &body, false).await
}

async fn invoke_model(State(sim): State<Sim>, Path(model): Path<String>, body: Bytes) -> Response {
    let request_id = request_id(&sim.app);
    let config = sim.app.config();
    let fault = sim.app.decide_fault(&config);
    if let Some(response) = early_fault(&config, fault, &request_id).await {
        return response;
    }
    match invoke::invoke(&model, &body) {
        Ok(response) => response,
        Err(error) => error.render(&request_id),
    }
}

/// Answers throttling and error faults, and never answers a hang; other requests proceed.
async fn early_fault(config: &SimConfig, fault: Fault, request_id: &str) -> Option<Response> {
    let error = match fault {
        Fault::RateLimit => BedrockError::throttled(),
        Fault::Error => BedrockError::scripted(config.error_status),
        Fault::Hang => return Some(std::future::pending().await),
        Fault::None | Fault::Malformed => return None,
    };
    Some(error.render(request_id))
}

async fn converse_stream(
    State(sim): State<Sim>,
    Path(model): Path<String>,
    body: Bytes,
) -> Response {
    answer(&sim, &model, &body, true).await
}

async fn answer(sim: &Sim, model: &str, body: &[u8], stream: bool) -> Response {
    let request_id = request_id(&sim.app);
    let config = sim.app.config();
    let fault = sim.app.decide_fault(&config);
    if let Some(response) = early_fault(&config, fault, &request_id).await {
        return response;
    }
    if model.is_empty() || model.len() > 2048 {
        return error::constraint(
            model,
            "modelId",
            "Member must have length less than or equal to 2048 and greater than or equal to 1",
        )
        .render(&request_id);
    }
    let request = match request::parse(body, model) {
        Ok(request) => request,
        Err(error) => return error.render(&request_id),
    };
    let conversation = &request.conversation;
    let answer = behaviour::answer(conversation);
    let tokens = sim.tokens(
        &answer.usage,
        &conversation.prompt_segments(),
        request.cached_prefix,
    );
    let pacing = Pacing::new(&config);
    let latency_ms = config.ttft_ms;
    let malformed = fault == Fault::Malformed;
    if stream {
        tokio::time::sleep(pacing.ttft).await;
        let script = response::stream(
            &answer,
            tokens,
            latency_ms,
            conversation.fingerprint,
            config.error_status,
            malformed,
            request.thinking,
        );
        let frames = faults::play(script, StreamBreaks::new(&config), pacing.per_token);
        let mut response = Body::from_stream(frames).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.amazon.eventstream"),
        );
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amzn-requestid", id);
        }
        response.extensions_mut().insert(http::Streamed);
        response
    } else {
        tokio::time::sleep(pacing.total(answer.usage.completion_tokens)).await;
        let body = response::converse(&answer, tokens, latency_ms, request.thinking);
        let mut response = faults::json_answer(body, malformed);
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-amzn-requestid", id);
        }
        response
    }
}

impl Sim {
    /// Bedrock's token counts: the cached prefix (up to the last cache point) is written the
    /// first time and read afterwards, and neither counts in `inputTokens`.
    fn tokens(
        &self,
        usage: &behaviour::Usage,
        segments: &[Segment],
        cached_prefix: Option<usize>,
    ) -> Tokens {
        let mut tokens = Tokens {
            input: usage.prompt_tokens,
            output: usage.completion_tokens,
            cache: None,
        };
        let Some(prefix) = cached_prefix else {
            return tokens;
        };
        let covered = segments
            .get(..prefix.min(segments.len()))
            .unwrap_or_default();
        let prefix_tokens: u64 = covered.iter().map(|s| s.tokens).sum();
        if prefix_tokens < MIN_CACHE_TOKENS {
            tokens.cache = Some((0, 0));
            return tokens;
        }
        let key = covered.iter().fold(ids::fnv1a(b"bedrock-cache"), |acc, s| {
            ids::fnv1a(&[acc.to_le_bytes(), s.hash.to_le_bytes()].concat())
        });
        let read = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_or_write(key);
        tokens.input = usage.prompt_tokens.saturating_sub(prefix_tokens);
        tokens.cache = Some(if read {
            (prefix_tokens, 0)
        } else {
            (0, prefix_tokens)
        });
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str, date: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers.insert("x-amz-date", HeaderValue::from_str(date).unwrap());
        headers
    }

    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1c91d22c6dfb49efad9e8de45bc4dde894ea14c06a0f4b54d7682ee99e1cd6d6";

    #[test]
    fn sigv4_scope_and_keys_are_checked() {
        let date = "20150830T123600Z";
        assert_eq!(
            check_auth(&headers(SIGNED, date), None, RUNTIME_SERVICES),
            Ok(())
        );
        assert_eq!(
            check_auth(
                &headers(SIGNED, date),
                Some("AKIDEXAMPLE"),
                RUNTIME_SERVICES
            ),
            Ok(())
        );
        let name = |auth: &str, date: &str, key: Option<&str>| {
            check_auth(&headers(auth, date), key, RUNTIME_SERVICES)
                .unwrap_err()
                .name
        };
        assert_eq!(
            name(SIGNED, date, Some("OTHER")),
            "UnrecognizedClientException"
        );
        assert_eq!(
            name(
                &SIGNED.replace("/bedrock/", "/bedrock-runtime/"),
                date,
                None
            ),
            "InvalidSignatureException"
        );
        // A signature for Bedrock Mantle is refused here, naming the service this one wants.
        let mantle = check_auth(
            &headers(&SIGNED.replace("/bedrock/", "/bedrock-mantle/"), date),
            None,
            RUNTIME_SERVICES,
        )
        .unwrap_err();
        assert_eq!(
            (mantle.status, mantle.name, mantle.message.as_str()),
            (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'bedrock'. "
            )
        );
        assert_eq!(
            name(SIGNED, "20150831T000000Z", None),
            "InvalidSignatureException"
        );
        assert_eq!(
            name(&SIGNED.replace("Signature=1c", "Signature=zz"), date, None),
            "IncompleteSignatureException"
        );
        assert_eq!(
            name("Basic abc", date, None),
            "IncompleteSignatureException"
        );
        assert_eq!(
            name("Bearer nope", date, Some("key")),
            "AccessDeniedException"
        );
        assert_eq!(
            check_auth(&headers("Bearer key", date), Some("key"), RUNTIME_SERVICES),
            Ok(())
        );
        assert_eq!(
            check_auth(&HeaderMap::new(), None, RUNTIME_SERVICES)
                .unwrap_err()
                .name,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn prefix_cache_writes_then_reads() {
        let mut cache = PrefixCache::default();
        assert!(!cache.read_or_write(1));
        assert!(cache.read_or_write(1));
        for key in 2..(CACHE_CAPACITY as u64 + 2) {
            cache.read_or_write(key);
        }
        assert!(!cache.read_or_write(1), "the oldest entry was evicted");
    }
}
