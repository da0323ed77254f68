//! Runs `Router::plan_for_bench` a given number of times, for counting instructions under
//! callgrind (`valgrind --tool=callgrind --toggle-collect='*plan_for_bench*'`): on a shared,
//! noisy machine instruction counts compare builds where criterion's wall-clock times cannot.
//!
//! `plan_count KIND DEPLOYMENTS ITERATIONS [small|large]`, e.g. `plan_count anthropic 1000 100`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool whose input is broken must stop"
)]

use std::collections::HashMap;
use std::hint::black_box;

use crossbar_bench::{catalog_config, routing_requests};
use crossbar_core::router::{Prompt, Router, Tokenizer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("anthropic", String::as_str);
    let size: usize = args
        .get(2)
        .map_or(Ok(1000), |s| s.parse())
        .expect("DEPLOYMENTS");
    let iterations: usize = args
        .get(3)
        .map_or(Ok(100), |s| s.parse())
        .expect("ITERATIONS");
    let (small, large) = routing_requests().expect("the benchmark's requests");
    let request = if args.get(4).map(String::as_str) == Some("large") {
        large
    } else {
        small
    };
    let router =
        Router::from_config(&catalog_config(size, kind).unwrap(), &HashMap::new()).unwrap();
    // What is loaded once (the BPE) is not what is counted: it loads here, outside
    // `plan_for_bench`.
    black_box(Prompt::of_chat(&request).tokens(Tokenizer::OpenAi));
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        black_box(router.plan_for_bench(black_box(&request)).unwrap());
    }
    let elapsed = started.elapsed();
    println!(
        "{kind} {size} deployments: {iterations} decisions, {:.2} µs each (wall clock, noisy)",
        elapsed.as_secs_f64() * 1e6 / iterations.max(1) as f64
    );
}
