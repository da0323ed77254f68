//! Bedrock's error answers: the status, `x-amzn-ErrorType: <Name>:<namespace>` (clients take the
//! text before `:`), `x-amzn-RequestId`, and a `{"message": ...}` body. No `Retry-After` and no
//! rate-limit headers, ever: Bedrock sends none.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::http;

const BEDROCK_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
const CORAL_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BedrockError {
    pub status: StatusCode,
    /// The exception's shape name, e.g. `ValidationException`.
    pub name: &'static str,
    pub message: String,
}

impl BedrockError {
    pub fn new(status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            name,
            message: message.into(),
        }
    }

    /// A 400 `ValidationException`, what Bedrock answers for anything wrong in a request.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// A 403 raised by AWS's request authentication, before Bedrock sees the request.
    pub fn auth(name: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, name, message)
    }

    pub fn throttled() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
    }

    /// The error of an `error_rate` fault, as the exception Bedrock uses for that status.
    pub fn scripted(status: u16) -> Self {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match status.as_u16() {
            429 => Self::throttled(),
            503 => Self::new(
                status,
                "ServiceUnavailableException",
                "Bedrock is unable to process your request.",
            ),
            500..=599 => Self::new(
                status,
                "InternalServerException",
                "The server encountered an internal error while processing the request.",
            ),
            403 => Self::new(
                status,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            ),
            404 => Self::new(
                status,
                "ResourceNotFoundException",
                "The specified resource could not be found.",
            ),
            408 => Self::new(
                status,
                "ModelTimeoutException",
                "Model has timed out in processing the request. Try your request again.",
            ),
            424 => Self::new(
                status,
                "ModelErrorException",
                "The model encountered an error processing the request.",
            ),
            _ => Self::new(
                status,
                "ValidationException",
                format!("Simulated error ({status})."),
            ),
        }
    }

    fn namespace(&self) -> &'static str {
        match self.name {
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException" => CORAL_NAMESPACE,
            _ => BEDROCK_NAMESPACE,
        }
    }

    pub fn render(&self, request_id: &str) -> Response {
        let body = json!({ "message": self.message }).to_string();
        let mut response = http::json_body(self.status, body);
        let headers = response.headers_mut();
        let error_type = format!("{}:{}", self.name, self.namespace());
        for (name, value) in [
            ("x-amzn-errortype", error_type.as_str()),
            ("x-amzn-requestid", request_id),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// AWS's constraint-violation message, with Coral's 1-based `member` paths.
pub(crate) fn constraint(value: &str, path: &str, constraint: &str) -> BedrockError {
    BedrockError::validation(format!(
        "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: \
         {constraint}"
    ))
}
