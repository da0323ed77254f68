//! `GET /v1/models` and `GET /v1/models/{id}`: the logical models, then the exact aliases, in
//! OpenAI's list shape, or Anthropic's when the request carries `anthropic-version` (Anthropic
//! SDKs and Claude Code list models that way). A virtual key sees only what it may use.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use crossbar_core::Error;
use crossbar_core::router::Router;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::CallerScope;
use crate::error::ApiError;

/// Models carry no dates; Anthropic's shape wants one.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Which list shape the caller reads.
#[derive(Clone, Copy)]
enum Shape {
    OpenAi,
    Anthropic,
}

impl Shape {
    fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key("anthropic-version") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    fn model(self, id: &str) -> Value {
        match self {
            Self::OpenAi => {
                json!({"id": id, "object": "model", "created": 0, "owned_by": "crossbar"})
            }
            Self::Anthropic => {
                json!({"type": "model", "id": id, "display_name": id, "created_at": EPOCH})
            }
        }
    }

    fn error(self, error: Error) -> ApiError {
        match self {
            Self::OpenAi => error.into(),
            Self::Anthropic => ApiError::anthropic(error),
        }
    }
}

/// Whether the caller's key (if any) may use what `id` leads to.
fn visible(router: &Router, key: Option<&CallerScope>, id: &str) -> bool {
    match (router.resolve_model(id), key) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(logical), Some(CallerScope(key))) => key.check_model(logical).is_ok(),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    key: Option<Extension<CallerScope>>,
    headers: HeaderMap,
) -> Json<Value> {
    let router = &state.router;
    let key = key.as_deref();
    let shape = Shape::of(&headers);
    let ids: Vec<&str> = router
        .model_names()
        .chain(router.aliases().map(|(alias, _)| alias))
        .filter(|id| visible(router, key, id))
        .collect();
    let data: Vec<Value> = ids.iter().map(|id| shape.model(id)).collect();
    Json(match shape {
        Shape::OpenAi => json!({"object": "list", "data": data}),
        Shape::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }),
    })
}

/// Any id a request could use, alias or pattern, answered with the id asked for.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    key: Option<Extension<CallerScope>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let router = &state.router;
    let key = key.as_deref();
    let shape = Shape::of(&headers);
    if visible(router, key, &id) {
        return Ok(Json(shape.model(&id)));
    }
    let usable = router
        .model_names()
        .chain(router.route_names())
        .chain(router.aliases().map(|(alias, _)| alias))
        .filter(|name| visible(router, key, name));
    Err(shape.error(Error::model_not_found_near(&id, usable)))
}
