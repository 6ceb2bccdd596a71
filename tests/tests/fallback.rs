//! `#[fallback]`: order of targets, an infallible last target, `when`, the last error, methods
//! called with the same receiver, and the counters of each target.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use common::AppError;
use reliability::{fallback, registry, retry};

/// Which functions ran, in order.
#[derive(Debug, Default)]
struct Trace(Mutex<Vec<&'static str>>);

impl Trace {
    fn push(&self, name: &'static str) {
        self.0.lock().unwrap().push(name);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// `fails` lists the functions that fail (with statuses 1, 2, 3… in the order of `fails`).
async fn step(trace: &Trace, me: &'static str, fails: &[&str]) -> Result<String, AppError> {
    trace.push(me);
    match fails.iter().position(|f| *f == me) {
        Some(i) => Err(AppError::Status(i as u16 + 1)),
        None => Ok(format!("{me} answered")),
    }
}

#[fallback(second, third, fourth)]
async fn first(trace: &Trace, fails: &[&str]) -> Result<String, AppError> {
    step(trace, "first", fails).await
}

async fn second(trace: &Trace, fails: &[&str]) -> Result<String, AppError> {
    step(trace, "second", fails).await
}

async fn third(trace: &Trace, fails: &[&str]) -> Result<String, AppError> {
    step(trace, "third", fails).await
}

async fn fourth(trace: &Trace, fails: &[&str]) -> Result<String, AppError> {
    step(trace, "fourth", fails).await
}

#[tokio::test]
async fn the_first_target_that_succeeds_serves() {
    let trace = Trace::default();
    assert_eq!(first(&trace, &[]).await.unwrap(), "first answered");
    assert_eq!(
        trace.take(),
        ["first"],
        "no fallback while the primary succeeds"
    );

    assert_eq!(first(&trace, &["first"]).await.unwrap(), "second answered");
    assert_eq!(trace.take(), ["first", "second"]);

    let out = first(&trace, &["first", "second"]).await.unwrap();
    assert_eq!(out, "third answered");
    assert_eq!(
        trace.take(),
        ["first", "second", "third"],
        "fourth is not tried"
    );
}

#[tokio::test]
async fn when_all_fail_the_last_error_is_returned() {
    let trace = Trace::default();
    let err = first(&trace, &["first", "second", "third", "fourth"])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(4), "the last target's error");
    assert_eq!(trace.take(), ["first", "second", "third", "fourth"]);
}

#[fallback(cheaper, canned)]
async fn priced(trace: &Trace, _query: String, _fails: &[&str]) -> Result<String, AppError> {
    trace.push("priced");
    Err(AppError::Status(503))
}

async fn cheaper(trace: &Trace, query: String, fails: &[&str]) -> Result<String, AppError> {
    trace.push("cheaper");
    if fails.contains(&"cheaper") {
        Err(AppError::Status(429))
    } else {
        Ok(format!("cheap answer to {query}"))
    }
}

/// Infallible: a plain `String`.
async fn canned(trace: &Trace, query: String, _fails: &[&str]) -> String {
    trace.push("canned");
    format!("no answer to {query} right now")
}

#[tokio::test]
async fn an_infallible_last_target_always_serves() {
    let trace = Trace::default();
    let out = priced(&trace, "rust".into(), &[]).await.unwrap();
    assert_eq!(out, "cheap answer to rust");
    assert_eq!(trace.take(), ["priced", "cheaper"]);

    let out = priced(&trace, "rust".into(), &["cheaper"]).await.unwrap();
    assert_eq!(out, "no answer to rust right now");
    assert_eq!(trace.take(), ["priced", "cheaper", "canned"]);
}

fn is_outage(e: &AppError) -> bool {
    matches!(e.status(), Some(s) if s >= 500)
}

#[fallback(backup, when = is_outage)]
async fn guarded_path(trace: &Trace, status: u16) -> Result<String, AppError> {
    trace.push("guarded");
    Err(AppError::Status(status))
}

#[fallback(backup, when = |e| e.status() != Some(404))]
async fn guarded_closure(trace: &Trace, status: u16) -> Result<String, AppError> {
    trace.push("guarded");
    Err(AppError::Status(status))
}

async fn backup(trace: &Trace, status: u16) -> Result<String, AppError> {
    trace.push("backup");
    Ok(format!("backup after {status}"))
}

#[tokio::test]
async fn when_false_returns_the_error_without_trying_fallbacks() {
    let trace = Trace::default();
    let err = guarded_path(&trace, 400).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(trace.take(), ["guarded"]);
    assert_eq!(guarded_path(&trace, 503).await.unwrap(), "backup after 503");
    assert_eq!(trace.take(), ["guarded", "backup"]);

    let err = guarded_closure(&trace, 404).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(trace.take(), ["guarded"]);
    assert_eq!(
        guarded_closure(&trace, 400).await.unwrap(),
        "backup after 400"
    );
    assert_eq!(trace.take(), ["guarded", "backup"]);

    let stats = registry().snapshot();
    let f = stats.fallback("fallback::guarded_path").unwrap();
    assert_eq!((f.calls, f.successes, f.failures), (2, 0, 1));
    assert_eq!(f.fallbacks, [("backup".to_owned(), 1)]);
}

struct Model {
    name: &'static str,
    healthy: bool,
}

impl Model {
    #[fallback(Self::smaller)]
    async fn ask(&self, q: &str) -> Result<String, AppError> {
        if self.healthy {
            Ok(format!("{} says {q}", self.name))
        } else {
            Err(AppError::Status(503))
        }
    }

    async fn smaller(&self, q: &str) -> Result<String, AppError> {
        Ok(format!("{}-mini says {q}", self.name))
    }
}

#[tokio::test]
async fn a_method_falls_back_to_a_method_of_the_same_receiver() {
    let healthy = Model {
        name: "big",
        healthy: true,
    };
    let down = Model {
        name: "large",
        healthy: false,
    };
    assert_eq!(healthy.ask("hi").await.unwrap(), "big says hi");
    assert_eq!(down.ask("hi").await.unwrap(), "large-mini says hi");
}

struct Account {
    balance: i64,
    log: Vec<String>,
}

impl Account {
    #[fallback(Self::record_failure, Self::overdraft)]
    async fn withdraw(&mut self, amount: i64) -> Result<i64, AppError> {
        self.log.push(format!("withdraw {amount}"));
        if amount > self.balance {
            return Err(AppError::Status(402));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    async fn record_failure(&mut self, amount: i64) -> Result<i64, AppError> {
        self.log.push(format!("refused {amount}"));
        Err(AppError::Status(402))
    }

    async fn overdraft(&mut self, amount: i64) -> i64 {
        self.log.push(format!("overdraft {amount}"));
        self.balance -= amount;
        self.balance
    }
}

#[tokio::test]
async fn a_mut_self_method_falls_back_with_the_same_receiver() {
    let mut account = Account {
        balance: 100,
        log: Vec::new(),
    };
    assert_eq!(account.withdraw(30).await.unwrap(), 70);
    assert_eq!(account.withdraw(100).await.unwrap(), -30);
    assert_eq!(
        account.log,
        [
            "withdraw 30",
            "withdraw 100",
            "refused 100",
            "overdraft 100"
        ],
        "every target saw the same account"
    );
    let stats = registry().snapshot();
    let name = format!("{}::withdraw", std::any::type_name::<Account>());
    let f = stats
        .fallback(&name)
        .expect("registered under the type's name");
    assert_eq!(
        f.fallbacks,
        [
            ("Self::record_failure".to_owned(), 0),
            ("Self::overdraft".to_owned(), 1)
        ]
    );
}

#[fallback(counted_b, counted_c)]
async fn counted_a(n: u32) -> Result<u32, AppError> {
    if n.is_multiple_of(2) {
        Ok(n)
    } else {
        Err(AppError::Status(500))
    }
}

async fn counted_b(n: u32) -> Result<u32, AppError> {
    if n.is_multiple_of(3) {
        Ok(n * 10)
    } else {
        Err(AppError::Status(501))
    }
}

async fn counted_c(n: u32) -> Result<u32, AppError> {
    if n.is_multiple_of(5) {
        Ok(n * 100)
    } else {
        Err(AppError::Status(502))
    }
}

#[tokio::test]
async fn the_registry_counts_the_calls_each_target_served() {
    // 0..30: even → primary (15); odd multiples of 3 → b (3, 9, 15, 21, 27);
    // odd non-multiples of 3 that are multiples of 5 → c (5, 25); the rest fail (1, 7, 11, 13, 17, 19, 23, 29).
    let mut failed = 0;
    for n in 0..30 {
        if counted_a(n).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 8);
    let stats = registry().snapshot();
    let f = stats.fallback("fallback::counted_a").unwrap();
    assert_eq!((f.calls, f.successes, f.failures), (30, 15, 8));
    assert_eq!(
        f.fallbacks,
        [("counted_b".to_owned(), 5), ("counted_c".to_owned(), 2)]
    );
    assert_eq!(f.fallbacks_served(), 7);
}

static OWNED_RUNS: AtomicU32 = AtomicU32::new(0);

/// A retry above a fallback: the fallbacks run inside the retry's loop, so the last one must not
/// take the owned argument by move.
#[retry(max = 3, delay = 0)]
#[fallback(owned_backup)]
async fn retried_with_fallback(_query: String) -> Result<String, AppError> {
    OWNED_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(AppError::Status(503))
}

async fn owned_backup(query: String) -> Result<String, AppError> {
    if OWNED_RUNS.load(Ordering::SeqCst) < 3 {
        Err(AppError::Status(429))
    } else {
        Ok(format!("backup for {query}"))
    }
}

#[tokio::test]
async fn a_retry_above_a_fallback_takes_owned_arguments() {
    let answer = retried_with_fallback("q".to_owned()).await.unwrap();
    assert_eq!(answer, "backup for q");
    assert_eq!(
        OWNED_RUNS.load(Ordering::SeqCst),
        3,
        "each attempt ran the body, then the fallback"
    );
}
