//! Organizations: teams (budgets, limits and allow-lists above their keys) and scoped admin
//! tokens (issue 21). The tables come with migration 8.

/// Migration 8 on SQLite.
pub(crate) const MIGRATION_SQLITE: &[&str] = &[];
/// Migration 8 on PostgreSQL.
pub(crate) const MIGRATION_POSTGRES: &[&str] = &[];
