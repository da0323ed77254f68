//! Crossbar's persistence: one usage record per gateway request and the virtual keys, behind
//! the [`Store`] trait, in SQLite (the embedded default) or PostgreSQL (shared by replicas).
//!
//! Requests never wait on the store: records go through a bounded queue ([`UsageWriter`]) and
//! are written in batches; retention ([`spawn_retention`]) deletes old records (usage, stored
//! responses) in small batches in the background so tables do not grow without bound. All SQL is parameterized.
//!
//! Views of what is stored, shared by the gateway and the `crossbar` command: [`key_json`] (a
//! key as people see it) and [`whatif`] (recorded traffic re-priced on other deployments).

mod audit;
mod dashboard;
mod journal;
mod key_view;
mod model;
mod org;
mod payloads;
mod responses;
mod runs;
mod sql;
mod vectors;
pub mod whatif;
mod writer;

use futures::future::BoxFuture;

pub use audit::{AuditEntry, AuditQuery, AuditStore, audit_team};
pub use dashboard::{DashboardStore, KeySpend, RequestFilter, StatusFilter, UsagePoint};
pub use journal::{EventRecord, JournalStore, MemoryRecord, RunRecord, RunTotals, new_run_id};
pub use key_view::{KeyView, key_json};
pub use model::{AttemptRecord, KeyLimits, KeyRecord, UsageRecord, UsageTags};
pub use org::{AdminTokenRecord, OrgStore, TeamRecord};
pub use payloads::{PayloadRecord, PayloadStore};
pub use responses::{MemoryResponses, ResponseStore, StoredResponse, stored_response};
pub use runs::{
    Claim, Heartbeat, QueueFigures, QueueState, QueuedRun, RunFilter, RunQueue, is_terminal,
};
pub use sql::{DEFAULT_URL, SqlStore};
pub use vectors::{VectorHit, VectorStore};
pub use writer::{RetentionJob, UsageWriter, WriterSettings, spawn_retention};

/// A store failure: the driver's message, never a query's parameters.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store: {0}")]
    Invalid(String),
    /// A worker's write for a run another worker has since claimed.
    #[error("store: run `{0}` is held by another worker (lease lost)")]
    Fenced(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where usage records and keys live. Object-safe so the gateway holds an `Arc<dyn Store>`.
pub trait Store: Send + Sync {
    /// Which engine: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Writes records in one transaction.
    fn insert_usage<'a>(&'a self, records: &'a [UsageRecord]) -> BoxFuture<'a, Result<()>>;

    /// Records at or after `since_ms`, oldest first, at most `limit`.
    fn usage_since(&self, since_ms: i64, limit: u32) -> BoxFuture<'_, Result<Vec<UsageRecord>>>;

    /// What a key has spent since `since_ms`, in picodollars.
    fn key_spend_since<'a>(&'a self, key_id: &'a str, since_ms: i64) -> BoxFuture<'a, Result<u64>>;

    /// Deletes at most `limit` records older than `before_ms`; returns how many went.
    fn delete_usage_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>>;

    fn create_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<()>>;

    /// Every key, revoked ones included, oldest first.
    fn list_keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>>>;

    /// The key whose secret hashes to `hash`, revoked or not.
    fn key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>>>;

    /// Marks a key revoked (by id or name); false when no live key matched.
    fn revoke_key<'a>(&'a self, id_or_name: &'a str, at_ms: i64) -> BoxFuture<'a, Result<bool>>;

    /// Whether any key was ever created, revoked or not: the gateway is closed to anonymous
    /// callers from the first key on, so revoking the last key never opens it.
    fn has_keys(&self) -> BoxFuture<'_, Result<bool>>;

    /// Teams and admin tokens, where the engine keeps them (the SQL store does).
    fn org(&self) -> Option<&dyn OrgStore> {
        None
    }
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
