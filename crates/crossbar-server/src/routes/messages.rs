//! `POST /v1/messages/count_tokens` (`POST /v1/messages` itself is the generic chat handler,
//! [`super::chat_like`], over the Anthropic Messages ingress).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::dialects::anthropic;
use crossbar_core::router::Prompt;

use super::{body, decode, preferences};
use crate::app::AppState;
use crate::error::ApiError;

/// The prompt tokens the router estimates for the request, exactly what a budget reserves for
/// it (the largest estimate among the deployments it may use): counted locally, since upstreams
/// other than Anthropic have no count endpoint, and consistent with what the key is charged
/// against before the call.
pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes).map_err(ApiError::anthropic)?;
    let request = decode(raw, anthropic::decode_count_tokens)
        .await
        .map_err(ApiError::anthropic)?;
    let preferences = preferences(&headers).map_err(ApiError::anthropic)?;
    let tokens = state
        .router
        .prompt_tokens(&request.model, &preferences, &Prompt::of_chat(&request))
        .map_err(ApiError::anthropic)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        anthropic::encode_count(tokens),
    )
        .into_response())
}
