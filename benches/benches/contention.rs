//! Throughput of one shared object (one breaker, one cache key, one stack) called by one thread and
//! by two threads at once, each thread on its own current-thread runtime. Criterion reports the
//! total in elements per second: with two threads an iteration is two calls, so `Melem/s` is the
//! total millions of calls per second.
//!
//! `cargo bench -p benches --bench contention [-- GROUP]`; the figures are in BENCHMARKS.md.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Barrier, LazyLock, Mutex};
use std::time::{Duration, Instant};

use benches::{
    Attempts, BenchError, BenchResult, HandBreaker, alt, failsafe_breaker, hand_retry,
    recloser_breaker, runtime, work,
};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use reliability::{cached, circuit_breaker, fallback, retry, timeout};
use tower::{Service, ServiceBuilder, ServiceExt};

const SECS_30: Duration = Duration::from_secs(30);

/// Runs `iters` calls of `f` on each of `threads` threads at once; the time of the slowest thread.
fn run_threads<F, Fut>(threads: usize, iters: u64, f: &F) -> Duration
where
    F: Fn(u64) -> Fut + Sync,
    Fut: Future,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let rt = runtime();
                    barrier.wait();
                    let start = Instant::now();
                    rt.block_on(async {
                        for _ in 0..iters {
                            black_box(f(black_box(7)).await);
                        }
                    });
                    start.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| panic!("a worker panicked")))
            .max()
            .unwrap_or_default()
    })
}

/// Measures `f` as `id` with one thread and with two, in `group`.
fn bench<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, f: F)
where
    F: Fn(u64) -> Fut + Sync,
    Fut: Future,
{
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        let name = format!(
            "{id}/{threads} thread{}",
            if threads == 1 { "" } else { "s" }
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &f))
        });
    }
}

#[circuit_breaker(name = "contention.breaker")]
async fn ours_breaker(x: u64) -> BenchResult {
    work(x).await
}

fn breaker_group(c: &mut Criterion) {
    let hand = HandBreaker::new(5, Duration::from_secs(60));
    let ours_type = reliability::CircuitBreaker::builder("contention.breaker.type")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ours_rate = reliability::CircuitBreaker::builder("contention.breaker.rate")
        .failure_rate(0.5)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let recloser = recloser_breaker(None, Duration::from_secs(60));
    let failsafe = failsafe_breaker(5, Duration::from_secs(60));

    let mut g = c.benchmark_group("contention/breaker");
    bench(&mut g, "floor", work);
    bench(&mut g, "hand-written", |x| hand.call(work(x)));
    bench(&mut g, "ours", ours_breaker);
    bench(&mut g, "ours (CircuitBreaker::call)", |x| {
        ours_type.call(work(x))
    });
    bench(&mut g, "ours, rate rule (CircuitBreaker::call)", |x| {
        ours_rate.call(work(x))
    });
    bench(&mut g, "recloser", |x| recloser.call(work(x)));
    bench(&mut g, "failsafe", |x| failsafe.call(work(x)));
    g.finish();
}

#[cached(max_size = 10_000)]
async fn ours_cached(x: u64) -> u64 {
    x.wrapping_add(1)
}

#[cached::macros::concurrent_cached(max_size = 10_000)]
async fn cached_concurrent(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// The application's error in the users' shape: a variant carrying `reliability::Error` (`Clone`,
/// as `cached`'s concurrent store requires).
#[derive(Debug, Clone)]
enum AppError {
    #[allow(dead_code)]
    Status(u16),
    #[allow(dead_code)]
    Reliability(reliability::Error),
}

impl From<reliability::Error> for AppError {
    fn from(e: reliability::Error) -> Self {
        AppError::Reliability(e)
    }
}

/// The users' shape (issue "Performance that holds outside our own harness"): a `ttl`, and a
/// `Result` return whose error carries `reliability::Error`.
#[cached(ttl = 60, max_size = 10_000)]
async fn ours_cached_ttl(x: u64) -> Result<u64, AppError> {
    Ok(x.wrapping_add(1))
}

#[cached::macros::concurrent_cached(max_size = 10_000, ttl_secs = 60)]
async fn cached_concurrent_ttl(x: u64) -> Result<u64, AppError> {
    Ok(x.wrapping_add(1))
}

static MUTEX_MAP: LazyLock<Mutex<HashMap<u64, u64>>> =
    LazyLock::new(|| Mutex::new(HashMap::from([(7, 8)])));

fn cache_group(c: &mut Criterion) {
    let moka_future = moka::future::Cache::<u64, u64>::new(10_000);
    let moka_sync = moka::sync::Cache::<u64, u64>::new(10_000);
    runtime().block_on(async {
        moka_future.insert(7, 8).await;
        moka_sync.insert(7, 8);
        ours_cached(7).await;
        cached_concurrent(7).await;
        let warm = [
            ours_cached_ttl(7).await.is_ok(),
            cached_concurrent_ttl(7).await.is_ok(),
        ];
        assert_eq!(warm, [true; 2], "the ttl rows must hit");
    });

    let mut g = c.benchmark_group("contention/cache_hit");
    bench(&mut g, "Mutex<HashMap>", |x| async move {
        MUTEX_MAP
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&x)
            .copied()
    });
    bench(&mut g, "ours", ours_cached);
    bench(&mut g, "moka future get", |x| {
        let cache = &moka_future;
        async move { cache.get(&x).await }
    });
    bench(&mut g, "moka sync get", |x| {
        let cache = &moka_sync;
        async move { cache.get(&x) }
    });
    bench(&mut g, "cached #[concurrent_cached]", cached_concurrent);
    bench(&mut g, "ours, ttl, Result", ours_cached_ttl);
    bench(
        &mut g,
        "cached #[concurrent_cached], ttl_secs, Result",
        cached_concurrent_ttl,
    );
    g.finish();
}

#[fallback(alt)]
#[retry(max = 3)]
#[circuit_breaker(name = "contention.stack")]
#[timeout(secs = 30)]
async fn ours_stack(x: u64) -> BenchResult {
    work(x).await
}

async fn hand_fallback<F: Future<Output = BenchResult>>(primary: F, x: u64) -> BenchResult {
    match primary.await {
        Ok(v) => Ok(v),
        Err(_) => alt(x).await,
    }
}

fn stack_group(c: &mut Criterion) {
    let hand = HandBreaker::new(5, Duration::from_secs(60));
    let tower_stack = ServiceBuilder::new()
        .retry(Attempts(3))
        .timeout(SECS_30)
        .service_fn(work);

    let mut g = c.benchmark_group("contention/stack");
    bench(&mut g, "ours", ours_stack);
    bench(&mut g, "hand-written", |x| {
        let hand = &hand;
        hand_fallback(
            hand_retry(3, Duration::from_secs(1), move || {
                hand.call(async move {
                    tokio::time::timeout(SECS_30, work(x))
                        .await
                        .unwrap_or(Err(BenchError::Service))
                })
            }),
            x,
        )
    });
    bench(&mut g, "tower retry+timeout", |x| {
        let mut svc = tower_stack.clone();
        async move { svc.ready().await?.call(x).await }
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    breaker_group(c);
    cache_group(c);
    stack_group(c);
}

criterion_group!(contention, all);
criterion_main!(contention);
