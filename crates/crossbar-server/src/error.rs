//! Turns a core error into an HTTP response in the client's dialect (OpenAI or Anthropic
//! shape). The status comes from `Error::status`, the one place statuses are decided.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_core::ingress::{AnthropicMessages, ChatIngress, OpenAiChat};

/// Writes an error in one client dialect's shape.
pub(crate) type EncodeError = fn(&Error) -> Vec<u8>;

/// The error shape of a request path, for answers given before a handler knows its dialect
/// (authentication, unknown URLs): Anthropic's under `/v1/messages`, OpenAI's elsewhere.
pub(crate) fn encoder_of_path(path: &str) -> EncodeError {
    if path.starts_with("/v1/messages") {
        AnthropicMessages::encode_error
    } else {
        OpenAiChat::encode_error
    }
}

/// An error on its way to a client, with the shape of the client's dialect.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub error: Error,
    pub encode: EncodeError,
}

impl ApiError {
    /// The error in the shape of ingress dialect `I`.
    pub(crate) fn of<I: ChatIngress>(error: Error) -> Self {
        Self {
            error,
            encode: I::encode_error,
        }
    }

    pub(crate) fn anthropic(error: Error) -> Self {
        Self::of::<AnthropicMessages>(error)
    }

    pub(crate) fn at_path(path: &str, error: Error) -> Self {
        Self {
            error,
            encode: encoder_of_path(path),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self::of::<OpenAiChat>(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.error;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = (self.encode)(&error);
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
