//! What every route and layer shares: the router, the keys, the stores, the meter's sinks.

use std::sync::Arc;

use crossbar_core::router::Router;
use crossbar_store::{AuditStore, DashboardStore, ResponseStore};

use crate::keys::VirtualKeys;
use crate::metering::Metering;
use crate::shared::Shared;

#[derive(Clone)]
pub struct AppState {
    pub router: Arc<Router>,
    /// Gateway keys; empty means open.
    pub keys: Arc<Vec<String>>,
    pub max_body_bytes: usize,
    /// Where usage records go.
    pub metering: Arc<Metering>,
    /// Keys from the store; `None` without a store.
    pub virtual_keys: Option<Arc<VirtualKeys>>,
    /// Guards `/admin/...`; `None` disables it.
    pub admin_token: Option<Arc<str>>,
    /// Stored Responses API answers: the store's table, or process memory without a store.
    pub responses: Arc<dyn ResponseStore>,
    /// The dashboard's reads (the same store as `virtual_keys`); `None` without a store.
    pub dashboard: Option<Arc<dyn DashboardStore>>,
    /// Where administrative changes are recorded (the same store); `None` without a store.
    pub audit: Option<Arc<dyn AuditStore>>,
    /// State shared with the other replicas; `None` without `[redis]`.
    pub shared: Option<Arc<Shared>>,
    /// `[teams.NAME]` and `[keys.NAME]`: callers' guardrails and payload logs over their
    /// routes'.
    pub callers: Arc<crate::callers::Callers>,
    /// The runs API (`/v1/crossbar/runs`): the store's queue, and the agent specs when
    /// `[agents]` is configured; `None` without a store.
    pub runs: Option<crate::routes::runs::Runs>,
    /// Hot reload and the active configuration's version; `None` when the gateway was built
    /// without it (tests, `crossbar agent`).
    pub reload: Option<crate::reload::Handle>,
    /// The routes' response caches (rebuilt with the router on reload).
    pub caches: Arc<crate::routes::cache::Caches>,
    /// Where routes with `payload_log = true` keep request and answer bodies; `None` without
    /// a store.
    pub payloads: Option<Arc<dyn crossbar_store::PayloadStore>>,
}
