//! Agent runs as a service: runs submitted over the network wait in the journal's run table
//! (status `queued`) until a worker claims one with a lease; the worker heartbeats the lease,
//! and a run whose lease expires is claimed again by another worker, which resumes it from its
//! journal. Each claim bumps the run's lease generation, and every step a worker journals is
//! checked against the generation it claimed in the same transaction that writes the step
//! ([`RunQueue::append_fenced`]), so a worker that lost its run (killed, paused, partitioned)
//! can never journal after the new owner started.
//!
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so any number of workers claim side by
//! side without waiting on each other; SQLite serializes writers and serves one host.

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::journal::{EventRecord, RunRecord, RunTotals, run_columns};
use crate::sql::{Backend, uint};
use crate::{Result, SqlStore, StoreError, now_ms};

/// Migration 7, the same DDL on both engines.
pub(crate) const MIGRATION: &[&str] = &[
    // The virtual key that submitted the run ('' for an open gateway, the admin or the CLI).
    "ALTER TABLE crossbar_agent_runs ADD COLUMN owner_key TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN idempotency_key TEXT",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN worker TEXT",
    // Null for runs no worker holds (queued, ended, or run from the CLI).
    "ALTER TABLE crossbar_agent_runs ADD COLUMN lease_until_ms BIGINT",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN lease_gen BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN claimed_ms BIGINT",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN takeovers BIGINT NOT NULL DEFAULT 0",
    // Whether the latest claim took the run from a worker whose lease had expired.
    "ALTER TABLE crossbar_agent_runs ADD COLUMN took_over BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE crossbar_agent_runs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0",
    // The submit's budget and deadline overrides, JSON.
    "ALTER TABLE crossbar_agent_runs ADD COLUMN limits TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS crossbar_agent_runs_idempotency \
     ON crossbar_agent_runs (owner_key, idempotency_key) WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS crossbar_agent_runs_queue \
     ON crossbar_agent_runs (status, created_ms)",
];

/// A run's place in the queue, beside its journal record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueState {
    pub owner_key: String,
    pub idempotency_key: Option<String>,
    /// The worker holding (or last holding) the run.
    pub worker: Option<String>,
    pub lease_until_ms: Option<i64>,
    /// Bumped by every claim; a worker's writes carry the generation it claimed.
    pub lease_gen: u64,
    /// When a worker first claimed the run (claim latency = this − `created_ms`).
    pub claimed_ms: Option<i64>,
    /// Claims of the run after its holder's lease expired.
    pub takeovers: u64,
    pub cancel_requested: bool,
    /// The submit's overrides of the spec's budget, JSON.
    pub limits: Option<String>,
}

/// A run as the runs API shows it: the journal's record and its queue state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRun {
    pub run: RunRecord,
    pub queue: QueueState,
}

/// A run a worker now holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub run: RunRecord,
    /// The lease generation every write for this claim is fenced by.
    pub generation: u64,
    /// Another worker held the run before its lease expired.
    pub takeover: bool,
    pub limits: Option<String>,
}

/// What a heartbeat learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was extended; `cancel` when someone asked to cancel the run.
    Held { cancel: bool },
    /// Another worker claimed the run (or it was handed back): stop working on it.
    Lost,
}

/// Which runs a list shows.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only runs submitted with one of these keys (`None`: everyone's, for the admin).
    pub owners: Option<Vec<String>>,
    pub status: Option<String>,
    pub agent: Option<String>,
    pub limit: u32,
}

/// The queue's figures for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// Runs per status.
    pub by_status: Vec<(String, u64)>,
    /// Takeovers summed over every run.
    pub takeovers: u64,
    /// From submit to first claim, over runs submitted in the last hour: mean and longest, ms.
    pub claim_latency_ms: (u64, u64),
}

/// The run queue. Object-safe, like [`crate::Store`].
pub trait RunQueue: Send + Sync {
    /// Queues `run` (its status `queued`). With an idempotency key already used by the same
    /// owner, nothing is queued and the earlier run is returned; the flag says whether this
    /// call created it.
    fn submit<'a>(
        &'a self,
        run: &'a RunRecord,
        queue: &'a QueueState,
    ) -> BoxFuture<'a, Result<(QueuedRun, bool)>>;

    fn queued_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<QueuedRun>>>;

    /// Newest first.
    fn list_queued<'a>(&'a self, filter: &'a RunFilter) -> BoxFuture<'a, Result<Vec<QueuedRun>>>;

    /// Claims up to `limit` runs for `worker`: queued ones oldest first, and running ones whose
    /// lease expired (a takeover).
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease_ms: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Claim>>>;

    /// Extends the lease while `generation` still holds it.
    fn heartbeat<'a>(
        &'a self,
        run_id: &'a str,
        generation: u64,
        lease_ms: u64,
    ) -> BoxFuture<'a, Result<Heartbeat>>;

    /// Hands a run back to the queue (a worker stopping); false when the lease was lost.
    fn release<'a>(&'a self, run_id: &'a str, generation: u64) -> BoxFuture<'a, Result<bool>>;

    /// Asks for a run to be cancelled: a queued run is cancelled at once, a running one by its
    /// worker at its next heartbeat. Returns the run's status after, `None` when unknown.
    fn cancel<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Appends a step and sets the run's status, totals and (when given) answer, only while
    /// `generation` holds the run ([`StoreError::Fenced`] otherwise), in one transaction; an
    /// ended run's lease is cleared.
    fn append_fenced<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
        answer: Option<&'a str>,
        generation: u64,
    ) -> BoxFuture<'a, Result<()>>;

    fn queue_figures(&self) -> BoxFuture<'_, Result<QueueFigures>>;

    /// A run's steps from sequence number `from` on: what a live event stream has not sent.
    fn events_from<'a>(
        &'a self,
        run_id: &'a str,
        from: u64,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>>>;
}

/// The columns [`queued_from_row`] reads.
macro_rules! queued_columns {
    () => {
        concat!(
            run_columns!(),
            ", owner_key, idempotency_key, worker, lease_until_ms, lease_gen, claimed_ms, \
             takeovers, cancel_requested, limits"
        )
    };
}

const QUEUED_SELECT: &str = concat!("SELECT ", queued_columns!(), " FROM crossbar_agent_runs");

fn queued_from_row(row: &AnyRow) -> Result<QueuedRun> {
    Ok(QueuedRun {
        run: crate::journal::run_from_row(row)?,
        queue: QueueState {
            owner_key: row.try_get("owner_key")?,
            idempotency_key: row.try_get("idempotency_key")?,
            worker: row.try_get("worker")?,
            lease_until_ms: row.try_get("lease_until_ms")?,
            lease_gen: uint(row.try_get("lease_gen")?),
            claimed_ms: row.try_get("claimed_ms")?,
            takeovers: uint(row.try_get("takeovers")?),
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            limits: row.try_get("limits")?,
        },
    })
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Whether a status is one a run ends with.
pub fn is_terminal(status: &str) -> bool {
    !matches!(status, "queued" | "running")
}

impl RunQueue for SqlStore {
    fn submit<'a>(
        &'a self,
        run: &'a RunRecord,
        queue: &'a QueueState,
    ) -> BoxFuture<'a, Result<(QueuedRun, bool)>> {
        Box::pin(async move {
            // The unique index decides between two submits racing with one key.
            let done = sqlx::query(
                "INSERT INTO crossbar_agent_runs (id, agent, spec_path, spec, task, status, \
                 created_ms, updated_ms, steps, tokens, cost_pusd, elapsed_ms, answer, \
                 owner_key, idempotency_key, limits) VALUES ($1, $2, $3, $4, $5, 'queued', $6, \
                 $7, 0, 0, 0, 0, NULL, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .bind(&run.id)
            .bind(&run.agent)
            .bind(&run.spec_path)
            .bind(&run.spec)
            .bind(&run.task)
            .bind(run.created_ms)
            .bind(run.updated_ms)
            .bind(&queue.owner_key)
            .bind(queue.idempotency_key.as_deref())
            .bind(queue.limits.as_deref())
            .execute(&self.pool)
            .await?;
            let created = done.rows_affected() == 1;
            let found = if created {
                // As queued: a worker may claim it before a read here would see it.
                Some(QueuedRun {
                    run: RunRecord {
                        status: "queued".to_owned(),
                        totals: RunTotals::default(),
                        answer: None,
                        ..run.clone()
                    },
                    queue: QueueState {
                        owner_key: queue.owner_key.clone(),
                        idempotency_key: queue.idempotency_key.clone(),
                        limits: queue.limits.clone(),
                        ..QueueState::default()
                    },
                })
            } else if let Some(key) = &queue.idempotency_key {
                let row = sqlx::query(&format!(
                    "{QUEUED_SELECT} WHERE owner_key = $1 AND idempotency_key = $2"
                ))
                .bind(&queue.owner_key)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(queued_from_row).transpose()?
            } else {
                None
            };
            let found = found.ok_or_else(|| {
                StoreError::Invalid(format!("run `{}` could not be queued", run.id))
            })?;
            Ok((found, created))
        })
    }

    fn queued_run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<QueuedRun>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!("{QUEUED_SELECT} WHERE id = $1"))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(queued_from_row).transpose()
        })
    }

    fn list_queued<'a>(&'a self, filter: &'a RunFilter) -> BoxFuture<'a, Result<Vec<QueuedRun>>> {
        Box::pin(async move {
            use std::fmt::Write as _;
            // Optional filters as `($n IS NULL OR column = $n)`, owners as `IN ($4, ...)`:
            // placeholders only, every value bound.
            let mut sql = format!(
                "{QUEUED_SELECT} WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR agent = $2)"
            );
            let owners = filter.owners.as_deref().unwrap_or_default();
            if filter.owners.is_some() {
                if owners.is_empty() {
                    return Ok(Vec::new());
                }
                sql.push_str(" AND owner_key IN (");
                for i in 0..owners.len() {
                    let _ = write!(sql, "{}${}", if i == 0 { "" } else { ", " }, i + 4);
                }
                sql.push(')');
            }
            sql.push_str(" ORDER BY created_ms DESC, id DESC LIMIT $3");
            let mut query = sqlx::query(&sql)
                .bind(filter.status.as_deref())
                .bind(filter.agent.as_deref())
                .bind(i64::from(filter.limit.max(1)));
            for owner in owners {
                query = query.bind(owner);
            }
            let rows = query.fetch_all(&self.pool).await?;
            rows.iter().map(queued_from_row).collect()
        })
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        lease_ms: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Claim>>> {
        Box::pin(async move {
            let now = now_ms();
            // Workers on PostgreSQL skip each other's rows instead of waiting on them; SQLite
            // has one writer at a time anyway.
            let lock = match self.backend {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let rows = sqlx::query(&format!(
                "UPDATE crossbar_agent_runs SET worker = $1, lease_until_ms = $2, \
                 lease_gen = lease_gen + 1, \
                 takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
                 took_over = CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
                 claimed_ms = COALESCE(claimed_ms, $3), status = 'running', updated_ms = $3 \
                 WHERE id IN (SELECT id FROM crossbar_agent_runs WHERE \
                 (status = 'queued' AND cancel_requested = 0) OR \
                 (status = 'running' AND lease_until_ms IS NOT NULL AND lease_until_ms < $3) \
                 ORDER BY created_ms, id LIMIT $4{lock}) \
                 RETURNING {}, took_over",
                queued_columns!()
            ))
            .bind(worker)
            .bind(now.saturating_add(int(lease_ms)))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            // The claimed rows as the claim left them: no second read per run.
            rows.iter()
                .map(|row| {
                    let QueuedRun { run, queue } = queued_from_row(row)?;
                    Ok(Claim {
                        takeover: row.try_get::<i64, _>("took_over")? != 0,
                        run,
                        generation: queue.lease_gen,
                        limits: queue.limits,
                    })
                })
                .collect()
        })
    }

    fn heartbeat<'a>(
        &'a self,
        run_id: &'a str,
        generation: u64,
        lease_ms: u64,
    ) -> BoxFuture<'a, Result<Heartbeat>> {
        Box::pin(async move {
            let row = sqlx::query(
                "UPDATE crossbar_agent_runs SET lease_until_ms = $1 \
                 WHERE id = $2 AND lease_gen = $3 AND status = 'running' \
                 RETURNING cancel_requested",
            )
            .bind(now_ms().saturating_add(int(lease_ms)))
            .bind(run_id)
            .bind(int(generation))
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(row) => Heartbeat::Held {
                    cancel: row.try_get::<i64, _>("cancel_requested")? != 0,
                },
                None => Heartbeat::Lost,
            })
        })
    }

    fn release<'a>(&'a self, run_id: &'a str, generation: u64) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE crossbar_agent_runs SET status = 'queued', lease_until_ms = NULL, \
                 lease_gen = lease_gen + 1, updated_ms = $1 \
                 WHERE id = $2 AND lease_gen = $3 AND status = 'running'",
            )
            .bind(now_ms())
            .bind(run_id)
            .bind(int(generation))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn cancel<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let now = now_ms();
            sqlx::query(
                "UPDATE crossbar_agent_runs SET status = 'cancelled', cancel_requested = 1, \
                 updated_ms = $1, answer = NULL WHERE id = $2 AND status = 'queued'",
            )
            .bind(now)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
            sqlx::query(
                "UPDATE crossbar_agent_runs SET cancel_requested = 1, updated_ms = $1 \
                 WHERE id = $2 AND status = 'running'",
            )
            .bind(now)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM crossbar_agent_runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(status)
        })
    }

    fn append_fenced<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
        answer: Option<&'a str>,
        generation: u64,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self
                .append(event, status, totals, answer, Some(generation))
                .await?
            {
                Ok(())
            } else {
                Err(StoreError::Fenced(event.run_id.clone()))
            }
        })
    }

    fn events_from<'a>(
        &'a self,
        run_id: &'a str,
        from: u64,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
        Box::pin(SqlStore::events_from(self, run_id, from))
    }

    fn queue_figures(&self) -> BoxFuture<'_, Result<QueueFigures>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT status, COUNT(*) AS n, CAST(COALESCE(SUM(takeovers), 0) AS BIGINT) AS t \
                 FROM crossbar_agent_runs GROUP BY status ORDER BY status",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut figures = QueueFigures::default();
            for row in rows {
                figures
                    .by_status
                    .push((row.try_get("status")?, uint(row.try_get("n")?)));
                figures.takeovers += uint(row.try_get("t")?);
            }
            let row = sqlx::query(
                "SELECT CAST(COALESCE(AVG(claimed_ms - created_ms), 0) AS BIGINT) AS mean, \
                 CAST(COALESCE(MAX(claimed_ms - created_ms), 0) AS BIGINT) AS most \
                 FROM crossbar_agent_runs WHERE claimed_ms IS NOT NULL AND created_ms >= $1",
            )
            .bind(now_ms().saturating_sub(3_600_000))
            .fetch_one(&self.pool)
            .await?;
            figures.claim_latency_ms = (uint(row.try_get("mean")?), uint(row.try_get("most")?));
            Ok(figures)
        })
    }
}
