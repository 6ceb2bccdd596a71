//! The reliability ladder, measured: the same flaky OpenAI-compatible service and the same request
//! stream through each rung (bare call, + retry, + timeout, + fallback, + cache, + circuit breaker);
//! then the service with a quota per API key, and the client under it (retry with backoff,
//! + Retry-After, + a client-side rate limit, + a retry budget).
//!
//! ```text
//! cargo run --example llm_gateway                          # embedded flaky service, ~60 s
//! cargo run --example llm_gateway -- --plot ladder.svg     # and a chart over time
//! cargo run --example llm_gateway -- --metrics 127.0.0.1:9000   # and /metrics while it runs
//! cargo run --example llm_gateway -- --help
//! ```
//!
//! The code lives in the `examples` library: `examples/src/gateway/`.
use std::process::ExitCode;

use clap::Parser;
use examples::gateway::cli::{Args, run};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        e.exit();
    }
    match run(&args).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
