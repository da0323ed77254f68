//! The Crossbar HTTP gateway: OpenAI-dialect ingress routes in front of the router. Layers live
//! one per file and are assembled in [`app`]; statuses come from `crossbar_core::Error::status`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod error;
pub mod keys;
pub mod metering;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod serve;
pub mod shared;
pub mod telemetry;
pub mod whatif;

pub use app::{AppState, app};
pub use bootstrap::Gateway;
pub use serve::{ServeLimits, serve};
