//! Writing the audit log: each administrative change is appended before its answer goes out.
//! An entry that cannot be written is logged at ERROR and counted
//! (`crossbar_audit_errors_total`), never dropped silently; the change itself stands.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::ConnectInfo;
use crossbar_store::{AuditEntry, now_ms};
use serde_json::Value;

use crate::state::AppState;

/// Who made a change and from where.
#[derive(Clone, Debug)]
pub(crate) struct Who {
    pub actor: &'static str,
    pub source: String,
}

impl Who {
    /// The admin token's holder, at the connection's address.
    pub fn admin(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Self {
        Self {
            actor: "admin",
            source: peer.map_or_else(
                || "unknown".to_owned(),
                |Extension(ConnectInfo(addr))| addr.ip().to_string(),
            ),
        }
    }
}

/// Appends one entry; `before`/`after` must already be free of secrets (key views, hashes).
pub(crate) async fn record(
    state: &AppState,
    who: Who,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    let Some(audit) = &state.audit else {
        return;
    };
    let entry = AuditEntry {
        id: 0,
        at_ms: now_ms(),
        actor: who.actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
        source: who.source,
    };
    if let Err(error) = audit.append_audit(&entry).await {
        metrics::counter!("crossbar_audit_errors_total").increment(1);
        tracing::error!(%error, action, target, "audit entry not written");
    }
}
