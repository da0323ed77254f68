//! Turns a core error into an OpenAI-shaped HTTP response. The status comes from
//! `Error::status`, the one place statuses are decided.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_core::dialects::openai;

/// An error on its way to a client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = (status, openai::encode_error(&error)).into_response();
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
