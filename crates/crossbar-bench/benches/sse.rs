//! Stream translation: one upstream chunk through the production framer (SSE or AWS event
//! stream), the upstream dialect's decoder and the client dialect's encoder, for every pair.
//! `chunk/*` times one text-delta chunk in the middle of a stream (decoder and encoder already
//! past the prelude); `decode_only` stops after the decoder. `stream_20/*` times a whole
//! 20-chunk answer, prelude and epilogue included, with throughput in upstream chunks.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose input is broken must stop"
)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use crossbar_bench::{Ingress, Pipeline, Upstream};

fn pairs() -> Vec<(Upstream, Option<Ingress>)> {
    Upstream::ALL
        .into_iter()
        .flat_map(|u| {
            [None]
                .into_iter()
                .chain(Ingress::ALL.map(Some))
                .map(move |i| (u, i))
        })
        .collect()
}

fn label(upstream: Upstream, ingress: Option<Ingress>) -> String {
    format!(
        "{}->{}",
        upstream.name(),
        ingress.map_or("decode_only", Ingress::name)
    )
}

fn chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Elements(1));
    for (upstream, ingress) in pairs() {
        let chunk = upstream.text_chunk(" skips").unwrap();
        group.bench_function(label(upstream, ingress), |b| {
            b.iter_batched_ref(
                || Pipeline::mid_stream(upstream, ingress).unwrap(),
                |pipeline| pipeline.push(chunk.clone()).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream_20");
    for (upstream, ingress) in pairs() {
        let chunks = upstream.stream(20).unwrap();
        group.throughput(Throughput::Elements(chunks.len() as u64));
        group.bench_function(label(upstream, ingress), |b| {
            b.iter_batched(
                || (Pipeline::new(upstream, ingress).unwrap(), chunks.clone()),
                |(mut pipeline, chunks)| {
                    let mut written = 0;
                    for chunk in chunks {
                        written += pipeline.push(chunk).unwrap();
                    }
                    written + pipeline.finish().unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, chunk, stream);
criterion_main!(benches);
