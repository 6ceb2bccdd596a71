//! `#[cached]`: hits, only `Ok` stored, `key = EXPR`, `ttl` on the tokio clock, `max_size`, single
//! flight, plain return types, methods and `&str` arguments.

mod common;

use std::sync::Arc;

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
        if let Some(value) = cache.get(&key).await {
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
    assert_eq!((c.calls, c.hits + c.misses, c.successes), (20, 20, 20));
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
