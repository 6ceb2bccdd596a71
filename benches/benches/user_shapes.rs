//! The policies in the shapes users write, beside the peers in the same shapes: the error type is
//! an enum with a variant holding `reliability::Error` (as the README teaches), the annotated
//! function calls another `async fn` that calls the service and maps its error, `#[cached]`
//! returns a `Result`, and the runtime is built with `enable_all` (the I/O driver on).
//!
//! `user_shapes/plain` measures the peers as a standalone benchmark of each would: built once,
//! their own small error type, the service called directly; `user_shapes/harness` measures
//! them exactly as `--bench overhead` does. Side by side, they say what our harness adds to each
//! peer.
//!
//! `cargo bench -p benches --bench user_shapes [-- GROUP]`; the figures are in BENCHMARKS.md.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use reliability::{cached, circuit_breaker, fallback, retry, timeout};
use tokio::runtime::Runtime;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

const SECS_30: Duration = Duration::from_secs(30);

/// The application's error, as the README teaches it.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("service answered {0}")]
    Status(u16),
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

/// The service: ready at once, with its own error type.
async fn backend(x: u64) -> Result<u64, u16> {
    Ok(x.wrapping_add(1))
}

/// The service as a standalone benchmark of a peer writes it: a small error type of its own
/// (one that tower's timeout can box).
async fn service(x: u64) -> Result<u64, std::io::Error> {
    Ok(x.wrapping_add(1))
}

/// The same service with the error type of `--bench overhead` (`benches::BenchError`), defined
/// here rather than in the `benches` library.
async fn service_bench_error(x: u64) -> benches::BenchResult {
    Ok(x.wrapping_add(1))
}

/// The body of every annotated function: one `async fn` deeper, mapping the service's error.
async fn fetch(x: u64) -> Result<u64, AppError> {
    backend(x).await.map_err(AppError::Status)
}

/// The fallback target.
async fn alt(x: u64) -> Result<u64, AppError> {
    Ok(x.wrapping_sub(1))
}

/// A tower error back into the application's error.
fn from_tower(e: BoxError) -> AppError {
    match e.downcast::<AppError>() {
        Ok(e) => *e,
        Err(_) => AppError::Reliability(reliability::Error::Timeout { after: SECS_30 }),
    }
}

/// The runtime of a service: `enable_all`, as `#[tokio::main]` builds it (current thread here,
/// so that every call runs on the measuring thread).
fn user_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}

/// Measures `f(7)`, awaited on `rt`, as `id` in `group`.
fn bench<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, id: &str, mut f: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future,
{
    group.bench_function(id, |b| b.to_async(rt).iter(|| f(black_box(7))));
}

/// tower's retry policy: `max` attempts in all, retried at once.
#[derive(Debug, Clone, Copy)]
struct Attempts(usize);

impl<E> tower::retry::Policy<u64, u64, E> for Attempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

// ---------------------------------------------------------------------------------------------
// ours, in the user's shapes

#[retry(max = 3)]
async fn ours_retry(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[circuit_breaker(name = "user_shapes.breaker")]
async fn ours_breaker(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[timeout(secs = 30)]
async fn ours_timeout(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[fallback(alt)]
async fn ours_fallback(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[fallback(alt)]
#[retry(max = 3)]
#[circuit_breaker(name = "user_shapes.stack")]
#[timeout(secs = 30)]
async fn ours_stack(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[cached(ttl = 60, max_size = 10_000)]
async fn ours_cached(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

#[cached::macros::cached(max_size = 10_000, ttl_secs = 60)]
async fn cached_cached(x: u64) -> Result<u64, AppError> {
    fetch(x).await
}

async fn hand_fallback(x: u64) -> Result<u64, AppError> {
    match fetch(x).await {
        Ok(v) => Ok(v),
        Err(_) => alt(x).await,
    }
}

fn user_shapes(c: &mut Criterion) {
    let rt = user_runtime();
    let rt = &rt;
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let failsafe = failsafe::Config::new().build();
    let tower_retry = ServiceBuilder::new().retry(Attempts(3)).service_fn(fetch);
    let tower_stack = ServiceBuilder::new()
        .retry(Attempts(3))
        .timeout(SECS_30)
        .service_fn(fetch);
    let moka_ttl = moka::future::Cache::<u64, u64>::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .build();
    rt.block_on(async {
        moka_ttl.insert(7, 8).await;
        let warm = [ours_cached(7).await.is_ok(), cached_cached(7).await.is_ok()];
        assert_eq!(warm, [true; 2], "the cached rows must hit");
    });

    let mut g = c.benchmark_group("user_shapes");
    bench(&mut g, rt, "floor", fetch);

    bench(&mut g, rt, "retry/ours", ours_retry);
    bench(&mut g, rt, "retry/tokio-retry", |x| {
        // As its README shows: the strategy built for every call, with jitter.
        let strategy = tokio_retry::strategy::ExponentialBackoff::from_millis(10)
            .map(tokio_retry::strategy::jitter)
            .take(2);
        tokio_retry::Retry::start(strategy, move || fetch(x))
    });
    bench(&mut g, rt, "retry/tower", |x| {
        let svc = tower_retry.clone();
        async move { svc.oneshot(x).await }
    });

    bench(&mut g, rt, "breaker/ours", ours_breaker);
    bench(&mut g, rt, "breaker/recloser", |x| {
        let call = recloser.call(fetch(x));
        async move {
            call.await.map_err(|e| match e {
                recloser::Error::Inner(e) => e,
                recloser::Error::Rejected => AppError::Status(503),
            })
        }
    });
    bench(&mut g, rt, "breaker/failsafe", |x| {
        let call = failsafe.call(fetch(x));
        async move {
            call.await.map_err(|e| match e {
                failsafe::Error::Inner(e) => e,
                failsafe::Error::Rejected => AppError::Status(503),
            })
        }
    });

    bench(&mut g, rt, "timeout/ours", ours_timeout);
    bench(&mut g, rt, "timeout/tokio::time::timeout", |x| async move {
        tokio::time::timeout(SECS_30, fetch(x))
            .await
            .unwrap_or(Err(AppError::Reliability(reliability::Error::Timeout {
                after: SECS_30,
            })))
    });

    bench(&mut g, rt, "fallback/ours", ours_fallback);
    bench(&mut g, rt, "fallback/hand-written", hand_fallback);

    bench(&mut g, rt, "stack/ours", ours_stack);
    bench(&mut g, rt, "stack/tower retry+timeout", |x| {
        let mut svc = tower_stack.clone();
        async move {
            match svc.ready().await {
                Ok(svc) => svc.call(x).await.map_err(from_tower),
                Err(e) => Err(from_tower(e)),
            }
        }
    });

    bench(&mut g, rt, "cache/ours", ours_cached);
    bench(&mut g, rt, "cache/cached #[cached]", cached_cached);
    bench(&mut g, rt, "cache/moka future get", |x| {
        let cache = &moka_ttl;
        async move {
            match cache.get(&x).await {
                Some(v) => Ok(v),
                None => fetch(x).await,
            }
        }
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// the peers as a standalone benchmark of each measures them

/// Measures, in a plain loop, `call(&mut state, 7)` awaited, `state` built once for the loop.
fn bench_loop<S, F, R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    state: S,
    call: F,
) where
    S: Clone,
    F: AsyncFnMut(&mut S, u64) -> R + Clone,
{
    group.bench_function(id, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut state = state.clone();
            let mut call = call.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(call(&mut state, black_box(7)).await);
                }
                start.elapsed()
            }
        });
    });
}

fn plain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
    let rt = &rt;
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let tower_retry = ServiceBuilder::new().retry(Attempts(3)).service_fn(service);
    let tower_stack = ServiceBuilder::new()
        .retry(Attempts(3))
        .timeout(SECS_30)
        .service_fn(service);

    let mut g = c.benchmark_group("user_shapes/plain");
    bench(&mut g, rt, "floor", service);
    bench(&mut g, rt, "retry/tokio-retry", |x| {
        let strategy = tokio_retry::strategy::ExponentialBackoff::from_millis(10).take(2);
        tokio_retry::Retry::start(strategy, move || service(x))
    });
    bench_loop(
        &mut g,
        rt,
        "retry/tower, one service",
        tower_retry.clone(),
        async |svc, x| match svc.ready().await {
            Ok(svc) => svc.call(x).await,
            Err(e) => Err(e),
        },
    );
    bench(&mut g, rt, "retry/tower, clone per call", |x| {
        tower_retry.clone().oneshot(x)
    });
    bench(
        &mut g,
        rt,
        "retry/tokio-retry, overhead's error type",
        |x| {
            let strategy = tokio_retry::strategy::ExponentialBackoff::from_millis(10).take(2);
            tokio_retry::Retry::start(strategy, move || service_bench_error(x))
        },
    );
    bench(&mut g, rt, "breaker/recloser", |x| {
        recloser.call(service(x))
    });
    bench(&mut g, rt, "breaker/recloser, overhead's error type", |x| {
        recloser.call(service_bench_error(x))
    });
    bench_loop(
        &mut g,
        rt,
        "stack/tower retry+timeout, one service",
        tower_stack.clone(),
        async |svc, x| match svc.ready().await {
            Ok(svc) => svc.call(x).await,
            Err(e) => Err(e),
        },
    );
    bench(
        &mut g,
        rt,
        "stack/tower retry+timeout, clone per call",
        |x| {
            let mut svc = tower_stack.clone();
            async move { svc.ready().await?.call(x).await }
        },
    );
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// the peers exactly as `--bench overhead` measures them

fn harness(c: &mut Criterion) {
    let rt = benches::runtime();
    let rt = &rt;
    let recloser = benches::recloser_breaker(None, Duration::from_secs(60));
    let tower_retry = ServiceBuilder::new()
        .retry(benches::Attempts(3))
        .service_fn(benches::work);
    let tower_stack = ServiceBuilder::new()
        .retry(benches::Attempts(3))
        .timeout(SECS_30)
        .service_fn(benches::work);

    let mut g = c.benchmark_group("user_shapes/harness");
    bench(&mut g, rt, "floor", benches::work);
    bench(&mut g, rt, "retry/tokio-retry", |x| {
        let strategy = tokio_retry::strategy::ExponentialBackoff::from_millis(10).take(2);
        tokio_retry::Retry::start(strategy, move || benches::work(x))
    });
    bench(&mut g, rt, "retry/tower, clone per call", |x| {
        tower_retry.clone().oneshot(x)
    });
    bench(&mut g, rt, "breaker/recloser", |x| {
        recloser.call(benches::work(x))
    });
    bench(
        &mut g,
        rt,
        "stack/tower retry+timeout, clone per call",
        |x| {
            let mut svc = tower_stack.clone();
            async move { svc.ready().await?.call(x).await }
        },
    );
    g.finish();
}

criterion_group!(benches, user_shapes, plain, harness);
criterion_main!(benches);
