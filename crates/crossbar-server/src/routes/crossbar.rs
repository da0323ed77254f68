//! `GET /v1/crossbar/deployments`: every deployment's breaker state, live statistics, price
//! and what prompt-cache affinity saved, for operators and for debugging routing decisions;
//! and the table the app mounts it from with `GET /v1/crossbar/config`.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use crossbar_core::router::DeploymentView;
use schemars::JsonSchema;
use serde::Serialize;

use crate::app::AppState;
use crate::openapi::{Doc, Endpoint};

/// The router's live view and the configuration's version: for gateway keys, and for the
/// dashboard (admin token).
pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        (
            "GET",
            "/v1/crossbar/deployments",
            get(deployments),
            Doc::answers::<Deployments>(
                "Every deployment's breaker state, live statistics, price and headroom.",
            )
            .errors(&[401]),
        ),
        (
            "GET",
            "/v1/crossbar/config",
            get(super::config::version),
            Doc::answers::<super::config::ConfigView>(
                "The active configuration's version: its hash, when it was loaded, reloads.",
            )
            .errors(&[401, 404]),
        ),
    ]
}

/// An OpenAI-style list.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Deployments {
    #[schemars(extend("const" = "list"))]
    object: &'static str,
    data: Vec<DeploymentView>,
}

pub(crate) async fn deployments(State(state): State<AppState>) -> Json<Deployments> {
    Json(Deployments {
        object: "list",
        data: state.router.snapshot(),
    })
}
