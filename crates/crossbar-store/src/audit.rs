//! The audit log: every administrative change (keys, configuration reloads, and later teams,
//! budgets and roles) with who made it, what it was (the object before and after, never a
//! secret), when and from where. Append-only: the store offers no update and no delete but
//! retention's, which removes whole entries by age with its own setting.

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::Result;
use crate::sql::SqlStore;

pub(crate) const AUDIT_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS crossbar_audit \
     (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, \
     action TEXT NOT NULL, target TEXT NOT NULL, before_json TEXT, after_json TEXT, \
     source TEXT NOT NULL)";
pub(crate) const AUDIT_TABLE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS crossbar_audit \
     (id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, \
     action TEXT NOT NULL, target TEXT NOT NULL, before_json TEXT, after_json TEXT, \
     source TEXT NOT NULL)";
pub(crate) const AUDIT_TIME_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_audit_time ON crossbar_audit (at_ms)";

/// One administrative change.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Assigned by the store; 0 on an entry not yet written.
    pub id: i64,
    pub at_ms: i64,
    /// Who: `admin` (the admin token), `cli` (a command on the store's host), `config-watch`
    /// (the file watcher) or, with scoped tokens, the token's name.
    pub actor: String,
    /// What, as `<object>.<verb>`: `key.create`, `key.revoke`, `config.reload`.
    pub action: String,
    /// Which object: a key id, a config file path.
    pub target: String,
    /// The object before the change (`None` for a creation), without secrets.
    pub before: Option<Value>,
    /// The object after the change (`None` for a deletion), without secrets.
    pub after: Option<Value>,
    /// From where: the client's address, `signal`, `file` or `cli@<host>`.
    pub source: String,
    /// The team the changed object belongs to (a team, a team's key, a team admin's token),
    /// so a team's admin can list what happened to its own (migration 8).
    pub team_id: Option<String>,
}

/// The team an entry is about: a team's own id (`team.*`), else the changed object's `team`
/// field (a key's, a token's), as the views show them.
pub fn audit_team(action: &str, target: &str, object: Option<&Value>) -> Option<String> {
    if action.starts_with("team.") {
        return Some(target.to_owned());
    }
    object
        .and_then(|o| o.get("team"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Which entries to list: newest first, optionally narrowed.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only entries about this team's objects.
    pub team: Option<String>,
    /// Only entries older than this id (paging backwards).
    pub before_id: Option<i64>,
    pub limit: u32,
}

impl AuditQuery {
    /// The newest `limit` entries, unfiltered.
    pub fn newest(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }
}

/// Where the audit log lives. Object-safe so the gateway holds an `Arc<dyn AuditStore>`.
pub trait AuditStore: Send + Sync {
    /// Appends `entry` (its `id` is ignored) and returns the id it got.
    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<i64>>;

    /// Entries matching `query`, newest first.
    fn list_audit<'a>(&'a self, query: &'a AuditQuery) -> BoxFuture<'a, Result<Vec<AuditEntry>>>;

    /// Retention: deletes at most `limit` entries older than `before_ms`; returns how many went.
    fn delete_audit_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>>;
}

fn json_text(value: Option<&Value>) -> Option<String> {
    value.map(Value::to_string)
}

fn json_value(text: Option<String>) -> Result<Option<Value>> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| crate::StoreError::Invalid(format!("audit entry JSON: {e}")))
}

impl AuditStore for SqlStore {
    fn append_audit<'a>(&'a self, entry: &'a AuditEntry) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO crossbar_audit (at_ms, actor, action, target, before_json, \
                 after_json, source, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING id",
            )
            .bind(entry.at_ms)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(json_text(entry.before.as_ref()))
            .bind(json_text(entry.after.as_ref()))
            .bind(&entry.source)
            .bind(entry.team_id.as_deref())
            .fetch_one(&self.pool)
            .await?;
            Ok(id)
        })
    }

    fn list_audit<'a>(&'a self, query: &'a AuditQuery) -> BoxFuture<'a, Result<Vec<AuditEntry>>> {
        Box::pin(async move {
            // Unset filters bind values that match everything, so one statement serves all.
            let rows = sqlx::query(
                "SELECT id, at_ms, actor, action, target, before_json, after_json, source, \
                 team_id FROM crossbar_audit WHERE ($1 = '' OR action = $1) \
                 AND ($2 = '' OR target = $2) AND ($5 = '' OR team_id = $5) \
                 AND id < $3 ORDER BY id DESC LIMIT $4",
            )
            .bind(query.action.clone().unwrap_or_default())
            .bind(query.target.clone().unwrap_or_default())
            .bind(query.before_id.unwrap_or(i64::MAX))
            .bind(i64::from(query.limit))
            .bind(query.team.clone().unwrap_or_default())
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|row| {
                    Ok(AuditEntry {
                        id: row.try_get("id")?,
                        at_ms: row.try_get("at_ms")?,
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        before: json_value(row.try_get("before_json")?)?,
                        after: json_value(row.try_get("after_json")?)?,
                        source: row.try_get("source")?,
                        team_id: row.try_get("team_id")?,
                    })
                })
                .collect()
        })
    }

    fn delete_audit_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.delete_older("crossbar_audit", "at_ms", before_ms, limit))
    }
}
