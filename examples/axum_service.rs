//! An axum service whose handler calls an annotated LLM client (`#[cached]`, `#[fallback]`) over a
//! tower stack of `reliability`'s layers (retry, circuit breaker, rate limit, bulkhead, timeout),
//! with a Prometheus `/metrics` endpoint and `tracing` output.
//!
//! It runs by itself: it starts a fake LLM provider and the service on 127.0.0.1, asks the service
//! a handful of questions (an answer, cache hits, a retried 503, timeouts, an outage that opens the
//! breaker and a fallback), prints what `/metrics` serves, and exits.
//!
//! ```text
//! cargo run --example axum_service
//! RUST_LOG=reliability=debug cargo run --example axum_service   # every retry, rejection, hit
//! ```

use examples::axum_service::run;
use tower::BoxError;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,reliability=info")),
        )
        .init();
    let report = run().await?;
    for (question, status, answer) in &report.answers {
        println!("{question:>16} -> {status} {answer}");
    }
    println!("\n--- GET /metrics ---\n{}", report.metrics);
    Ok(())
}
