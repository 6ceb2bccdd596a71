//! The cost of each policy on one thread, beside the floor (a bare `async fn` call), a hand-written
//! equivalent and the peers doing the same job, all in one run so that every ratio is taken from
//! figures measured side by side. Every body is ready at once unless the group says otherwise.
//!
//! `cargo bench -p benches --bench overhead [-- GROUP]`; the figures are in BENCHMARKS.md. The
//! group `metrics/stack_ok` measures one thing per build: run it without and with
//! `--features metrics`.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use backon::Retryable;
use benches::{
    Attempts, BenchError, BenchResult, BudgetAttempts, HandBreaker, HedgeAll, alt, down,
    failsafe_breaker, failsafe_rate_breaker, flaky, hand_retry, recloser_breaker, runtime, slow,
    work,
};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use reliability::{bulkhead, cached, circuit_breaker, fallback, rate_limit, retry, timeout};
use std::num::NonZeroU32;
use tokio::runtime::Runtime;
use tower::retry::budget::TpsBudget;
use tower::{Service, ServiceBuilder, ServiceExt};

const SECS_30: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

/// Measures `f(7)`, awaited on `rt`, as `id` in `group`.
fn bench<F, Fut>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, id: &str, mut f: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future,
{
    group.bench_function(id, |b| b.to_async(rt).iter(|| f(black_box(7))));
}

// ---------------------------------------------------------------------------------------------
// retry

#[retry(max = 3)]
async fn ours_retry(x: u64) -> BenchResult {
    work(x).await
}

#[retry(max = 3, delay = 0)]
async fn ours_retry_flaky(x: u64) -> BenchResult {
    flaky(x).await
}

fn retry_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type = reliability::Retry::new("bench.retry.type", reliability::RetryPolicy::DEFAULT);
    let tower_retry = ServiceBuilder::new().retry(Attempts(3)).service_fn(work);

    let mut g = c.benchmark_group("retry/ok");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "hand-written", |x| {
        hand_retry(3, Duration::from_secs(1), move || work(x))
    });
    bench(&mut g, rt, "ours", ours_retry);
    bench(&mut g, rt, "ours (Retry::run)", |x| {
        ours_type.run(move || work(x))
    });
    bench(&mut g, rt, "tower", |x| tower_retry.clone().oneshot(x));
    bench(&mut g, rt, "backon", |x| {
        (move || work(x)).retry(backon::ExponentialBuilder::default())
    });
    bench(&mut g, rt, "tokio-retry", |x| {
        let strategy = tokio_retry::strategy::ExponentialBackoff::from_millis(10).take(2);
        tokio_retry::Retry::start(strategy, move || work(x))
    });
    bench(&mut g, rt, "tokio-retry2", |x| {
        use tokio_retry2::MapErr;
        let strategy = tokio_retry2::strategy::ExponentialBackoff::from_millis(10).take(2);
        tokio_retry2::Retry::spawn(strategy, move || async move {
            work(x).await.map_transient_err()
        })
    });
    g.finish();

    let ours_type_now = reliability::Retry::new(
        "bench.retry.type_now",
        reliability::RetryPolicy::builder()
            .delay(Duration::ZERO)
            .build()
            .unwrap_or_default(),
    );
    let mut g = c.benchmark_group("retry/fail_once");
    bench(&mut g, rt, "floor", |x| async move {
        match flaky(x).await {
            Err(_) => flaky(x).await,
            ok => ok,
        }
    });
    bench(&mut g, rt, "hand-written", |x| {
        hand_retry(3, Duration::ZERO, move || flaky(x))
    });
    bench(&mut g, rt, "ours", ours_retry_flaky);
    bench(&mut g, rt, "ours (Retry::run)", |x| {
        ours_type_now.run(move || flaky(x))
    });
    let tower_flaky = ServiceBuilder::new().retry(Attempts(3)).service_fn(flaky);
    bench(&mut g, rt, "tower", |x| tower_flaky.clone().oneshot(x));
    bench(&mut g, rt, "backon", |x| {
        (move || flaky(x))
            .retry(backon::ExponentialBuilder::default().with_min_delay(Duration::ZERO))
    });
    bench(&mut g, rt, "tokio-retry", |x| {
        let strategy = tokio_retry::strategy::FixedInterval::from_millis(0).take(2);
        tokio_retry::Retry::start(strategy, move || flaky(x))
    });
    bench(&mut g, rt, "tokio-retry2", |x| {
        use tokio_retry2::MapErr;
        let strategy = tokio_retry2::strategy::FixedInterval::from_millis(0).take(2);
        tokio_retry2::Retry::spawn(strategy, move || async move {
            flaky(x).await.map_transient_err()
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// timeout

#[timeout(secs = 30)]
async fn ours_timeout(x: u64) -> BenchResult {
    work(x).await
}

#[timeout(secs = 30)]
async fn ours_timeout_slow(x: u64) -> BenchResult {
    slow(x).await
}

fn timeout_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type =
        reliability::Timeout::new("bench.timeout.type", SECS_30).unwrap_or_else(|e| panic!("{e}"));
    let tower_timeout = ServiceBuilder::new().timeout(SECS_30).service_fn(work);
    let tower_slow = ServiceBuilder::new().timeout(SECS_30).service_fn(slow);

    let mut g = c.benchmark_group("timeout/ready");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "tokio::time::timeout", |x| {
        tokio::time::timeout(SECS_30, work(x))
    });
    bench(&mut g, rt, "ours", ours_timeout);
    bench(&mut g, rt, "ours (Timeout::run)", |x| {
        ours_type.run(work(x))
    });
    bench(&mut g, rt, "tower", |x| tower_timeout.clone().oneshot(x));
    g.finish();

    let mut g = c.benchmark_group("timeout/pending");
    bench(&mut g, rt, "floor", slow);
    bench(&mut g, rt, "tokio::time::timeout", |x| {
        tokio::time::timeout(SECS_30, slow(x))
    });
    bench(&mut g, rt, "ours", ours_timeout_slow);
    bench(&mut g, rt, "ours (Timeout::run)", |x| {
        ours_type.run(slow(x))
    });
    bench(&mut g, rt, "tower", |x| tower_slow.clone().oneshot(x));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// circuit breaker

#[circuit_breaker(name = "bench.breaker.closed")]
async fn ours_breaker(x: u64) -> BenchResult {
    work(x).await
}

#[circuit_breaker(name = "bench.breaker.open", failure_threshold = 1, cooldown = 3600)]
async fn ours_breaker_open(x: u64) -> BenchResult {
    down(x).await
}

fn breaker_group(c: &mut Criterion, rt: &Runtime) {
    let hand = HandBreaker::new(5, Duration::from_secs(60));
    let ours_type = reliability::CircuitBreaker::builder("bench.breaker.type")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let recloser = recloser_breaker(None, Duration::from_secs(60));
    let failsafe = failsafe_breaker(5, Duration::from_secs(60));

    let mut g = c.benchmark_group("breaker/closed");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "hand-written", |x| hand.call(work(x)));
    bench(&mut g, rt, "ours", ours_breaker);
    bench(&mut g, rt, "ours (CircuitBreaker::call)", |x| {
        ours_type.call(work(x))
    });
    bench(&mut g, rt, "recloser", |x| recloser.call(work(x)));
    bench(&mut g, rt, "failsafe", |x| failsafe.call(work(x)));
    g.finish();

    // Open every breaker: one failure for those with a threshold of one, enough for the others.
    let hand_open = HandBreaker::new(1, HOUR);
    let ours_type_open = reliability::CircuitBreaker::builder("bench.breaker.type_open")
        .failure_threshold(1)
        .cooldown(HOUR)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let recloser_open = recloser_breaker(Some(1), HOUR);
    let failsafe_open = failsafe_breaker(1, HOUR);
    rt.block_on(async {
        for _ in 0..3 {
            let _ = hand_open.call(down(0)).await;
            let _ = ours_breaker_open(0).await;
            let _ = ours_type_open.call(down(0)).await;
            let _ = recloser_open.call(down(0)).await;
            let _ = failsafe_open.call(down(0)).await;
        }
        let open = [
            matches!(
                hand_open.call(work(0)).await,
                Err(BenchError::Reliability(_))
            ),
            matches!(ours_breaker_open(0).await, Err(BenchError::Reliability(_))),
            matches!(
                ours_type_open.call(work(0)).await,
                Err(BenchError::Reliability(_))
            ),
            matches!(
                recloser_open.call(work(0)).await,
                Err(recloser::Error::Rejected)
            ),
            matches!(
                failsafe_open.call(work(0)).await,
                Err(failsafe::Error::Rejected)
            ),
        ];
        assert_eq!(
            open, [true; 5],
            "every breaker of breaker/open must be open"
        );
    });

    let mut g = c.benchmark_group("breaker/open");
    bench(&mut g, rt, "floor", down);
    bench(&mut g, rt, "hand-written", |x| hand_open.call(down(x)));
    bench(&mut g, rt, "ours", ours_breaker_open);
    bench(&mut g, rt, "ours (CircuitBreaker::call)", |x| {
        ours_type_open.call(down(x))
    });
    bench(&mut g, rt, "recloser", |x| recloser_open.call(down(x)));
    bench(&mut g, rt, "failsafe", |x| failsafe_open.call(down(x)));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// fallback

#[fallback(alt)]
async fn ours_fallback(x: u64) -> BenchResult {
    work(x).await
}

#[fallback(alt)]
async fn ours_fallback_down(x: u64) -> BenchResult {
    down(x).await
}

async fn hand_fallback<F: Future<Output = BenchResult>>(primary: F, x: u64) -> BenchResult {
    match primary.await {
        Ok(v) => Ok(v),
        Err(_) => alt(x).await,
    }
}

fn fallback_group(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("fallback/primary_ok");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "hand-written", |x| hand_fallback(work(x), x));
    bench(&mut g, rt, "ours", ours_fallback);
    g.finish();

    let mut g = c.benchmark_group("fallback/primary_fails");
    bench(&mut g, rt, "floor", |x| async move {
        let _ = down(x).await;
        alt(x).await
    });
    bench(&mut g, rt, "hand-written", |x| hand_fallback(down(x), x));
    bench(&mut g, rt, "ours", ours_fallback_down);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// the recommended stack, without the cache

#[fallback(alt)]
#[retry(max = 3)]
#[circuit_breaker(name = "bench.stack")]
#[timeout(secs = 30)]
async fn ours_stack(x: u64) -> BenchResult {
    work(x).await
}

fn stack_group(c: &mut Criterion, rt: &Runtime) {
    let hand = HandBreaker::new(5, Duration::from_secs(60));
    let hand_t = HandBreaker::new(5, Duration::from_secs(60));
    let tower_stack = ServiceBuilder::new()
        .retry(Attempts(3))
        .timeout(SECS_30)
        .service_fn(work);

    let mut g = c.benchmark_group("stack/ok");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "hand-written, no timeout", |x| {
        let hand = &hand;
        hand_fallback(
            hand_retry(3, Duration::from_secs(1), move || hand.call(work(x))),
            x,
        )
    });
    bench(&mut g, rt, "hand-written", |x| {
        let hand = &hand_t;
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
    bench(&mut g, rt, "ours", ours_stack);
    bench(&mut g, rt, "tower retry+timeout", |x| {
        let mut svc = tower_stack.clone();
        async move { svc.ready().await?.call(x).await }
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// cache hit

#[cached(max_size = 10_000)]
async fn ours_cached(x: u64) -> u64 {
    x.wrapping_add(1)
}

#[cached::macros::cached(max_size = 10_000)]
async fn cached_cached(x: u64) -> u64 {
    x.wrapping_add(1)
}

#[cached::macros::concurrent_cached(max_size = 10_000)]
async fn cached_concurrent(x: u64) -> u64 {
    x.wrapping_add(1)
}

static MUTEX_MAP: LazyLock<Mutex<HashMap<u64, u64>>> = LazyLock::new(Default::default);

async fn mutex_map(x: u64) -> u64 {
    let hit = MUTEX_MAP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&x)
        .copied();
    match hit {
        Some(v) => v,
        None => {
            let v = x.wrapping_add(1);
            MUTEX_MAP
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(x, v);
            v
        }
    }
}

fn cache_group(c: &mut Criterion, rt: &Runtime) {
    let moka_future = moka::future::Cache::<u64, u64>::new(10_000);
    let moka_sync = moka::sync::Cache::<u64, u64>::new(10_000);
    rt.block_on(async {
        moka_future.insert(7, 8).await;
        moka_sync.insert(7, 8);
        ours_cached(7).await;
        cached_cached(7).await;
        cached_concurrent(7).await;
        mutex_map(7).await;
    });

    let mut g = c.benchmark_group("cache/hit");
    bench(&mut g, rt, "floor", |x| async move { x.wrapping_add(1) });
    bench(&mut g, rt, "Mutex<HashMap>", mutex_map);
    bench(&mut g, rt, "ours", ours_cached);
    bench(&mut g, rt, "moka future get", |x| {
        let cache = &moka_future;
        async move { cache.get(&x).await }
    });
    bench(&mut g, rt, "moka sync get", |x| {
        let cache = &moka_sync;
        async move { cache.get(&x) }
    });
    bench(&mut g, rt, "cached #[cached]", cached_cached);
    bench(&mut g, rt, "cached #[concurrent_cached]", cached_concurrent);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// hedge

/// A hedge whose first attempt answers at once: no other attempt starts. `Retry` on the same body
/// is the cost of a policy that only looks at the outcome; tower's hedge (a p95 over a rotating
/// HdrHistogram behind a mutex) does the same job as ours at a percentile.
fn hedge_group(c: &mut Criterion, rt: &Runtime) {
    let retry = reliability::Retry::new("bench.hedge.retry", reliability::RetryPolicy::DEFAULT);
    let fixed = reliability::Hedge::builder("bench.hedge.fixed", Duration::from_millis(100))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let p95 =
        reliability::Hedge::builder("bench.hedge.p95", reliability::HedgeAfter::Percentile(95.0))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
    // Our layer over the same service, made ready and called the same way as tower's.
    let mut layer_fixed = ServiceBuilder::new()
        .layer(reliability::tower::HedgeLayer::new(
            reliability::Hedge::builder("bench.hedge.layer.fixed", Duration::from_millis(100))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        ))
        .service_fn(work);
    let mut layer_p95 = ServiceBuilder::new()
        .layer(reliability::tower::HedgeLayer::new(
            reliability::Hedge::builder(
                "bench.hedge.layer.p95",
                reliability::HedgeAfter::Percentile(95.0),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
        ))
        .service_fn(work);
    let mut tower_hedge = tower::hedge::Hedge::new(
        tower::service_fn(work),
        HedgeAll,
        20,
        0.95,
        Duration::from_secs(10),
    );

    let mut g = c.benchmark_group("hedge/ready");
    bench(&mut g, rt, "floor", work);
    bench(&mut g, rt, "Retry::run", |x| retry.run(move || work(x)));
    bench(&mut g, rt, "ours (Hedge::run, 100 ms)", |x| {
        fixed.run(move || work(x))
    });
    bench(&mut g, rt, "ours (Hedge::run, p95)", |x| {
        p95.run(move || work(x))
    });
    bench(&mut g, rt, "ours (HedgeLayer, 100 ms)", |x| {
        ready_call(&mut layer_fixed, x)
    });
    bench(&mut g, rt, "ours (HedgeLayer, p95)", |x| {
        ready_call(&mut layer_p95, x)
    });
    // Not `Clone`: one service, made ready (at once: `service_fn`) before each call.
    bench(&mut g, rt, "tower hedge (p95)", |x| {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match tower_hedge.poll_ready(&mut cx) {
            std::task::Poll::Ready(Ok(())) => {}
            _ => panic!("tower's hedge over a `service_fn` is ready at once"),
        }
        tower_hedge.call(x)
    });
    g.finish();
}

/// Makes `service` ready (at once over a `service_fn`) and calls it, as tower's own hedge is called.
fn ready_call<S: tower::Service<u64>>(service: &mut S, x: u64) -> S::Future {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match service.poll_ready(&mut cx) {
        std::task::Poll::Ready(Ok(())) => {}
        _ => panic!("a hedge over a `service_fn` is ready at once"),
    }
    service.call(x)
}

// metrics: the stack above with the feature `metrics` off (build without `--features metrics`),
// on but not exported yet (durations not recorded: one relaxed load per timed layer), and on while
// recording durations into a Prometheus recorder whose upkeep drains them every 100 ms.

fn metrics_group(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("metrics/stack_ok");
    #[cfg(not(feature = "metrics"))]
    bench(&mut g, rt, "feature off", ours_stack);
    #[cfg(feature = "metrics")]
    {
        bench(&mut g, rt, "feature on, before export", ours_stack);
        let id = if std::env::var("BENCH_RECORDER").as_deref() == Ok("counting") {
            metrics::set_global_recorder(counting::Recorder)
                .unwrap_or_else(|e| panic!("cannot install the counting recorder: {e}"));
            "feature on, recording (counting recorder)"
        } else {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|e| panic!("cannot install the Prometheus recorder: {e}"));
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(100));
                    handle.run_upkeep();
                }
            });
            "feature on, recording (prometheus)"
        };
        reliability::metrics::export();
        bench(&mut g, rt, id, ours_stack);
        // Exported, counters only: what a scrape reads costs a call nothing.
        reliability::metrics::record_durations(false);
        bench(
            &mut g,
            rt,
            "feature on, exported, durations off",
            ours_stack,
        );
        reliability::metrics::record_durations(true);
    }
    g.finish();
}

/// A recorder whose histograms only count their samples: what recording costs this crate (two
/// clock reads and one call through the facade's handle per timed layer), without an exporter's
/// own work.
#[cfg(feature = "metrics")]
mod counting {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit,
    };

    pub(crate) struct Recorder;

    struct Samples(AtomicU64);

    impl HistogramFn for Samples {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl metrics::Recorder for Recorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Samples(AtomicU64::new(0))))
        }
    }
}

// The groups below call `body`, defined in this file: `benches::work` lives in another crate and
// is never inlined without LTO, which makes the peers' futures around it slower than a user's own
// (see BENCHMARKS.md, "Why the peers measured slower here").

/// The body of the groups below: ready at once, it succeeds.
async fn body(x: u64) -> BenchResult {
    Ok(x.wrapping_add(1))
}

// ---------------------------------------------------------------------------------------------
// retry with a budget

#[retry(max = 3, name = "bench.retry.no_budget")]
async fn ours_retry_no_budget(x: u64) -> BenchResult {
    body(x).await
}

#[retry(max = 3, budget = 0.2, name = "bench.retry.budget")]
async fn ours_retry_budget(x: u64) -> BenchResult {
    body(x).await
}

fn retry_budget_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type = reliability::Retry::new(
        "bench.retry.type_budget",
        reliability::RetryPolicy::builder()
            .budget(0.2)
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let tower_retry = ServiceBuilder::new().retry(Attempts(3)).service_fn(body);
    let tower_budget = ServiceBuilder::new()
        .retry(BudgetAttempts {
            attempts: 3,
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        })
        .service_fn(body);

    let mut g = c.benchmark_group("retry/budget");
    bench(&mut g, rt, "floor", body);
    bench(&mut g, rt, "ours, no budget", ours_retry_no_budget);
    bench(&mut g, rt, "ours, budget", ours_retry_budget);
    bench(&mut g, rt, "ours (Retry::run), budget", |x| {
        ours_type.run(move || body(x))
    });
    bench(&mut g, rt, "tower, no budget", |x| {
        tower_retry.clone().oneshot(x)
    });
    bench(&mut g, rt, "tower, TpsBudget", |x| {
        tower_budget.clone().oneshot(x)
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// circuit breaker, rate rule

#[circuit_breaker(name = "bench.breaker.rate_calls", failure_rate = 0.5, window = 100)]
async fn ours_breaker_rate_calls(x: u64) -> BenchResult {
    body(x).await
}

#[circuit_breaker(name = "bench.breaker.rate_time", failure_rate = 0.5, window = "30s")]
async fn ours_breaker_rate_time(x: u64) -> BenchResult {
    body(x).await
}

fn breaker_rate_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type = reliability::CircuitBreaker::builder("bench.breaker.type_rate")
        .failure_rate(0.5)
        .window_calls(100)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    // recloser's default: a ring of 100 calls, open at a failure rate of 0.5.
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let failsafe = failsafe_rate_breaker(0.5, 100, SECS_30, Duration::from_secs(60));

    let mut g = c.benchmark_group("breaker/rate_closed");
    bench(&mut g, rt, "floor", body);
    bench(&mut g, rt, "ours, last 100 calls", ours_breaker_rate_calls);
    bench(&mut g, rt, "ours, last 30 s", ours_breaker_rate_time);
    bench(
        &mut g,
        rt,
        "ours (CircuitBreaker::call), last 100 calls",
        |x| ours_type.call(body(x)),
    );
    bench(&mut g, rt, "recloser, ring of 100", |x| {
        recloser.call(body(x))
    });
    bench(&mut g, rt, "failsafe, success rate over 30 s", |x| {
        failsafe.call(body(x))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// circuit breaker named by an expression: one breaker per value, looked up at each call

#[circuit_breaker(name = "bench.breaker.static_name")]
async fn ours_breaker_static_name(x: u64) -> BenchResult {
    body(x).await
}

#[circuit_breaker(name = region)]
async fn ours_breaker_named_by(region: &'static str, x: u64) -> BenchResult {
    body(x).await
}

fn breaker_named_by_group(c: &mut Criterion, rt: &Runtime) {
    let mut g = c.benchmark_group("breaker/named_by");
    bench(&mut g, rt, "floor", body);
    bench(&mut g, rt, "ours, name = \"...\"", ours_breaker_static_name);
    bench(&mut g, rt, "ours, name = region (one region)", |x| {
        ours_breaker_named_by("bench.breaker.region.eu", x)
    });
    let regions = [
        "bench.breaker.region.a",
        "bench.breaker.region.b",
        "bench.breaker.region.c",
    ];
    let mut i = 0;
    bench(
        &mut g,
        rt,
        "ours, name = region (three regions in turn)",
        move |x| {
            i = (i + 1) % regions.len();
            ours_breaker_named_by(regions[i], x)
        },
    );
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// rate limit, a permit free

// One permit a nanosecond with a burst of a billion: no call ever waits for one.
#[rate_limit(rate = 1_000_000_000, name = "bench.rate_limit")]
async fn ours_rate_limit(x: u64) -> BenchResult {
    body(x).await
}

fn rate_limit_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type = reliability::RateLimiter::builder("bench.rate_limit.type", 1_000_000_000)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let governor = governor::RateLimiter::direct(governor::Quota::per_second(
        NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MIN),
    ));

    rt.block_on(async {
        for _ in 0..10_000 {
            let admitted = [
                ours_rate_limit(7).await.is_ok(),
                ours_type.run(body(7)).await.is_ok(),
                governor.check().is_ok(),
            ];
            assert_eq!(
                admitted, [true; 3],
                "rate_limit/free must always find a permit"
            );
        }
    });

    let mut g = c.benchmark_group("rate_limit/free");
    bench(&mut g, rt, "floor", body);
    bench(&mut g, rt, "ours", ours_rate_limit);
    bench(&mut g, rt, "ours (RateLimiter::run)", |x| {
        ours_type.run(body(x))
    });
    bench(&mut g, rt, "governor check()", |x| {
        let admitted = governor.check();
        async move {
            match admitted {
                Ok(()) => body(x).await,
                Err(_) => Err(BenchError::Service),
            }
        }
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// bulkhead, a slot free

#[bulkhead(max = 64, name = "bench.bulkhead")]
async fn ours_bulkhead(x: u64) -> BenchResult {
    body(x).await
}

fn bulkhead_group(c: &mut Criterion, rt: &Runtime) {
    let ours_type = reliability::Bulkhead::builder("bench.bulkhead.type", 64)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let semaphore = tokio::sync::Semaphore::new(64);
    let tower_limit = ServiceBuilder::new().concurrency_limit(64).service_fn(body);

    rt.block_on(async {
        let admitted = [
            ours_bulkhead(7).await.is_ok(),
            ours_type.run(body(7)).await.is_ok(),
            tower_limit.clone().oneshot(7).await.is_ok(),
        ];
        assert_eq!(admitted, [true; 3], "bulkhead/free must always find a slot");
    });

    let mut g = c.benchmark_group("bulkhead/free");
    bench(&mut g, rt, "floor", body);
    bench(&mut g, rt, "ours", ours_bulkhead);
    bench(&mut g, rt, "ours (Bulkhead::run)", |x| {
        ours_type.run(body(x))
    });
    bench(&mut g, rt, "tokio Semaphore acquire", |x| {
        let semaphore = &semaphore;
        async move {
            let _permit = semaphore.acquire().await;
            body(x).await
        }
    });
    bench(&mut g, rt, "tokio Semaphore try_acquire", |x| {
        let semaphore = &semaphore;
        async move {
            let _permit = semaphore.try_acquire();
            body(x).await
        }
    });
    bench(&mut g, rt, "tower ConcurrencyLimit", |x| {
        tower_limit.clone().oneshot(x)
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let rt = runtime();
    retry_group(c, &rt);
    timeout_group(c, &rt);
    breaker_group(c, &rt);
    fallback_group(c, &rt);
    stack_group(c, &rt);
    cache_group(c, &rt);
    hedge_group(c, &rt);
    metrics_group(c, &rt);
    retry_budget_group(c, &rt);
    breaker_rate_group(c, &rt);
    breaker_named_by_group(c, &rt);
    rate_limit_group(c, &rt);
    bulkhead_group(c, &rt);
}

criterion_group!(overhead, all);
criterion_main!(overhead);
