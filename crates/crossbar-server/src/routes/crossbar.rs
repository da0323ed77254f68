//! `GET /v1/crossbar/deployments`: every deployment's breaker state, live statistics, price
//! and what prompt-cache affinity saved, for operators and for debugging routing decisions.

use axum::Json;
use axum::extract::State;
use crossbar_core::router::DeploymentView;
use serde::Serialize;

use crate::app::AppState;

/// An OpenAI-style list.
#[derive(Serialize)]
pub(crate) struct Deployments {
    object: &'static str,
    data: Vec<DeploymentView>,
}

pub(crate) async fn deployments(State(state): State<AppState>) -> Json<Deployments> {
    Json(Deployments {
        object: "list",
        data: state.router.snapshot(),
    })
}
