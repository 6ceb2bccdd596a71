#![deny(warnings)]
//! Numbers and durations given as constants and const expressions, in every attribute, on a free
//! function, a method, a method of a trait impl and a generic function.

use std::time::Duration;

use reliability::{bulkhead, cached, circuit_breaker, hedge, rate_limit, retry, timeout};

#[derive(Debug)]
pub struct MyError;

impl From<reliability::Error> for MyError {
    fn from(_: reliability::Error) -> Self {
        MyError
    }
}

const MAX_ATTEMPTS: u32 = 4;
const DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY_SECS: u64 = 2;
const MULTIPLIER: f64 = 1.5;
const BUDGET: f64 = 0.2;
const TIMEOUT_SECS: u64 = 30;
const TIMEOUT_MS: u64 = 250;
const COOLDOWN: Duration = Duration::from_secs(60);
const FAILURES: u32 = 5;
const RATE: f64 = 0.5;
const WINDOW_CALLS: u32 = 50;
const WINDOW_TIME: Duration = Duration::from_secs(30);
const CACHE_TTL: Duration = Duration::from_secs(3600);
const CACHE_SIZE: u64 = 1_000;
const QUOTA: u32 = 100;
const HALF_A_SECOND: f64 = 0.5;

mod config {
    pub const SLOTS: u32 = 8;
    pub const HEDGES: u32 = 2;
}

pub struct Limits;

impl Limits {
    pub const QUEUE: u32 = 16;
}

#[retry(max = MAX_ATTEMPTS, delay = DELAY, max_delay = MAX_DELAY_SECS, multiplier = MULTIPLIER, deadline = 2 * 60, budget = BUDGET)]
#[circuit_breaker(failure_threshold = FAILURES, success_threshold = FAILURES - 3, cooldown = COOLDOWN)]
#[rate_limit(rate = QUOTA, per = 60, burst = QUOTA / 10, wait = HALF_A_SECOND)]
#[bulkhead(max = config::SLOTS, queue = Limits::QUEUE, wait = DELAY)]
#[timeout(secs = TIMEOUT_SECS)]
pub async fn free(q: String) -> Result<String, MyError> {
    Ok(q)
}

#[cached(ttl = CACHE_TTL, tti = 60 * 10, max_size = CACHE_SIZE, stale_if_error = CACHE_TTL)]
#[hedge(after = DELAY, max = config::HEDGES)]
#[circuit_breaker(failure_rate = RATE, window = WINDOW_CALLS, min_calls = WINDOW_CALLS / 2, slow_call = DELAY, slow_call_rate = RATE)]
#[timeout(ms = TIMEOUT_MS)]
pub async fn generic<T: std::fmt::Display + Clone + std::hash::Hash + Eq + Send + Sync + 'static>(t: T) -> Result<String, MyError> {
    Ok(t.to_string())
}

pub struct Client;

impl Client {
    #[retry(max = MAX_ATTEMPTS, delay = 0.25, max_delay = MAX_DELAY_SECS)]
    #[circuit_breaker(window = WINDOW_TIME, min_calls = 10)]
    #[bulkhead(max = config::SLOTS)]
    #[timeout(secs = TIMEOUT_SECS)]
    pub async fn by_ref(&self, q: String) -> Result<String, MyError> {
        Ok(q)
    }
}

pub trait Ask {
    fn ask(&self, q: String) -> impl std::future::Future<Output = Result<String, MyError>> + Send;
}

impl Ask for Client {
    #[cached(ttl = CACHE_TTL, max_size = CACHE_SIZE)]
    #[hedge(after = HALF_A_SECOND, max = 1 + 1)]
    #[rate_limit(rate = QUOTA)]
    #[timeout(secs = TIMEOUT_SECS)]
    async fn ask(&self, q: String) -> Result<String, MyError> {
        Ok(q)
    }
}

fn assert_send<F: std::future::Future + Send>(f: F) -> F {
    f
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(free("a".to_owned()).await.ok().as_deref(), Some("a"));
    assert_eq!(generic(3u8).await.ok().as_deref(), Some("3"));
    assert_eq!(Client.by_ref("b".to_owned()).await.ok().as_deref(), Some("b"));
    assert_eq!(Client.ask("c".to_owned()).await.ok().as_deref(), Some("c"));
    let _ = assert_send(free(String::new()));
    let _ = assert_send(generic(1u8));
    let _ = assert_send(Client.by_ref(String::new()));
}
