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

/// `reload::Version`'s fields, named as a configuration.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ConfigView {
    #[schemars(extend("const" = "crossbar.config"))]
    object: &'static str,
    #[serde(flatten)]
    version: Version,
}

/// `reload::Reloaded`'s fields, with the reload's result.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ReloadView {
    #[schemars(extend("const" = "crossbar.config.reload"))]
    object: &'static str,
    /// `ok`, or `unchanged` when the file was the same.
    #[schemars(extend("enum" = ["ok", "unchanged"]))]
    result: &'static str,
    #[serde(flatten)]
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
