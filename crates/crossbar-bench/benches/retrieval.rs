//! Document retrieval for an agent's `search_docs`: the embedded vector index's exact search
//! (every passage scored, top 20 kept) against BM25 over the same number of passages in
//! tantivy, as the baseline in the same run, at 1,000, 10,000 and 30,000 passages of 1,536
//! dimensions (text-embedding-3-small). Tells up to what corpus size exact search is cheap
//! next to the BM25 half of a hybrid query, and when pgvector's HNSW index is worth it.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose input is broken must stop"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossbar_agent::tools::retrieval::text::{TextIndex, TextWriter};
use crossbar_agent::tools::retrieval::vectors::FlatVectors;

const DIMENSIONS: usize = 1536;
const LIMIT: usize = 20;

/// A repeatable pseudo-random stream (no dependency, same inputs every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 20_000) as f32 / 10_000.0 - 1.0
    }

    /// Zipf-like word choice from a 5,000-word vocabulary, as in real text.
    fn word(&mut self) -> String {
        let r = (self.next() % 10_000) as f64 / 10_000.0;
        format!("w{}", (5_000.0_f64.powf(r)) as u64)
    }
}

fn corpus(passages: usize, rng: &mut Lcg) -> (FlatVectors, Vec<String>) {
    let mut flat = FlatVectors::new(DIMENSIONS);
    let mut texts = Vec::with_capacity(passages);
    for file in 0..passages / 10 {
        let rows = (0..10)
            .map(|n| (n, (0..DIMENSIONS).map(|_| rng.unit()).collect()))
            .collect();
        flat.replace(&format!("doc{file}.md"), rows).unwrap();
        for _ in 0..10 {
            texts.push((0..150).map(|_| rng.word()).collect::<Vec<_>>().join(" "));
        }
    }
    (flat, texts)
}

fn search(c: &mut Criterion) {
    let mut rng = Lcg(7);
    let mut group = c.benchmark_group("retrieval");
    group.sample_size(20);
    for passages in [1_000, 10_000, 30_000] {
        let (flat, texts) = corpus(passages, &mut rng);
        let dir = std::env::temp_dir().join(format!("crossbar-bench-bm25-{passages}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut writer = TextWriter::open_or_create(&dir).unwrap();
        for (file, chunk) in texts.chunks(10).enumerate() {
            writer.replace(&format!("doc{file}.md"), chunk).unwrap();
        }
        writer.commit().unwrap();
        let text = TextIndex::open(&dir).unwrap();
        let query: Vec<f32> = (0..DIMENSIONS).map(|_| rng.unit()).collect();
        let words = format!("{} {} {}", rng.word(), rng.word(), rng.word());
        group.bench_with_input(BenchmarkId::new("bm25", passages), &words, |b, words| {
            b.iter(|| black_box(text.search(words, LIMIT).unwrap()));
        });
        group.bench_with_input(
            BenchmarkId::new("exact-vector", passages),
            &query,
            |b, q| {
                b.iter(|| black_box(flat.search(q, LIMIT)));
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
