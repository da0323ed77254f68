//! Writing the audit log: each administrative change is appended before its answer goes out.
//! An entry that cannot be written is logged at ERROR and counted
//! (`crossbar_audit_errors_total`), never dropped silently; the change itself stands.

use crossbar_store::{AuditEntry, audit_team, now_ms};
use serde_json::Value;

use crate::state::AppState;

/// Who made a change and from where.
#[derive(Clone, Debug)]
pub(crate) struct Who {
    pub actor: &'static str,
    pub source: String,
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
    record_as(
        state,
        who.actor.to_owned(),
        who.source,
        action,
        target,
        before,
        after,
    )
    .await;
}

/// [`record`] for an actor named at run time (a scoped admin token: `token:<id>`).
pub(crate) async fn record_as(
    state: &AppState,
    actor: String,
    source: String,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    let Some(audit) = &state.audit else {
        return;
    };
    let team_id = audit_team(action, target, after.as_ref().or(before.as_ref()));
    let entry = AuditEntry {
        id: 0,
        at_ms: now_ms(),
        actor,
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
        source,
        team_id,
    };
    if let Err(error) = audit.append_audit(&entry).await {
        metrics::counter!("crossbar_audit_errors_total").increment(1);
        tracing::error!(%error, action, target, "audit entry not written");
    }
}
