//! Request translation of a ~100 KB agent conversation: each ingress dialect's decoder (client
//! body → canonical request) and each upstream dialect's encoder (canonical → provider body).
//! Throughput is the decoded body's size for decoders and the produced body's for encoders.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark whose input is broken must stop"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbar_bench::{Ingress, REQUEST_BYTES, Upstream};

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_100kb");
    for ingress in Ingress::ALL {
        let body = ingress.request_body(REQUEST_BYTES);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(ingress.name(), |b| {
            b.iter(|| ingress.decode(black_box(&body)).unwrap())
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let body = Ingress::OpenAiChat.request_body(REQUEST_BYTES);
    let request = Ingress::OpenAiChat.decode(&body).unwrap();
    let mut group = c.benchmark_group("encode_100kb");
    for upstream in Upstream::ALL {
        let egress = upstream.egress();
        let size = egress.chat_body(&request, "bench-target").unwrap().len();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(upstream.request_name(), |b| {
            b.iter(|| {
                egress
                    .chat_body(black_box(&request), "bench-target")
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
