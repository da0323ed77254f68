//! Google's error body: `{"error": {"code", "message", "status", "details"?}}`, pretty-printed
//! with two-space indents as Google's front end sends it. Rate limits carry no headers: the
//! Gemini API puts the delay in a `google.rpc.RetryInfo` detail; Vertex AI's shared-capacity
//! 429 has no delay at all.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::SimDialect;
use crate::http;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoogleError {
    pub code: StatusCode,
    pub message: String,
    pub details: Vec<Value>,
    /// Vertex adds the legacy `errors: [{message, domain, reason}]` to some errors.
    pub legacy_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<Value>>,
    status: &'static str,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    details: &'a [Value],
}

/// The canonical `google.rpc.Code` name for an HTTP status.
pub(crate) fn status_name(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if code.is_client_error() => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

impl GoogleError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            legacy_reason: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An `INVALID_ARGUMENT` listing field violations, as the JSON parser reports them.
    pub fn violations(violations: Vec<(String, String)>) -> Self {
        let message = violations
            .iter()
            .map(|(_, description)| description.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let field_violations: Vec<Value> = violations
            .iter()
            .map(|(field, description)| {
                if field.is_empty() {
                    json!({"description": description})
                } else {
                    json!({"field": field, "description": description})
                }
            })
            .collect();
        let mut error = Self::invalid(message);
        error.details = vec![json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": field_violations,
        })];
        error
    }

    pub fn body(&self) -> String {
        let envelope = Envelope {
            error: Body {
                code: self.code.as_u16(),
                message: &self.message,
                errors: self.legacy_reason.map(|reason| {
                    vec![json!({"message": self.message, "domain": "global", "reason": reason})]
                }),
                status: status_name(self.code),
                details: &self.details,
            },
        };
        // Serializing plain structs cannot fail; an empty object keeps the status meaningful.
        serde_json::to_string_pretty(&envelope).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn render(&self) -> Response {
        http::json_body(self.code, self.body())
    }

    /// The body as one compact line, for a `data:` line or a JSON-array element.
    pub fn compact(&self) -> Bytes {
        let value: Value = serde_json::from_str(&self.body()).unwrap_or(Value::Null);
        Bytes::from(value.to_string())
    }
}

pub(crate) fn rate_limited(dialect: SimDialect, model: &str, retry_after_s: u64) -> GoogleError {
    match dialect {
        SimDialect::Vertex => GoogleError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Resource exhausted. Please try again later. Please refer to \
             https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
        ),
        _ => {
            let mut error = GoogleError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "You exceeded your current quota, please check your plan and billing \
                     details. For more information on this error, head to: \
                     https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current \
                     usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for \
                     metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, \
                     limit: 10, model: {model}\nPlease retry in {retry_after_s}s."
                ),
            );
            error.details = vec![
                json!({
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10"
                    }]
                }),
                json!({
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Learn more about Gemini API quotas",
                               "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
                }),
                json!({
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{retry_after_s}s")
                }),
            ];
            error
        }
    }
}

/// The error of an `error_rate` fault, by status class.
pub(crate) fn scripted(
    dialect: SimDialect,
    model: &str,
    status: u16,
    retry_after_s: u64,
) -> GoogleError {
    let code = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match code.as_u16() {
        429 => return rate_limited(dialect, model, retry_after_s),
        400 => "Request contains an invalid argument.",
        401 => "Request had invalid authentication credentials.",
        403 => "The caller does not have permission",
        404 => "Requested entity was not found.",
        503 => "The model is overloaded. Please try again later.",
        504 => "Deadline expired before operation could complete.",
        500..=599 => {
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting"
        }
        _ => "Simulated error.",
    };
    GoogleError::new(code, message)
}

/// The in-band error a failing stream ends with.
pub(crate) fn stream_error() -> GoogleError {
    scripted(SimDialect::Gemini, "", 500, 0)
}

pub(crate) fn not_found(path: &str) -> GoogleError {
    GoogleError::new(StatusCode::NOT_FOUND, format!("Method not found: {path}"))
}

/// Missing or wrong credentials, as each API words it.
pub(crate) fn unauthorized(dialect: SimDialect, missing: bool) -> GoogleError {
    const SEE: &str = "Expected OAuth 2 access token, login cookie or other valid authentication \
                       credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    match (dialect, missing) {
        (SimDialect::Vertex, true) => {
            let mut error = GoogleError::new(
                StatusCode::UNAUTHORIZED,
                format!("Request is missing required authentication credential. {SEE}"),
            );
            error.details = vec![json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "CREDENTIALS_MISSING",
                "domain": "googleapis.com",
                "metadata": {"service": "aiplatform.googleapis.com",
                             "method": "google.cloud.aiplatform.v1.PredictionService.GenerateContent"}
            })];
            error
        }
        (SimDialect::Vertex, false) => {
            let mut error = GoogleError::new(
                StatusCode::UNAUTHORIZED,
                format!("Request had invalid authentication credentials. {SEE}"),
            );
            error.details = vec![json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "domain": "googleapis.com",
                "metadata": {"service": "aiplatform.googleapis.com",
                             "method": "google.cloud.aiplatform.v1.PredictionService.GenerateContent"}
            })];
            error
        }
        // The Gemini API: no key is a 403, a wrong key a 400 (not a 401).
        (_, true) => GoogleError::new(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        ),
        (_, false) => {
            let mut error = GoogleError::invalid("API key not valid. Please pass a valid API key.");
            error.details = vec![
                json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}
                }),
                json!({
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": "API key not valid. Please pass a valid API key."
                }),
            ];
            error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_google_shape() {
        let body: Value =
            serde_json::from_str(&rate_limited(SimDialect::Gemini, "m", 7).body()).unwrap();
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body["error"]["details"][2]["retryDelay"], "7s");
        let vertex: Value =
            serde_json::from_str(&rate_limited(SimDialect::Vertex, "m", 7).body()).unwrap();
        assert!(vertex["error"].get("details").is_none());
        assert_eq!(
            scripted(SimDialect::Gemini, "m", 503, 1).code,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_name(StatusCode::SERVICE_UNAVAILABLE), "UNAVAILABLE");
        assert_eq!(
            scripted(SimDialect::Gemini, "m", 42, 1).code,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
