//! `POST /v1/embeddings`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::dialects::openai;

use super::{body, deployment_headers};
use crate::app::AppState;
use crate::error::ApiError;

pub async fn create(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes)?;
    let ingress = openai::decode_embedding_request(&raw)?;
    let routed = state.router.embed(&ingress.request).await?;
    let expected = ingress.request.input.len();
    if routed.value.vectors.len() != expected {
        return Err(ApiError::from(crossbar_core::Error::bad_upstream(format!(
            "Provider `{}` returned {} vectors for {expected} inputs.",
            routed.deployment.provider.name,
            routed.value.vectors.len()
        ))));
    }
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openai::encode_embedding_response(&routed.value, ingress.base64)?,
    )
        .into_response();
    deployment_headers(&mut response, &routed.deployment);
    Ok(response)
}
