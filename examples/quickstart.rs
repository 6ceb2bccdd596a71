//! The recommended stack on a fake model that fails, hangs and recovers.
use std::sync::atomic::{AtomicU32, Ordering};

use reliability::{cached, circuit_breaker, fallback, retry, timeout};

#[derive(Debug, thiserror::Error)]
enum LlmError {
    #[error("service answered {0}")]
    Status(u16),
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[cached(ttl = 3600, key = query.trim().to_lowercase())]
#[fallback(gpt35, canned)]
#[retry(max = 3, backoff = "exponential", delay = "10ms")]
#[circuit_breaker(name = "gpt4")]
#[timeout(secs = 30)]
async fn gpt4(query: String) -> Result<String, LlmError> {
    let n = CALLS.fetch_add(1, Ordering::SeqCst);
    if n.is_multiple_of(2) {
        return Err(LlmError::Status(503));
    }
    Ok(format!("gpt4: {query}"))
}

async fn gpt35(query: String) -> Result<String, LlmError> {
    Ok(format!("gpt35: {query}"))
}

async fn canned(_query: String) -> String {
    "canned".to_owned()
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter("reliability=debug")
        .init();
    for q in ["hello", "Hello ", "world"] {
        println!("{q:?} -> {:?}", gpt4(q.to_owned()).await);
    }
    print!("{}", reliability::registry().snapshot());
}
