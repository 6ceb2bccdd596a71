#![deny(warnings)]
//! Every supported item shape, with every attribute alone and the full stack.

use std::fmt::Display;
use std::sync::Arc;

use reliability::{cached, circuit_breaker, fallback, retry, timeout};

#[derive(Debug)]
pub enum MyError {
    Transient,
    Reliability(reliability::Error),
}

impl From<reliability::Error> for MyError {
    fn from(e: reliability::Error) -> Self {
        MyError::Reliability(e)
    }
}

fn is_transient(e: &MyError) -> bool {
    matches!(e, MyError::Transient)
}

async fn backup(q: String) -> Result<String, MyError> {
    Ok(q)
}

async fn canned(_q: String) -> String {
    String::from("canned")
}

#[retry(max = 2, delay = 0, when = is_transient)]
pub async fn free_retry(q: String) -> Result<String, MyError> {
    Ok(q)
}

#[timeout(ms = 100)]
pub async fn free_timeout(q: &str) -> Result<usize, MyError> {
    Ok(q.len())
}

#[circuit_breaker(name = "pass-free", when = |e| matches!(e, MyError::Transient))]
pub async fn free_breaker(q: &str) -> Result<usize, MyError> {
    Ok(q.len())
}

#[cached(ttl = "1m", max_size = 10)]
pub async fn free_cached(q: String) -> Result<usize, MyError> {
    Ok(q.len())
}

#[cached]
pub async fn free_cached_plain(a: u32, b: u32) -> u64 {
    u64::from(a) + u64::from(b)
}

#[fallback(backup, canned)]
pub async fn free_fallback(q: String) -> Result<String, MyError> {
    Err(MyError::Transient).or(Ok(q))
}

#[cached(ttl = 3600, key = query.trim().to_lowercase())]
#[fallback(backup, canned)]
#[retry(max = 3, backoff = "exponential")]
#[circuit_breaker(name = "pass-stack")]
#[timeout(secs = 30)]
pub async fn full_stack(query: String) -> Result<String, MyError> {
    Ok(query)
}

#[retry(max = 3, delay = "1ms")]
#[timeout(secs = 1)]
pub async fn generic<T: Display + Clone + Send + Sync>(value: T) -> Result<String, MyError> {
    Ok(value.to_string())
}

#[retry(delay = 0)]
pub async fn patterns((a, b): (u32, u32), mut extra: Vec<u32>, out: &mut Vec<u32>) -> Result<u32, MyError> {
    extra.push(a);
    out.push(b);
    Ok(a + b + extra.len() as u32)
}

pub struct Client {
    pub calls: u32,
}

impl Client {
    async fn backup(&self, q: String) -> Result<String, MyError> {
        Ok(q)
    }

    async fn canned_mut(&mut self, _q: String) -> String {
        String::new()
    }

    #[cached(key = (self.calls, q.clone()))]
    #[fallback(Self::backup)]
    #[retry(max = 2, delay = 0)]
    #[circuit_breaker]
    #[timeout(secs = 5)]
    pub async fn by_ref(&self, q: String) -> Result<String, MyError> {
        Ok(q)
    }

    #[fallback(Self::canned_mut)]
    #[retry(max = 2, delay = 0)]
    #[timeout(secs = 5)]
    pub async fn by_mut(&mut self, q: String) -> Result<String, MyError> {
        self.calls += 1;
        Ok(q)
    }

    #[retry(max = 2, delay = 0)]
    #[circuit_breaker]
    pub async fn by_arc(self: Arc<Self>, q: String) -> Result<String, MyError> {
        Ok(format!("{}{q}", self.calls))
    }
}

pub trait Model {
    fn complete(&self, q: String) -> impl std::future::Future<Output = Result<String, MyError>> + Send;
}

impl Model for Client {
    #[retry(max = 2, delay = 0)]
    #[timeout(secs = 5)]
    async fn complete(&self, q: String) -> Result<String, MyError> {
        if q.is_empty() {
            return Err(MyError::Transient);
        }
        let n: u32 = q.len().try_into().map_err(|_| MyError::Transient)?;
        Ok(format!("{n}"))
    }
}

#[retry(max = 2, delay = 0)]
#[timeout(secs = 5)]
pub async fn with_anyhow(q: String) -> anyhow::Result<String> {
    anyhow::ensure!(!q.is_empty(), "empty");
    Ok(q)
}

fn assert_send<F: std::future::Future + Send>(f: F) -> F {
    f
}

fn main() {
    let client = Arc::new(Client { calls: 0 });
    let _ = assert_send(full_stack(String::new()));
    let _ = assert_send(client.by_ref(String::new()));
    let _ = assert_send(client.clone().by_arc(String::new()));
    let _ = assert_send(client.complete(String::new()));
    let _ = assert_send(generic(1u8));
    let _ = (free_retry, free_timeout, free_breaker, free_cached, free_cached_plain, free_fallback, patterns, with_anyhow);
    let mut owned = Client { calls: 0 };
    let _ = assert_send(owned.by_mut(String::new()));
}
