//! Agent-run journals: one row per run (its spec, task, status and running totals) and one per
//! journaled step, so a killed run can be resumed from the store by any host that shares it.
//!
//! A step and the run's totals are written in one transaction: a run's totals never disagree
//! with its steps, whatever moment the process dies at.

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::uint;
use crate::{Result, SqlStore};

/// Both engines take the same DDL: no auto-increment, the step number is the agent's.
pub(crate) const RUN_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_agent_runs (\
     id TEXT PRIMARY KEY, agent TEXT NOT NULL, spec_path TEXT NOT NULL, spec TEXT NOT NULL, \
     task TEXT NOT NULL, status TEXT NOT NULL, created_ms BIGINT NOT NULL, \
     updated_ms BIGINT NOT NULL, steps BIGINT NOT NULL, tokens BIGINT NOT NULL, \
     cost_pusd BIGINT NOT NULL, elapsed_ms BIGINT NOT NULL, answer TEXT)";
pub(crate) const EVENT_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_agent_events (\
     run_id TEXT NOT NULL, seq BIGINT NOT NULL, time_ms BIGINT NOT NULL, kind TEXT NOT NULL, \
     data TEXT NOT NULL, PRIMARY KEY (run_id, seq))";
/// Long-term memory per agent (the `remember` / `recall` tools); the id is a hash of the text,
/// so remembering the same thing twice (a re-run tool) keeps one row.
pub(crate) const MEMORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_agent_memory (\
     agent TEXT NOT NULL, id TEXT NOT NULL, created_ms BIGINT NOT NULL, run_id TEXT, \
     text TEXT NOT NULL, PRIMARY KEY (agent, id))";
pub(crate) const RUN_TIME_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_agent_runs_created ON crossbar_agent_runs (created_ms)";

/// A fresh run id, `run_` and 16 hex digits: the same shape whether the CLI starts the run or
/// the runs API queues it.
pub fn new_run_id() -> String {
    let bytes: [u8; 8] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("run_{hex}")
}

/// One agent run as the store keeps it. Money is in picodollars like usage records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub agent: String,
    /// Where the spec was read from, for messages and relative paths on resume.
    pub spec_path: String,
    /// The spec's text as it was when the run started, so a resume runs the same agent.
    pub spec: String,
    pub task: String,
    pub status: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub totals: RunTotals,
    pub answer: Option<String>,
}

/// What a run has used so far: kept with every step so budgets survive a resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub steps: u64,
    pub tokens: u64,
    pub cost_pusd: u64,
    /// Wall time spent running, summed over every process that worked on the run.
    pub elapsed_ms: u64,
}

/// One journaled step: `data` is the agent's JSON for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub run_id: String,
    pub seq: u64,
    pub time_ms: i64,
    pub kind: String,
    pub data: String,
}

/// One thing an agent remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryRecord {
    pub agent: String,
    pub id: String,
    pub created_ms: i64,
    /// The run that remembered it.
    pub run_id: Option<String>,
    pub text: String,
}

/// Where agent runs are journaled. Object-safe, like [`crate::Store`].
pub trait JournalStore: Send + Sync {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> BoxFuture<'a, Result<()>>;

    /// Appends a step and sets the run's status and totals, in one transaction. Fails when the
    /// step number is taken (two processes working on one run).
    fn append_event<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
    ) -> BoxFuture<'a, Result<()>>;

    /// Appends a run's last step and sets its ended status and final answer in one
    /// transaction, so no reader sees an ended run without its answer.
    fn finish_run<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
        answer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;

    fn run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>>;

    /// The newest runs first, at most `limit`.
    fn list_runs(&self, limit: u32) -> BoxFuture<'_, Result<Vec<RunRecord>>>;

    /// A run's steps in order.
    fn events<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>>;

    /// Keeps a memory; one with the same agent and id is left as it is.
    fn remember<'a>(&'a self, memory: &'a MemoryRecord) -> BoxFuture<'a, Result<()>>;

    /// An agent's memories, newest first, at most `limit`.
    fn memories<'a>(
        &'a self,
        agent: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<MemoryRecord>>>;
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The columns [`run_from_row`] reads, for every statement that returns runs.
macro_rules! run_columns {
    () => {
        "id, agent, spec_path, spec, task, status, created_ms, updated_ms, steps, tokens, \
         cost_pusd, elapsed_ms, answer"
    };
}
pub(crate) use run_columns;

const RUN_SELECT: &str = concat!("SELECT ", run_columns!(), " FROM crossbar_agent_runs");

pub(crate) fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let get = |name: &str| -> Result<u64> { Ok(uint(row.try_get::<i64, _>(name)?)) };
    Ok(RunRecord {
        id: row.try_get("id")?,
        agent: row.try_get("agent")?,
        spec_path: row.try_get("spec_path")?,
        spec: row.try_get("spec")?,
        task: row.try_get("task")?,
        status: row.try_get("status")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        totals: RunTotals {
            steps: get("steps")?,
            tokens: get("tokens")?,
            cost_pusd: get("cost_pusd")?,
            elapsed_ms: get("elapsed_ms")?,
        },
        answer: row.try_get("answer")?,
    })
}

impl SqlStore {
    /// A run's steps from sequence number `from` on, in order.
    pub(crate) async fn events_from(&self, run_id: &str, from: u64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT run_id, seq, time_ms, kind, data FROM crossbar_agent_events \
             WHERE run_id = $1 AND seq >= $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(int(from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    run_id: row.try_get("run_id")?,
                    seq: uint(row.try_get::<i64, _>("seq")?),
                    time_ms: row.try_get("time_ms")?,
                    kind: row.try_get("kind")?,
                    data: row.try_get("data")?,
                })
            })
            .collect()
    }

    /// Sets the run's status and totals (and its answer, when given; an ended run's lease is
    /// cleared) and appends `event`, in one transaction; with a
    /// `fence`, only while the run's lease generation is that one (false when it is not:
    /// nothing was written). The run's row is written first: on PostgreSQL that locks it, so
    /// a claim of the run waits for this step, or this step finds the claim's generation.
    pub(crate) async fn append(
        &self,
        event: &EventRecord,
        status: &str,
        totals: RunTotals,
        answer: Option<&str>,
        fence: Option<u64>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "UPDATE crossbar_agent_runs SET status = $1, updated_ms = $2, steps = $3, \
             tokens = $4, cost_pusd = $5, elapsed_ms = $6, answer = COALESCE($7, answer), \
             lease_until_ms = CASE WHEN $8 = 1 THEN NULL ELSE lease_until_ms END \
             WHERE id = $9 AND ($10 IS NULL OR lease_gen = $10)",
        )
        .bind(status)
        .bind(event.time_ms)
        .bind(int(totals.steps))
        .bind(int(totals.tokens))
        .bind(int(totals.cost_pusd))
        .bind(int(totals.elapsed_ms))
        .bind(answer)
        .bind(i64::from(crate::runs::is_terminal(status)))
        .bind(&event.run_id)
        .bind(fence.map(int))
        .execute(&mut *tx)
        .await?;
        if fence.is_some() && held.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO crossbar_agent_events (run_id, seq, time_ms, kind, data) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.run_id)
        .bind(int(event.seq))
        .bind(event.time_ms)
        .bind(&event.kind)
        .bind(&event.data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl JournalStore for SqlStore {
    fn create_run<'a>(&'a self, run: &'a RunRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_agent_runs (id, agent, spec_path, spec, task, status, \
                 created_ms, updated_ms, steps, tokens, cost_pusd, elapsed_ms, answer) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&run.id)
            .bind(&run.agent)
            .bind(&run.spec_path)
            .bind(&run.spec)
            .bind(&run.task)
            .bind(&run.status)
            .bind(run.created_ms)
            .bind(run.updated_ms)
            .bind(int(run.totals.steps))
            .bind(int(run.totals.tokens))
            .bind(int(run.totals.cost_pusd))
            .bind(int(run.totals.elapsed_ms))
            .bind(run.answer.as_deref())
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn append_event<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.append(event, status, totals, None, None)
                .await
                .map(|_| ())
        })
    }

    fn finish_run<'a>(
        &'a self,
        event: &'a EventRecord,
        status: &'a str,
        totals: RunTotals,
        answer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.append(event, status, totals, answer, None)
                .await
                .map(|_| ())
        })
    }

    fn run<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!("{RUN_SELECT} WHERE id = $1"))
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    fn list_runs(&self, limit: u32) -> BoxFuture<'_, Result<Vec<RunRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "{RUN_SELECT} ORDER BY created_ms DESC, id DESC LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
    }

    fn events<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
        Box::pin(self.events_from(run_id, 0))
    }

    fn remember<'a>(&'a self, memory: &'a MemoryRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_agent_memory (agent, id, created_ms, run_id, text) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent, id) DO NOTHING",
            )
            .bind(&memory.agent)
            .bind(&memory.id)
            .bind(memory.created_ms)
            .bind(memory.run_id.as_deref())
            .bind(&memory.text)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn memories<'a>(
        &'a self,
        agent: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<MemoryRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT agent, id, created_ms, run_id, text FROM crossbar_agent_memory \
                 WHERE agent = $1 ORDER BY created_ms DESC, id LIMIT $2",
            )
            .bind(agent)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(MemoryRecord {
                        agent: row.try_get("agent")?,
                        id: row.try_get("id")?,
                        created_ms: row.try_get("created_ms")?,
                        run_id: row.try_get("run_id")?,
                        text: row.try_get("text")?,
                    })
                })
                .collect()
        })
    }
}
