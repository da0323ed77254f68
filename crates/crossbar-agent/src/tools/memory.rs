//! Long-term memory per agent: `remember` keeps a fact in the store (shared by every host, like
//! the journal); `recall` ranks what was remembered against a query with BM25 over words.

use std::collections::HashMap;
use std::sync::Arc;

use crossbar_core::chat;
use crossbar_store::{JournalStore, MemoryRecord, now_ms};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::Tool;

/// Memories ranked per recall at most (the newest).
const RECALL_WINDOW: u32 = 2000;
const MAX_MEMORY_CHARS: u64 = 4000;

/// Lowercased words of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) of each document for `query`; documents sharing no word
/// with the query score 0.
pub fn bm25(query: &str, documents: &[&str]) -> Vec<f64> {
    let docs: Vec<Vec<String>> = documents.iter().map(|d| words(d)).collect();
    let n = docs.len() as f64;
    let average = docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let mut terms = words(query);
    terms.sort();
    terms.dedup();
    let frequency: HashMap<&str, f64> = terms
        .iter()
        .map(|t| {
            let df = docs.iter().filter(|d| d.contains(t)).count() as f64;
            (t.as_str(), (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
        })
        .collect();
    docs.iter()
        .map(|doc| {
            let len = doc.len() as f64;
            terms
                .iter()
                .map(|t| {
                    let tf = doc.iter().filter(|w| *w == t).count() as f64;
                    if tf == 0.0 {
                        return 0.0;
                    }
                    let idf = frequency.get(t.as_str()).copied().unwrap_or(0.0);
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / average.max(1.0)))
                })
                .sum()
        })
        .collect()
}

/// A short stable id for a text (FNV-1a), so the same memory is kept once.
fn memory_id(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("mem_{hash:016x}")
}

pub struct Remember {
    pub agent: String,
    pub store: Arc<dyn JournalStore>,
}

impl Tool for Remember {
    fn definition(&self) -> chat::Tool {
        super::definition(
            "remember",
            "Keeps a fact in your long-term memory, available to later runs.",
            json!({
                "type": "object",
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_MEMORY_CHARS}},
                "required": ["text"],
                "additionalProperties": false
            }),
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let text = super::text_arg(&arguments, "text")?.trim().to_owned();
            let record = MemoryRecord {
                agent: self.agent.clone(),
                id: memory_id(&text),
                created_ms: now_ms(),
                run_id: None,
                text,
            };
            self.store
                .remember(&record)
                .await
                .map_err(|e| format!("could not remember: {e}"))?;
            Ok(format!("remembered ({})", record.id))
        })
    }
}

pub struct Recall {
    pub agent: String,
    pub store: Arc<dyn JournalStore>,
}

impl Tool for Recall {
    fn definition(&self) -> chat::Tool {
        super::search_tool(
            "recall",
            "Searches your long-term memory; returns the best-matching facts.",
            20,
        )
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let (query, limit) = super::search_arguments(&arguments, 5)?;
            let query = query.as_str();
            let memories = self
                .store
                .memories(&self.agent, RECALL_WINDOW)
                .await
                .map_err(|e| format!("could not recall: {e}"))?;
            let texts: Vec<&str> = memories.iter().map(|m| m.text.as_str()).collect();
            let scores = bm25(query, &texts);
            let mut ranked: Vec<(f64, &str)> = scores
                .into_iter()
                .zip(texts)
                .filter(|(score, _)| *score > 0.0)
                .collect();
            // Best first; ties keep the newer memory first (the store's order).
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            ranked.truncate(limit);
            if ranked.is_empty() {
                return Ok("No memories match.".to_owned());
            }
            Ok(ranked
                .iter()
                .map(|(_, text)| format!("- {text}"))
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_prefers_rare_matching_words_and_ignores_non_matches() {
        let docs = [
            "the hotel in Lisbon costs 130 EUR",
            "the flight to Lisbon leaves at 9",
            "the cat sleeps",
        ];
        let scores = bm25("hotel lisbon", &docs);
        assert!(scores[0] > scores[1], "{scores:?}");
        assert!(scores[1] > 0.0);
        assert_eq!(scores[2], 0.0);
        assert_eq!(memory_id("a"), memory_id("a"));
        assert_ne!(memory_id("a"), memory_id("b"));
    }
}
