//! Retrieval over documents: `crossbar agent ingest DIR` splits text files into passages and
//! indexes them with tantivy (BM25, embedded, a directory on disk); the `search_docs` tool
//! returns the best passages for a query with where they came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbar_core::chat;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, STORED, STRING, Schema, TEXT, Value as _};
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term, doc};

use super::Tool;

/// Passages are cut at paragraph ends near this size, so a hit is a readable excerpt.
const PASSAGE_CHARS: usize = 1200;
/// Files larger than this are skipped (not documents an agent should read whole).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const WRITER_MEMORY: usize = 32 * 1024 * 1024;

struct Fields {
    path: Field,
    passage: Field,
    body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let path = builder.add_text_field("path", STRING | STORED);
    let passage = builder.add_u64_field("passage", STORED);
    let body = builder.add_text_field("body", TEXT | STORED);
    (
        builder.build(),
        Fields {
            path,
            passage,
            body,
        },
    )
}

fn fields(index: &Index) -> Result<Fields, String> {
    let schema = index.schema();
    let get = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| format!("the index has no `{name}` field: not a Crossbar document index"))
    };
    Ok(Fields {
        path: get("path")?,
        passage: get("passage")?,
        body: get("body")?,
    })
}

fn open_or_create(dir: &Path) -> Result<Index, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if dir.join("meta.json").exists() {
        Index::open_in_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))
    } else {
        Index::create_in_dir(dir, schema().0).map_err(|e| format!("{}: {e}", dir.display()))
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub files: usize,
    pub passages: usize,
    /// Not UTF-8 text.
    pub skipped: usize,
}

/// Indexes every text file under `root` into the index at `index_dir` (created when missing);
/// a file indexed before is replaced. `progress(done, total)` is called after each file.
pub fn ingest(
    root: &Path,
    index_dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Ingested, String> {
    let files = documents(root)?;
    let index = open_or_create(index_dir)?;
    let fields = fields(&index)?;
    let mut writer: IndexWriter = index
        .writer(WRITER_MEMORY)
        .map_err(|e| format!("{}: {e}", index_dir.display()))?;
    let mut done = Ingested::default();
    for (i, file) in files.iter().enumerate() {
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        match std::fs::read(file).map(String::from_utf8) {
            Ok(Ok(text)) => {
                writer.delete_term(Term::from_field_text(fields.path, &name));
                for (n, passage) in passages(&text).into_iter().enumerate() {
                    writer
                        .add_document(doc!(
                            fields.path => name.clone(),
                            fields.passage => u64::try_from(n).unwrap_or(u64::MAX),
                            fields.body => passage,
                        ))
                        .map_err(|e| format!("{name}: {e}"))?;
                    done.passages += 1;
                }
                done.files += 1;
            }
            _ => done.skipped += 1,
        }
        progress(i + 1, files.len());
    }
    writer
        .commit()
        .map_err(|e| format!("{}: {e}", index_dir.display()))?;
    Ok(done)
}

/// One passage found for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub path: String,
    pub passage: u64,
    pub score: f32,
    pub text: String,
}

/// An index opened for searching.
pub struct DocIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl DocIndex {
    pub fn open(dir: &Path) -> Result<Arc<Self>, String> {
        if !dir.join("meta.json").exists() {
            return Err(format!(
                "{}: no document index (create it with `crossbar agent ingest DIR --index {}`)",
                dir.display(),
                dir.display()
            ));
        }
        let index = Index::open_in_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fields = fields(&index)?;
        let reader = index
            .reader()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Arc::new(Self {
            index,
            reader,
            fields,
        }))
    }

    /// The best `limit` passages by BM25.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, String> {
        let parser = QueryParser::for_index(&self.index, vec![self.fields.body]);
        // Lenient: a model's query is text, not query syntax.
        let (query, _) = parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())
            .map_err(|e| format!("search failed: {e}"))?;
        let mut hits = Vec::new();
        for (score, address) in top {
            let document: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| format!("search failed: {e}"))?;
            let text = |field| {
                document
                    .get_first(field)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            hits.push(Hit {
                path: text(self.fields.path),
                passage: document
                    .get_first(self.fields.passage)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
                score,
                text: text(self.fields.body),
            });
        }
        Ok(hits)
    }
}

/// `search_docs`: the agent's way into the ingested documents.
pub struct SearchDocs {
    pub index: Arc<DocIndex>,
}

impl Tool for SearchDocs {
    fn definition(&self) -> chat::Tool {
        chat::Tool {
            name: "search_docs".to_owned(),
            description: Some(
                "Searches the ingested documents; returns the best passages with their file."
                    .to_owned(),
            ),
            parameters: Some(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10}
                },
                "required": ["query"],
                "additionalProperties": false
            })),
            strict: None,
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let query = arguments
                .get("query")
                .and_then(Value::as_str)
                .ok_or("`query` must be a string")?
                .to_owned();
            let limit = arguments
                .get("limit")
                .and_then(Value::as_u64)
                .map_or(3, |l| usize::try_from(l).unwrap_or(3));
            let index = Arc::clone(&self.index);
            let hits = tokio::task::spawn_blocking(move || index.search(&query, limit))
                .await
                .map_err(|e| format!("search failed: {e}"))??;
            if hits.is_empty() {
                return Ok("No passage matches.".to_owned());
            }
            Ok(hits
                .iter()
                .map(|h| format!("[{} #{}] {}", h.path, h.passage + 1, h.text))
                .collect::<Vec<_>>()
                .join("\n\n"))
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

    #[test]
    fn ingest_then_search_ranks_by_bm25_and_reingest_replaces() {
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
        let done =
            ingest(&docs, &index, |d, t| seen.push((d, t))).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            done,
            Ingested {
                files: 2,
                passages: 2,
                skipped: 1
            }
        );
        assert_eq!(seen, [(1, 3), (2, 3), (3, 3)]);
        let search = DocIndex::open(&index).unwrap_or_else(|e| unreachable!("{e}"));
        let hits = search
            .search("cheap hotel lisbon", 5)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].path, "lisbon.md");
        assert!(hits[0].text.contains("February"));
        assert!(search.search("wine AND (", 5).is_ok(), "lenient parsing");
        drop(search);
        write("lisbon.md", "Now about Lisbon fado.");
        ingest(&docs, &index, |_, _| {}).unwrap_or_else(|e| unreachable!("{e}"));
        let search = DocIndex::open(&index).unwrap_or_else(|e| unreachable!("{e}"));
        let hits = search
            .search("lisbon", 5)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(hits.len(), 1, "the old passages were replaced: {hits:?}");
        assert!(hits[0].text.contains("fado"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
