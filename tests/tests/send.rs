//! Annotated futures are `Send` when the body is: every attribute, and the full stack, can be
//! `tokio::spawn`ed on a multi-thread runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{AppError, Runs};
use reliability::{cached, circuit_breaker, fallback, retry, timeout};

/// Holds a value across an `.await`, so the future is `Send` only if every layer's state is.
async fn work(runs: &Runs, q: &str) -> Result<String, AppError> {
    let held = q.to_owned();
    tokio::task::yield_now().await;
    if runs.bump() == 1 {
        return Err(AppError::Status(503));
    }
    Ok(held.to_uppercase())
}

static RETRY: Runs = Runs::new();
static TIMEOUT: Runs = Runs::new();
static BREAKER: Runs = Runs::new();
static FALLBACK: Runs = Runs::new();
static CACHED: Runs = Runs::new();
static STACK: Runs = Runs::new();

#[retry(max = 3, delay = "1ms")]
async fn retried(q: String) -> Result<String, AppError> {
    work(&RETRY, &q).await
}

#[timeout(secs = 30)]
async fn timed(q: String) -> Result<String, AppError> {
    work(&TIMEOUT, &q).await
}

#[circuit_breaker(name = "send.breaker")]
async fn guarded(q: String) -> Result<String, AppError> {
    work(&BREAKER, &q).await
}

#[fallback(backup)]
async fn with_fallback(q: String) -> Result<String, AppError> {
    work(&FALLBACK, &q).await
}

async fn backup(q: String) -> Result<String, AppError> {
    tokio::task::yield_now().await;
    Ok(format!("backup {q}"))
}

#[cached]
async fn memo(q: String) -> Result<String, AppError> {
    work(&CACHED, &q).await
}

#[cached(ttl = 60, key = q.to_lowercase())]
#[fallback(backup)]
#[retry(max = 3, delay = "1ms")]
#[circuit_breaker(name = "send.stack")]
#[timeout(secs = 30)]
async fn full_stack(q: String) -> Result<String, AppError> {
    work(&STACK, &q).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_can_be_spawned() {
    let retried = tokio::spawn(retried("a".into()));
    let timed = tokio::spawn(timed("b".into()));
    let guarded = tokio::spawn(guarded("c".into()));
    let with_fallback = tokio::spawn(with_fallback("d".into()));
    let memo = tokio::spawn(memo("e".into()));
    let stack = tokio::spawn(full_stack("f".into()));

    assert_eq!(retried.await.unwrap().unwrap(), "A");
    assert_eq!(timed.await.unwrap().unwrap_err().status(), Some(503));
    assert_eq!(guarded.await.unwrap().unwrap_err().status(), Some(503));
    assert_eq!(with_fallback.await.unwrap().unwrap(), "backup d");
    assert_eq!(memo.await.unwrap().unwrap_err().status(), Some(503));
    assert_eq!(stack.await.unwrap().unwrap(), "F");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_both_workers() {
    let handles: Vec<_> = (0..16)
        .map(|i| tokio::spawn(full_stack(if i % 2 == 0 { "Q".into() } else { "q".into() })))
        .collect();
    for handle in handles {
        // One key ("q"); at most one run fails in this binary, and the retry covers it.
        assert_eq!(handle.await.unwrap().unwrap(), "Q");
    }
}

struct Client {
    calls: AtomicU32,
}

trait Fetch {
    async fn fetch(&self, id: u32) -> Result<u32, AppError>;
}

impl Client {
    #[retry(max = 2, delay = "1ms")]
    #[timeout(secs = 30)]
    async fn by_ref(&self, id: u32) -> Result<u32, AppError> {
        tokio::task::yield_now().await;
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(id)
    }

    #[cached]
    #[fallback(Self::fallback_arc)]
    #[retry(max = 2, delay = "1ms")]
    #[circuit_breaker(name = "send.arc")]
    #[timeout(secs = 30)]
    async fn by_arc(self: Arc<Self>, id: u32) -> Result<u32, AppError> {
        tokio::task::yield_now().await;
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(id * 2)
    }

    async fn fallback_arc(self: Arc<Self>, _id: u32) -> Result<u32, AppError> {
        Ok(0)
    }

    #[retry(max = 2, delay = "1ms")]
    async fn by_mut(&mut self, id: u32) -> Result<u32, AppError> {
        tokio::task::yield_now().await;
        *self.calls.get_mut() += 1;
        Ok(id)
    }
}

impl Fetch for Client {
    #[retry(max = 2, delay = "1ms")]
    #[circuit_breaker(name = "send.trait")]
    async fn fetch(&self, id: u32) -> Result<u32, AppError> {
        tokio::task::yield_now().await;
        Ok(id + 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_can_be_spawned() {
    let client = Arc::new(Client {
        calls: AtomicU32::new(0),
    });
    let c = client.clone();
    let by_ref = tokio::spawn(async move { c.by_ref(1).await });
    let by_arc = tokio::spawn(client.clone().by_arc(2));
    let c = client.clone();
    let by_trait = tokio::spawn(async move { c.fetch(3).await });
    let by_mut = tokio::spawn(async move {
        let mut own = Client {
            calls: AtomicU32::new(0),
        };
        own.by_mut(4).await
    });
    assert_eq!(by_ref.await.unwrap().unwrap(), 1);
    assert_eq!(by_arc.await.unwrap().unwrap(), 4);
    assert_eq!(by_trait.await.unwrap().unwrap(), 4);
    assert_eq!(by_mut.await.unwrap().unwrap(), 4);
}
