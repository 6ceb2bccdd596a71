//! The closed path of a shared circuit breaker beside the same breaker unshared: a shared breaker
//! reads and publishes the store from a task of its own, so a call through a closed one costs what
//! a call through an unshared one does (plus one relaxed load: is that task running?).
//!
//! No server is needed: the store connects lazily, to a port where nothing listens, and a closed
//! breaker never asks it.
//!
//! `cargo bench -p benches --features redis --bench shared`

use std::hint::black_box;

use benches::work;
use criterion::{Criterion, criterion_group, criterion_main};
use reliability::CircuitBreaker;
use reliability::shared::{RedisStore, SharedBreaker};

fn closed(c: &mut Criterion) {
    // The store's connection needs tokio's I/O driver.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    let local = CircuitBreaker::builder("bench.shared.local")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let linked = CircuitBreaker::builder("bench.shared.linked")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let shared = rt.block_on(async {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .connect_lazy()
            .unwrap_or_else(|e| panic!("{e}"));
        SharedBreaker::new(&linked, &store)
    });

    let mut g = c.benchmark_group("breaker/closed");
    g.bench_function("unshared", |b| {
        b.to_async(&rt).iter(|| local.call(work(black_box(7))))
    });
    g.bench_function("shared", |b| {
        b.to_async(&rt).iter(|| shared.call(work(black_box(7))))
    });
    g.finish();
}

criterion_group!(shared, closed);
criterion_main!(shared);
