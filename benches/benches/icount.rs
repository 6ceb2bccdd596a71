//! Temporary: instructions per call under callgrind.
use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use benches::{BenchResult, runtime, work};
use reliability::{cached, circuit_breaker, fallback, retry, timeout};
use tokio::runtime::Runtime;

#[retry(max = 3)]
async fn ours_retry(x: u64) -> BenchResult { work(x).await }
#[timeout(secs = 30)]
async fn ours_timeout(x: u64) -> BenchResult { work(x).await }
#[circuit_breaker(name = "ic.breaker")]
async fn ours_breaker(x: u64) -> BenchResult { work(x).await }
#[fallback(benches::alt)]
async fn ours_fallback(x: u64) -> BenchResult { work(x).await }
#[fallback(benches::alt)]
#[retry(max = 3)]
#[circuit_breaker(name = "ic.stack")]
#[timeout(secs = 30)]
async fn ours_stack(x: u64) -> BenchResult { work(x).await }
#[cached(max_size = 10_000)]
async fn ours_cached(x: u64) -> u64 { x.wrapping_add(1) }

#[inline(never)]
fn icount_measure<F: FnMut(u64) -> Fut, Fut: Future>(rt: &Runtime, n: u64, mut f: F) {
    rt.block_on(async {
        for _ in 0..n {
            black_box(f(black_box(7)).await);
        }
    });
}

fn run<F: FnMut(u64) -> Fut, Fut: Future>(rt: &Runtime, n: u64, mut f: F) {
    rt.block_on(async { for _ in 0..10 { f(7).await; } });
    icount_measure(rt, n, f);
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n = 100_000;
    let rt = runtime();
    let moka_sync = moka::sync::Cache::<u64, u64>::new(10_000);
    moka_sync.insert(7, 8);
    let moka_future = moka::future::Cache::<u64, u64>::new(10_000);
    rt.block_on(moka_future.insert(7, 8));
    match which.as_str() {
        "floor" => run(&rt, n, work),
        "retry" => run(&rt, n, ours_retry),
        "timeout" => run(&rt, n, ours_timeout),
        "tokio_timeout" => run(&rt, n, |x| tokio::time::timeout(Duration::from_secs(30), work(x))),
        "breaker" => run(&rt, n, ours_breaker),
        "fallback" => run(&rt, n, ours_fallback),
        "stack" => run(&rt, n, ours_stack),
        "cached" => run(&rt, n, ours_cached),
        "moka_sync" => run(&rt, n, |x| { let c = &moka_sync; async move { c.get(&x) } }),
        "moka_future" => run(&rt, n, |x| { let c = &moka_future; async move { c.get(&x).await } }),
        "timeout_type" => { let t = reliability::Timeout::new("ic.t", Duration::from_secs(30)).unwrap(); run(&rt, n, |x| t.run(work(x))) }
        "retry_type" => { let t = reliability::Retry::new("ic.r", reliability::RetryPolicy::DEFAULT); run(&rt, n, |x| t.run(move || work(x))) }
        "breaker_type" => { let t = reliability::CircuitBreaker::builder("ic.b").build().unwrap(); run(&rt, n, |x| t.call(work(x))) }
        "hand_breaker" => { let t = benches::HandBreaker::new(5, Duration::from_secs(5)); run(&rt, n, |x| t.call(work(x))) }
        "recloser" => { let t = recloser::AsyncRecloser::from(recloser::Recloser::custom().build()); run(&rt, n, |x| t.call(work(x))) }
        "tokio_retry" => run(&rt, n, |x| tokio_retry::Retry::start(tokio_retry::strategy::ExponentialBackoff::from_millis(10).take(2), move || work(x))),
        "tower_retry" => { use tower::ServiceExt; let svc = tower::ServiceBuilder::new().retry(benches::Attempts(3)).service_fn(work); run(&rt, n, |x| svc.clone().oneshot(x)) }
        "hand_retry" => run(&rt, n, |x| benches::hand_retry(3, Duration::from_secs(1), move || work(x))),
        "moka_sync_fx" => { let c = moka::sync::Cache::<u64, u64>::builder().max_capacity(10_000).build_with_hasher(std::hash::BuildHasherDefault::<Fx>::default()); c.insert(7, 8); run(&rt, n, |x| { let c = &c; async move { c.get(&x) } }) }
        "concurrent" => run(&rt, n, cached_concurrent),
        "mutex_map" => { let m = std::sync::Mutex::new(std::collections::HashMap::<u64,u64>::new()); m.lock().unwrap().insert(7, 8); run(&rt, n, |x| { let m = &m; async move { m.lock().unwrap().get(&x).copied() } }) }
        "moka_future_fx" => { let c = moka::future::Cache::<u64, u64>::builder().max_capacity(10_000).build_with_hasher(std::hash::BuildHasherDefault::<Fx>::default()); rt.block_on(c.insert(7, 8)); run(&rt, n, |x| { let c = &c; async move { c.get(&x).await } }) }
        "sizes" => { println!("timeout {} retry {} breaker {} fallback {} stack {} cached {} sleep {}", std::mem::size_of_val(&ours_timeout(7)), std::mem::size_of_val(&ours_retry(7)), std::mem::size_of_val(&ours_breaker(7)), std::mem::size_of_val(&ours_fallback(7)), std::mem::size_of_val(&ours_stack(7)), std::mem::size_of_val(&ours_cached(7)), std::mem::size_of::<tokio::time::Sleep>()); }
        _ => eprintln!("unknown"),
    }
}

#[derive(Default)]
struct Fx(u64);
impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 { self.0 }
    fn write(&mut self, bytes: &[u8]) { for b in bytes { self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95); } }
    fn write_u64(&mut self, i: u64) { self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95); }
}
#[cached::macros::concurrent_cached(max_size = 10_000)]
async fn cached_concurrent(x: u64) -> u64 { x.wrapping_add(1) }
