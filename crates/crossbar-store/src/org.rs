//! Organizations: teams (budgets, limits and allow-lists above their keys) and scoped admin
//! tokens (issue 21). The tables come with migration 8.
//!
//! The organization is the deployment itself (one per gateway): teams are the level below it,
//! keys belong to at most one team, and admin tokens carry a role (`admin`, `team-admin` of
//! one team, `viewer`). Tokens are stored as SHA-256 hashes, like keys.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::KeyLimits;
use crate::sql::{SqlStore, limits_from_row, list_column, uint};
use crate::{Result, StoreError};

const TEAM_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_teams (id TEXT PRIMARY KEY, \
     name TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL, models TEXT NOT NULL, \
     routes TEXT NOT NULL, rpm BIGINT, tpm BIGINT, budget_day_pusd BIGINT, \
     budget_month_pusd BIGINT, budget_total_pusd BIGINT)";
const TOKEN_TABLE: &str = "CREATE TABLE IF NOT EXISTS crossbar_admin_tokens (id TEXT PRIMARY KEY, \
     name TEXT, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, role TEXT NOT NULL, \
     team_id TEXT, created_ms BIGINT NOT NULL, revoked_ms BIGINT)";
/// A team's spend is read from the ledger by team and time, as a key's is.
const USAGE_TEAM_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS crossbar_usage_team_time ON crossbar_usage (team_id, time_ms)";

/// Migration 8 on SQLite. (`crossbar_usage.team_id` comes with migration 9, after this one:
/// its index is made on first use instead, see `ensure_team_index`.)
pub(crate) const MIGRATION_SQLITE: &[&str] = &[
    TEAM_TABLE,
    TOKEN_TABLE,
    "ALTER TABLE crossbar_keys ADD COLUMN team_id TEXT",
    "ALTER TABLE crossbar_audit ADD COLUMN team_id TEXT",
];
/// Migration 8 on PostgreSQL.
pub(crate) const MIGRATION_POSTGRES: &[&str] = &[
    TEAM_TABLE,
    TOKEN_TABLE,
    "ALTER TABLE crossbar_keys ADD COLUMN IF NOT EXISTS team_id TEXT",
    "ALTER TABLE crossbar_audit ADD COLUMN IF NOT EXISTS team_id TEXT",
];

/// A team: the level between the organization (the gateway) and its keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    /// Logical models (globs) the team's keys may call; empty allows all.
    pub models: Vec<String>,
    /// Routes the team's keys may use; empty allows all.
    pub routes: Vec<String>,
    /// Shared by all the team's keys together.
    pub limits: KeyLimits,
}

/// A scoped admin token: its secret is stored only as a SHA-256 hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenRecord {
    pub id: String,
    pub name: Option<String>,
    #[serde(skip_serializing)]
    pub hash: String,
    pub prefix: String,
    /// `admin`, `team-admin` or `viewer`.
    pub role: String,
    /// The team a `team-admin` manages; `None` for the other roles.
    pub team_id: Option<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Where teams and admin tokens live. Object-safe so the gateway holds it behind the
/// [`crate::Store`] it already has ([`crate::Store::org`]).
pub trait OrgStore: Send + Sync {
    fn create_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<()>>;
    /// Every team, oldest first.
    fn list_teams(&self) -> BoxFuture<'_, Result<Vec<TeamRecord>>>;
    /// The team with this id or name.
    fn team<'a>(&'a self, id_or_name: &'a str) -> BoxFuture<'a, Result<Option<TeamRecord>>>;
    /// Replaces the team's name, allow-lists and limits (by id); false when no team matched.
    fn update_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<bool>>;
    /// Deletes the team (by id); false when no team matched.
    fn delete_team<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// What the team's keys together spent since `since_ms`, in picodollars.
    fn team_spend_since<'a>(
        &'a self,
        team_id: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<u64>>;

    fn create_admin_token<'a>(&'a self, token: &'a AdminTokenRecord) -> BoxFuture<'a, Result<()>>;
    /// Every admin token, revoked ones included, oldest first.
    fn list_admin_tokens(&self) -> BoxFuture<'_, Result<Vec<AdminTokenRecord>>>;
    /// The token whose secret hashes to `hash`, revoked or not.
    fn admin_token_by_hash<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<AdminTokenRecord>>>;
    /// Marks a token revoked (by id or name); false when no live token matched.
    fn revoke_admin_token<'a>(
        &'a self,
        id_or_name: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<bool>>;
}

/// Integers are stored as signed 64-bit; anything past `i64::MAX` saturates.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn json_list(values: &[String]) -> Result<String> {
    serde_json::to_string(values).map_err(|e| StoreError::Invalid(e.to_string()))
}

const TEAM_SELECT: &str = "SELECT id, name, created_ms, models, routes, rpm, tpm, \
     budget_day_pusd, budget_month_pusd, budget_total_pusd FROM crossbar_teams";
const TOKEN_SELECT: &str = "SELECT id, name, hash, prefix, role, team_id, created_ms, revoked_ms \
     FROM crossbar_admin_tokens";

fn team_from_row(row: &AnyRow) -> Result<TeamRecord> {
    Ok(TeamRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_ms: row.try_get("created_ms")?,
        models: list_column(row, "models")?,
        routes: list_column(row, "routes")?,
        limits: limits_from_row(row)?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<AdminTokenRecord> {
    Ok(AdminTokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        prefix: row.try_get("prefix")?,
        role: row.try_get("role")?,
        team_id: row.try_get("team_id")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

impl SqlStore {
    /// The usage table's team index: made on first use of a team's spend (the column comes
    /// with migration 9, after this module's migration 8). Idempotent.
    async fn ensure_team_index(&self) -> Result<()> {
        sqlx::query(USAGE_TEAM_INDEX).execute(&self.pool).await?;
        Ok(())
    }
}

impl OrgStore for SqlStore {
    fn create_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_teams (id, name, created_ms, models, routes, rpm, tpm, \
                 budget_day_pusd, budget_month_pusd, budget_total_pusd) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&team.id)
            .bind(&team.name)
            .bind(team.created_ms)
            .bind(json_list(&team.models)?)
            .bind(json_list(&team.routes)?)
            .bind(team.limits.rpm.map(int))
            .bind(team.limits.tpm.map(int))
            .bind(team.limits.budget_day_pusd.map(int))
            .bind(team.limits.budget_month_pusd.map(int))
            .bind(team.limits.budget_total_pusd.map(int))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn list_teams(&self) -> BoxFuture<'_, Result<Vec<TeamRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!("{TEAM_SELECT} ORDER BY created_ms, id"))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(team_from_row).collect()
        })
    }

    fn team<'a>(&'a self, id_or_name: &'a str) -> BoxFuture<'a, Result<Option<TeamRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "{TEAM_SELECT} WHERE id = $1 OR name = $2 ORDER BY created_ms LIMIT 1"
            ))
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(team_from_row).transpose()
        })
    }

    fn update_team<'a>(&'a self, team: &'a TeamRecord) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE crossbar_teams SET name = $1, models = $2, routes = $3, rpm = $4, \
                 tpm = $5, budget_day_pusd = $6, budget_month_pusd = $7, budget_total_pusd = $8 \
                 WHERE id = $9",
            )
            .bind(&team.name)
            .bind(json_list(&team.models)?)
            .bind(json_list(&team.routes)?)
            .bind(team.limits.rpm.map(int))
            .bind(team.limits.tpm.map(int))
            .bind(team.limits.budget_day_pusd.map(int))
            .bind(team.limits.budget_month_pusd.map(int))
            .bind(team.limits.budget_total_pusd.map(int))
            .bind(&team.id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_team<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM crossbar_teams WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn team_spend_since<'a>(
        &'a self,
        team_id: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            self.ensure_team_index().await?;
            // SUM over BIGINT is NUMERIC in PostgreSQL: cast back so both engines return i64.
            let spent: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(cost_pusd), 0) AS BIGINT) FROM crossbar_usage \
                 WHERE team_id = $1 AND time_ms >= $2",
            )
            .bind(team_id)
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
            Ok(uint(spent))
        })
    }

    fn create_admin_token<'a>(&'a self, token: &'a AdminTokenRecord) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO crossbar_admin_tokens (id, name, hash, prefix, role, team_id, \
                 created_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&token.id)
            .bind(token.name.as_deref())
            .bind(&token.hash)
            .bind(&token.prefix)
            .bind(&token.role)
            .bind(token.team_id.as_deref())
            .bind(token.created_ms)
            .bind(token.revoked_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn list_admin_tokens(&self) -> BoxFuture<'_, Result<Vec<AdminTokenRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!("{TOKEN_SELECT} ORDER BY created_ms, id"))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    fn admin_token_by_hash<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<AdminTokenRecord>>> {
        Box::pin(async move {
            let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE hash = $1"))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(token_from_row).transpose()
        })
    }

    fn revoke_admin_token<'a>(
        &'a self,
        id_or_name: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE crossbar_admin_tokens SET revoked_ms = $1 \
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
}
