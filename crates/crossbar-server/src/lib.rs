//! The Crossbar HTTP gateway: ingress routes in front of the router. Layers live one per file
//! and are attached to the groups of routes they guard in [`app()`]; statuses come from
//! `crossbar_core::Error::status`.
//!
//! The public surface is what the `crossbar` command and the test kit use: build a
//! [`Gateway`] from a configuration, serve its [`app()`], flush it at exit.

mod admin;
mod app;
mod audit;
mod auth;
mod bootstrap;
mod callers;
mod error;
mod keys;
mod metering;
mod metrics;
mod openapi;
mod reload;
mod request_id;
mod routes;
mod serve;
mod shadow;
mod shared;
mod state;
mod telemetry;

pub use app::app;
/// Each admin and dashboard endpoint with the roles that may use it.
pub use auth::access_table;
pub use bootstrap::Gateway;
/// Minting a virtual key (`crossbar keys create`, as `POST /admin/keys`).
pub use keys::{NewKey, create as create_key};
/// Teams and scoped admin tokens (`crossbar teams`, `crossbar admin-tokens`, as `/admin/teams`
/// and `/admin/tokens`).
pub use keys::{teams, tokens};
/// The OpenAPI document of Crossbar's own API (`/openapi.json`, `crossbar openapi`).
pub use openapi::document as openapi_document;
/// Hot reload of the configuration while serving (`crossbar serve`).
pub use reload::{Handle as ReloadHandle, Reloadable, Reloaded, Trigger, Version};
pub use routes::runs::{RunStore, Runs};
pub use serve::{ServeLimits, serve};
pub use state::AppState;
/// The OpenTelemetry exporter the gateway sends request spans to; `crossbar agent` sends its
/// runs' spans through it too.
pub use telemetry::Telemetry;
