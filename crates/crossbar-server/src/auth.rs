//! Gateway keys: when any are configured, every API route needs `Authorization: Bearer <key>`
//! (or Anthropic-style `x-api-key`, Azure-style `api-key`). Health checks stay open.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;

use crate::app::AppState;
use crate::error::{ApiError, Ingress};

pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.keys.is_empty() || request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let ingress = Ingress::of_path(request.uri().path());
    let reject = |error: Error| ApiError { error, ingress }.into_response();
    match presented {
        None | Some("") => reject(Error::authentication(
            "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'.",
        )),
        Some(key)
            if state
                .keys
                .iter()
                .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes())) =>
        {
            next.run(request).await
        }
        // Never echo the presented key: it may be a real key sent to the wrong place.
        Some(_) => reject(Error::authentication("Incorrect API key provided.")),
    }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"sk-abc", b"sk-abc"));
        assert!(!constant_time_eq(b"sk-abc", b"sk-abd"));
        assert!(!constant_time_eq(b"sk-abc", b"sk-ab"));
    }
}
