//! The hot paths of the shared policies beside the unshared ones: a shared breaker reads and
//! publishes the store from a task of its own, so a call through a closed one costs what a call
//! through an unshared one does (plus one relaxed load: is that task running?); a shared cache
//! answers a hit from its local tier, as an unshared cache does. Then what the Redis round trip
//! costs: a hit in the Redis tier after a local miss, against a real `redis-server` (started on a
//! free 127.0.0.1 port when one is on the PATH; the row is skipped, with a line saying so, when not).
//!
//! For the first two groups no server is needed: the store connects lazily, to a port where nothing
//! listens, and neither a closed breaker nor a local hit asks it.
//!
//! `cargo bench -p benches --features redis --bench shared`

use std::hint::black_box;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use benches::{BenchResult, work};
use criterion::{Criterion, criterion_group, criterion_main};
use reliability::shared::{RedisStore, SharedBreaker, SharedCache};
use reliability::{Cache, CircuitBreaker};

fn closed(c: &mut Criterion) {
    // The store's connection needs tokio's I/O driver.
    let rt = runtime();
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

fn cache(name: &str) -> Cache<u64, u64> {
    Cache::builder(name)
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cache_hits(c: &mut Criterion) {
    let rt = runtime();
    let local = cache("bench.shared.cache.local");
    let linked = cache("bench.shared.cache.linked");
    let shared = rt.block_on(async {
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .connect_lazy()
            .unwrap_or_else(|e| panic!("{e}"));
        SharedCache::new(&linked, &store)
    });
    // Both hold key 7 before the first timed call.
    rt.block_on(async {
        let _ = local.get_or_try_insert(7, work(7)).await;
        linked.run_pending_tasks().await;
        let _ = shared.get_or_try_insert(7, work(7)).await;
    });

    let mut g = c.benchmark_group("cache/hit");
    g.bench_function("unshared", |b| {
        b.to_async(&rt)
            .iter(|| local.get_or_try_insert(black_box(7), work(7)))
    });
    g.bench_function("shared, local tier", |b| {
        b.to_async(&rt)
            .iter(|| shared.get_or_try_insert(black_box(7), work(7)))
    });
    g.finish();
}

/// A `redis-server` of this benchmark on a free port, killed when dropped.
struct Server(Child);

impl Server {
    fn start() -> Option<(Server, String)> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some((Server(child), format!("redis://127.0.0.1:{port}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn never(_: u64) -> BenchResult {
    unreachable!("the Redis tier answers every timed call")
}

fn redis_hit(c: &mut Criterion) {
    let Some((_server, url)) = Server::start() else {
        eprintln!("shared: `redis-server` is not on the PATH: the Redis-tier row is skipped");
        return;
    };
    let rt = runtime();
    let store = rt.block_on(async {
        for _ in 0..200 {
            if let Ok(store) = RedisStore::connect(&url).await {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server at {url} did not answer");
    });
    // Replica A writes the entry; replica B, whose local tier is emptied before every call, reads it
    // from Redis (and fills its local tier again).
    let writer_cache = cache("bench.shared.redis.a");
    let reader_cache = cache("bench.shared.redis.b");
    let writer = SharedCache::with_name(&writer_cache, &store, "bench.redis");
    let reader = SharedCache::with_name(&reader_cache, &store, "bench.redis");
    rt.block_on(async {
        let _ = writer.get_or_try_insert(7, work(7)).await;
    });
    let mut g = c.benchmark_group("cache/redis_tier");
    g.bench_function("local miss, Redis hit", |b| {
        b.to_async(&rt).iter(|| {
            reader_cache.invalidate(&7);
            reader.get_or_try_insert(black_box(7), never(7))
        })
    });
    g.finish();
}

criterion_group!(shared, closed, cache_hits, redis_hit);
criterion_main!(shared);
