//! The reliability ladder, measured: the same flaky OpenAI-compatible service and the same request
//! stream through each rung (bare call, + retry, + timeout, + fallback, + cache, + circuit breaker).
//!
//! ```text
//! cargo run --example llm_gateway                          # embedded flaky service, ~35 s
//! cargo run --example llm_gateway -- --plot ladder.svg     # and a chart over time
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
