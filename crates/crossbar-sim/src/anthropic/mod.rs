//! The Anthropic Messages dialect, also served by Vertex AI for Vertex-hosted Claude.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::App;

pub(crate) fn router(_app: App) -> Router {
    Router::new()
}

/// Vertex AI's `publishers/anthropic/models/{model}:rawPredict` (`stream = false`) and
/// `:streamRawPredict` (`stream = true`): the Messages body without `model`, with
/// `anthropic_version: "vertex-2023-10-16"`. The Vertex router authenticates, then calls this.
pub(crate) async fn vertex_raw_predict(
    _app: App,
    _model: String,
    _stream: bool,
    _body: Bytes,
) -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        "Vertex-hosted Claude is not simulated yet",
    )
        .into_response()
}
