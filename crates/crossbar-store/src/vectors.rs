//! Passage vectors in PostgreSQL with pgvector, for hybrid document retrieval when the store is
//! PostgreSQL: replicas and hosts that share the store share the vectors, and an HNSW index
//! keeps a search fast however many passages there are.
//!
//! The table and extension are created on first use rather than by a migration, so a
//! PostgreSQL without pgvector still serves everything else. One table holds every index and
//! every dimension count; an HNSW index is built per dimension count over a cast of the column
//! (pgvector can only index vectors of fixed size), `halfvec` above the 2,000 dimensions that
//! `vector` indexes allow.

use std::fmt::Write as _;

use futures::future::BoxFuture;
use sqlx::Row;

use crate::sql::{Backend, uint};
use crate::{Result, SqlStore, StoreError};

/// Dimensions past which pgvector cannot index at all (`halfvec` HNSW limit): searched exactly.
const MAX_INDEXED_DIMENSIONS: usize = 4000;
/// pgvector's limit for one `vector` value.
const MAX_DIMENSIONS: usize = 16_000;

/// One passage found near a query vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorHit {
    pub path: String,
    pub passage: u64,
    /// Cosine distance: 0 is the same direction, 2 the opposite.
    pub distance: f64,
}

/// Where an index's passage vectors live when they are not in the embedded index.
pub trait VectorStore: Send + Sync {
    /// Makes sure the store can keep `dimensions`-long vectors (extension, table, index);
    /// a clear error when it cannot (SQLite, no pgvector).
    fn prepare_vectors(&self, dimensions: usize) -> BoxFuture<'_, Result<()>>;

    /// Replaces the vectors of one file of index `index` with `rows` (passage, vector).
    fn replace_vectors<'a>(
        &'a self,
        index: &'a str,
        path: &'a str,
        rows: &'a [(u64, Vec<f32>)],
    ) -> BoxFuture<'a, Result<()>>;

    /// The `limit` passages of `index` nearest to `query`, nearest first.
    fn search_vectors<'a>(
        &'a self,
        index: &'a str,
        query: &'a [f32],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<VectorHit>>>;
}

/// pgvector's text form, `[1,-0.5,...]`: the Any driver has no vector type, and Rust prints
/// each `f32` exactly (shortest round-trip form).
fn literal(vector: &[f32]) -> String {
    let mut out = String::with_capacity(vector.len() * 10 + 2);
    out.push('[');
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", if x.is_finite() { *x } else { 0.0 });
    }
    out.push(']');
    out
}

/// The indexed expression for a dimension count and its operator class; a query must use the
/// same expression for the planner to pick the HNSW index.
fn cast(dimensions: usize) -> (String, &'static str) {
    if dimensions <= 2000 {
        (format!("vector({dimensions})"), "vector_cosine_ops")
    } else {
        (format!("halfvec({dimensions})"), "halfvec_cosine_ops")
    }
}

fn check_dimensions(dimensions: usize) -> Result<()> {
    if dimensions == 0 || dimensions > MAX_DIMENSIONS {
        return Err(StoreError::Invalid(format!(
            "vectors of {dimensions} dimensions cannot be stored (pgvector takes 1 to {MAX_DIMENSIONS})"
        )));
    }
    Ok(())
}

impl SqlStore {
    fn require_postgres(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            Ok(())
        } else {
            Err(StoreError::Invalid(
                "vectors are kept in the store only on PostgreSQL with pgvector; \
                 with SQLite they stay in the embedded index"
                    .to_owned(),
            ))
        }
    }
}

impl VectorStore for SqlStore {
    fn prepare_vectors(&self, dimensions: usize) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.require_postgres()?;
            check_dimensions(dimensions)?;
            sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    StoreError::Invalid(format!(
                        "the pgvector extension is not available in this PostgreSQL ({e}); \
                         install it (package postgresql-NN-pgvector) or keep vectors embedded"
                    ))
                })?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS crossbar_doc_vectors (\
                 index_id TEXT NOT NULL, path TEXT NOT NULL, passage BIGINT NOT NULL, \
                 dims INTEGER NOT NULL, embedding vector NOT NULL, \
                 PRIMARY KEY (index_id, path, passage))",
            )
            .execute(&self.pool)
            .await?;
            if dimensions <= MAX_INDEXED_DIMENSIONS {
                let (cast, ops) = cast(dimensions);
                // `dimensions` is a checked integer, so formatting it into DDL is safe.
                sqlx::query(&format!(
                    "CREATE INDEX IF NOT EXISTS crossbar_doc_vectors_hnsw_{dimensions} \
                     ON crossbar_doc_vectors USING hnsw ((embedding::{cast}) {ops}) \
                     WHERE dims = {dimensions}"
                ))
                .execute(&self.pool)
                .await?;
            }
            Ok(())
        })
    }

    fn replace_vectors<'a>(
        &'a self,
        index: &'a str,
        path: &'a str,
        rows: &'a [(u64, Vec<f32>)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.require_postgres()?;
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM crossbar_doc_vectors WHERE index_id = $1 AND path = $2")
                .bind(index)
                .bind(path)
                .execute(&mut *tx)
                .await?;
            for (passage, vector) in rows {
                check_dimensions(vector.len())?;
                sqlx::query(
                    "INSERT INTO crossbar_doc_vectors (index_id, path, passage, dims, embedding) \
                     VALUES ($1, $2, $3, $4, $5::vector)",
                )
                .bind(index)
                .bind(path)
                .bind(i64::try_from(*passage).unwrap_or(i64::MAX))
                .bind(i32::try_from(vector.len()).unwrap_or(i32::MAX))
                .bind(literal(vector))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn search_vectors<'a>(
        &'a self,
        index: &'a str,
        query: &'a [f32],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<VectorHit>>> {
        Box::pin(async move {
            self.require_postgres()?;
            let dimensions = query.len();
            check_dimensions(dimensions)?;
            let (cast, _) = cast(dimensions);
            let mut tx = self.pool.begin().await?;
            // The HNSW scan filters by index after the graph walk; iterative scans keep walking
            // until `limit` rows of this index are found instead of returning fewer.
            sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(&format!(
                "SELECT path, passage, (embedding::{cast} <=> $2::{cast})::float8 AS distance \
                 FROM crossbar_doc_vectors WHERE index_id = $1 AND dims = {dimensions} \
                 ORDER BY embedding::{cast} <=> $2::{cast} LIMIT $3"
            ))
            .bind(index)
            .bind(literal(query))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut hits = rows
                .iter()
                .map(|row| {
                    Ok(VectorHit {
                        path: row.try_get("path")?,
                        passage: uint(row.try_get("passage")?),
                        distance: row.try_get("distance")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // `relaxed_order` may return neighbours slightly out of order.
            hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
            Ok(hits)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_pgvector_text_and_never_nan() {
        assert_eq!(literal(&[1.0, -0.5, 0.1]), "[1,-0.5,0.1]");
        assert_eq!(literal(&[f32::NAN, f32::INFINITY]), "[0,0]");
        assert_eq!(literal(&[]), "[]");
    }

    #[test]
    fn wide_vectors_are_indexed_as_halfvec() {
        assert_eq!(cast(1536), ("vector(1536)".to_owned(), "vector_cosine_ops"));
        assert_eq!(
            cast(3072),
            ("halfvec(3072)".to_owned(), "halfvec_cosine_ops")
        );
        assert!(check_dimensions(0).is_err());
        assert!(check_dimensions(16_001).is_err());
        assert!(check_dimensions(3072).is_ok());
    }

    #[tokio::test]
    async fn sqlite_refuses_with_a_clear_message() {
        let dir = std::env::temp_dir().join(format!("crossbar-vectors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let store = SqlStore::open(&dir.join("s.db").display().to_string())
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let error = store
            .prepare_vectors(8)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("only on PostgreSQL"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
