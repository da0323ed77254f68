//! Stored Responses API answers (`store: true`, `previous_response_id`): each one keeps the
//! `Response` object a client can fetch again and the conversation it ended, so the next request
//! can continue it without resending it. Rows belong to the key that created them; every read
//! and delete is scoped to that key, so one key never sees another's responses.
//!
//! [`SqlStore`] keeps them in the database (shared by replicas); [`MemoryResponses`] in the
//! process, bounded, for gateways run without a store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use futures::future::BoxFuture;
use sqlx::Row;

use crate::sql::SqlStore;
use crate::{Result, now_ms};

pub(crate) const RESPONSE_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_responses \
     (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms BIGINT NOT NULL, \
     response TEXT NOT NULL, conversation TEXT NOT NULL)";
pub(crate) const RESPONSE_TIME_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_responses_time ON crossbar_responses (created_ms)";

/// Added by migration 4: the request's own input items, for `GET /v1/responses/{id}/input_items`.
/// Rows stored before it list no items.
pub(crate) const RESPONSE_INPUT_COLUMN: &str =
    "ALTER TABLE crossbar_responses ADD COLUMN input TEXT NOT NULL DEFAULT '[]'";

/// One stored response. `owner` is the virtual key id, or empty for callers without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub id: String,
    pub owner: String,
    pub created_ms: i64,
    /// The `Response` object, as JSON text.
    pub response: String,
    /// The conversation up to and including this answer, as JSON text of canonical messages.
    pub conversation: String,
    /// The request's own input items (not earlier responses'), with ids, as a JSON array.
    pub input: String,
}

/// Where stored responses live. Object-safe so the gateway holds an `Arc<dyn ResponseStore>`.
pub trait ResponseStore: Send + Sync {
    fn put_response<'a>(&'a self, response: &'a StoredResponse) -> BoxFuture<'a, Result<()>>;

    /// The response `id` if `owner` created it.
    fn get_response<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredResponse>>>;

    /// Deletes the response `id` if `owner` created it; false when there was none.
    fn delete_response<'a>(&'a self, id: &'a str, owner: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Deletes at most `limit` responses created before `before_ms`, whoever owns them;
    /// returns how many went. What retention calls, a small batch at a time.
    fn delete_responses_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>>;
}

impl ResponseStore for SqlStore {
    fn put_response<'a>(&'a self, response: &'a StoredResponse) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_responses (id, owner, created_ms, response, conversation, \
                 input) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&response.id)
            .bind(&response.owner)
            .bind(response.created_ms)
            .bind(&response.response)
            .bind(&response.conversation)
            .bind(&response.input)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn get_response<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredResponse>>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT id, owner, created_ms, response, conversation, input \
                 FROM crossbar_responses WHERE id = $1 AND owner = $2",
            )
            .bind(id)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(StoredResponse {
                    id: row.try_get("id")?,
                    owner: row.try_get("owner")?,
                    created_ms: row.try_get("created_ms")?,
                    response: row.try_get("response")?,
                    conversation: row.try_get("conversation")?,
                    input: row.try_get("input")?,
                })
            })
            .transpose()
        })
    }

    fn delete_response<'a>(&'a self, id: &'a str, owner: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM crossbar_responses WHERE id = $1 AND owner = $2")
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_responses_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.delete_older("crossbar_responses", "created_ms", before_ms, limit))
    }
}

/// Responses kept in this process only: the newest survive, within `capacity` responses and
/// `max_bytes` of text, and a restart loses them. What a gateway without a store uses, so
/// `store: true` (the API's default) still works.
#[derive(Debug)]
pub struct MemoryResponses {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    map: HashMap<String, StoredResponse>,
    order: VecDeque<String>,
    bytes: usize,
}

fn size(response: &StoredResponse) -> usize {
    response.response.len() + response.conversation.len() + response.input.len()
}

impl Memory {
    fn remove(&mut self, id: &str) {
        if let Some(old) = self.map.remove(id) {
            self.bytes -= size(&old);
            self.order.retain(|k| k != id);
        }
    }
}

impl MemoryResponses {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            inner: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResponseStore for MemoryResponses {
    fn put_response<'a>(&'a self, response: &'a StoredResponse) -> BoxFuture<'a, Result<()>> {
        self.with(|memory| {
            memory.remove(&response.id);
            memory.bytes += size(response);
            memory.map.insert(response.id.clone(), response.clone());
            memory.order.push_back(response.id.clone());
            while memory.order.len() > self.capacity || memory.bytes > self.max_bytes {
                let Some(oldest) = memory.order.front().cloned() else {
                    break;
                };
                memory.remove(&oldest);
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn get_response<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredResponse>>> {
        let found = self.with(|memory| memory.map.get(id).filter(|r| r.owner == owner).cloned());
        Box::pin(async { Ok(found) })
    }

    fn delete_response<'a>(&'a self, id: &'a str, owner: &'a str) -> BoxFuture<'a, Result<bool>> {
        let deleted = self.with(|memory| {
            let owned = memory.map.get(id).is_some_and(|r| r.owner == owner);
            if owned {
                memory.remove(id);
            }
            owned
        });
        Box::pin(async move { Ok(deleted) })
    }

    fn delete_responses_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>> {
        let deleted = self.with(|memory| {
            let old: Vec<String> = memory
                .order
                .iter()
                .filter(|id| {
                    memory
                        .map
                        .get(*id)
                        .is_some_and(|r| r.created_ms < before_ms)
                })
                .take(limit as usize)
                .cloned()
                .collect();
            for id in &old {
                memory.remove(id);
            }
            old.len() as u64
        });
        Box::pin(async move { Ok(deleted) })
    }
}

/// A record for `id` created now.
pub fn stored_response(
    id: &str,
    owner: &str,
    response: String,
    conversation: String,
    input: String,
) -> StoredResponse {
    StoredResponse {
        id: id.to_owned(),
        owner: owner.to_owned(),
        created_ms: now_ms(),
        response,
        conversation,
        input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite file (an in-memory database would be one per pooled connection).
    fn temp_sqlite() -> String {
        let name = format!("crossbar_responses_{}_{}.db", std::process::id(), now_ms());
        std::env::temp_dir()
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    async fn exercise(store: &dyn ResponseStore) {
        let a = stored_response(
            "resp_1",
            "key_a",
            "{\"id\":1}".into(),
            "[]".into(),
            "[{\"id\":\"msg_1\"}]".into(),
        );
        store.put_response(&a).await.unwrap();
        let got = store
            .get_response("resp_1", "key_a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.response, "{\"id\":1}");
        assert_eq!(got.conversation, "[]");
        assert_eq!(got.input, "[{\"id\":\"msg_1\"}]");
        assert!(
            store
                .get_response("resp_1", "key_b")
                .await
                .unwrap()
                .is_none(),
            "another key sees nothing"
        );
        assert!(!store.delete_response("resp_1", "key_b").await.unwrap());
        assert!(store.delete_response("resp_1", "key_a").await.unwrap());
        assert!(
            store
                .get_response("resp_1", "key_a")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_response("resp_1", "key_a").await.unwrap());
        expire(store).await;
    }

    /// Retention deletes responses older than the cutoff, whoever owns them, at most `limit`
    /// per call, and leaves the newer ones.
    async fn expire(store: &dyn ResponseStore) {
        let now = now_ms();
        for (id, owner, created_ms) in [
            ("old_1", "key_a", 1_000),
            ("old_2", "key_b", 2_000),
            ("old_3", "", 3_000),
            ("new_1", "key_a", now),
        ] {
            let mut r = stored_response(id, owner, "{}".into(), "[]".into(), "[]".into());
            r.created_ms = created_ms;
            store.put_response(&r).await.unwrap();
        }
        let cutoff = now - 60_000;
        assert_eq!(store.delete_responses_before(cutoff, 2).await.unwrap(), 2);
        assert_eq!(store.delete_responses_before(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.delete_responses_before(cutoff, 2).await.unwrap(), 0);
        for (id, owner) in [("old_1", "key_a"), ("old_2", "key_b"), ("old_3", "")] {
            assert!(
                store.get_response(id, owner).await.unwrap().is_none(),
                "{id}"
            );
        }
        assert!(
            store
                .get_response("new_1", "key_a")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn memory_store_scopes_by_owner_and_stays_bounded() {
        exercise(&MemoryResponses::new(10, 10_000)).await;
        let memory = MemoryResponses::new(2, 1000);
        for i in 0..3 {
            let r = stored_response(&format!("r{i}"), "", "{}".into(), "[]".into(), "".into());
            memory.put_response(&r).await.unwrap();
        }
        assert!(memory.get_response("r0", "").await.unwrap().is_none());
        assert!(memory.get_response("r2", "").await.unwrap().is_some());
        // Bounded in bytes too: a big one pushes the older ones out.
        let big = stored_response("big", "", "x".repeat(995), "[]".into(), "".into());
        memory.put_response(&big).await.unwrap();
        assert!(memory.get_response("r2", "").await.unwrap().is_none());
        assert!(memory.get_response("big", "").await.unwrap().is_some());
        memory.with(|m| assert_eq!(m.bytes, 997));
    }

    #[tokio::test]
    async fn sql_store_scopes_by_owner() {
        exercise(&SqlStore::open(&temp_sqlite()).await.unwrap()).await;
        // And on PostgreSQL, in a fresh database, when a server is configured.
        let Ok(admin_url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
            return;
        };
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let name = format!("crossbar_responses_{}_{}", std::process::id(), now_ms());
        let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        exercise(&SqlStore::open(&format!("{base}/{name}")).await.unwrap()).await;
    }
}
