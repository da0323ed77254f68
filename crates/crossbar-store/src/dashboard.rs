//! Reads for the web dashboard: a window of light usage points to aggregate, a filtered request
//! log, one request by id, and spend per key. Kept apart from [`Store`] (the gateway's hot path
//! never needs them), with the same parameterized SQL on SQLite and PostgreSQL.

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::UsageRecord;
use crate::sql::{USAGE_SELECT, uint, usage_from_row};
use crate::{JournalStore, Result, SqlStore, Store};

/// One request, without its attempts or token detail: what the overview aggregates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsagePoint {
    pub time_ms: i64,
    pub key_id: Option<String>,
    pub model: String,
    pub deployment: Option<String>,
    pub provider: Option<String>,
    pub cloud: Option<String>,
    pub status: u16,
    /// The request failed or its stream broke (`error` set), whatever the status.
    pub failed: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_pusd: u64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub overhead_ms: u64,
}

/// Which requests by outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Answered below 400 with no error.
    Ok,
    /// Anything else.
    Failed,
    Exact(u16),
}

/// A request-log query; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// Matches the deployment that answered or any deployment attempted.
    pub deployment: Option<String>,
    pub status: Option<StatusFilter>,
    /// Time bounds, ms since the epoch: `since` inclusive, `until` exclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: u32,
}

/// What one key (or, with `key_id` `None`, keyless traffic) spent in a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpend {
    pub key_id: Option<String>,
    pub requests: u64,
    pub cost_pusd: u64,
    pub tokens: u64,
}

/// The dashboard's reads. Extends [`Store`] and [`JournalStore`] so the server holds one
/// object for usage, keys and agent runs.
pub trait DashboardStore: Store + JournalStore {
    /// The newest `limit` requests at or after `since_ms`, newest first.
    fn usage_points(&self, since_ms: i64, limit: u32) -> BoxFuture<'_, Result<Vec<UsagePoint>>>;

    /// Requests matching `filter`, newest first.
    fn requests<'a>(&'a self, filter: &'a RequestFilter)
    -> BoxFuture<'a, Result<Vec<UsageRecord>>>;

    /// One request by its `x-request-id` (the newest, should an id repeat).
    fn request<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<Option<UsageRecord>>>;

    /// Spend per key since `since_ms`.
    fn spend_by_key(&self, since_ms: i64) -> BoxFuture<'_, Result<Vec<KeySpend>>>;

    /// How many tool calls each of the newest `limit` agent runs started (runs without any
    /// are absent).
    fn tool_calls_by_run(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, u64)>>>;
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '!'`.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// A value bound to a numbered placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

/// Adds a value and returns its placeholder.
fn next(bind: Bind, binds: &mut Vec<Bind>) -> String {
    binds.push(bind);
    format!("${}", binds.len())
}

/// The `WHERE` clause and its values for a request-log filter.
fn where_clause(filter: &RequestFilter) -> (String, Vec<Bind>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    if let Some(key) = &filter.key_id {
        let p = next(Bind::Text(key.clone()), &mut binds);
        clauses.push(format!("key_id = {p}"));
    }
    if let Some(model) = &filter.model {
        let p = next(Bind::Text(model.clone()), &mut binds);
        clauses.push(format!("model = {p}"));
    }
    if let Some(deployment) = &filter.deployment {
        let exact = next(Bind::Text(deployment.clone()), &mut binds);
        // Attempts are stored as compact JSON: `{"deployment":"<id>",...}`.
        let quoted = serde_json::to_string(deployment).unwrap_or_default();
        let pattern = format!("%{}%", like_literal(&format!("\"deployment\":{quoted}")));
        let like = next(Bind::Text(pattern), &mut binds);
        clauses.push(format!(
            "(deployment = {exact} OR attempts LIKE {like} ESCAPE '!')"
        ));
    }
    match filter.status {
        Some(StatusFilter::Ok) => clauses.push("(status < 400 AND error IS NULL)".to_owned()),
        Some(StatusFilter::Failed) => {
            clauses.push("(status >= 400 OR error IS NOT NULL)".to_owned());
        }
        Some(StatusFilter::Exact(status)) => {
            let p = next(Bind::Int(i64::from(status)), &mut binds);
            clauses.push(format!("status = {p}"));
        }
        None => {}
    }
    if let Some(since) = filter.since_ms {
        let p = next(Bind::Int(since), &mut binds);
        clauses.push(format!("time_ms >= {p}"));
    }
    if let Some(until) = filter.until_ms {
        let p = next(Bind::Int(until), &mut binds);
        clauses.push(format!("time_ms < {p}"));
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (clause, binds)
}

fn point_from_row(row: &AnyRow) -> Result<UsagePoint> {
    let get = |name: &str| -> Result<u64> { Ok(uint(row.try_get::<i64, _>(name)?)) };
    Ok(UsagePoint {
        time_ms: row.try_get("time_ms")?,
        key_id: row.try_get("key_id")?,
        model: row.try_get("model")?,
        deployment: row.try_get("deployment")?,
        provider: row.try_get("provider")?,
        cloud: row.try_get("cloud")?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
        failed: row.try_get::<i64, _>("failed")? != 0,
        input_tokens: get("input_tokens")?,
        output_tokens: get("output_tokens")?,
        cost_pusd: get("cost_pusd")?,
        latency_ms: get("latency_ms")?,
        ttft_ms: row.try_get::<Option<i64>, _>("ttft_ms")?.map(uint),
        overhead_ms: get("overhead_ms")?,
    })
}

impl DashboardStore for SqlStore {
    fn usage_points(&self, since_ms: i64, limit: u32) -> BoxFuture<'_, Result<Vec<UsagePoint>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT time_ms, key_id, model, deployment, provider, cloud, status, \
                 CAST(CASE WHEN error IS NULL THEN 0 ELSE 1 END AS BIGINT) AS failed, \
                 input_tokens, output_tokens, cost_pusd, latency_ms, ttft_ms, overhead_ms \
                 FROM crossbar_usage WHERE time_ms >= $1 ORDER BY time_ms DESC, id DESC LIMIT $2",
            )
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(point_from_row).collect()
        })
    }

    fn requests<'a>(
        &'a self,
        filter: &'a RequestFilter,
    ) -> BoxFuture<'a, Result<Vec<UsageRecord>>> {
        Box::pin(async move {
            let (clause, binds) = where_clause(filter);
            let sql = format!(
                "{USAGE_SELECT}{clause} ORDER BY time_ms DESC, id DESC LIMIT ${}",
                binds.len() + 1
            );
            let mut query = sqlx::query(&sql);
            for bind in binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text),
                    Bind::Int(n) => query.bind(n),
                };
            }
            let rows = query
                .bind(i64::from(filter.limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(usage_from_row).collect()
        })
    }

    fn request<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<Option<UsageRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "{USAGE_SELECT} WHERE request_id = $1 ORDER BY id DESC LIMIT 1"
            ))
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(usage_from_row).transpose()
        })
    }

    fn spend_by_key(&self, since_ms: i64) -> BoxFuture<'_, Result<Vec<KeySpend>>> {
        Box::pin(async move {
            // SUM over BIGINT is NUMERIC in PostgreSQL: cast back so both engines return i64.
            let rows = sqlx::query(
                "SELECT key_id, CAST(COUNT(*) AS BIGINT) AS requests, \
                 CAST(COALESCE(SUM(cost_pusd), 0) AS BIGINT) AS cost_pusd, \
                 CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) AS tokens \
                 FROM crossbar_usage WHERE time_ms >= $1 GROUP BY key_id ORDER BY key_id",
            )
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(KeySpend {
                        key_id: row.try_get("key_id")?,
                        requests: uint(row.try_get("requests")?),
                        cost_pusd: uint(row.try_get("cost_pusd")?),
                        tokens: uint(row.try_get("tokens")?),
                    })
                })
                .collect()
        })
    }

    fn tool_calls_by_run(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, u64)>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT e.run_id AS run_id, CAST(COUNT(*) AS BIGINT) AS calls \
                 FROM crossbar_agent_events e JOIN \
                 (SELECT id FROM crossbar_agent_runs ORDER BY created_ms DESC LIMIT $1) r \
                 ON e.run_id = r.id WHERE e.kind = 'tool_started' GROUP BY e.run_id",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("run_id")?, uint(row.try_get("calls")?))))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_literal("a_b%c!d"), "a!_b!%c!!d");
    }

    #[test]
    fn filters_become_numbered_placeholders() {
        let (clause, binds) = where_clause(&RequestFilter {
            key_id: Some("k".to_owned()),
            deployment: Some("chat@x".to_owned()),
            status: Some(StatusFilter::Exact(503)),
            since_ms: Some(5),
            ..RequestFilter::default()
        });
        assert_eq!(
            clause,
            " WHERE key_id = $1 AND (deployment = $2 OR attempts LIKE $3 ESCAPE '!') \
             AND status = $4 AND time_ms >= $5"
        );
        assert_eq!(binds.len(), 5);
        assert!(matches!(&binds[2], Bind::Text(p) if p == "%\"deployment\":\"chat@x\"%"));
        assert_eq!(where_clause(&RequestFilter::default()).0, "");
    }
}
