//! The vector side of a document index: each passage's embedding, from an embeddings
//! deployment reached through the agent's model layer. Kept embedded beside the text index (a
//! flat file, searched exactly) or, when the store is PostgreSQL, in pgvector (HNSW), where
//! every host sharing the store shares them.
//!
//! Exact search keeps the embedded index simple and its answers exact; it scans every vector
//! (the `retrieval` benchmark measures how long that takes per passage count), which suits
//! the thousands to tens of thousands of passages an agent's documents make. Larger corpora
//! belong in pgvector.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbar_core::embeddings::{EmbeddingInput, EmbeddingRequest};
use crossbar_store::VectorStore;
use serde::{Deserialize, Serialize};

use crate::model::AgentModel;

/// Passages per embeddings request: well under every provider's input limit.
const BATCH: usize = 64;
const META: &str = "meta.json";
/// One file, replaced whole by a rename: the byte length of the keys (u64, little-endian),
/// the keys as JSON (`[[path, passage], ...]`), then the rows as little-endian f32. Keys and
/// rows can never disagree after a crash.
const DATA: &str = "vectors.bin";

/// Where an index's vectors are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Embedded,
    Pgvector,
}

/// What an index's vectors are: written at ingest, checked at every later ingest and search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorMeta {
    /// The embeddings model (logical name) that made them; queries must use the same one.
    pub model: String,
    pub dimensions: usize,
    pub backend: Backend,
    /// The index's rows in pgvector's shared table.
    pub index_id: String,
}

fn dir(index: &Path) -> PathBuf {
    index.join("vectors")
}

impl VectorMeta {
    pub fn load(index: &Path) -> Result<Option<Self>, String> {
        let path = dir(index).join(META);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub(super) fn save(&self, index: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        write_atomic(&dir(index).join(META), &bytes)
    }
}

/// Written beside and renamed over, so a crash mid-write leaves the old file whole.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).map_err(|e| format!("{}: {e}", temp.display()))?;
    std::fs::rename(&temp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Eight independent sums, so the compiler can keep them in one SIMD register: a plain
/// `zip().sum()` is one serial chain of float additions, which it may not reorder (measured
/// in the `retrieval` benchmark).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0_f32; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// The embedded vectors: unit-length rows in one flat array, searched exactly by cosine.
#[derive(Clone, Debug, Default)]
pub struct FlatVectors {
    dimensions: usize,
    keys: Vec<(String, u64)>,
    data: Vec<f32>,
    /// Rows per file, so adding a new file appends instead of rewriting every row.
    files: HashMap<String, usize>,
}

/// One passage near a query: cosine similarity, higher is nearer.
#[derive(Clone, Debug, PartialEq)]
pub struct Near {
    pub path: String,
    pub passage: u64,
    pub similarity: f32,
}

impl FlatVectors {
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn load(index: &Path, dimensions: usize) -> Result<Self, String> {
        let path = dir(index).join(DATA);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(dimensions)),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let damaged = |why: &str| {
            format!(
                "{}: {why}: the index is damaged (ingest again into a new directory)",
                path.display()
            )
        };
        let (length, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| damaged("too short"))?;
        let length = usize::try_from(u64::from_le_bytes(*length))
            .ok()
            .filter(|l| *l <= rest.len())
            .ok_or_else(|| damaged("bad key length"))?;
        let (keys, rows) = rest.split_at(length);
        let keys: Vec<(String, u64)> =
            serde_json::from_slice(keys).map_err(|e| damaged(&e.to_string()))?;
        if rows.len() != keys.len() * dimensions * 4 {
            return Err(damaged(&format!(
                "{} bytes for {} vectors of {dimensions} dimensions",
                rows.len(),
                keys.len()
            )));
        }
        let data = rows
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut files = HashMap::new();
        for (path, _) in &keys {
            *files.entry(path.clone()).or_insert(0) += 1;
        }
        Ok(Self {
            dimensions,
            keys,
            data,
            files,
        })
    }

    pub fn save(&self, index: &Path) -> Result<(), String> {
        let keys = serde_json::to_vec(&self.keys).map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(8 + keys.len() + self.data.len() * 4);
        bytes.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&keys);
        bytes.extend(self.data.iter().flat_map(|x| x.to_le_bytes()));
        write_atomic(&dir(index).join(DATA), &bytes)
    }

    /// Replaces every vector of `path`.
    pub fn replace(&mut self, path: &str, rows: Vec<(u64, Vec<f32>)>) -> Result<(), String> {
        let dimensions = self.dimensions;
        if let Some(bad) = rows.iter().find(|(_, v)| v.len() != dimensions) {
            return Err(format!(
                "{path}: the embeddings model returned {} dimensions, the index has {dimensions}",
                bad.1.len()
            ));
        }
        if self.files.remove(path).is_some() {
            // Compacts in place: the rows of other files keep their order.
            let mut kept = 0;
            for i in 0..self.keys.len() {
                if self.keys[i].0 != path {
                    self.keys.swap(kept, i);
                    self.data
                        .copy_within(i * dimensions..(i + 1) * dimensions, kept * dimensions);
                    kept += 1;
                }
            }
            self.keys.truncate(kept);
            self.data.truncate(kept * dimensions);
        }
        if !rows.is_empty() {
            self.files.insert(path.to_owned(), rows.len());
        }
        for (passage, mut vector) in rows {
            normalize(&mut vector);
            self.keys.push((path.to_owned(), passage));
            self.data.extend_from_slice(&vector);
        }
        Ok(())
    }

    /// The `limit` nearest passages by cosine similarity, nearest first.
    pub fn search(&self, query: &[f32], limit: usize) -> Vec<Near> {
        if query.len() != self.dimensions || self.dimensions == 0 {
            return Vec::new();
        }
        let mut query = query.to_vec();
        normalize(&mut query);
        let mut scored: Vec<(f32, usize)> = self
            .data
            .chunks_exact(self.dimensions)
            .map(|row| dot(row, &query))
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        let limit = limit.min(scored.len());
        if limit == 0 {
            return Vec::new();
        }
        // Partition first: only the top `limit` are sorted, not every passage.
        scored.select_nth_unstable_by(limit - 1, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(limit);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .filter_map(|(similarity, i)| {
                self.keys.get(i).map(|(path, passage)| Near {
                    path: path.clone(),
                    passage: *passage,
                    similarity,
                })
            })
            .collect()
    }
}

/// An index's vectors, wherever they are kept.
#[derive(Clone)]
pub enum Vectors {
    Embedded(Arc<FlatVectors>),
    Pgvector {
        store: Arc<dyn VectorStore>,
        index_id: String,
    },
}

impl Vectors {
    pub async fn search(&self, query: &[f32], limit: usize) -> Result<Vec<Near>, String> {
        match self {
            Self::Embedded(flat) => {
                let flat = Arc::clone(flat);
                let query = query.to_vec();
                tokio::task::spawn_blocking(move || flat.search(&query, limit))
                    .await
                    .map_err(|e| format!("vector search failed: {e}"))
            }
            Self::Pgvector { store, index_id } => Ok(store
                .search_vectors(index_id, query, limit)
                .await
                .map_err(|e| format!("vector search failed: {e}"))?
                .into_iter()
                .map(|hit| Near {
                    path: hit.path,
                    passage: hit.passage,
                    // Cosine distance back to similarity, so both backends rank alike.
                    similarity: (1.0 - hit.distance) as f32,
                })
                .collect()),
        }
    }
}

/// Embeds texts with one model through the agent's model layer, in batches.
#[derive(Clone)]
pub struct Embedder {
    pub model: Arc<dyn AgentModel>,
    /// The logical embeddings model (or route).
    pub name: String,
}

impl Embedder {
    /// One vector per text, in order, and the input tokens the provider counted. The cost is
    /// charged to the tool call running (a run's `search_docs`) and added to `spent`, in
    /// picodollars.
    pub async fn embed(
        &self,
        texts: &[String],
        spent: &mut u64,
    ) -> Result<(Vec<Vec<f32>>, u64), String> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0;
        for batch in texts.chunks(BATCH) {
            let (response, cost) = self
                .model
                .embed_priced(EmbeddingRequest {
                    model: self.name.clone(),
                    input: EmbeddingInput::Texts(batch.to_vec()),
                    dimensions: None,
                    user: None,
                })
                .await
                .map_err(|e| format!("embeddings model `{}`: {}", self.name, e.message))?;
            crate::model::charge_tool(cost);
            *spent = spent.saturating_add(cost);
            if response.vectors.len() != batch.len() {
                return Err(format!(
                    "embeddings model `{}` returned {} vectors for {} inputs",
                    self.name,
                    response.vectors.len(),
                    batch.len()
                ));
            }
            tokens += response.input_tokens;
            vectors.extend(response.vectors);
        }
        Ok((vectors, tokens))
    }
}

/// Where ingestion writes vectors, decided when the index is first given vectors.
pub enum Sink {
    Embedded(FlatVectors),
    Pgvector {
        store: Arc<dyn VectorStore>,
        index_id: String,
    },
}

impl Sink {
    /// The sink for an index: its existing vectors, or new ones (`store` given: pgvector).
    pub async fn open(
        index: &Path,
        meta: &VectorMeta,
        store: Option<&Arc<dyn VectorStore>>,
    ) -> Result<Self, String> {
        match meta.backend {
            Backend::Embedded => Ok(Self::Embedded(FlatVectors::load(index, meta.dimensions)?)),
            Backend::Pgvector => {
                let store = store.ok_or_else(|| pgvector_needs_store(index))?;
                store
                    .prepare_vectors(meta.dimensions)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Self::Pgvector {
                    store: Arc::clone(store),
                    index_id: meta.index_id.clone(),
                })
            }
        }
    }

    pub async fn replace(&mut self, path: &str, rows: Vec<(u64, Vec<f32>)>) -> Result<(), String> {
        match self {
            Self::Embedded(flat) => flat.replace(path, rows),
            Self::Pgvector { store, index_id } => store
                .replace_vectors(index_id, path, &rows)
                .await
                .map_err(|e| format!("{path}: {e}")),
        }
    }

    /// Makes the vectors durable; the embedded ones are written whole.
    pub fn finish(self, index: &Path, meta: &VectorMeta) -> Result<usize, String> {
        if let Self::Embedded(flat) = &self {
            flat.save(index)?;
        }
        meta.save(index)?;
        Ok(match self {
            Self::Embedded(flat) => flat.len(),
            Self::Pgvector { .. } => 0,
        })
    }
}

pub fn pgvector_needs_store(index: &Path) -> String {
    format!(
        "{}: this index keeps its vectors in PostgreSQL (pgvector): use the PostgreSQL store \
         it was ingested with (--store postgres://...)",
        index.display()
    )
}

/// Opens an index's vectors for searching.
pub fn open(
    index: &Path,
    meta: &VectorMeta,
    store: Option<&Arc<dyn VectorStore>>,
) -> Result<Vectors, String> {
    match meta.backend {
        Backend::Embedded => Ok(Vectors::Embedded(Arc::new(FlatVectors::load(
            index,
            meta.dimensions,
        )?))),
        Backend::Pgvector => Ok(Vectors::Pgvector {
            store: Arc::clone(store.ok_or_else(|| pgvector_needs_store(index))?),
            index_id: meta.index_id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for n in [0, 1, 7, 8, 9, 16, 1536, 1539] {
            let a: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.25 - 1.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.5 - 1.5).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - plain).abs() <= 1e-3 * plain.abs().max(1.0),
                "n={n}"
            );
        }
    }

    #[test]
    fn flat_search_is_exact_cosine_and_replace_drops_a_files_old_rows() {
        let mut flat = FlatVectors::new(3);
        flat.replace(
            "a",
            vec![(0, vec![1.0, 0.0, 0.0]), (1, vec![0.0, 2.0, 0.0])],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        flat.replace("b", vec![(0, vec![1.0, 1.0, 0.0])])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let near = flat.search(&[3.0, 0.1, 0.0], 2);
        assert_eq!(
            near.iter()
                .map(|n| (n.path.as_str(), n.passage))
                .collect::<Vec<_>>(),
            [("a", 0), ("b", 0)]
        );
        assert!((near[0].similarity - 0.99944).abs() < 1e-4, "{near:?}");
        flat.replace("a", vec![(0, vec![0.0, 0.0, 1.0])])
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(flat.len(), 2);
        let near = flat.search(&[0.0, 0.0, 1.0], 10);
        assert_eq!(near.len(), 2);
        assert_eq!((near[0].path.as_str(), near[0].similarity), ("a", 1.0));
        let b = flat.search(&[1.0, 1.0, 0.0], 1);
        assert_eq!(b[0].path, "b", "b's row moved whole");
        assert!((b[0].similarity - 1.0).abs() < 1e-6);
        assert!(
            flat.replace("c", vec![(0, vec![1.0])]).is_err(),
            "wrong size"
        );
        assert_eq!(flat.len(), 2, "a refused file changes nothing");
        assert!(flat.search(&[1.0], 3).is_empty());
    }

    #[test]
    fn flat_vectors_round_trip_through_disk_and_a_damaged_file_is_reported() {
        let index = std::env::temp_dir().join(format!("crossbar-flat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&index);
        let mut flat = FlatVectors::new(2);
        flat.replace("x.md", vec![(0, vec![0.6, 0.8]), (1, vec![-1.0, 0.0])])
            .unwrap_or_else(|e| unreachable!("{e}"));
        flat.save(&index).unwrap_or_else(|e| unreachable!("{e}"));
        let back = FlatVectors::load(&index, 2).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(back.keys, flat.keys);
        assert_eq!(back.data, flat.data);
        let mut bytes =
            std::fs::read(dir(&index).join(DATA)).unwrap_or_else(|e| unreachable!("{e}"));
        bytes.truncate(bytes.len() - 3);
        std::fs::write(dir(&index).join(DATA), &bytes).unwrap_or_else(|e| unreachable!("{e}"));
        let error = FlatVectors::load(&index, 2).err().unwrap_or_default();
        assert!(error.contains("damaged"), "{error}");
        let _ = std::fs::remove_dir_all(&index);
    }
}
