//! Retrieval over documents: `crossbar agent ingest DIR` splits text files into passages and
//! indexes them with tantivy (BM25, embedded, a directory on disk) and, when an embeddings model
//! is given, embeds each passage through the model layer ([`vectors`]). The `search_docs` tool
//! then ranks by BM25, by vector similarity, or both fused (hybrid, the default when the index
//! has vectors): exact words and names come from BM25, paraphrases and inflections from the
//! vectors.

pub mod text;
pub mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbar_core::chat;
use crossbar_store::VectorStore;
use futures::future::BoxFuture;
use rand::Rng as _;
use serde_json::Value;

use super::Tool;
use crate::model::AgentModel;
use crate::spec::RetrievalMode;
use text::{TextIndex, TextWriter};
use vectors::{Backend, Embedder, Sink, VectorMeta, Vectors};

/// Passages are cut at paragraph ends near this size, so a hit is a readable excerpt.
const PASSAGE_CHARS: usize = 1200;
/// Files larger than this are skipped (not documents an agent should read whole).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Reciprocal-rank-fusion constant: the customary 60 keeps one list's top hit from drowning
/// a passage both lists rank well.
const RRF_K: f32 = 60.0;

/// Text files under `root` (hidden entries skipped), sorted so ingestion is repeatable.
pub fn documents(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => {
                    let small = entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
                    if small {
                        out.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Paragraph-aligned passages of about [`PASSAGE_CHARS`].
pub fn passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for paragraph in text.split("\n\n") {
        let paragraph = paragraph.trim();
        if paragraph.is_empty() {
            continue;
        }
        if !current.is_empty() && current.len() + paragraph.len() > PASSAGE_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What an ingestion did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ingested {
    pub files: usize,
    pub passages: usize,
    /// Not UTF-8 text.
    pub skipped: usize,
    /// Passages embedded in this ingestion.
    pub embedded: usize,
    /// Input tokens the embeddings provider counted.
    pub embedding_tokens: u64,
    /// What embedding cost, in picodollars.
    pub embedding_pusd: u64,
    /// `embedding_pusd` in dollars, for display.
    pub embedding_usd: f64,
    /// Where the index keeps its vectors, when it has any.
    pub vectors: Option<Backend>,
}

/// How to embed passages while ingesting.
pub struct Embedding {
    pub embedder: Embedder,
    /// Keep a new index's vectors in this store (pgvector) instead of embedded beside it.
    pub store: Option<Arc<dyn VectorStore>>,
}

/// Indexes every text file under `root` into the index at `index_dir` (created when missing);
/// a file indexed before is replaced. With `embedding`, each passage is also embedded, so
/// `search_docs` can rank hybrid. `progress(done, total)` is called after each file.
pub async fn ingest(
    root: &Path,
    index_dir: &Path,
    embedding: Option<Embedding>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Ingested, String> {
    let files = documents(root)?;
    let existing = VectorMeta::load(index_dir)?;
    let mut sink = match (&existing, &embedding) {
        (Some(meta), None) => {
            return Err(format!(
                "{}: this index keeps vectors from `{}`: ingest with --embeddings {} so they \
                 stay in step with the text",
                index_dir.display(),
                meta.model,
                meta.model
            ));
        }
        (Some(meta), Some(e)) if meta.model != e.embedder.name => {
            return Err(format!(
                "{}: this index's vectors come from `{}`, not `{}`; vectors of two models \
                 cannot be compared (ingest into a new directory)",
                index_dir.display(),
                meta.model,
                e.embedder.name
            ));
        }
        (Some(meta), Some(e)) => Some((
            Sink::open(index_dir, meta, e.store.as_ref()).await?,
            meta.clone(),
        )),
        (None, Some(_)) if text::exists(index_dir) => {
            return Err(format!(
                "{}: this index was built without vectors; ingest into a new directory to add them",
                index_dir.display()
            ));
        }
        (None, _) => None,
    };
    let mut writer = TextWriter::open_or_create(index_dir)?;
    let mut done = Ingested::default();
    for (i, file) in files.iter().enumerate() {
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        match std::fs::read(file).map(String::from_utf8) {
            Ok(Ok(text)) => {
                let passages = passages(&text);
                if let Some(embedding) = &embedding {
                    let (vectors, tokens) = embedding
                        .embedder
                        .embed(&passages, &mut done.embedding_pusd)
                        .await?;
                    done.embedding_usd = crossbar_core::pricing::pico_to_usd(done.embedding_pusd);
                    done.embedding_tokens += tokens;
                    done.embedded += vectors.len();
                    if sink.is_none()
                        && let Some(first) = vectors.first()
                    {
                        let meta = VectorMeta {
                            model: embedding.embedder.name.clone(),
                            dimensions: first.len(),
                            backend: if embedding.store.is_some() {
                                Backend::Pgvector
                            } else {
                                Backend::Embedded
                            },
                            index_id: hex::encode(rand::rng().random::<[u8; 12]>()),
                        };
                        let opened = Sink::open(index_dir, &meta, embedding.store.as_ref()).await?;
                        // Recorded now, not at the end: an ingestion that dies part-way leaves
                        // an index with vectors that the next ingestion completes, rather than
                        // one that looks built without them.
                        meta.save(index_dir)?;
                        sink = Some((opened, meta));
                    }
                    if let Some((sink, _)) = &mut sink {
                        let rows = (0_u64..).zip(vectors).collect();
                        sink.replace(&name, rows).await?;
                    }
                }
                writer.replace(&name, &passages)?;
                done.passages += passages.len();
                done.files += 1;
            }
            _ => done.skipped += 1,
        }
        progress(i + 1, files.len());
    }
    writer.commit()?;
    if let Some((sink, meta)) = sink {
        sink.finish(index_dir, &meta)?;
        done.vectors = Some(meta.backend);
    }
    Ok(done)
}

/// One passage found for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub path: String,
    pub passage: u64,
    /// The fused score (reciprocal rank), or BM25 / cosine when only one ranking ran.
    pub score: f32,
    pub text: String,
    /// 1-based rank in each ranking that found the passage.
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
}

/// What a search found, and why it may have fallen back to BM25.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub notice: Option<String>,
}

/// An index opened for searching.
pub struct DocIndex {
    text: Arc<TextIndex>,
    vectors: Option<(Vectors, Embedder)>,
    mode: RetrievalMode,
}

impl DocIndex {
    /// Opens an index. `mode` None: hybrid when the index has vectors, else BM25. Vectors are
    /// embedded for queries with `model`; pgvector indexes need the PostgreSQL `store`.
    pub fn open(
        dir: &Path,
        mode: Option<RetrievalMode>,
        model: Option<Arc<dyn AgentModel>>,
        store: Option<&Arc<dyn VectorStore>>,
    ) -> Result<Arc<Self>, String> {
        let text = Arc::new(TextIndex::open(dir)?);
        let meta = VectorMeta::load(dir)?;
        let mode = match (mode, &meta) {
            (Some(mode), _) => mode,
            (None, Some(_)) => RetrievalMode::Hybrid,
            (None, None) => RetrievalMode::Bm25,
        };
        let vectors = match (&meta, mode) {
            (_, RetrievalMode::Bm25) => None,
            (None, _) => {
                return Err(format!(
                    "{}: the index has no vectors for {} retrieval (ingest with --embeddings MODEL)",
                    dir.display(),
                    mode.as_str()
                ));
            }
            (Some(meta), _) => {
                let model = model.ok_or("vector retrieval needs a model layer")?;
                Some((
                    vectors::open(dir, meta, store)?,
                    Embedder {
                        model,
                        name: meta.model.clone(),
                    },
                ))
            }
        };
        Ok(Arc::new(Self {
            text,
            vectors,
            mode,
        }))
    }

    pub fn mode(&self) -> RetrievalMode {
        self.mode
    }

    /// BM25 only: the text index's best `limit` passages.
    pub fn search_text(&self, query: &str, limit: usize) -> Result<Vec<Hit>, String> {
        Ok(self
            .text
            .search(query, limit)?
            .into_iter()
            .enumerate()
            .map(|(rank, hit)| Hit {
                path: hit.path,
                passage: hit.passage,
                score: hit.score,
                text: hit.text,
                bm25_rank: Some(rank + 1),
                vector_rank: None,
            })
            .collect())
    }

    /// The best `limit` passages for `query` in this index's mode. In hybrid mode each ranking
    /// looks deeper than `limit` and the two are fused by reciprocal rank; when the query
    /// cannot be embedded, hybrid falls back to BM25 and says so.
    pub async fn search(&self, query: &str, limit: usize) -> Result<Found, String> {
        let limit = limit.max(1);
        let depth = if self.mode == RetrievalMode::Hybrid {
            (limit * 4).max(20)
        } else {
            limit
        };
        // BM25 runs on a blocking thread while the query's embedding is in flight.
        let text = async {
            if self.mode == RetrievalMode::Vector {
                return Ok(Vec::new());
            }
            let text = Arc::clone(&self.text);
            let query = query.to_owned();
            tokio::task::spawn_blocking(move || text.search(&query, depth))
                .await
                .map_err(|e| format!("search failed: {e}"))?
        };
        let vector = async {
            let Some((vectors, embedder)) = &self.vectors else {
                return Ok(Vec::new());
            };
            let (mut vector, _) = embedder.embed(&[query.to_owned()], &mut 0).await?;
            let vector = vector
                .pop()
                .ok_or("the embeddings model returned no vector")?;
            vectors.search(&vector, depth).await
        };
        let (bm25, near) = tokio::join!(text, vector);
        let bm25 = bm25?;
        let mut notice = None;
        let near = match near {
            Ok(near) => near,
            Err(e) if self.mode == RetrievalMode::Hybrid => {
                tracing::warn!(error = %e, "vector search failed; BM25 only");
                notice = Some(format!("vector search unavailable ({e}); BM25 only"));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut texts: HashMap<(String, u64), String> = HashMap::new();
        let bm25_keys: Vec<(String, u64)> = bm25
            .into_iter()
            .map(|hit| {
                let key = (hit.path, hit.passage);
                texts.insert(key.clone(), hit.text);
                key
            })
            .collect();
        let near_keys: Vec<(String, u64)> =
            near.iter().map(|n| (n.path.clone(), n.passage)).collect();
        let fused = fuse(&[&bm25_keys, &near_keys]);
        let mut hits = Vec::new();
        for (key, score) in fused {
            if hits.len() == limit {
                break;
            }
            let text = match texts.remove(&key) {
                Some(text) => text,
                None => {
                    let index = Arc::clone(&self.text);
                    let (path, passage) = key.clone();
                    // A vector without its passage (ingestion died between the two): skipped.
                    match tokio::task::spawn_blocking(move || index.passage(&path, passage))
                        .await
                        .map_err(|e| format!("search failed: {e}"))??
                    {
                        Some(hit) => hit.text,
                        None => continue,
                    }
                }
            };
            let rank = |keys: &[(String, u64)]| keys.iter().position(|k| *k == key).map(|p| p + 1);
            hits.push(Hit {
                bm25_rank: rank(&bm25_keys),
                vector_rank: rank(&near_keys),
                path: key.0,
                passage: key.1,
                score,
                text,
            });
        }
        Ok(Found { hits, notice })
    }
}

/// Reciprocal rank fusion: each list adds `1 / (K + rank)` to the passages it ranks; ties keep
/// the order of first appearance, so results are repeatable.
fn fuse(lists: &[&[(String, u64)]]) -> Vec<((String, u64), f32)> {
    let mut scores: Vec<((String, u64), f32)> = Vec::new();
    let mut at: HashMap<(String, u64), usize> = HashMap::new();
    for list in lists {
        for (rank, key) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f32 + 1.0);
            match at.get(key) {
                Some(&i) => scores[i].1 += add,
                None => {
                    at.insert(key.clone(), scores.len());
                    scores.push((key.clone(), add));
                }
            }
        }
    }
    // Stable: equal scores stay in first-appearance order.
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    scores
}

/// `search_docs`: the agent's way into the ingested documents.
pub struct SearchDocs {
    pub index: Arc<DocIndex>,
}

impl Tool for SearchDocs {
    fn definition(&self) -> chat::Tool {
        super::search_tool(
            "search_docs",
            "Searches the ingested documents; returns the best passages with their file.",
            10,
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let (query, limit) = super::search_arguments(&arguments, 3)?;
            let found = self.index.search(&query, limit).await?;
            let mut out = if found.hits.is_empty() {
                "No passage matches.".to_owned()
            } else {
                found
                    .hits
                    .iter()
                    .map(|h| format!("[{} #{}] {}", h.path, h.passage + 1, h.text))
                    .collect::<Vec<_>>()
                    .join("\n\n")
            };
            if let Some(notice) = found.notice {
                out = format!("({notice})\n\n{out}");
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_follow_paragraphs() {
        let long = "word ".repeat(200);
        let text = format!("first\n\nsecond\n\n\n{long}\n\n{long}");
        let parts = passages(&text);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].starts_with("first\n\nsecond\n\nword"));
        assert!(parts.iter().all(|p| p.len() <= PASSAGE_CHARS + 10));
        assert!(passages("\n\n  \n\n").is_empty());
    }

    fn key(path: &str, n: u64) -> (String, u64) {
        (path.to_owned(), n)
    }

    #[test]
    fn fusion_rewards_passages_both_rankings_found() {
        let bm25 = [key("a", 0), key("b", 0), key("c", 0)];
        let near = [key("d", 0), key("c", 0), key("a", 0)];
        let fused: Vec<_> = fuse(&[&bm25, &near]).into_iter().map(|(k, _)| k).collect();
        // a: 1/61 + 1/63, c: 1/63 + 1/62, then the single-list hits by rank: d (1/61) before
        // b (1/62).
        assert_eq!(fused, [key("a", 0), key("c", 0), key("d", 0), key("b", 0)]);
        // Equal scores keep the order of first appearance.
        let tie: Vec<_> = fuse(&[&[key("x", 0)], &[key("y", 0)]])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(tie, [key("x", 0), key("y", 0)]);
        assert!(fuse(&[&[], &[]]).is_empty());
    }

    #[tokio::test]
    async fn ingest_then_search_ranks_by_bm25_and_reingest_replaces() {
        let dir = std::env::temp_dir().join(format!("crossbar-retrieval-{}", std::process::id()));
        let docs = dir.join("docs");
        let index = dir.join("index");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(docs.join("sub")).unwrap_or_else(|e| unreachable!("{e}"));
        let write = |name: &str, text: &str| {
            std::fs::write(docs.join(name), text).unwrap_or_else(|e| unreachable!("{e}"));
        };
        write(
            "lisbon.md",
            "Lisbon hotels are cheapest in February.\n\nTrams run late.",
        );
        write("sub/porto.txt", "Porto is known for port wine and bridges.");
        write(".hidden.md", "Lisbon secret");
        std::fs::write(docs.join("blob.bin"), [0xff, 0xfe, 0x00])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut seen = Vec::new();
        let done = ingest(&docs, &index, None, |d, t| seen.push((d, t)))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            done,
            Ingested {
                files: 2,
                passages: 2,
                skipped: 1,
                ..Ingested::default()
            }
        );
        assert_eq!(seen, [(1, 3), (2, 3), (3, 3)]);
        let search =
            DocIndex::open(&index, None, None, None).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(search.mode(), RetrievalMode::Bm25);
        let hits = search
            .search("cheap hotel lisbon", 5)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"))
            .hits;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].path, "lisbon.md");
        assert_eq!((hits[0].bm25_rank, hits[0].vector_rank), (Some(1), None));
        assert!(hits[0].text.contains("February"));
        assert!(
            search.search("wine AND (", 5).await.is_ok(),
            "lenient parsing"
        );
        let error = DocIndex::open(&index, Some(RetrievalMode::Hybrid), None, None)
            .err()
            .unwrap_or_default();
        assert!(error.contains("no vectors"), "{error}");
        drop(search);
        write("lisbon.md", "Now about Lisbon fado.");
        ingest(&docs, &index, None, |_, _| {})
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let search =
            DocIndex::open(&index, None, None, None).unwrap_or_else(|e| unreachable!("{e}"));
        let hits = search
            .search_text("lisbon", 5)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(hits.len(), 1, "the old passages were replaced: {hits:?}");
        assert!(hits[0].text.contains("fado"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
