//! `#[cached]`: hits, only `Ok` stored, `key = EXPR`, `ttl` on the tokio clock, `max_size`, single
//! flight, plain return types, methods and `&str` arguments, `stale_if_error`, invalidation seen by
//! every worker thread.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{AppError, Runs, ms, secs};
use futures::future::join_all;
use reliability::{Cache, cached, registry};
use tokio::time::{Instant, advance, sleep};

static SQUARE: Runs = Runs::new();

#[cached]
async fn square(n: u64) -> Result<u64, AppError> {
    SQUARE.bump();
    Ok(n * n)
}

#[tokio::test]
async fn equal_arguments_hit() {
    assert_eq!(square(3).await.unwrap(), 9);
    assert_eq!(square(3).await.unwrap(), 9);
    assert_eq!(SQUARE.get(), 1, "the body ran once for n = 3");
    assert_eq!(square(4).await.unwrap(), 16);
    assert_eq!(SQUARE.get(), 2, "n = 4 is another key");
    let stats = registry().snapshot();
    let c = stats.cache("cache::square").unwrap();
    assert_eq!((c.calls, c.hits, c.misses, c.successes), (3, 1, 2, 2));
    assert!((c.hit_rate() - 1.0 / 3.0).abs() < 1e-9);
}

static FLAKY: Runs = Runs::new();

#[cached]
async fn flaky(key: u32) -> Result<u32, AppError> {
    if FLAKY.bump() == 1 {
        return Err(AppError::Status(503));
    }
    Ok(key + 1)
}

#[tokio::test]
async fn only_ok_is_stored() {
    assert_eq!(flaky(7).await.unwrap_err().status(), Some(503));
    assert_eq!(flaky(7).await.unwrap(), 8, "the error was not cached");
    assert_eq!(flaky(7).await.unwrap(), 8);
    assert_eq!(FLAKY.get(), 2);
    let stats = registry().snapshot();
    let c = stats.cache("cache::flaky").unwrap();
    assert_eq!((c.hits, c.misses, c.successes, c.failures), (1, 2, 1, 1));
}

static NORMALIZED: Runs = Runs::new();

#[cached(key = query.trim().to_lowercase())]
async fn normalized(query: String) -> Result<String, AppError> {
    NORMALIZED.bump();
    Ok(format!("answer to {query:?}"))
}

#[tokio::test]
async fn key_expression_chooses_the_key() {
    let first = normalized("A ".into()).await.unwrap();
    assert_eq!(first, "answer to \"A \"");
    assert_eq!(
        normalized("a".into()).await.unwrap(),
        first,
        "\"A \" and \"a\" are one entry"
    );
    assert_eq!(normalized("  a  ".into()).await.unwrap(), first);
    assert_eq!(NORMALIZED.get(), 1);
    normalized("b".into()).await.unwrap();
    assert_eq!(NORMALIZED.get(), 2);
}

static TTL: Runs = Runs::new();

#[cached(ttl = 10)]
async fn expiring(n: u32) -> Result<u32, AppError> {
    Ok(n * 100 + TTL.bump())
}

#[tokio::test(start_paused = true)]
async fn ttl_expires_on_the_tokio_clock() {
    assert_eq!(expiring(1).await.unwrap(), 101);
    advance(ms(9_999)).await;
    assert_eq!(
        expiring(1).await.unwrap(),
        101,
        "still fresh just before the ttl"
    );
    advance(ms(1)).await;
    assert_eq!(
        expiring(1).await.unwrap(),
        102,
        "expired at the ttl: the body runs again"
    );
    assert_eq!(expiring(1).await.unwrap(), 102, "the new value is stored");
    advance(secs(5)).await;
    assert_eq!(
        expiring(1).await.unwrap(),
        102,
        "the ttl counts from the new insertion"
    );
}

#[tokio::test]
async fn max_size_bounds_the_entries() {
    let cache: Cache<u32, u32> = Cache::builder("cache.max_size")
        .max_size(10)
        .build()
        .unwrap();
    for key in 0..100 {
        let value = cache.get_or_insert(key, async move { key * 2 }).await;
        assert_eq!(value, key * 2);
    }
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 10);
    let mut present = 0;
    for key in 0..100 {
        if let Some(value) = cache.get(&key) {
            assert_eq!(value, key * 2);
            present += 1;
        }
    }
    assert_eq!(present, 10, "evicted keys are gone");
}

static SLOW: Runs = Runs::new();

#[cached]
async fn slow(key: String) -> Result<String, AppError> {
    SLOW.bump();
    sleep(secs(1)).await;
    Ok(key.to_uppercase())
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_on_one_key_run_the_body_once() {
    let start = Instant::now();
    let handles: Vec<_> = (0..20)
        .map(|_| tokio::spawn(slow("rust".to_owned())))
        .collect();
    for out in join_all(handles).await {
        assert_eq!(out.unwrap().unwrap(), "RUST");
    }
    assert_eq!(SLOW.get(), 1, "one body run for twenty concurrent misses");
    assert_eq!(start.elapsed(), secs(1));
    let stats = registry().snapshot();
    let c = stats.cache("cache::slow").unwrap();
    // One call ran the body; the nineteen others shared its run: neither misses nor hits.
    assert_eq!(
        (c.calls, c.misses, c.coalesced, c.hits, c.successes),
        (20, 1, 19, 0, 1)
    );
    assert_eq!(
        c.hit_rate(),
        0.0,
        "no call was answered from a stored entry"
    );
}

static SLOW_FAIL: Runs = Runs::new();

#[cached]
async fn slow_failure(key: u32) -> Result<u32, AppError> {
    let n = SLOW_FAIL.bump();
    sleep(secs(1)).await;
    Err(AppError::Status(500 + n as u16 + key as u16))
}

#[tokio::test(start_paused = true)]
async fn a_shared_miss_that_fails_gives_each_waiter_its_own_error() {
    let out = join_all((0..3).map(|_| slow_failure(0))).await;
    let mut statuses: Vec<_> = out
        .iter()
        .map(|r| r.as_ref().unwrap_err().status())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [Some(501), Some(502), Some(503)],
        "three errors of three runs"
    );
    assert_eq!(SLOW_FAIL.get(), 3);
}

static PLAIN: Runs = Runs::new();

#[cached]
async fn plain(n: u32) -> Vec<u32> {
    PLAIN.bump();
    (0..n).collect()
}

#[tokio::test]
async fn a_plain_return_type_is_cached() {
    assert_eq!(plain(3).await, [0, 1, 2]);
    assert_eq!(plain(3).await, [0, 1, 2]);
    assert_eq!(PLAIN.get(), 1);
}

struct Tenant {
    id: u32,
    runs: Arc<Runs>,
}

impl Tenant {
    /// The default key leaves `self` out: every tenant shares the entries.
    #[cached]
    async fn shared(&self, q: String) -> Result<String, AppError> {
        self.runs.bump();
        Ok(format!("{q} for tenant {}", self.id))
    }

    /// Keyed on the tenant as well.
    #[cached(key = (self.id, q.clone()))]
    async fn own(&self, q: String) -> Result<String, AppError> {
        self.runs.bump();
        Ok(format!("{q} for tenant {}", self.id))
    }
}

#[tokio::test]
async fn methods_key_on_arguments_not_self() {
    let runs = Arc::new(Runs::new());
    let (a, b) = (
        Tenant {
            id: 1,
            runs: runs.clone(),
        },
        Tenant {
            id: 2,
            runs: runs.clone(),
        },
    );
    assert_eq!(a.shared("q".into()).await.unwrap(), "q for tenant 1");
    assert_eq!(
        b.shared("q".into()).await.unwrap(),
        "q for tenant 1",
        "b got a's entry"
    );
    assert_eq!(runs.get(), 1);

    assert_eq!(a.own("q".into()).await.unwrap(), "q for tenant 1");
    assert_eq!(b.own("q".into()).await.unwrap(), "q for tenant 2");
    assert_eq!(a.own("q".into()).await.unwrap(), "q for tenant 1");
    assert_eq!(runs.get(), 3, "one entry per tenant");
}

static LENGTHS: Runs = Runs::new();

#[cached]
async fn length(word: &str, unit: &str) -> String {
    LENGTHS.bump();
    format!("{} {unit}", word.len())
}

#[tokio::test]
async fn str_arguments_are_keys() {
    let owned = String::from("hello");
    assert_eq!(length("hello", "chars").await, "5 chars");
    assert_eq!(length(&owned, "chars").await, "5 chars");
    assert_eq!(LENGTHS.get(), 1, "equal strings hit");
    assert_eq!(length("hello", "bytes").await, "5 bytes");
    assert_eq!(LENGTHS.get(), 2, "every argument is part of the key");
}

#[cached(name = "cache.renamed")]
async fn renamed(n: u32) -> u32 {
    n
}

#[tokio::test]
async fn name_overrides_the_registry_name() {
    renamed(1).await;
    renamed(1).await;
    let stats = registry().snapshot();
    let c = stats.cache("cache.renamed").unwrap();
    assert_eq!((c.hits, c.misses), (1, 1));
    assert!(stats.cache("cache::renamed").is_none());
}

/// A name for each type argument of the generic functions below.
trait Named {
    const NAME: &'static str;
}

struct Alpha;
struct Beta;

impl Named for Alpha {
    const NAME: &'static str = "alpha";
}

impl Named for Beta {
    const NAME: &'static str = "beta";
}

#[cached]
async fn schema<T: Named>() -> String {
    T::NAME.to_owned()
}

#[tokio::test]
async fn each_instantiation_of_a_generic_function_has_its_own_cache() {
    assert_eq!(schema::<Alpha>().await, "alpha");
    assert_eq!(schema::<Beta>().await, "beta", "not alpha's cached answer");
    assert_eq!(schema::<Alpha>().await, "alpha");
    let stats = registry().snapshot();
    let alpha = stats.cache("cache::schema::<cache::Alpha>").unwrap();
    let beta = stats.cache("cache::schema::<cache::Beta>").unwrap();
    assert_eq!((alpha.hits, alpha.misses), (1, 1));
    assert_eq!((beta.hits, beta.misses), (0, 1));
}

static VIA_MACRO: Runs = Runs::new();

/// The return type reaches the attribute as a `$ty` fragment, which the compiler wraps in an
/// invisible group.
macro_rules! cached_fn {
    ($name:ident, $ret:ty) => {
        #[cached]
        async fn $name(key: u32) -> $ret {
            if VIA_MACRO.bump() == 1 {
                return Err(AppError::Status(503));
            }
            Ok(key)
        }
    };
}

cached_fn!(made_by_a_macro, Result<u32, AppError>);

#[tokio::test]
async fn errors_are_not_cached_when_the_return_type_comes_through_a_macro() {
    assert!(made_by_a_macro(1).await.is_err());
    assert_eq!(
        made_by_a_macro(1).await.unwrap(),
        1,
        "the error was not stored"
    );
    assert_eq!(made_by_a_macro(1).await.unwrap(), 1);
    assert_eq!(VIA_MACRO.get(), 2);
}

/// A plain type whose name ends in `Result`: cached as a value.
#[derive(Debug, Clone, PartialEq)]
struct SearchResult {
    hits: Vec<String>,
}

static SEARCHES: Runs = Runs::new();

#[cached]
async fn search(query: String) -> SearchResult {
    SEARCHES.bump();
    SearchResult { hits: vec![query] }
}

type Answer = Result<String, AppError>;

static ALIASED: Runs = Runs::new();

/// An alias of `Result` whose name does not say so: still only `Ok` values are stored.
#[cached]
async fn aliased(fail: bool) -> Answer {
    ALIASED.bump();
    if fail {
        Err(AppError::Status(500))
    } else {
        Ok("ok".to_owned())
    }
}

#[tokio::test]
async fn what_is_stored_follows_the_type_not_its_spelling() {
    let first = search("rust".to_owned()).await;
    assert_eq!(search("rust".to_owned()).await, first);
    assert_eq!(
        SEARCHES.get(),
        1,
        "a `SearchResult` is a value like any other"
    );

    assert!(aliased(true).await.is_err());
    assert!(aliased(true).await.is_err());
    assert_eq!(ALIASED.get(), 2, "errors through an alias are not stored");
    assert_eq!(aliased(false).await.unwrap(), "ok");
    assert_eq!(aliased(false).await.unwrap(), "ok");
    assert_eq!(ALIASED.get(), 3);
}

/// A value that counts how many of its kind are alive.
#[derive(Clone)]
struct Counted(#[allow(dead_code)] Arc<LiveGuard>);

struct LiveGuard(&'static AtomicUsize);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

static LIVE_VALUES: AtomicUsize = AtomicUsize::new(0);

fn counted() -> Counted {
    LIVE_VALUES.fetch_add(1, Ordering::SeqCst);
    Counted(Arc::new(LiveGuard(&LIVE_VALUES)))
}

/// Each thread keeps copies of the entries it read, to answer hits without a lock. Those copies
/// must not keep values alive that moka evicted: with many threads and rotating keys, the values
/// alive stay within `max_size` plus a small front per thread (64 entries), not threads × 1024.
#[test]
fn front_copies_do_not_keep_evicted_values_alive() {
    const MAX_SIZE: u64 = 100;
    const THREADS: usize = 8;
    let cache: Cache<u64, Counted> = Cache::builder("cache.front_bound")
        .max_size(MAX_SIZE)
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        for thread in 0..THREADS as u64 {
            let cache = &cache;
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    for i in 0..3_000 {
                        let key = (thread * 7_919 + i) % 10_000;
                        // A miss then a hit: the hit leaves a copy in this thread's front.
                        for _ in 0..2 {
                            cache.get_or_insert(key, async { counted() }).await;
                        }
                    }
                });
            });
        }
    });
    // moka applies a bounded batch of pending writes per run: run until they are all applied (on a
    // loaded machine 20 runs were not always enough). Values that a front kept alive would never
    // be dropped, however many runs.
    let bound = MAX_SIZE as usize + THREADS * 64;
    for _ in 0..1_000 {
        futures::executor::block_on(cache.run_pending_tasks());
        if LIVE_VALUES.load(Ordering::SeqCst) <= bound {
            break;
        }
    }
    let live = LIVE_VALUES.load(Ordering::SeqCst);
    assert!(
        live <= bound,
        "{live} values alive, above the bound of {bound}"
    );
}

/// A Zipf-distributed stream of keys (exponent 1), drawn with a seeded SplitMix64.
fn zipf_stream(keys: usize, len: usize, seed: u64) -> Vec<u64> {
    let weights: Vec<f64> = (1..=keys).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(keys);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut state = seed;
    (0..len)
        .map(|_| {
            let z = common::splitmix(&mut state);
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// moka's eviction policy keeps the keys that are read often. The fast path for hits must not hide
/// those reads from it: on a Zipf stream whose key space is far above `max_size`, the hit rate is
/// moka's own, within a point.
#[tokio::test]
async fn hot_keys_keep_their_place_when_the_cache_is_full() {
    const MAX_SIZE: u64 = 200;
    let stream = zipf_stream(20_000, 100_000, 42);
    let ours: Cache<u64, u64> = Cache::builder("cache.zipf")
        .max_size(MAX_SIZE)
        .build()
        .unwrap();
    let mut ours_hits = 0_u32;
    for &key in &stream {
        let mut ran = false;
        ours.get_or_insert(key, async {
            ran = true;
            key
        })
        .await;
        ours_hits += u32::from(!ran);
    }
    let alone: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(MAX_SIZE);
    let mut alone_hits = 0_u32;
    for &key in &stream {
        if alone.get(&key).is_some() {
            alone_hits += 1;
        } else {
            alone.insert(key, key);
        }
    }
    let rate = |hits: u32| f64::from(hits) / stream.len() as f64;
    let (ours, alone) = (rate(ours_hits), rate(alone_hits));
    assert!(
        ours >= alone - 0.01,
        "hit rate {ours:.3} against moka alone {alone:.3}"
    );
}

static ANSWERS: Runs = Runs::new();

/// `unless`: some `Ok` values are not worth keeping (an empty answer from a model).
#[cached(unless = |answer: &String| answer.is_empty())]
async fn answer(question: u32) -> Result<String, AppError> {
    ANSWERS.bump();
    Ok(if question == 0 {
        String::new()
    } else {
        format!("answer {question}")
    })
}

#[tokio::test]
async fn unless_keeps_some_answers_out_of_the_cache() {
    assert_eq!(answer(0).await.unwrap(), "");
    assert_eq!(answer(0).await.unwrap(), "");
    assert_eq!(ANSWERS.get(), 2, "the empty answer was not stored");
    assert_eq!(answer(1).await.unwrap(), "answer 1");
    assert_eq!(answer(1).await.unwrap(), "answer 1");
    assert_eq!(ANSWERS.get(), 3, "the other one was");
}

// --- stale_if_error: a real answer past its ttl beats an error while the service is down ---

static FORECAST_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static FORECAST: Runs = Runs::new();

#[cached(name = "cache.forecast", ttl = 60, stale_if_error = "10m")]
async fn forecast(city: &'static str) -> Result<String, AppError> {
    let run = FORECAST.bump();
    if FORECAST_DOWN.load(Ordering::SeqCst) {
        return Err(AppError::Status(503));
    }
    Ok(format!("{city} #{run}"))
}

#[tokio::test(start_paused = true)]
async fn stale_answers_are_served_during_an_outage_then_fresh_ones_after() {
    assert_eq!(forecast("oslo").await.unwrap(), "oslo #1");
    advance(secs(30)).await;
    assert_eq!(forecast("oslo").await.unwrap(), "oslo #1", "fresh: a hit");

    // The ttl passes and the service goes down: the expired answer is served instead of the error.
    advance(secs(31)).await;
    FORECAST_DOWN.store(true, Ordering::SeqCst);
    assert_eq!(forecast("oslo").await.unwrap(), "oslo #1", "stale, not 503");
    assert_eq!(
        FORECAST.get(),
        2,
        "the body ran (and failed) before the stale answer"
    );
    advance(secs(5 * 60)).await;
    assert_eq!(
        forecast("oslo").await.unwrap(),
        "oslo #1",
        "still within the window"
    );
    assert!(
        matches!(forecast("paris").await, Err(AppError::Status(503))),
        "no entry to serve: the error"
    );

    // The service is back: a fresh answer replaces the stale one, and is a hit afterwards.
    FORECAST_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(forecast("oslo").await.unwrap(), "oslo #5");
    assert_eq!(forecast("oslo").await.unwrap(), "oslo #5");

    // Past ttl + stale_if_error the entry is gone for good.
    advance(secs(60 + 10 * 60)).await;
    FORECAST_DOWN.store(true, Ordering::SeqCst);
    assert!(matches!(forecast("oslo").await, Err(AppError::Status(503))));

    let stats = registry().snapshot();
    let c = stats.cache("cache.forecast").unwrap();
    assert_eq!(c.stale_served, 2);
    assert_eq!((c.hits, c.misses), (2, 6));
    assert_eq!(
        (c.successes, c.failures),
        (2, 4),
        "a stale answer is still a failed run"
    );
}

static MODEL_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn canned(_question: u32) -> Result<String, AppError> {
    Ok("sorry, try later".to_owned())
}

#[cached(name = "cache.degraded", ttl = 10, stale_if_error = 60)]
#[reliability::fallback(canned)]
async fn ask(question: u32) -> Result<String, AppError> {
    if MODEL_DOWN.load(Ordering::SeqCst) {
        return Err(AppError::Status(500));
    }
    Ok(format!("answer {question}"))
}

#[tokio::test(start_paused = true)]
async fn a_stale_answer_beats_a_fallback_and_a_fallback_still_answers_new_questions() {
    assert_eq!(ask(1).await.unwrap(), "answer 1");
    advance(secs(11)).await;
    MODEL_DOWN.store(true, Ordering::SeqCst);
    assert_eq!(ask(1).await.unwrap(), "answer 1", "stale beats canned");
    assert_eq!(
        ask(2).await.unwrap(),
        "sorry, try later",
        "nothing stale: the fallback"
    );
    MODEL_DOWN.store(false, Ordering::SeqCst);
    assert_eq!(
        ask(2).await.unwrap(),
        "answer 2",
        "the canned reply was not stored"
    );
    let stats = registry().snapshot();
    assert_eq!(stats.cache("cache.degraded").unwrap().stale_served, 1);
}

#[test]
fn stale_if_error_needs_a_ttl_and_a_window() {
    let no_ttl = Cache::builder("cache.stale.no_ttl")
        .stale_if_error(secs(60))
        .build::<u32, u32>()
        .unwrap_err();
    assert_eq!(no_ttl.setting(), "stale_if_error");
    let zero = Cache::builder("cache.stale.zero")
        .ttl(secs(1))
        .stale_if_error(secs(0))
        .build::<u32, u32>()
        .unwrap_err();
    assert_eq!(zero.setting(), "stale_if_error");
}

#[tokio::test(start_paused = true)]
async fn the_programmatic_cache_serves_stale_on_error() {
    let cache: Cache<u32, u32> = Cache::builder("cache.stale.prog")
        .ttl(secs(1))
        .stale_if_error(secs(5))
        .build()
        .unwrap();
    assert_eq!(cache.config().stale_if_error(), Some(secs(5)));
    let ok = cache.get_or_try_insert(1, async { Ok::<_, AppError>(7) });
    assert_eq!(ok.await.unwrap(), 7);
    advance(ms(1_500)).await;
    assert_eq!(cache.get(&1), None, "expired entries do not answer lookups");
    let failed = cache.get_or_try_insert(1, async { Err::<u32, _>(AppError::Status(500)) });
    assert_eq!(failed.await.unwrap(), 7);
    advance(secs(5)).await;
    let failed = cache.get_or_try_insert(1, async { Err::<u32, _>(AppError::Status(500)) });
    assert!(failed.await.is_err(), "past the window");
}

// --- invalidation reaches every worker thread's front at once ---

static VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
static VERSION_RUNS: Runs = Runs::new();

#[cached(name = "cache.versioned", ttl = 3600)]
async fn versioned(key: u32) -> u64 {
    VERSION_RUNS.bump();
    VERSION.load(Ordering::SeqCst)
}

/// Tasks, one on each worker thread: they meet at blocking barriers, so no two share a thread. The
/// lead computes each new version before the tasks call again, so their calls are all hits that
/// never wait (a task woken on a worker blocked at a barrier would never run).
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_worker_threads_front_answers_an_invalidated_key() {
    let handle = || registry().cache("cache.versioned");
    assert_eq!(versioned(7).await, 1);
    let start = Arc::new(std::sync::Barrier::new(WORKERS + 1));
    let changed = Arc::new(std::sync::Barrier::new(WORKERS + 1));
    let done = Arc::new(std::sync::Barrier::new(WORKERS + 1));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (start, changed, done) = (start.clone(), changed.clone(), done.clone());
            tokio::spawn(async move {
                let thread = std::thread::current().id();
                // Every worker has the entry in its own front: many hits on this thread.
                let mut seen = Vec::new();
                start.wait();
                for _ in 0..300 {
                    seen.push(versioned(7).await);
                }
                changed.wait(); // the lead invalidates here
                changed.wait();
                let mut after = Vec::new();
                for _ in 0..300 {
                    after.push(versioned(7).await);
                }
                done.wait(); // the lead invalidates everything here
                done.wait();
                let last = versioned(7).await;
                (thread, seen, after, last)
            })
        })
        .collect();
    let runtime = tokio::runtime::Handle::current();
    let lead = tokio::task::spawn_blocking(move || {
        start.wait();
        changed.wait();
        VERSION.store(2, Ordering::SeqCst);
        assert!(handle().unwrap().invalidate(&(7u32,)), "the key was there");
        assert_eq!(runtime.block_on(versioned(7)), 2);
        changed.wait();
        done.wait();
        VERSION.store(3, Ordering::SeqCst);
        handle().unwrap().invalidate_all();
        assert_eq!(runtime.block_on(versioned(7)), 3);
        done.wait();
    });
    let mut threads = std::collections::HashSet::new();
    for task in tasks {
        let (thread, seen, after, last) = task.await.unwrap();
        threads.insert(thread);
        assert!(seen.iter().all(|&v| v == 1), "{seen:?}");
        assert!(
            after.iter().all(|&v| v == 2),
            "an invalidated entry answered on {thread:?}"
        );
        assert_eq!(last, 3, "invalidate_all did not reach {thread:?}");
    }
    lead.await.unwrap();
    assert_eq!(threads.len(), WORKERS, "one task per worker thread");
    assert_eq!(
        VERSION_RUNS.get(),
        3,
        "each version computed once, by the lead"
    );
}
