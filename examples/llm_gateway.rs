//! The reliability ladder, measured: the same flaky OpenAI-compatible service and the same request
//! stream through each rung (bare call, + retry, + timeout, + fallback, + cache, + circuit breaker);
//! then the service with a quota per API key, and the client under it (retry with backoff,
//! + Retry-After, + a client-side rate limit, + a retry budget).
//!
//! With `--replicas N`, instead: N gateway replicas against the same service, each alone and then
//! sharing their breaker, cache and quota through Redis (a `redis-server` from the PATH, or
//! `--redis URL`).
//!
//! ```text
//! cargo run --example llm_gateway                          # embedded flaky service, ~60 s
//! cargo run --example llm_gateway -- --plot ladder.svg     # and a chart over time
//! cargo run --example llm_gateway -- --metrics 127.0.0.1:9000   # and /metrics while it runs
//! cargo run --example llm_gateway -- --replicas 3         # replicas alone, then sharing through Redis
//! cargo run --example llm_gateway -- --help
//! ```
//!
//! The code lives in the `examples` library: `examples/src/gateway/`.
use std::process::ExitCode;

use clap::Parser;
use examples::gateway::cli::{Args, run, run_replicas};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        e.exit();
    }
    let ran = if args.replicas.is_some() {
        run_replicas(&args).await.map(drop)
    } else {
        run(&args).await.map(drop)
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
