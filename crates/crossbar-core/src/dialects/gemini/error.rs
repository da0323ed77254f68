//! Google's error body, `{"error": {"code", "message", "status", "details": [...]}}` (sometimes
//! wrapped in a one-element array). There are no rate-limit headers: how long to wait is in a
//! `google.rpc.RetryInfo` detail, and whether waiting helps at all in `google.rpc.QuotaFailure`.

use std::time::Duration;

use serde_json::Value;

use super::wire::Status;
use crate::error::Error;

fn unwrap_array(value: Value) -> Value {
    match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    }
}

fn status_of(value: &Value) -> Option<Status> {
    serde_json::from_value(value.get("error")?.clone()).ok()
}

/// Decodes an HTTP error answer.
pub(super) fn decode_error(status: u16, body: &[u8]) -> Error {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .map(unwrap_array)
        .as_ref()
        .and_then(status_of);
    let Some(detail) = detail else {
        return Error::from_upstream_status(
            status,
            format!("The upstream returned HTTP {status}."),
        );
    };
    let message = if detail.message.is_empty() {
        format!("The upstream returned HTTP {status}.")
    } else {
        detail.message.clone()
    };
    let mut per_day = false;
    let mut key_invalid = false;
    let mut retry_after = None;
    for item in &detail.details {
        let kind = item
            .get("@type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.ends_with("google.rpc.RetryInfo") {
            retry_after = item
                .get("retryDelay")
                .and_then(Value::as_str)
                .and_then(parse_duration);
        } else if kind.ends_with("google.rpc.QuotaFailure") {
            per_day |= item
                .get("violations")
                .and_then(Value::as_array)
                .is_some_and(|violations| {
                    violations.iter().any(|v| {
                        v.get("quotaId")
                            .and_then(Value::as_str)
                            .is_some_and(|id| id.contains("PerDay"))
                    })
                });
        } else if kind.ends_with("google.rpc.ErrorInfo") {
            key_invalid |= item.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID");
        }
    }
    // The Gemini API answers a wrong key with 400 INVALID_ARGUMENT: still our credentials, not
    // the client's request, so it must not reach the client as a 400.
    let mut error = if key_invalid {
        let mut error = Error::from_upstream_status(401, message);
        error.upstream_status = Some(status);
        error
    } else {
        Error::from_upstream_status(status, message)
    };
    if status == 429 && per_day {
        // A daily quota: retrying in a loop cannot help.
        error = error.quota_exceeded();
    }
    error.code = detail.status;
    error.with_retry_after(retry_after)
}

/// `google.protobuf.Duration` in JSON: decimal seconds with an `s` suffix ("37s", "0.5s").
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// An error object met in a data line of a 200 stream.
pub(super) fn decode_stream_error(value: &Value) -> Error {
    let detail = status_of(value).unwrap_or_default();
    let message = if detail.message.is_empty() {
        "The upstream reported an error mid-stream.".to_owned()
    } else {
        detail.message
    };
    let mut error = Error::stream_interrupted(message);
    error.code = detail.status;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("37"), None);
    }
}
