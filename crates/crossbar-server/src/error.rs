//! Turns a core error into an HTTP response in the client's dialect (OpenAI or Anthropic
//! shape). The status comes from `Error::status`, the one place statuses are decided.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_core::dialects::{anthropic, openai};

/// The API a client spoke, which decides the shape of our errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress {
    OpenAi,
    Anthropic,
}

impl Ingress {
    /// The ingress a request path belongs to.
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }
}

/// An error on its way to a client.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub ingress: Ingress,
}

impl ApiError {
    pub fn anthropic(error: Error) -> Self {
        Self {
            error,
            ingress: Ingress::Anthropic,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            error,
            ingress: Ingress::OpenAi,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.error;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = match self.ingress {
            Ingress::OpenAi => openai::encode_error(&error),
            Ingress::Anthropic => anthropic::encode_error(&error),
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = error.retry_after {
            // Whole seconds, rounded up so a client never comes back early.
            let seconds = after.as_millis().div_ceil(1000);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
            if let Ok(value) = HeaderValue::from_str(&after.as_millis().to_string()) {
                headers.insert("retry-after-ms", value);
            }
        }
        response
    }
}
