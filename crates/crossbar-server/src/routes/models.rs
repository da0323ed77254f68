//! `GET /v1/models` and `GET /v1/models/{id}`: the logical models, in OpenAI's list shape.

use axum::Json;
use axum::extract::{Path, State};
use crossbar_core::Error;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;

fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "crossbar"})
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state.router.model_names().map(model).collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.router.model_names().any(|m| m == id) {
        Ok(Json(model(&id)))
    } else {
        Err(Error::model_not_found(&id).into())
    }
}
