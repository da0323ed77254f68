//! The AWS Bedrock Converse / ConverseStream dialect.

use axum::Router;

use crate::state::App;

pub(crate) fn router(_app: App) -> Router {
    Router::new()
}
