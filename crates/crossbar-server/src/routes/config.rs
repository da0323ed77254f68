//! `GET /v1/crossbar/config`: the active configuration's version (the file's sha256, when it
//! was loaded, how many reloads and refusals so far, what needs a restart); and
//! `POST /admin/reload`: reloads the file now and answers what changed, or why nothing did.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use crossbar_core::Error;
use schemars::JsonSchema;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::reload::{Reloaded, Trigger, Version};

/// The version's fields are `reload::Version`'s, which has no schema yet: described as open.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ConfigView {
    #[schemars(extend("const" = "crossbar.config"))]
    object: &'static str,
    #[serde(flatten)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    version: Version,
}

/// As [`ConfigView`], `reload::Reloaded`'s fields are described as open.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ReloadView {
    #[schemars(extend("const" = "crossbar.config.reload"))]
    object: &'static str,
    /// `ok`, or `unchanged` when the file was the same.
    #[schemars(extend("enum" = ["ok", "unchanged"]))]
    result: &'static str,
    #[serde(flatten)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    reloaded: Reloaded,
}

fn handle(state: &AppState) -> Result<&crate::reload::Handle, ApiError> {
    state.reload.as_ref().ok_or_else(|| {
        ApiError::from(
            Error::not_found("This gateway was built without configuration reloading.")
                .with_code("reload_disabled"),
        )
    })
}

pub(crate) async fn version(State(state): State<AppState>) -> Result<Json<ConfigView>, ApiError> {
    Ok(Json(ConfigView {
        object: "crossbar.config",
        version: handle(&state)?.version(),
    }))
}

/// Behind the admin token, as the rest of `/admin/`: absent without one.
pub(crate) async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReloadView>, ApiError> {
    if state.admin_token.is_none() {
        return Err(ApiError::from(
            Error::not_found("The admin API is disabled: set `admin.token`.")
                .with_code("admin_disabled"),
        ));
    }
    if !crate::auth::admin_presented(&state, &headers) {
        return Err(ApiError::from(Error::authentication(
            "Incorrect or missing admin token.",
        )));
    }
    let reloaded = handle(&state)?.reload(Trigger::Admin).await?;
    Ok(Json(ReloadView {
        object: "crossbar.config.reload",
        result: if reloaded.changed { "ok" } else { "unchanged" },
        reloaded,
    }))
}
