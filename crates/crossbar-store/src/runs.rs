//! Agent runs as a service (issue 20): the queue of submitted runs, workers' leases and
//! idempotent submits, on the journal's run table. Migration 7.

/// Migration 7, the same DDL on both engines.
pub(crate) const MIGRATION: &[&str] = &[];
