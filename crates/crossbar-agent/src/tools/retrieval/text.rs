//! The text side of a document index: tantivy (BM25, embedded, a directory on disk). Every
//! passage has a `key` (`path#n`) so passages found by vector search can be read back from it.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{QueryParser, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TEXT, Value as _};
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term, doc};

const WRITER_MEMORY: usize = 32 * 1024 * 1024;

struct Fields {
    path: Field,
    passage: Field,
    key: Field,
    body: Field,
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("path", STRING | STORED);
    builder.add_u64_field("passage", STORED);
    builder.add_text_field("key", STRING);
    builder.add_text_field("body", TEXT | STORED);
    builder.build()
}

fn fields(index: &Index, dir: &Path) -> Result<Fields, String> {
    let schema = index.schema();
    let get = |name: &str| {
        schema.get_field(name).map_err(|_| {
            format!(
                "{}: the index has no `{name}` field: not a Crossbar document index of this \
                 version (ingest again into a new directory)",
                dir.display()
            )
        })
    };
    Ok(Fields {
        path: get("path")?,
        passage: get("passage")?,
        key: get("key")?,
        body: get("body")?,
    })
}

/// The key of a passage, shared with the vectors.
pub fn key(path: &str, passage: u64) -> String {
    format!("{path}#{passage}")
}

/// One passage found by BM25 (or read back by key).
#[derive(Clone, Debug, PartialEq)]
pub struct TextHit {
    pub path: String,
    pub passage: u64,
    pub score: f32,
    pub text: String,
}

/// Whether `dir` holds a text index.
pub fn exists(dir: &Path) -> bool {
    dir.join("meta.json").exists()
}

/// Adds and replaces passages; nothing is visible to searches before [`TextWriter::commit`].
pub struct TextWriter {
    writer: IndexWriter,
    fields: Fields,
    dir: String,
}

impl TextWriter {
    pub fn open_or_create(dir: &Path) -> Result<Self, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(|e| at(&e))?;
        let index = if exists(dir) {
            Index::open_in_dir(dir).map_err(|e| at(&e))?
        } else {
            Index::create_in_dir(dir, schema()).map_err(|e| at(&e))?
        };
        let fields = fields(&index, dir)?;
        let writer = index.writer(WRITER_MEMORY).map_err(|e| at(&e))?;
        Ok(Self {
            writer,
            fields,
            dir: dir.display().to_string(),
        })
    }

    /// Replaces every passage of `path` with `passages`.
    pub fn replace(&mut self, path: &str, passages: &[String]) -> Result<(), String> {
        self.writer
            .delete_term(Term::from_field_text(self.fields.path, path));
        for (n, passage) in passages.iter().enumerate() {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            self.writer
                .add_document(doc!(
                    self.fields.path => path,
                    self.fields.passage => n,
                    self.fields.key => key(path, n),
                    self.fields.body => passage.as_str(),
                ))
                .map_err(|e| format!("{path}: {e}"))?;
        }
        Ok(())
    }

    pub fn commit(mut self) -> Result<(), String> {
        self.writer
            .commit()
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.dir))
    }
}

/// A text index opened for searching.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl TextIndex {
    pub fn open(dir: &Path) -> Result<Self, String> {
        if !exists(dir) {
            return Err(format!(
                "{}: no document index (create it with `crossbar agent ingest DIR --index {}`)",
                dir.display(),
                dir.display()
            ));
        }
        let index = Index::open_in_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fields = fields(&index, dir)?;
        let reader = index
            .reader()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            index,
            reader,
            fields,
        })
    }

    /// The best `limit` passages by BM25.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<TextHit>, String> {
        let parser = QueryParser::for_index(&self.index, vec![self.fields.body]);
        // Lenient: a model's query is text, not query syntax.
        let (query, _) = parser.parse_query_lenient(query);
        self.collect(&query, limit)
    }

    /// A passage by its key, when the index has it.
    pub fn passage(&self, path: &str, passage: u64) -> Result<Option<TextHit>, String> {
        let term = Term::from_field_text(self.fields.key, &key(path, passage));
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        Ok(self.collect(&query, 1)?.into_iter().next())
    }

    fn collect(
        &self,
        query: &dyn tantivy::query::Query,
        limit: usize,
    ) -> Result<Vec<TextHit>, String> {
        let searcher = self.reader.searcher();
        let top = searcher
            .search(query, &TopDocs::with_limit(limit.max(1)).order_by_score())
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
            hits.push(TextHit {
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
