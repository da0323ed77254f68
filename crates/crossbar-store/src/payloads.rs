//! Payload logs: request and answer bodies kept with their usage record when a route, team or
//! key opts in (issue 21). The table comes with migration 10. What is written here has been
//! through the route's guardrails and the gateway's own secret masking (the server's job):
//! never provider keys, never headers. Rows are keyed by the request id, like the usage record
//! they belong to, and deleted by their own retention.

use futures::future::BoxFuture;
use sqlx::Row;

use crate::Result;
use crate::sql::SqlStore;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_payloads \
     (id TEXT PRIMARY KEY, time_ms BIGINT NOT NULL, key_id TEXT, route TEXT, \
     request TEXT NOT NULL, answer TEXT)";
const TIME_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_payloads_time ON crossbar_payloads (time_ms)";

/// Migration 10 on SQLite.
pub(crate) const MIGRATION_SQLITE: &[&str] = &[TABLE, TIME_INDEX];
/// Migration 10 on PostgreSQL.
pub(crate) const MIGRATION_POSTGRES: &[&str] = &[TABLE, TIME_INDEX];

/// One request's bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadRecord {
    /// The usage record's `request_id`.
    pub request_id: String,
    pub time_ms: i64,
    pub key_id: Option<String>,
    pub route: Option<String>,
    /// The canonical request as it was sent upstream, as JSON text.
    pub request: String,
    /// The canonical answer as the client got it, as JSON text; `None` when there was none
    /// (an error, a stream that did not end).
    pub answer: Option<String>,
}

/// Where payload logs live. Object-safe so the gateway holds an `Arc<dyn PayloadStore>`.
pub trait PayloadStore: Send + Sync {
    /// Keeps `payload`; a second write for the same request replaces the first.
    fn put_payload<'a>(&'a self, payload: &'a PayloadRecord) -> BoxFuture<'a, Result<()>>;

    /// The bodies of the request `request_id`, if they were kept.
    fn get_payload<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PayloadRecord>>>;

    /// Deletes at most `limit` payloads written before `before_ms`; how many went.
    fn delete_payloads_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>>;
}

impl PayloadStore for SqlStore {
    fn put_payload<'a>(&'a self, payload: &'a PayloadRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM crossbar_payloads WHERE id = $1")
                .bind(&payload.request_id)
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO crossbar_payloads (id, time_ms, key_id, route, request, answer) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&payload.request_id)
            .bind(payload.time_ms)
            .bind(payload.key_id.as_deref())
            .bind(payload.route.as_deref())
            .bind(&payload.request)
            .bind(payload.answer.as_deref())
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn get_payload<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PayloadRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT id, time_ms, key_id, route, request, answer \
                 FROM crossbar_payloads WHERE id = $1",
            )
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| {
                Ok(PayloadRecord {
                    request_id: row.try_get("id")?,
                    time_ms: row.try_get("time_ms")?,
                    key_id: row.try_get("key_id")?,
                    route: row.try_get("route")?,
                    request: row.try_get("request")?,
                    answer: row.try_get("answer")?,
                })
            })
            .transpose()
        })
    }

    fn delete_payloads_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.delete_older("crossbar_payloads", "time_ms", before_ms, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::now_ms;

    fn payload(id: &str, time_ms: i64, answer: Option<&str>) -> PayloadRecord {
        PayloadRecord {
            request_id: id.to_owned(),
            time_ms,
            key_id: Some("key_a".to_owned()),
            route: Some("default".to_owned()),
            request: "{\"model\":\"m\"}".to_owned(),
            answer: answer.map(str::to_owned),
        }
    }

    async fn exercise(store: &dyn PayloadStore) {
        let now = now_ms();
        let first = payload("req_1", now, None);
        store.put_payload(&first).await.unwrap();
        assert_eq!(store.get_payload("req_1").await.unwrap(), Some(first));
        // A second write for the request (its answer) replaces the first.
        let whole = payload("req_1", now, Some("{\"id\":\"a\"}"));
        store.put_payload(&whole).await.unwrap();
        assert_eq!(store.get_payload("req_1").await.unwrap(), Some(whole));
        assert_eq!(store.get_payload("req_2").await.unwrap(), None);
        for (id, time_ms) in [("old_1", 1_000), ("old_2", 2_000), ("old_3", 3_000)] {
            store
                .put_payload(&payload(id, time_ms, None))
                .await
                .unwrap();
        }
        let cutoff = now - 60_000;
        assert_eq!(store.delete_payloads_before(cutoff, 2).await.unwrap(), 2);
        assert_eq!(store.delete_payloads_before(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.delete_payloads_before(cutoff, 2).await.unwrap(), 0);
        assert_eq!(store.get_payload("old_3").await.unwrap(), None);
        assert!(store.get_payload("req_1").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn payloads_are_kept_by_request_replaced_and_expired() {
        let file = std::env::temp_dir().join(format!(
            "crossbar_payloads_{}_{}.db",
            std::process::id(),
            now_ms()
        ));
        exercise(&SqlStore::open(&file.to_string_lossy()).await.unwrap()).await;
        // And on PostgreSQL, in a fresh database, when a server is configured.
        let Ok(admin_url) = std::env::var("CROSSBAR_TEST_POSTGRES_URL") else {
            return;
        };
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let name = format!("crossbar_payloads_{}_{}", std::process::id(), now_ms());
        let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        exercise(&SqlStore::open(&format!("{base}/{name}")).await.unwrap()).await;
    }
}
