//! SQLite and PostgreSQL through sqlx's `Any` driver: one set of parameterized queries, with
//! the few DDL differences (auto-increment ids) kept in the migrations table below.

use futures::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::audit;
use crate::journal;
use crate::model::{AttemptRecord, KeyLimits, KeyRecord, UsageRecord, UsageTags};
use crate::org::{self, OrgStore};
use crate::payloads;
use crate::responses;
use crate::runs;
use crate::{Result, Store, StoreError, now_ms};

/// Without `store.url`: a SQLite file in the working directory, created when missing.
pub const DEFAULT_URL: &str = "sqlite://crossbar.db?mode=rwc";

/// The URL the `Any` driver opens for a `sqlite:` URL or a bare path: the file is created when
/// missing, as with the default (sqlx opens an explicit `sqlite://crossbar.db` read-write only,
/// and fails on a fresh directory with "unable to open database file"), unless the URL names a
/// `mode` itself. A relative path is taken from the working directory, like the default's.
fn sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    // sqlx's own parser refuses unknown parameters and modes here, before anything is opened.
    <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&format!(
        "sqlite://{rest}"
    ))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let names_mode = query
        .split('&')
        .any(|pair| pair == "mode" || pair.starts_with("mode="));
    if names_mode || path.is_empty() || path == ":memory:" {
        return Ok(format!("sqlite:{rest}"));
    }
    let query = if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    // `sqlite:PATH`, not `sqlite://PATH`: the driver parses it as a URL first, where after `//`
    // the first segment is a host and the `..` after it are folded away
    // (`sqlite://../../x.db` opened `../x.db`).
    Ok(format!("sqlite:{path}?{query}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// One migration: its version and its DDL for each engine. Applied in order, once each; the
/// DDL is idempotent so replicas (or test processes) starting together do not trip on each other.
struct Migration {
    version: i64,
    sqlite: &'static [&'static str],
    postgres: &'static [&'static str],
}

/// The usage table's columns after its id, shared by both engines' DDL.
macro_rules! usage_columns {
    () => {
        "request_id TEXT NOT NULL, time_ms BIGINT NOT NULL, key_id TEXT, \
         api TEXT NOT NULL, model TEXT NOT NULL, route TEXT, deployment TEXT, provider TEXT, \
         cloud TEXT, region TEXT, stream BIGINT NOT NULL, status BIGINT NOT NULL, error TEXT, \
         input_tokens BIGINT NOT NULL, cached_input_tokens BIGINT NOT NULL, \
         cache_write_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, \
         reasoning_tokens BIGINT NOT NULL, cost_pusd BIGINT NOT NULL, latency_ms BIGINT NOT NULL, \
         ttft_ms BIGINT, overhead_ms BIGINT NOT NULL, attempts TEXT NOT NULL"
    };
}

const KEY_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_keys (id TEXT PRIMARY KEY, name TEXT, \
     hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_ms BIGINT NOT NULL, \
     revoked_ms BIGINT, models TEXT NOT NULL, routes TEXT NOT NULL, rpm BIGINT, tpm BIGINT, \
     budget_day_pusd BIGINT, budget_month_pusd BIGINT, budget_total_pusd BIGINT)";
const USAGE_TIME_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_usage_time ON crossbar_usage (time_ms)";
const USAGE_KEY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_usage_key_time ON crossbar_usage (key_id, time_ms)";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: &[
            concat!(
                "CREATE TABLE IF NOT EXISTS crossbar_usage (id INTEGER PRIMARY KEY AUTOINCREMENT, ",
                usage_columns!(),
                ")"
            ),
            KEY_TABLE,
            USAGE_TIME_INDEX,
            USAGE_KEY_INDEX,
        ],
        postgres: &[
            concat!(
                "CREATE TABLE IF NOT EXISTS crossbar_usage (id BIGSERIAL PRIMARY KEY, ",
                usage_columns!(),
                ")"
            ),
            KEY_TABLE,
            USAGE_TIME_INDEX,
            USAGE_KEY_INDEX,
        ],
    },
    // Stored Responses API answers (crate::responses): the same DDL on both engines.
    Migration {
        version: 2,
        sqlite: &[responses::RESPONSE_TABLE, responses::RESPONSE_TIME_INDEX],
        postgres: &[responses::RESPONSE_TABLE, responses::RESPONSE_TIME_INDEX],
    },
    // Agent-run journals (crate::journal): the same DDL on both engines.
    Migration {
        version: 3,
        sqlite: &[
            journal::RUN_TABLE,
            journal::EVENT_TABLE,
            journal::RUN_TIME_INDEX,
            journal::MEMORY_TABLE,
        ],
        postgres: &[
            journal::RUN_TABLE,
            journal::EVENT_TABLE,
            journal::RUN_TIME_INDEX,
            journal::MEMORY_TABLE,
        ],
    },
    // Stored responses keep their own input items (`GET /v1/responses/{id}/input_items`).
    Migration {
        version: 4,
        sqlite: &[responses::RESPONSE_INPUT_COLUMN],
        postgres: &[responses::RESPONSE_INPUT_COLUMN],
    },
    // One record per request: a spool replayed twice (a crash mid-replay, two replicas
    // claiming one file) must not bill twice. Copies an older version wrote go first.
    Migration {
        version: 5,
        sqlite: &[USAGE_DEDUPLICATE, USAGE_REQUEST_INDEX],
        postgres: &[USAGE_DEDUPLICATE, USAGE_REQUEST_INDEX],
    },
    Migration {
        version: 6,
        sqlite: &[audit::AUDIT_TABLE_SQLITE, audit::AUDIT_TIME_INDEX],
        postgres: &[audit::AUDIT_TABLE_POSTGRES, audit::AUDIT_TIME_INDEX],
    },
    // Agent runs as a service (crate::runs): the queue, leases and idempotent submits.
    Migration {
        version: 7,
        sqlite: runs::MIGRATION,
        postgres: runs::MIGRATION,
    },
    // Organizations: teams and scoped admin tokens (crate::org).
    Migration {
        version: 8,
        sqlite: org::MIGRATION_SQLITE,
        postgres: org::MIGRATION_POSTGRES,
    },
    // Usage records' tags (model::UsageTags).
    Migration {
        version: 9,
        sqlite: USAGE_TAGS,
        postgres: USAGE_TAGS,
    },
    // Payload logs (crate::payloads).
    Migration {
        version: 10,
        sqlite: payloads::MIGRATION_SQLITE,
        postgres: payloads::MIGRATION_POSTGRES,
    },
];

const USAGE_TAGS: &[&str] = &[
    "ALTER TABLE crossbar_usage ADD COLUMN team_id TEXT",
    "ALTER TABLE crossbar_usage ADD COLUMN end_user TEXT",
    "ALTER TABLE crossbar_usage ADD COLUMN cache_hit BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE crossbar_usage ADD COLUMN guardrails TEXT",
];

const USAGE_DEDUPLICATE: &str = "DELETE FROM crossbar_usage WHERE request_id <> '' AND id NOT IN \
     (SELECT MIN(id) FROM crossbar_usage GROUP BY request_id)";
/// Records without a request id (none are made today) stay outside the rule.
const USAGE_REQUEST_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS crossbar_usage_request \
     ON crossbar_usage (request_id) WHERE request_id <> ''";

/// A SQLite or PostgreSQL store.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

impl SqlStore {
    /// Retention's delete: at most `limit` rows of `table` (keyed by `id`) whose `time_column` is before
    /// `before_ms`, oldest first; returns how many went. A bounded batch (found through the
    /// time index) keeps each statement and its locks short. `table` and `time_column` are
    /// constants of this crate, never input.
    pub(crate) async fn delete_older(
        &self,
        table: &str,
        time_column: &str,
        before_ms: i64,
        limit: u32,
    ) -> Result<u64> {
        let done = sqlx::query(&format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
             WHERE {time_column} < $1 ORDER BY {time_column} LIMIT $2)"
        ))
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Opens (creating a SQLite file when needed) and migrates. `postgres://` and
    /// `postgresql://` URLs go to PostgreSQL; `sqlite:` URLs and bare paths to SQLite.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            (Backend::Sqlite, sqlite_url(url)?)
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            // A server that does not answer is reported as down within seconds, so callers
            // (the usage writer's spool, the key cache) can go on without it.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Writers wait for each other instead of failing with SQLITE_BUSY.
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            // WAL lets the reports read while the gateway writes; the mode persists in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS crossbar_migrations \
             (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for migration in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM crossbar_migrations WHERE version = $1")
                    .bind(migration.version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            let statements = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            for statement in statements {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO crossbar_migrations (version, applied_ms) VALUES ($1, $2) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(migration.version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                backend = self.backend(),
                "store migrated"
            );
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Integers are stored as signed 64-bit; anything past `i64::MAX` saturates.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn json_list(values: &[String]) -> Result<String> {
    serde_json::to_string(values).map_err(|e| StoreError::Invalid(e.to_string()))
}

pub(crate) const USAGE_SELECT: &str = "SELECT request_id, time_ms, key_id, api, model, route, deployment, \
     provider, cloud, region, stream, status, error, input_tokens, cached_input_tokens, \
     cache_write_tokens, output_tokens, reasoning_tokens, cost_pusd, latency_ms, ttft_ms, \
     overhead_ms, attempts, team_id, end_user, cache_hit, guardrails FROM crossbar_usage";

pub(crate) fn usage_from_row(row: &AnyRow) -> Result<UsageRecord> {
    let attempts: String = row.try_get("attempts")?;
    let get = |name: &str| -> Result<u64> { Ok(uint(row.try_get::<i64, _>(name)?)) };
    Ok(UsageRecord {
        request_id: row.try_get("request_id")?,
        time_ms: row.try_get("time_ms")?,
        key_id: row.try_get("key_id")?,
        api: row.try_get("api")?,
        model: row.try_get("model")?,
        route: row.try_get("route")?,
        deployment: row.try_get("deployment")?,
        provider: row.try_get("provider")?,
        cloud: row.try_get("cloud")?,
        region: row.try_get("region")?,
        stream: row.try_get::<i64, _>("stream")? != 0,
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
        error: row.try_get("error")?,
        input_tokens: get("input_tokens")?,
        cached_input_tokens: get("cached_input_tokens")?,
        cache_write_tokens: get("cache_write_tokens")?,
        output_tokens: get("output_tokens")?,
        reasoning_tokens: get("reasoning_tokens")?,
        cost_pusd: get("cost_pusd")?,
        latency_ms: get("latency_ms")?,
        ttft_ms: row.try_get::<Option<i64>, _>("ttft_ms")?.map(uint),
        overhead_ms: get("overhead_ms")?,
        attempts: serde_json::from_str::<Vec<AttemptRecord>>(&attempts)
            .map_err(|e| StoreError::Invalid(format!("attempts column: {e}")))?,
        tags: UsageTags {
            team_id: row.try_get("team_id")?,
            end_user: row.try_get("end_user")?,
            cache_hit: row.try_get::<i64, _>("cache_hit")? != 0,
            guardrails: row.try_get("guardrails")?,
        },
    })
}

const KEY_SELECT: &str = "SELECT id, name, hash, prefix, created_ms, revoked_ms, models, routes, \
     rpm, tpm, budget_day_pusd, budget_month_pusd, budget_total_pusd, team_id FROM crossbar_keys";

/// A JSON list column (a key's or a team's `models`, `routes`).
pub(crate) fn list_column(row: &AnyRow, name: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Invalid(format!("{name} column: {e}")))
}

/// The limit columns keys and teams share.
pub(crate) fn limits_from_row(row: &AnyRow) -> Result<KeyLimits> {
    let opt =
        |name: &str| -> Result<Option<u64>> { Ok(row.try_get::<Option<i64>, _>(name)?.map(uint)) };
    Ok(KeyLimits {
        rpm: opt("rpm")?,
        tpm: opt("tpm")?,
        budget_day_pusd: opt("budget_day_pusd")?,
        budget_month_pusd: opt("budget_month_pusd")?,
        budget_total_pusd: opt("budget_total_pusd")?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        prefix: row.try_get("prefix")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
        models: list_column(row, "models")?,
        routes: list_column(row, "routes")?,
        limits: limits_from_row(row)?,
        team_id: row.try_get("team_id")?,
    })
}

/// Usage records per `INSERT` statement: 64 rows × 27 columns stays far below both engines'
/// limits on bound parameters.
const ROWS_PER_INSERT: usize = 64;
const USAGE_COLUMNS: usize = 27;

/// `INSERT INTO crossbar_usage (...) VALUES ($1, ...), (...)` (`?` on SQLite) for `rows` rows: placeholders
/// only, every value is bound.
fn insert_sql(rows: usize, backend: Backend) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(
        "INSERT INTO crossbar_usage (request_id, time_ms, key_id, api, model, route, deployment, \
         provider, cloud, region, stream, status, error, input_tokens, cached_input_tokens, \
         cache_write_tokens, output_tokens, reasoning_tokens, cost_pusd, latency_ms, ttft_ms, \
         overhead_ms, attempts, team_id, end_user, cache_hit, guardrails) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..USAGE_COLUMNS {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * USAGE_COLUMNS + column + 1);
                }
                // Anonymous on SQLite: it parses and binds each `$N` by name with a scan of
                // every name before it, quadratic in a batch's 1,728 parameters (a quarter
                // of a request's instructions at c=1); `?` are numbered in order for free.
                Backend::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    // A record already there (the same request replayed from the spool) is kept as it is.
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn insert_usage<'a>(&'a self, records: &'a [UsageRecord]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Many rows per statement: each statement is a round trip to SQLite's thread (and
            // its wake-up), which at thousands of requests per second cost more than the rows.
            for chunk in records.chunks(ROWS_PER_INSERT) {
                let sql = insert_sql(chunk.len(), self.backend);
                let mut query = sqlx::query(&sql);
                for r in chunk {
                    let attempts = serde_json::to_string(&r.attempts)
                        .map_err(|e| StoreError::Invalid(e.to_string()))?;
                    query = query
                        .bind(r.request_id.clone())
                        .bind(r.time_ms)
                        .bind(r.key_id.clone())
                        .bind(r.api.clone())
                        .bind(r.model.clone())
                        .bind(r.route.clone())
                        .bind(r.deployment.clone())
                        .bind(r.provider.clone())
                        .bind(r.cloud.clone())
                        .bind(r.region.clone())
                        .bind(i64::from(r.stream))
                        .bind(i64::from(r.status))
                        .bind(r.error.clone())
                        .bind(int(r.input_tokens))
                        .bind(int(r.cached_input_tokens))
                        .bind(int(r.cache_write_tokens))
                        .bind(int(r.output_tokens))
                        .bind(int(r.reasoning_tokens))
                        .bind(int(r.cost_pusd))
                        .bind(int(r.latency_ms))
                        .bind(r.ttft_ms.map(int))
                        .bind(int(r.overhead_ms))
                        .bind(attempts)
                        .bind(r.tags.team_id.clone())
                        .bind(r.tags.end_user.clone())
                        .bind(i64::from(r.tags.cache_hit))
                        .bind(r.tags.guardrails.clone());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn usage_since(&self, since_ms: i64, limit: u32) -> BoxFuture<'_, Result<Vec<UsageRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "{USAGE_SELECT} WHERE time_ms >= $1 ORDER BY time_ms, id LIMIT $2"
            ))
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(usage_from_row).collect()
        })
    }

    fn key_spend_since<'a>(&'a self, key_id: &'a str, since_ms: i64) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            // SUM over BIGINT is NUMERIC in PostgreSQL: cast back so both engines return i64.
            let spent: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(cost_pusd), 0) AS BIGINT) FROM crossbar_usage \
                 WHERE key_id = $1 AND time_ms >= $2",
            )
            .bind(key_id)
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
            Ok(uint(spent))
        })
    }

    fn delete_usage_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.delete_older("crossbar_usage", "time_ms", before_ms, limit))
    }

    fn create_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_keys (id, name, hash, prefix, created_ms, revoked_ms, \
                 models, routes, rpm, tpm, budget_day_pusd, budget_month_pusd, \
                 budget_total_pusd, team_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&key.id)
            .bind(key.name.as_deref())
            .bind(&key.hash)
            .bind(&key.prefix)
            .bind(key.created_ms)
            .bind(key.revoked_ms)
            .bind(json_list(&key.models)?)
            .bind(json_list(&key.routes)?)
            .bind(key.limits.rpm.map(int))
            .bind(key.limits.tpm.map(int))
            .bind(key.limits.budget_day_pusd.map(int))
            .bind(key.limits.budget_month_pusd.map(int))
            .bind(key.limits.budget_total_pusd.map(int))
            .bind(key.team_id.as_deref())
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!("{KEY_SELECT} ORDER BY created_ms, id"))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(key_from_row).collect()
        })
    }

    fn key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<KeyRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!("{KEY_SELECT} WHERE hash = $1"))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(key_from_row).transpose()
        })
    }

    fn revoke_key<'a>(&'a self, id_or_name: &'a str, at_ms: i64) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE crossbar_keys SET revoked_ms = $1 \
                 WHERE (id = $2 OR name = $3) AND revoked_ms IS NULL",
            )
            .bind(at_ms)
            .bind(id_or_name)
            .bind(id_or_name)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn org(&self) -> Option<&dyn OrgStore> {
        Some(self)
    }

    fn has_keys(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crossbar_keys")
                .fetch_one(&self.pool)
                .await?;
            Ok(n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL numbers its placeholders; SQLite gets anonymous ones, as many.
    #[test]
    fn batch_inserts_are_numbered_on_postgres_and_anonymous_on_sqlite() {
        let postgres = insert_sql(2, Backend::Postgres);
        assert!(postgres.contains("($1, $2, "), "{postgres}");
        assert!(
            postgres.contains(", $54) ON CONFLICT DO NOTHING"),
            "{postgres}"
        );
        assert!(!postgres.contains('?'));
        let sqlite = insert_sql(2, Backend::Sqlite);
        assert_eq!(sqlite.matches('?').count(), 2 * USAGE_COLUMNS);
        assert!(!sqlite.contains('$'), "{sqlite}");
        assert!(sqlite.ends_with(", ?) ON CONFLICT DO NOTHING"), "{sqlite}");
    }
}
