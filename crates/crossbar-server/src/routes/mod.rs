//! Ingress routes, one file per API.

pub mod chat;
pub mod embeddings;
pub mod messages;
pub mod models;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_core::router::Deployment;
use serde_json::json;

use crate::error::{ApiError, Ingress};

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError {
        error: Error::not_found(format!("Unknown request URL: {method} {}.", uri.path()))
            .with_code("unknown_url"),
        ingress: Ingress::of_path(uri.path()),
    }
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = Error::invalid_request(format!(
        "Method {method} is not allowed for {}.",
        uri.path()
    ));
    let mut response = ApiError {
        error,
        ingress: Ingress::of_path(uri.path()),
    }
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The request body, with an oversized one turned into our 413 rather than axum's plain text.
pub(crate) fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Error> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::payload_too_large(limit)
        } else {
            Error::invalid_request(format!("Could not read the request body: {rejection}"))
        }
    })
}

/// Tells the client which deployment answered (useful when debugging failover).
pub(crate) fn deployment_headers(response: &mut Response, deployment: &Deployment) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&deployment.provider.name) {
        headers.insert("x-crossbar-provider", value);
    }
    if let Ok(value) = HeaderValue::from_str(&deployment.id()) {
        headers.insert("x-crossbar-deployment", value);
    }
}
