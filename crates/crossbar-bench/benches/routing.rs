//! One routing decision (`Router::plan_for_bench`: route lookup, eligible deployments, prompt
//! estimate, per-candidate price and live statistics, ranking, exploration draw) over one
//! logical model served by 10, 100 and 1,000 deployments. OpenAI-compatible providers estimate
//! the prompt with tiktoken on a 2 KB sample; Anthropic ones with the byte approximation, which
//! isolates the part that grows with the catalog.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose input is broken must stop"
)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossbar_bench::{catalog_config, routing_requests};
use crossbar_core::router::Router;

fn plan(c: &mut Criterion) {
    let (small, large) = routing_requests().unwrap();
    let mut group = c.benchmark_group("plan");
    for (kind, tokenizer) in [("openai-compatible", "tiktoken"), ("anthropic", "approx")] {
        for size in [10, 100, 1000] {
            let router =
                Router::from_config(&catalog_config(size, kind).unwrap(), &HashMap::new()).unwrap();
            group.bench_function(
                BenchmarkId::new(format!("{tokenizer}/small_prompt"), size),
                |b| b.iter(|| router.plan_for_bench(black_box(&small)).unwrap()),
            );
            if size == 1000 {
                group.bench_function(
                    BenchmarkId::new(format!("{tokenizer}/100kb_prompt"), size),
                    |b| b.iter(|| router.plan_for_bench(black_box(&large)).unwrap()),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
