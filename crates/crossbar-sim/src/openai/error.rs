//! Error bodies and headers: OpenAI's `{"error":{"message","type","param","code"}}` and
//! Azure's `{"error":{"code":"<string>","message"}}` (plus `param`/`type` on validation errors).

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;

use super::headers::{REQUEST_LIMIT, azure_headers, go_duration};
use super::{Operation, Target};
use crate::SimDialect;
use crate::error::{ErrorKind, SimError};
use crate::http;

#[derive(Serialize)]
struct Envelope<T> {
    error: T,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AzureError<'a> {
    code: String,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<Option<&'a str>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

/// The error JSON in the dialect's shape.
pub(crate) fn body(dialect: SimDialect, error: &SimError) -> String {
    let encoded = match dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => serde_json::to_string(&Envelope {
            error: OpenAiError {
                message: &error.message,
                kind: match error.kind {
                    ErrorKind::RateLimit => "requests",
                    ErrorKind::Server => "server_error",
                    ErrorKind::InvalidRequest | ErrorKind::Authentication | ErrorKind::NotFound => {
                        "invalid_request_error"
                    }
                },
                param: error.param.as_deref(),
                code: error.code.as_deref(),
            },
        }),
        SimDialect::Azure => {
            let validation = error.kind == ErrorKind::InvalidRequest;
            serde_json::to_string(&Envelope {
                error: AzureError {
                    code: error
                        .code
                        .clone()
                        .unwrap_or_else(|| error.status.as_u16().to_string()),
                    message: &error.message,
                    param: validation.then_some(error.param.as_deref()),
                    kind: validation.then_some("invalid_request_error"),
                },
            })
        }
    };
    // Serializing these plain structs cannot fail; an empty object keeps the status meaningful.
    encoded.unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn render(dialect: SimDialect, error: &SimError) -> Response {
    let mut response = http::json_body(error.status, body(dialect, error));
    if let Some(seconds) = error.retry_after_s {
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("retry-after", seconds.to_string());
        set("x-ratelimit-remaining-requests", "0".to_owned());
        if azure_headers(dialect) {
            set("retry-after-ms", seconds.saturating_mul(1000).to_string());
        } else {
            set(
                "x-ratelimit-reset-requests",
                go_duration(seconds.saturating_mul(1000)),
            );
        }
    }
    response
}

/// The in-band error a failing stream ends with: a `data:` frame the SDKs raise on.
pub(crate) fn stream_error_frame(dialect: SimDialect) -> Bytes {
    let error = server_error(StatusCode::INTERNAL_SERVER_ERROR);
    Bytes::from(format!("data: {}\n\n", body(dialect, &error)))
}

pub(crate) fn unauthorized(dialect: SimDialect, key_missing: bool) -> SimError {
    let message = match (dialect, key_missing) {
        (SimDialect::Azure, _) => {
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
             provide a valid key for an active subscription and use a correct regional API \
             endpoint for your resource."
        }
        (_, true) => {
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You \
             can obtain an API key from https://platform.openai.com/account/api-keys."
        }
        (_, false) => {
            "Incorrect API key provided. You can find your API key at \
             https://platform.openai.com/account/api-keys."
        }
    };
    let error = SimError::new(StatusCode::UNAUTHORIZED, ErrorKind::Authentication, message);
    match (dialect, key_missing) {
        (SimDialect::OpenAi, false) => error.code("invalid_api_key"),
        _ => error,
    }
}

/// An unknown path (or, on Azure, a request without `api-version`).
pub(crate) fn not_found(dialect: SimDialect, method: &str, path: &str) -> SimError {
    let message = match dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => format!("Invalid URL ({method} {path})"),
        SimDialect::Azure => "Resource not found".to_owned(),
    };
    SimError::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
}

pub(crate) fn rate_limited(target: &Target, retry_after_s: u64) -> SimError {
    let message = match target.dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => format!(
            "Rate limit reached in organization org-simulated on requests per min (RPM): Limit \
             {REQUEST_LIMIT}, Used {REQUEST_LIMIT}, Requested 1. Please try again in {}. Visit \
             https://platform.openai.com/account/rate-limits to learn more.",
            go_duration(retry_after_s.saturating_mul(1000))
        ),
        SimDialect::Azure => format!(
            "Requests to the {} Operation under Azure OpenAI API version {} have exceeded \
             token rate limit of your current OpenAI S0 pricing tier. Please retry after \
             {retry_after_s} seconds. Please go here: https://aka.ms/oai/quotaincrease if you \
             would like to further increase the default rate limit.",
            match target.operation {
                Operation::Chat => "ChatCompletions_Create",
                Operation::Embeddings => "Embeddings_Create",
            },
            target.api_version.as_deref().unwrap_or_default()
        ),
    };
    let error = SimError::new(StatusCode::TOO_MANY_REQUESTS, ErrorKind::RateLimit, message)
        .retry_after(retry_after_s);
    match target.dialect {
        SimDialect::OpenAi
        | SimDialect::Anthropic
        | SimDialect::Bedrock
        | SimDialect::Gemini
        | SimDialect::Vertex
        | SimDialect::BedrockMantle => error.code("rate_limit_exceeded"),
        SimDialect::Azure => error,
    }
}

/// The error of an `error_rate` fault: 429 takes the rate-limit shape, 5xx the server-error
/// shape, anything else (or an invalid status, served as 500) a generic error of its class.
pub(crate) fn scripted(target: &Target, status: u16, retry_after_s: u64) -> SimError {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return rate_limited(target, retry_after_s);
    }
    if status.is_server_error() {
        return server_error(status);
    }
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        _ => ErrorKind::InvalidRequest,
    };
    SimError::new(status, kind, format!("Simulated error ({status})."))
}

fn server_error(status: StatusCode) -> SimError {
    let message = match status {
        StatusCode::SERVICE_UNAVAILABLE => "The server is overloaded or not ready yet.",
        StatusCode::BAD_GATEWAY => "Bad gateway.",
        StatusCode::GATEWAY_TIMEOUT => "Gateway timeout.",
        _ => "The server had an error while processing your request. Sorry about that!",
    };
    SimError::new(status, ErrorKind::Server, message)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn shapes_per_dialect() {
        let error = SimError::invalid("bad")
            .param("messages")
            .code("empty_array");
        let openai: Value = serde_json::from_str(&body(SimDialect::OpenAi, &error)).unwrap();
        assert_eq!(
            openai,
            json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": "empty_array"}})
        );
        let azure: Value = serde_json::from_str(&body(
            SimDialect::Azure,
            &not_found(SimDialect::Azure, "", ""),
        ))
        .unwrap();
        assert_eq!(
            azure,
            json!({"error": {"code": "404", "message": "Resource not found"}})
        );
    }

    #[test]
    fn scripted_statuses_map_to_their_class() {
        let target = Target::openai(Operation::Chat);
        assert_eq!(scripted(&target, 503, 1).kind, ErrorKind::Server);
        assert_eq!(scripted(&target, 429, 3).retry_after_s, Some(3));
        assert_eq!(scripted(&target, 400, 1).status, StatusCode::BAD_REQUEST);
        assert_eq!(
            scripted(&target, 42, 1).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
